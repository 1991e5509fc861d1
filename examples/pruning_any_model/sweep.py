"""Prune 30% of the channels of every keras.applications family, shrink it, check it.

For each family (built with ``weights=None``, ``classes=10``, logits out, at a small
input size): `tfemergent.pruning.prune_channels` (criterion ``"l1"``, scope
``"layer"``), then `tfemergent.pruning.shrink`, then

- the largest difference between the shrunk and the pruned (masked) model's logits
  on random images, relative to the largest logit (``max_rel_diff``);
- parameters and multiply-adds (MACs) after / before (from the pruning report);
- the shrunk model saved as ``.keras`` and loaded back with plain
  `keras.saving.load_model` (``reload_ok``: same outputs);
- the layers whose channels stayed fixed, and why (from the report).

One JSON line per family goes to ``<output>/sweep.jsonl``; a family already there is
skipped, so an interrupted sweep resumes. ``--families`` picks some.

    python examples/pruning_any_model/sweep.py --output /tmp/pruning_sweep
"""

import argparse
import collections
import json
import os
import tempfile
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tfemergent.pruning import prune_channels, shrink  # noqa: E402

# One or two members of every family in keras.applications -> input side (the
# family's minimum for include_top=True where it has one).
FAMILIES = {
    "VGG16": 64,
    "VGG19": 64,
    "ResNet50": 64,
    "ResNet101": 64,
    "ResNet50V2": 64,
    "MobileNet": 64,
    "MobileNetV2": 64,
    "MobileNetV3Small": 64,
    "MobileNetV3Large": 64,
    "DenseNet121": 64,
    "EfficientNetB0": 64,
    "EfficientNetV2B0": 64,
    "Xception": 96,
    "InceptionV3": 96,
    "InceptionResNetV2": 96,
    "NASNetMobile": 64,
    "ConvNeXtTiny": 64,
}
FRACTION = 0.3


def build(family, size):
    constructor = getattr(keras.applications, family)
    kwargs = dict(weights=None, input_shape=(size, size, 3), classes=10)
    try:
        return constructor(classifier_activation=None, **kwargs)
    except TypeError:  # families without the argument
        return constructor(**kwargs)


def fixed_summary(report):
    """``{reason: number of layers}`` over the fixed groups, and the layers themselves."""
    reasons = collections.Counter()
    layers = set()
    for group in report.fixed_groups:
        for reason in group["reasons"]:
            reasons[reason.split(" (")[0]] += len(group["layers"])
        layers.update(group["layers"])
    return dict(reasons), sorted(layers)


def run_family(family, size, seed=0):
    start = time.perf_counter()
    keras.utils.set_random_seed(seed)  # an example script: seeds the weights it builds
    model = build(family, size)
    images = np.random.default_rng(seed).uniform(0, 255, (4, size, size, 3)).astype("float32")
    pruned, report = prune_channels(model, FRACTION, criterion="l1", scope="layer")
    small = shrink(pruned)
    reference = np.asarray(pruned(images, training=False))
    shrunk = np.asarray(small(images, training=False))
    scale = float(np.max(np.abs(reference))) or 1.0
    max_rel_diff = float(np.max(np.abs(shrunk - reference))) / scale
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "shrunk.keras")
        small.save(path)
        reloaded = keras.saving.load_model(path)
        reload_ok = bool(np.allclose(np.asarray(reloaded(images, training=False)), shrunk,
                                     atol=1e-5 * scale))
    reasons, fixed_layers = fixed_summary(report)
    return {
        "family": family,
        "input": size,
        "params_before": int(model.count_params()),
        "params_after": int(small.count_params()),
        "param_ratio": small.count_params() / model.count_params(),
        "mac_ratio": float(report.mac_ratio),
        "max_rel_diff": max_rel_diff,
        "reload_ok": reload_ok,
        "fixed_reasons": reasons,
        "num_fixed_layers": len(fixed_layers),
        "fixed_layers": fixed_layers[:40],
        "seconds": time.perf_counter() - start,
    }


def main(output, families=None):
    os.makedirs(output, exist_ok=True)
    path = os.path.join(output, "sweep.jsonl")
    done = set()
    if os.path.exists(path):
        with open(path) as handle:
            done = {json.loads(line)["family"] for line in handle if line.strip()}
    rows = []
    for family in families or FAMILIES:
        if family in done:
            continue
        try:
            row = run_family(family, FAMILIES[family])
        except Exception as error:  # reported, not hidden: the table says which failed
            row = {"family": family, "input": FAMILIES[family],
                   "error": f"{type(error).__name__}: {error}"[:500],
                   "traceback": traceback.format_exc()[-2000:]}
        print(json.dumps({k: v for k, v in row.items() if k not in ("fixed_layers", "traceback")}),
              flush=True)
        with open(path, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        rows.append(row)
        keras.backend.clear_session()
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="/tmp/pruning_sweep", help="folder for sweep.jsonl")
    parser.add_argument("--families", default=None,
                        help="comma-separated families (default: all of FAMILIES)")
    args = parser.parse_args()
    main(args.output, args.families.split(",") if args.families else None)
