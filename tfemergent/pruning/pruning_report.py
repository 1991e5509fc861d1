"""What `prune_kernels` did: kernels and parameters pruned per layer."""

import dataclasses
import typing


@dataclasses.dataclass(frozen=True)
class PruningReport:
    """The state of the prunable layers after `tfemergent.pruning.prune_kernels`.

    One row per pruned layer (a `tfemergent.layers.MaskedConv2D` or
    `tfemergent.layers.AddOnConv2D`), counting everything pruned so far, not
    only by the last call:

    - ``num_kernels``: the layer's ``in * out`` kernels;
    - ``num_pruned_kernels``: kernels with mask 0;
    - ``num_parameters``: the layer's kernel weights ``k * k * in * out``;
    - ``num_pruned_parameters``: ``k * k * num_pruned_kernels``.

    Pruned parameters stay in the (masked) model; `tfemergent.pruning.shrink`
    removes the channels left without input or output (with
    ``granularity="channel"``, the pruned channels).

    Attributes:
        layers: dict layer name -> dict of the four counts above.
        threshold: the sensitivity threshold: the one given, or for a fraction
            the smallest sensitivity kept (a dict per layer for
            ``scope="layer"``).
        scope: ``"model"`` or ``"layer"``.
        num_model_parameters: trainable parameters of the whole model.
        granularity: ``"kernel"`` (kernels ranked one by one, the default) or
            ``"channel"`` (whole output channels ranked and pruned).

    Example:

    >>> from tfemergent.pruning import PruningReport
    >>> report = PruningReport(
    ...     layers={"conv_0_0": {"num_kernels": 4, "num_pruned_kernels": 3,
    ...                          "num_parameters": 36, "num_pruned_parameters": 27}},
    ...     threshold=0.05, scope="model", num_model_parameters=54)
    >>> report.pruned_kernel_fraction, report.pruned_parameter_fraction
    (0.75, 0.5)
    """

    layers: typing.Dict[str, typing.Dict[str, int]]
    threshold: typing.Union[float, typing.Dict[str, float]]
    scope: str
    num_model_parameters: int
    granularity: str = "kernel"

    @property
    def num_kernels(self):
        """Kernels of all reported layers."""
        return sum(row["num_kernels"] for row in self.layers.values())

    @property
    def num_pruned_kernels(self):
        """Pruned kernels of all reported layers."""
        return sum(row["num_pruned_kernels"] for row in self.layers.values())

    @property
    def num_pruned_parameters(self):
        """Pruned kernel weights of all reported layers."""
        return sum(row["num_pruned_parameters"] for row in self.layers.values())

    @property
    def pruned_kernel_fraction(self):
        """Pruned kernels / kernels of the reported layers."""
        return self.num_pruned_kernels / self.num_kernels if self.num_kernels else 0.0

    @property
    def pruned_parameter_fraction(self):
        """Pruned kernel weights / trainable parameters of the whole model."""
        if not self.num_model_parameters:
            return 0.0
        return self.num_pruned_parameters / self.num_model_parameters

    def to_dict(self):
        """A JSON-serialisable dict of the report and its totals."""
        return {
            "layers": {name: dict(row) for name, row in self.layers.items()},
            "threshold": self.threshold,
            "scope": self.scope,
            "granularity": self.granularity,
            "num_model_parameters": self.num_model_parameters,
            "num_kernels": self.num_kernels,
            "num_pruned_kernels": self.num_pruned_kernels,
            "num_pruned_parameters": self.num_pruned_parameters,
            "pruned_kernel_fraction": self.pruned_kernel_fraction,
            "pruned_parameter_fraction": self.pruned_parameter_fraction,
        }

    def __str__(self):
        lines = [
            f"layer | kernels pruned | parameters pruned   (granularity={self.granularity})"
        ]
        for name, row in self.layers.items():
            lines.append(
                f"{name} | {row['num_pruned_kernels']}/{row['num_kernels']} | "
                f"{row['num_pruned_parameters']}/{row['num_parameters']}"
            )
        lines.append(
            f"total | {self.num_pruned_kernels}/{self.num_kernels} "
            f"({self.pruned_kernel_fraction:.1%}) | {self.num_pruned_parameters} "
            f"({self.pruned_parameter_fraction:.1%} of {self.num_model_parameters} trainable)"
        )
        return "\n".join(lines)
