"""TensorBoard logging of the spatial organisation of SpatialDense layers."""

import keras
import tensorflow as tf

from tfemergent import analysis, plotting
from tfemergent.callbacks.epoch_summary_callback import EpochSummaryCallback
from tfemergent.layers.spatial_dense import SpatialDense
from tfemergent.utils.validation import validate_int


@keras.saving.register_keras_serializable(package="tfemergent")
class SpatialTensorBoard(EpochSummaryCallback):
    """Logs the costs and neuron positions of `SpatialDense` layers.

    Every ``update_freq`` epochs it writes to ``log_dir`` (TensorBoard event
    files, one writer opened lazily on first use):

    - scalars ``<layer>/transport_cost`` and ``<layer>/density_cost``: the
      current value of each layer's costs, as added to the loss;
    - scalars ``<layer>/cross_task_fraction``: for split layers, the share of
      the absolute weight mass that connects neurons of different tasks;
    - an image ``spatial/positions``: one scatter panel per `SpatialDense`
      layer, neurons coloured by the task `tfemergent.analysis.greedy_split`
      assigns them to (grey for layers that are not split).

    The split is recomputed at each logging step, so the images show the
    structure emerge during training.

    Args:
        log_dir: directory of the event files (created if needed).
        update_freq: log every this many epochs (>= 1); the first and last
            epochs are always logged.
        num_tasks: number of tasks for the split (>= 1); 1 disables colouring.
        split_layers: names of the layers to split, as for `greedy_split`;
            default: from the first layer with a spatial cost to the output.

    Example:

    >>> import keras, numpy as np, tempfile
    >>> from tfemergent.layers import SpatialDense
    >>> from tfemergent.regularizers import DensityCost, TransportCost
    >>> from tfemergent.callbacks import SpatialTensorBoard
    >>> model = keras.Sequential([keras.Input((4,)), SpatialDense(6, seed=0),
    ...     SpatialDense(4, activation=None, seed=1, transport_cost=TransportCost(),
    ...                  density_cost=DensityCost())])
    >>> model.compile("adam", "mse")
    >>> callback = SpatialTensorBoard(tempfile.mkdtemp(), num_tasks=2)
    >>> _ = model.fit(np.ones((8, 4)), np.zeros((8, 4)), epochs=1, verbose=0,
    ...               callbacks=[callback])
    """

    def __init__(self, log_dir, update_freq=1, num_tasks=2, split_layers=None):
        super().__init__(log_dir, update_freq)
        self.num_tasks = validate_int("num_tasks", num_tasks, minimum=1)
        self.split_layers = None if split_layers is None else list(split_layers)

    def _spatial_layers(self):
        return [layer for layer in self.model.layers if isinstance(layer, SpatialDense)]

    def _split(self):
        if self.num_tasks < 2:
            return None
        try:
            return analysis.greedy_split(self.model, self.num_tasks, layers=self.split_layers)
        except ValueError:
            # No layer carries a cost and no split layers were named: nothing to colour.
            return None

    def log(self, step):
        """Write all summaries for ``step`` now (also called by the epoch hooks)."""
        layers = self._spatial_layers()
        if not layers:
            return
        split = self._split()
        positions, assignments, titles = [], [], []
        with self.writer.as_default(step=step):
            for layer in layers:
                if layer.transport_cost is not None:
                    tf.summary.scalar(
                        f"{layer.name}/transport_cost", float(layer.compute_transport_cost())
                    )
                if layer.density_cost is not None:
                    tf.summary.scalar(
                        f"{layer.name}/density_cost", float(layer.compute_density_cost())
                    )
                positions.append(keras.ops.convert_to_numpy(layer.positions))
                titles.append(layer.name)
                if split is not None and layer.name in split.layer_names:
                    assignments.append(split.assignment(layer.name))
                else:
                    assignments.append(None)
            if split is not None:
                for name, fraction in zip(split.layer_names[1:], split.cross_task_fraction):
                    tf.summary.scalar(f"{name}/cross_task_fraction", fraction)
            png = plotting.figure_to_png(plotting.plot_positions(
                positions, assignments, titles,
                title=f"epoch {step}: neuron positions"
                + (" by task (greedy split)" if split is not None else ""),
            ))
            image = tf.image.decode_png(png, channels=3)[tf.newaxis]
            tf.summary.image("spatial/positions", image)
        self.writer.flush()

    def get_config(self):
        return {
            "log_dir": self.log_dir,
            "update_freq": self.update_freq,
            "num_tasks": self.num_tasks,
            "split_layers": self.split_layers,
        }
