"""Inference latency of channel-pruned, shrunk keras.applications models (and Torch-Pruning's).

ResNet50 and MobileNetV2 (``weights=None``, 224 x 224 x 3, 1000 classes) are pruned with
`tfemergent.pruning.prune_channels` (criterion ``"l1"``, scope ``"layer"``) at 30% and
50% of the channels of every prunable group and physically shrunk with
`tfemergent.pruning.shrink`. Reported: the forward pass at batch 32 (``tf.function``,
``training=False``) of the unpruned and the shrunk models, timed side by side
(interleaved repeats, warm-up excluded, median), the speed-up unpruned / shrunk, and the
parameter and MAC ratios of the pruning report. Goal: >= 1.8x at 50%.

Side by side in the same run, when ``torch``, ``torchvision`` and ``torch-pruning`` are
installed (``pip install -r benchmarks/peers/requirements.txt``; benchmarks only, never a
dependency of the package): Torch-Pruning's ``MagnitudePruner`` (L1 magnitude importance,
``pruning_ratio`` 0.3 / 0.5 per layer, the classifier ignored) on torchvision's
``resnet50`` and ``mobilenet_v2``, the same batch and input size, ``torch.no_grad``,
``eval()``; its speed-up unpruned / pruned in the same way. The two frameworks' absolute
times are not compared, only their speed-up ratios. Both frameworks use the same thread
count (``--threads``, default: the machine's cores).

    python -m benchmarks.bench_pruning [--quick] [--record] [--threads N]
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# torch (with torchvision) before TensorFlow: importing torchvision after TensorFlow
# crashes in triton's import on this machine (see benchmarks/peers/_common.py).
try:
    import torch
    import torchvision
except ImportError:  # pragma: no cover - depends on the machine
    torch = torchvision = None
try:
    import torch_pruning
except ImportError:  # pragma: no cover
    torch_pruning = None

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import harness  # noqa: E402
from tfemergent.pruning import prune_channels, shrink  # noqa: E402

FAMILIES = {"ResNet50": "resnet50", "MobileNetV2": "mobilenet_v2"}
FRACTIONS = (0.3, 0.5)
TARGET_SPEEDUP = 1.8


def keras_rows(family, size, batch, fractions, warmup, repeats):
    keras.utils.set_random_seed(0)  # benchmark script: seeds the weights it builds
    model = getattr(keras.applications, family)(weights=None, input_shape=(size, size, 3))
    images = tf.constant(
        np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype("float32")
    )
    variants = {"unpruned": (model, None)}
    for fraction in fractions:
        pruned, report = prune_channels(model, fraction, criterion="l1", scope="layer")
        small = shrink(pruned)
        reference = np.asarray(pruned(images[:2], training=False))
        difference = float(np.max(np.abs(np.asarray(small(images[:2], training=False)) - reference)))
        variants[f"shrunk {fraction:.0%}"] = (small, (report, difference))
    impls = {}
    for name, (net, _) in variants.items():
        forward = tf.function(lambda x, net=net: net(x, training=False))
        impls[name] = lambda forward=forward: forward(images)
    results = harness.compare(impls, warmup=warmup, repeats=repeats, baseline="unpruned")
    rows = []
    for name, (net, extra) in variants.items():
        if extra is None:
            continue
        report, difference = extra
        rows.append({
            "framework": "tfemergent (Keras 3)", "model": family, "variant": name,
            "unpruned_ms": results["unpruned"]["median_ms"], "pruned_ms": results[name]["median_ms"],
            "iqr_ms": results[name]["iqr_ms"], "speedup": results[name]["speedup"],
            "param_ratio": net.count_params() / model.count_params(),
            "mac_ratio": report.mac_ratio, "max_abs_diff": difference,
        })
    return rows


def torch_rows(family, size, batch, fractions, warmup, repeats):
    constructor = getattr(torchvision.models, FAMILIES[family])
    torch.manual_seed(0)
    images = torch.rand(batch, 3, size, size)
    example = torch.rand(1, 3, size, size)

    def base():
        net = constructor(weights=None).eval()
        return net

    reference = base()
    variants = {"unpruned": reference}
    ratios = {}
    for fraction in fractions:
        net = base()
        net.load_state_dict(reference.state_dict())
        classifier = net.fc if hasattr(net, "fc") else net.classifier[-1]
        macs_before, params_before = torch_pruning.utils.count_ops_and_params(net, example)
        pruner = torch_pruning.pruner.MagnitudePruner(
            net, example, importance=torch_pruning.importance.MagnitudeImportance(p=1),
            pruning_ratio=fraction, global_pruning=False, ignored_layers=[classifier],
        )
        pruner.step()
        macs_after, params_after = torch_pruning.utils.count_ops_and_params(net, example)
        name = f"pruned {fraction:.0%}"
        variants[name] = net.eval()
        ratios[name] = (params_after / params_before, macs_after / macs_before)

    def run(net):
        with torch.no_grad():
            return net(images)

    impls = {name: (lambda net=net: run(net)) for name, net in variants.items()}
    results = harness.compare(impls, warmup=warmup, repeats=repeats, baseline="unpruned")
    return [{
        "framework": f"Torch-Pruning {getattr(torch_pruning, '__version__', '?')} (torch {torch.__version__})",
        "model": FAMILIES[family], "variant": name,
        "unpruned_ms": results["unpruned"]["median_ms"], "pruned_ms": results[name]["median_ms"],
        "iqr_ms": results[name]["iqr_ms"], "speedup": results[name]["speedup"],
        "param_ratio": ratios[name][0], "mac_ratio": ratios[name][1], "max_abs_diff": None,
    } for name in variants if name != "unpruned"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="96 x 96 inputs, batch 8, few repeats")
    parser.add_argument("--record", action="store_true", help="write the RESULTS.md section")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads of both frameworks (intra-op; inter-op 1)")
    args = parser.parse_args(argv)
    size, batch, warmup, repeats = (96, 8, 1, 3) if args.quick else (224, 32, 2, 11)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rows = []
    for family in FAMILIES:
        rows += keras_rows(family, size, batch, FRACTIONS, warmup, repeats)
        print(rows[-1], flush=True)
    if torch is None or torch_pruning is None:
        note = ("Torch-Pruning not run: torch/torchvision/torch-pruning not installed "
                "(`pip install -r benchmarks/peers/requirements.txt`).")
        print(note)
    else:
        torch.set_num_threads(args.threads)
        note = f"Torch-Pruning side by side: torch threads {args.threads}."
        for family in FAMILIES:
            rows += torch_rows(family, size, batch, FRACTIONS, warmup, repeats)
            print(rows[-1], flush=True)
    table = harness.markdown_table(
        ["framework", "model", "variant", "unpruned ms", "pruned ms (IQR)", "speed-up",
         "params after/before", "MACs after/before", "max |diff| shrunk vs masked"],
        [[r["framework"], r["model"], r["variant"], f"{r['unpruned_ms']:.1f}",
          f"{r['pruned_ms']:.1f} ({r['iqr_ms']:.1f})", f"**{r['speedup']:.2f}x**",
          f"{r['param_ratio']:.3f}", f"{r['mac_ratio']:.3f}",
          "-" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.1e}"] for r in rows],
    )
    ours_50 = [r["speedup"] for r in rows if r["framework"].startswith("tfemergent")
               and r["variant"].endswith("50%")]
    verdict = (f"Goal >= {TARGET_SPEEDUP}x at 50%: "
               + ", ".join(f"{s:.2f}x" for s in ours_50)
               + (" (met)" if ours_50 and min(ours_50) >= TARGET_SPEEDUP else " (not met)"))
    body = (f"Forward pass, batch {batch}, {size} x {size} x 3, median of {repeats} interleaved "
            f"repeats after {warmup} warm-up calls; {args.threads} threads per framework.\n\n"
            f"{table}\n\n{verdict}. {note}\n")
    print(body)
    if args.record and not args.quick:
        harness.record_section("Channel pruning: shrunk keras.applications latency", body)
    return rows


if __name__ == "__main__":
    sys.exit(0 if main() is not None else 1)
