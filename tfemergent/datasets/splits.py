"""Split strings: `"train"`, `"test"` and the tensorflow-datasets slice forms.

The grammar accepted everywhere in `tfemergent.datasets` (local files, the
embedded digits and tensorflow-datasets alike, so code behaves the same online
and offline):

- `"train"`, `"test"`: the whole split;
- `"train[:1000]"`, `"train[1000:2000]"`, `"test[-500:]"`: examples by index;
- `"train[:10%]"`, `"test[25%:75%]"`: examples by percentage of the split,
  rounded to the closest example exactly as tensorflow-datasets does
  (`int(round(percent * num_examples / 100))`).

Bounds follow tensorflow-datasets: a negative bound counts from the end, an
absolute bound larger than the split or a percentage outside [-100, 100] is an
error, and both bounds of one slice must use the same unit.
"""

import collections
import re

SPLIT_NAMES = ("train", "test")

_SPLIT_PATTERN = re.compile(
    r"^(?P<base>[A-Za-z_]+)(?:\[(?P<start>[^\[\]:]*):(?P<stop>[^\[\]:]*)\])?$"
)
_BOUND_PATTERN = re.compile(r"^(?P<value>-?\d+(?:\.\d+)?)(?P<percent>%?)$")

ParsedSplit = collections.namedtuple("ParsedSplit", ["text", "base", "start", "stop", "unit"])

_FORMS = (
    "'train' or 'test', optionally followed by a slice such as '[:1000]', "
    "'[1000:2000]' or '[:10%]'"
)


def _invalid(split, reason=""):
    return ValueError(
        f"Argument `split` must be {_FORMS}{reason}. Received: split={split!r}"
    )


def parse_split(split):
    """Parse a split string into a `ParsedSplit` or raise `ValueError`."""
    if not isinstance(split, str):
        raise _invalid(split, "; it must be a string")
    text = split.replace(" ", "")
    match = _SPLIT_PATTERN.match(text)
    if match is None or match.group("base") not in SPLIT_NAMES:
        raise _invalid(split)
    base = match.group("base")
    if match.group("start") is None:
        return ParsedSplit(split, base, None, None, "abs")
    bounds = []
    units = []
    for raw in (match.group("start"), match.group("stop")):
        if raw == "":
            bounds.append(None)
            continue
        bound = _BOUND_PATTERN.match(raw)
        if bound is None:
            raise _invalid(split, f"; {raw!r} is not an integer or a percentage")
        if bound.group("percent"):
            value = float(bound.group("value"))
            if abs(value) > 100:
                raise _invalid(split, "; percentages must lie in [-100%, 100%]")
            units.append("%")
        else:
            if "." in bound.group("value"):
                raise _invalid(split, "; an index bound must be an integer")
            value = int(bound.group("value"))
            units.append("abs")
        bounds.append(value)
    if not units:
        raise _invalid(split, "; '[:]' selects nothing, use the plain split name")
    if len(set(units)) > 1:
        raise _invalid(split, "; both bounds must be indices or both percentages")
    return ParsedSplit(split, base, bounds[0], bounds[1], units[0])


def split_slice(parsed, num_examples):
    """The Python `slice` of a split of `num_examples` selected by `parsed`."""
    start, stop = parsed.start, parsed.stop
    if parsed.unit == "%":
        start = None if start is None else int(round(start * num_examples / 100.0))
        stop = None if stop is None else int(round(stop * num_examples / 100.0))
    for bound in (start, stop):
        if bound is not None and abs(bound) > num_examples:
            raise ValueError(
                f"The slice of split {parsed.base!r} asks for example {bound}, but the "
                f"split holds {num_examples} examples. Use bounds within "
                f"[-{num_examples}, {num_examples}]. Received: split={parsed.text!r}"
            )
    return slice(start, stop)
