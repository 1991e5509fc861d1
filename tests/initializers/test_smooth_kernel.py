"""SmoothKernel: the smoothing is the hand-computed 3x3 Gaussian convolution of the base draw."""

import importlib
import json
import math

import keras
import numpy as np
import pytest
from docstring_examples import assert_docstring_examples

from tfemergent.initializers import SmoothKernel

smooth_kernel_module = importlib.import_module("tfemergent.initializers.smooth_kernel")


def _gaussian(sigma):
    # exp(-(a^2 + b^2) / (2 sigma^2)) for a, b in {-1, 0, 1}, divided by the sum.
    corner, edge = math.exp(-1.0 / sigma**2), math.exp(-0.5 / sigma**2)
    weights = np.array([[corner, edge, corner], [edge, 1.0, edge], [corner, edge, corner]])
    return weights / (1.0 + 4.0 * edge + 4.0 * corner)


def _smooth_by_hand(kernel, sigma):
    """Zero-padded same-size 3x3 convolution of every (in, out) slice, written out."""
    gaussian = _gaussian(sigma)
    height, width = kernel.shape[:2]
    out = np.zeros(kernel.shape)
    for y in range(height):
        for x in range(width):
            for a in (-1, 0, 1):
                for b in (-1, 0, 1):
                    if 0 <= y + a < height and 0 <= x + b < width:
                        out[y, x] += gaussian[a + 1, b + 1] * kernel[y + a, x + b]
    return out


def test_gaussian_filter_values():
    np.testing.assert_allclose(SmoothKernel(sigma=1.0).filter, _gaussian(1.0))
    # sigma = 1: Z = 1 + 4 e^-1/2 + 4 e^-1 = 4.897640...
    assert SmoothKernel().filter[1, 1] == pytest.approx(1 / 4.8976402, rel=1e-6)
    assert SmoothKernel(sigma=0.5).filter.sum() == pytest.approx(1.0)


def test_constant_kernel_by_hand():
    kernel = SmoothKernel(base="ones")((3, 3, 1, 1)).numpy()[:, :, 0, 0]
    z = 1 + 4 * math.exp(-0.5) + 4 * math.exp(-1)
    assert kernel[1, 1] == pytest.approx(1.0)  # all nine weights
    assert kernel[0, 0] == pytest.approx((1 + 2 * math.exp(-0.5) + math.exp(-1)) / z, rel=1e-6)
    assert kernel[0, 1] == pytest.approx((1 + 3 * math.exp(-0.5) + 2 * math.exp(-1)) / z, rel=1e-6)


@pytest.mark.parametrize("size, sigma", [(3, 1.0), (5, 1.0), (5, 0.7), (4, 2.0)])
def test_smoothing_equals_the_hand_computed_convolution(size, sigma):
    shape = (size, size, 2, 3)
    base = keras.initializers.HeNormal(seed=11)
    drawn = base(shape).numpy().astype("float64")
    smoothed = SmoothKernel(base=base, sigma=sigma)(shape).numpy()
    np.testing.assert_allclose(smoothed, _smooth_by_hand(drawn, sigma), atol=1e-6)


def test_one_by_one_kernels_are_returned_as_drawn():
    base = keras.initializers.RandomNormal(seed=4)
    np.testing.assert_array_equal(
        SmoothKernel(base=base)((1, 1, 3, 5)).numpy(), base((1, 1, 3, 5)).numpy()
    )


def test_seed_is_given_to_the_base_and_smoothing_lowers_the_spread():
    shape = (5, 5, 8, 8)
    first, second = SmoothKernel(seed=3)(shape).numpy(), SmoothKernel(seed=3)(shape).numpy()
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, SmoothKernel(seed=4)(shape).numpy())
    np.testing.assert_allclose(
        first, _smooth_by_hand(keras.initializers.HeNormal(seed=3)(shape).numpy(), 1.0), atol=1e-6
    )
    assert first.std() < 0.5 * keras.initializers.HeNormal(seed=3)(shape).numpy().std()


def test_smooth_kernel_config_round_trip():
    init = SmoothKernel(base="glorot_uniform", sigma=0.8, seed=2)
    config = json.loads(json.dumps(init.get_config()))
    assert config["sigma"] == 0.8 and config["seed"] == 2
    restored = SmoothKernel.from_config(config)
    assert restored.get_config() == init.get_config()
    fetched = keras.initializers.get(keras.initializers.serialize(init))
    assert type(fetched) is SmoothKernel
    np.testing.assert_array_equal(fetched((3, 3, 2, 2)).numpy(), init((3, 3, 2, 2)).numpy())
    assert keras.saving.get_registered_name(SmoothKernel) == "tfemergent>SmoothKernel"


def test_conv2d_with_smooth_kernel_saves_and_loads(tmp_path):
    model = keras.Sequential(
        [keras.Input((6, 6, 1)), keras.layers.Conv2D(2, 3, kernel_initializer=SmoothKernel(seed=1))]
    )
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.layers[0].kernel_initializer) is SmoothKernel
    np.testing.assert_array_equal(loaded.layers[0].kernel.numpy(), model.layers[0].kernel.numpy())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": -1.0}, "sigma"),
        ({"seed": -2}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"base": "no_such_initializer"}, "base"),
        ({"base": SmoothKernel()}, "base"),
    ],
)
def test_smooth_kernel_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match="Received") as info:
        SmoothKernel(**kwargs)
    assert message in str(info.value)


@pytest.mark.parametrize("shape", [(3, 4), (3, 3, 4), (3, 3, 3, 2, 2)])
def test_non_conv2d_shapes_are_refused(shape):
    expected = r"\(height, width, in_channels, out_channels\). Received: shape"
    with pytest.raises(ValueError, match=expected):
        SmoothKernel()(shape)


def test_smooth_kernel_docstring_examples():
    assert_docstring_examples(smooth_kernel_module)
