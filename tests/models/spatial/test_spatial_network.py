import numpy as np
import pytest

from tfemergent.layers import SpatialDense
from tfemergent.models import build_spatial_network


def test_paper_architecture_and_costs():
    model = build_spatial_network(1568, seed=0)
    assert [layer.units for layer in model.layers] == [128, 128, 128, 256, 20]
    # positions exist from the layer feeding the first cost on
    assert [isinstance(layer, SpatialDense) for layer in model.layers] == [
        False, True, True, True, True]
    with_costs = [l.name for l in model.layers if getattr(l, "transport_cost", None) is not None]
    assert with_costs == ["hidden_3", "hidden_4", "output"]
    for name in with_costs:  # averaged over |L| = 3 layers
        layer = model.get_layer(name)
        assert layer.transport_cost.alpha == 1.0 and layer.transport_cost.num_layers == 3
        assert layer.density_cost.beta == 3.0 and layer.density_cost.num_layers == 3
    assert model.layers[-1].activation is None or model.layers[-1].activation.__name__ == "linear"
    assert float(model.optimizer.learning_rate) == pytest.approx(0.005)
    regular = build_spatial_network(784, spatial=False, seed=0)
    assert not any(isinstance(layer, SpatialDense) for layer in regular.layers)


def test_seeded_builds_are_identical():
    a = build_spatial_network(10, hidden_units=(4, 4, 4, 4), seed=3)
    b = build_spatial_network(10, hidden_units=(4, 4, 4, 4), seed=3)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"hidden_units": ()}, "hidden_units"), ({"first_spatial_layer": 1}, "first_spatial_layer"),
     ({"learning_rate": 0.0}, "learning_rate"), ({"num_classes": 1}, "num_classes"),
     ({"transport_normalization": "synapses"}, "Received: transport_normalization='synapses'")],
)
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match="Received:") as info:
        build_spatial_network(10, **kwargs)
    assert name in str(info.value)
