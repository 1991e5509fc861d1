"""TensorBoard logging of the emergent structure of RecursiveURNLayer layers."""

import warnings

import keras
import numpy as np
import tensorflow as tf

from tfemergent import analysis, plotting
from tfemergent.callbacks.epoch_summary_callback import EpochSummaryCallback
from tfemergent.callbacks.image_summaries import write_images
from tfemergent.layers.recursive_urn_layer import RecursiveURNLayer
from tfemergent.utils.validation import as_array, describe, validate_float, validate_int

# Kernel entries with |w| below this count as zero for `weight_sparsity_1e-3`.
SMALL_WEIGHT = 1e-3
# Probe samples run through the URN at once for the activity image.
_CHUNK_SIZE = 256


@keras.saving.register_keras_serializable(package="tfemergent")
class URNTensorBoard(EpochSummaryCallback):
    """Logs the emergent structure of `RecursiveURNLayer` layers to TensorBoard.

    Every ``update_freq`` epochs (and always after the first and the last
    epoch), for every `RecursiveURNLayer` of the model (searched through nested
    models too) or only the one named ``layer_name``, the structure is extracted
    on ``probe_data`` with `tfemergent.analysis.urn_structure_of` and written
    to ``log_dir`` (one event-file writer, opened on first use; the step is the
    epoch index):

    - scalar ``<layer>/active_neurons``: `URNStructure.num_active` (inputs included);
    - scalars ``<layer>/weight_sparsity`` and ``<layer>/weight_sparsity_1e-3``:
      the fraction of kernel entries that are exactly zero, and that have
      ``|w| < 1e-3``;
    - scalar ``<layer>/forward_share``: `URNStructure.forward`, the share of the
      weight mass between active neurons carried by forward synapses;
    - scalar ``<layer>/non_finite_values``: the number of NaN or inf values in
      the kernel and in the states on ``probe_data`` (0 when all is well); the
      first time a layer has any, the callback also warns that its structure
      numbers are not meaningful;
    - scalar ``<layer>/synaptic_length``: the layer's synaptic-length cost
      (`RecursiveURNLayer.compute_synaptic_length`, as added to the loss), only
      when the layer has one;
    - scalar ``<layer>/mean_synaptic_length``: `URNStructure.mean_synaptic_length`,
      the ``|W|``-weighted mean uplifted length of the synapses between active
      neurons, only when the layer has a lattice;
    - image ``<layer>/sorted_weights``: ``|W|`` of the active neurons sorted by
      first-active iteration (`tfemergent.analysis.sorted_weight_matrix`), drawn
      in the paper's orientation (row = postsynaptic) by
      `tfemergent.plotting.plot_sorted_weights`;
    - image ``<layer>/activity``: ``mean |N^(l)|`` over the probe batch of each
      active neuron (columns, same order) at each iteration ``l = 0 ... I``
      (rows), by `tfemergent.plotting.plot_activity` (the paper's Fig. 3, left);
    - image ``<layer>/connectomics``, only when the layer has a lattice: the
      synapses between active neurons in the ``(x, z)`` projection of the
      lattice, forward red, backward green, lateral black, opacity by ``|w|``
      (the strongest ``max_synapses`` only), by
      `tfemergent.plotting.plot_connectomics` (the paper's Fig. 6).

    ``probe_data`` is data, not configuration: `get_config` returns every other
    argument, and `from_config` needs the probe data again, either as its
    ``probe_data`` argument or as a ``"probe_data"`` entry that the caller adds
    to the config.

    Args:
        log_dir: directory of the event files (created if needed).
        probe_data: array ``(B, ...)`` of inputs of the URN layer(s), ``B >= 1``:
            ``(B, input_dim)``, or images that the layer accepts (flattened, or
            resized onto the input plane of a lattice layer). Keep it small (a
            few hundred samples): the URN is run on it in float64 numpy twice
            per logged epoch.
        update_freq: log every this many epochs (>= 1); the first and last
            epochs are always logged.
        layer_name: name of the one `RecursiveURNLayer` to log; default all of
            them. Checked when training begins.
        tolerance: a neuron counts as active when ``|N| > tolerance`` (>= 0), as
            in `tfemergent.analysis.urn_structure`.
        max_synapses: the number of strongest synapses drawn in the
            connectomics image (>= 1).

    Example:

    >>> import keras, numpy as np, tempfile
    >>> from tfemergent.layers import RecursiveURNLayer
    >>> from tfemergent.callbacks import URNTensorBoard
    >>> model = keras.Sequential([keras.Input((3,)),
    ...     RecursiveURNLayer(12, 3, input_dim=3, output_dim=2, seed=0, name="urn")])
    >>> model.compile("adam", "mse")
    >>> x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    >>> callback = URNTensorBoard(tempfile.mkdtemp(), probe_data=x[:8])
    >>> _ = model.fit(x, np.zeros((16, 2)), epochs=1, verbose=0, callbacks=[callback])
    """

    def __init__(
        self,
        log_dir,
        probe_data,
        update_freq=1,
        layer_name=None,
        tolerance=0.0,
        max_synapses=2000,
    ):
        super().__init__(log_dir, update_freq)
        self.probe_data = _validate_probe_data(probe_data)
        if layer_name is not None and (not isinstance(layer_name, str) or not layer_name):
            raise ValueError(
                "Argument `layer_name` must be None or the name of a RecursiveURNLayer. "
                f"Received: layer_name={layer_name!r}"
            )
        self.layer_name = layer_name
        self.tolerance = validate_float("tolerance", tolerance, minimum=0.0)
        self.max_synapses = validate_int("max_synapses", max_synapses, minimum=1)

    def urn_layers(self):
        """The `RecursiveURNLayer` layers that are logged.

        Raises:
            ValueError: when ``layer_name`` names no `RecursiveURNLayer` of the
                model, or the model has none.
        """
        layers = [
            layer for layer in _all_layers(self.model) if isinstance(layer, RecursiveURNLayer)
        ]
        if self.layer_name is not None:
            layers = [layer for layer in layers if layer.name == self.layer_name]
            if not layers:
                names = sorted(layer.name for layer in _all_layers(self.model))
                raise ValueError(
                    "Argument `layer_name` must name a RecursiveURNLayer of the model; "
                    f"its layers are {names}. Received: layer_name={self.layer_name!r}"
                )
        elif not layers:
            raise ValueError(
                "URNTensorBoard logs RecursiveURNLayer layers, but the model has none. "
                f"Received: model={self.model.name!r}"
            )
        return layers

    def log(self, step):
        """Write all summaries for ``step`` now (also called by the epoch hooks)."""
        layers = self.urn_layers()
        with self.writer.as_default(step=step):
            for layer in layers:
                self._log_layer(layer, step)
        self.writer.flush()

    def _log_layer(self, layer, step):
        name = layer.name
        x = _flat_inputs(layer, self.probe_data)
        kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel), dtype=np.float64)
        coordinates = None if layer.lattice is None else layer.lattice.coordinates("float64")
        structure = analysis.urn_structure_of(
            layer, x, tolerance=self.tolerance, coordinates=coordinates
        )
        tf.summary.scalar(f"{name}/active_neurons", structure.num_active)
        tf.summary.scalar(f"{name}/weight_sparsity", float(np.mean(kernel == 0.0)))
        tf.summary.scalar(
            f"{name}/weight_sparsity_1e-3", float(np.mean(np.abs(kernel) < SMALL_WEIGHT))
        )
        tf.summary.scalar(f"{name}/forward_share", structure.forward)
        activity = _mean_activity(layer, x)
        # The layer's own states (in its dtype): what training sees overflow.
        states = keras.ops.convert_to_numpy(layer.compute_states(x))
        non_finite = sum(
            int(np.size(values) - np.count_nonzero(np.isfinite(values)))
            for values in (kernel, states, activity)
        )
        tf.summary.scalar(f"{name}/non_finite_values", non_finite)
        flagged = self.__dict__.setdefault("_non_finite_layers", set())
        if non_finite and name not in flagged:
            flagged.add(name)
            warnings.warn(
                f"URNTensorBoard: layer {name!r} has {non_finite} non-finite (NaN or inf) "
                "values in its kernel or in its states on the probe data, so its structure "
                "numbers are not meaningful; the recursion overflows (lower the learning "
                "rate or the weights; RecursiveURNLayer(check_numerics=True) stops at the "
                "first such iteration). Logged as "
                f"'{name}/non_finite_values'.",
                stacklevel=2,
            )
        if layer.synaptic_length is not None:
            tf.summary.scalar(
                f"{name}/synaptic_length",
                float(keras.ops.convert_to_numpy(layer.compute_synaptic_length())),
            )
        if structure.mean_synaptic_length is not None:
            tf.summary.scalar(f"{name}/mean_synaptic_length", structure.mean_synaptic_length)

        iterations = structure.first_active_iteration[structure.order]
        write_images(
            f"{name}/sorted_weights",
            plotting.plot_sorted_weights(
                analysis.sorted_weight_matrix(kernel, structure), iterations,
                title=f"epoch {step}, {name}: sorted |W| of the active neurons",
            ),
        )
        write_images(
            f"{name}/activity",
            plotting.plot_activity(
                activity[:, structure.order], iterations,
                title=f"epoch {step}, {name}: mean |N| per iteration",
            ),
        )
        if layer.lattice is not None:
            write_images(
                f"{name}/connectomics",
                plotting.plot_connectomics(
                    layer.lattice.lattice_coordinates(), kernel, structure.active,
                    title=f"epoch {step}, {name}: synapses between active neurons (x, z)",
                    max_synapses=self.max_synapses,
                ),
            )

    def on_train_begin(self, logs=None):
        layers = self.urn_layers()  # fail before the first epoch, not after it
        for layer in layers:
            _flat_inputs(layer, self.probe_data)
        super().on_train_begin(logs)

    def get_config(self):
        """Every argument but ``probe_data`` (data, not configuration)."""
        return {
            "log_dir": self.log_dir,
            "update_freq": self.update_freq,
            "layer_name": self.layer_name,
            "tolerance": self.tolerance,
            "max_synapses": self.max_synapses,
        }

    @classmethod
    def from_config(cls, config, probe_data=None):
        """Recreate the callback from `get_config` and the probe data.

        Args:
            config: a dict from `get_config`, optionally with a ``"probe_data"`` entry.
            probe_data: the probe inputs; required unless ``config`` holds them.
        """
        config = dict(config)
        if probe_data is None:
            probe_data = config.pop("probe_data", None)
        else:
            config.pop("probe_data", None)
        if probe_data is None:
            raise ValueError(
                "URNTensorBoard's config does not hold the probe data (data, not "
                "configuration): call `URNTensorBoard.from_config(config, probe_data=x)`. "
                "Received: probe_data=None"
            )
        return cls(probe_data=probe_data, **config)


def _validate_probe_data(probe_data):
    array = as_array(probe_data)
    if (
        array is None
        or array.ndim < 2
        or len(array) == 0
        or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool)
    ):
        shape = getattr(array, "shape", None)
        raise ValueError(
            "Argument `probe_data` must be a numeric array (B, ...) of at least one input "
            "sample of the URN layer, at least 2-D. "
            f"Received: probe_data={describe(probe_data)} (shape {shape})"
        )
    return array


def _all_layers(model):
    """The layers of ``model``, nested models included, depth first."""
    found = []
    for layer in getattr(model, "layers", []):
        found.append(layer)
        if hasattr(layer, "layers"):
            found.extend(_all_layers(layer))
    return found


def _flat_inputs(layer, probe_data):
    """``probe_data`` as the layer sees it: float64 ``(B, input_dim)``."""
    x = probe_data
    if x.ndim > 2 and layer.lattice is not None and x.ndim in (3, 4):
        x = keras.ops.convert_to_numpy(layer.lattice.embed(x.astype(np.float32)))
    elif x.ndim > 2:
        x = x.reshape(len(x), -1)
    if x.shape[1] != layer.input_dim:
        raise ValueError(
            f"Argument `probe_data` must hold inputs of layer {layer.name!r}: "
            f"(B, {layer.input_dim}) or images of {layer.input_dim} values. "
            f"Received: probe_data.shape={probe_data.shape}"
        )
    return np.asarray(x, dtype=np.float64)


def _mean_activity(layer, x):
    """``mean |N^(l)|`` over the samples: float64 ``(I + 1, S)`` (`analysis.urn_forward`)."""
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    bias = None if layer.bias is None else keras.ops.convert_to_numpy(layer.bias)
    total = 0.0
    for start in range(0, len(x), _CHUNK_SIZE):
        states = analysis.urn_forward(
            kernel, bias, x[start:start + _CHUNK_SIZE], layer.num_iterations,
            layer.input_indices, layer.output_indices, residual=layer.residual,
            activation=layer.activation,
        )
        total = total + np.abs(states).sum(axis=1)
    return total / len(x)
