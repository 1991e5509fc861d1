"""What `prune_channels` chose: channels, parameters and MACs per layer, fixed groups."""

import dataclasses
import typing

COLUMNS = ("channels", "parameters", "macs")


@dataclasses.dataclass(frozen=True)
class ChannelPruningReport:
    """The channels `tfemergent.pruning.prune_channels` pruned and what they cost.

    One row per layer with weights (convolutions, dense, normalisation, ...): its
    output channels, parameters (every weight, as ``model.count_params()``) and
    multiply-adds per example (MACs) before pruning and after `shrink` (the counts
    of the shrunk model: a channel zeroed by the pruning that `shrink` cannot remove
    exactly counts as kept). ``fixed_groups`` lists the channel groups left alone and
    why (model inputs and outputs, layers the engine does not understand such as
    custom layers or `Lambda`, groups touching an ``exclude``-d layer).

    ``str(report)`` is a table; ``to_dict()`` a JSON-serialisable dict.

    Attributes:
        layers: dict layer name -> ``{"type", "channels_before", "channels_after",
            "parameters_before", "parameters_after", "macs_before", "macs_after"}``.
        fixed_groups: list of ``{"layers": [names], "num_channels": int,
            "reasons": [str]}``.
        pruned: dict layer name -> sorted channel indices zeroed, for the first
            producing layer of every pruned group.
        fraction: the requested fraction of channels.
        criterion: the criterion's name (``"l1"``, ``"l2"``, ``"std"``, or the
            callable's name).
        scope: ``"layer"`` or ``"model"``.
        round_to: the multiple the kept channels of a group are rounded to.

    Example:

    >>> from tfemergent.pruning import ChannelPruningReport
    >>> report = ChannelPruningReport(
    ...     layers={"conv": {"type": "Conv2D", "channels_before": 8, "channels_after": 4,
    ...                      "parameters_before": 224, "parameters_after": 112,
    ...                      "macs_before": 13824, "macs_after": 6912}},
    ...     fixed_groups=[], pruned={"conv": [0, 2, 5, 7]}, fraction=0.5,
    ...     criterion="l1", scope="layer", round_to=1)
    >>> report.parameter_ratio, report.mac_ratio
    (0.5, 0.5)
    >>> print(report)  # doctest: +NORMALIZE_WHITESPACE
    layer  type    channels  parameters  MACs
    conv   Conv2D  8 -> 4    224 -> 112  13824 -> 6912
    total          8 -> 4    224 -> 112  13824 -> 6912
    parameters after/before 0.500, MACs after/before 0.500 (fraction=0.5, criterion='l1', scope='layer', round_to=1)
    """

    layers: typing.Dict[str, typing.Dict[str, typing.Any]]
    fixed_groups: typing.List[typing.Dict[str, typing.Any]]
    pruned: typing.Dict[str, typing.List[int]]
    fraction: float
    criterion: str
    scope: str
    round_to: int

    def total(self, column):
        """``(before, after)`` summed over the layers, for "channels", "parameters" or "macs"."""
        if column not in COLUMNS:
            raise ValueError(
                f"Argument `column` must be one of {COLUMNS}. Received: column={column!r}"
            )
        before = sum(row[f"{column}_before"] for row in self.layers.values())
        after = sum(row[f"{column}_after"] for row in self.layers.values())
        return before, after

    @property
    def parameter_ratio(self):
        """Parameters after / before (of the reported layers)."""
        before, after = self.total("parameters")
        return after / before if before else 1.0

    @property
    def mac_ratio(self):
        """MACs after / before (of the reported layers)."""
        before, after = self.total("macs")
        return after / before if before else 1.0

    def to_dict(self):
        """A JSON-serialisable dict of the report and its totals."""
        return {
            "layers": {name: dict(row) for name, row in self.layers.items()},
            "fixed_groups": [dict(group) for group in self.fixed_groups],
            "pruned": {name: list(channels) for name, channels in self.pruned.items()},
            "fraction": self.fraction,
            "criterion": self.criterion,
            "scope": self.scope,
            "round_to": self.round_to,
            "parameter_ratio": self.parameter_ratio,
            "mac_ratio": self.mac_ratio,
        }

    def __str__(self):
        def pair(row, column):
            return f"{row[column + '_before']} -> {row[column + '_after']}"

        table = [("layer", "type", "channels", "parameters", "MACs")]
        for name, row in self.layers.items():
            table.append((name, row["type"], pair(row, "channels"), pair(row, "parameters"),
                          pair(row, "macs")))
        totals = {f"{c}_{w}": v for c in COLUMNS for w, v in zip(("before", "after"),
                                                                  self.total(c))}
        table.append(("total", "", pair(totals, "channels"), pair(totals, "parameters"),
                      pair(totals, "macs")))
        widths = [max(len(line[i]) for line in table) for i in range(5)]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
                 for line in table]
        lines.append(
            f"parameters after/before {self.parameter_ratio:.3f}, MACs after/before "
            f"{self.mac_ratio:.3f} (fraction={self.fraction}, criterion={self.criterion!r}, "
            f"scope={self.scope!r}, round_to={self.round_to})"
        )
        for group in self.fixed_groups:
            lines.append(
                f"fixed: {', '.join(group['layers'])} ({group['num_channels']} channels): "
                + "; ".join(group["reasons"])
            )
        return "\n".join(lines)
