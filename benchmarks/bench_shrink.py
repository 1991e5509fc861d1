"""What `shrink` buys: the masked (pruned) SegmentCNN vs its physically shrunk copy, per mode.

A `SegmentCNN` (default CPU size: 3 segments of 4 layers, 16/32/64 filters, kernels
3/5/3/5, smooth initialisation) is trained briefly on CIFAR-10 (local ``cifar10.npz``,
standardised per channel; Adam 1e-3). Copies of the same trained network are then pruned
until about ``--parameter-fraction`` (default 70%) of the trainable parameters are
masked, in each mode of `prune_kernels`:

- ``kernel/model``: the paper's pruning, kernels by standard deviation, one threshold
  over the model (the default of `prune_kernels`);
- ``kernel/layer``: the same fraction of kernels in every layer;
- ``channel/model``: whole output channels (``granularity="channel"``), ranked by the
  mean standard deviation of their kernels over the whole model;
- ``channel/layer``: whole channels, the same share of every convolution;
- ``channel/layer/x8``: as ``channel/layer`` with ``channel_multiple=8`` (widths rounded
  down to multiples of 8, the channel blocks of CPU convolutions; prunes a little more).

For each, `dead_neurons` and `shrink` give the smaller model; reported: trainable
parameters, SavedModel size on disk (``model.export``), the largest output difference,
the test accuracy without retraining, the forward-pass time of the masked and the shrunk
model (batch 256 and batch 1, ``tf.function``, interleaved repeats after warm-up, one
process) and the test accuracy of the shrunk model after ``--retrain-epochs`` epochs.
Last, the kernel-sparse alternative to shrinking (keep the kernel-pruned layer and skip
its zero kernels): the largest layer of the kernel-pruned shrunk model as its dense
convolution vs im2col patches times the sparse kernel (`tfemergent.kernels.sparse_matmul`).

    python -m benchmarks.bench_shrink [--quick] [--record] [--data-dir DIR]
        [--parameter-fraction F] [--retrain-epochs E]
"""

import argparse
import os
import pathlib
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from benchmarks import harness
from tfemergent.datasets import load_numpy
from tfemergent.kernels import sparse_kernel_from_dense, sparse_matmul
from tfemergent.models import SegmentCNN
from tfemergent.pruning import dead_neurons, prune_kernels, shrink

TARGET_SPEEDUP = 2.0
MODES = {
    "kernel/model": {"granularity": "kernel", "scope": "model"},
    "kernel/layer": {"granularity": "kernel", "scope": "layer"},
    "channel/model": {"granularity": "channel", "scope": "model"},
    "channel/layer": {"granularity": "channel", "scope": "layer"},
    "channel/layer/x8": {"granularity": "channel", "scope": "layer", "channel_multiple": 8},
}


def _trainable(model):
    return int(sum(np.prod(weight.shape) for weight in model.trainable_weights))


def _masked_parameters(model):
    return sum(
        layer.kernel_size**2 * int((layer.pruning_mask.numpy() < 0.5).sum())
        for layer in model.layers
        if hasattr(layer, "pruning_mask")
    )


def _multiply_adds(model):
    """Multiply-adds of one image's forward pass through the (dense) convolutions and head."""
    total = 0
    for layer in model.layers:
        if hasattr(layer, "pruning_mask"):
            height, width = layer.output.shape[1:3]
            total += height * width * int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.kernel.shape))
    return total


def _saved_model_bytes(model, directory):
    model.export(str(directory), verbose=False)
    return sum(path.stat().st_size for path in pathlib.Path(directory).rglob("*") if path.is_file())


def _fraction_for_parameters(scratch, weights, target, options):
    """The smallest kernel fraction whose pruning (in this mode) masks ``target`` of the
    trainable parameters (bisection on a scratch copy of the trained model)."""
    total = _trainable(scratch)
    low, high = 0.0, 1.0
    for _ in range(16):
        middle = (low + high) / 2
        scratch.set_weights(weights)
        prune_kernels(scratch, fraction=middle, **options)
        if _masked_parameters(scratch) / total < target:
            low = middle
        else:
            high = middle
    return high


def _speedup(results):
    shrunk = results["shrunk"]
    return f"{shrunk['speedup']:.2f}x ({shrunk['cpu_speedup']:.2f}x)"


def _forward(model, batch):
    @tf.function
    def forward():
        return model(batch, training=False)

    return forward


def _sparse_probe(small, repeats):
    """Dense convolution vs im2col x sparse kernel for the largest layer of ``small``."""
    layer = max(
        (layer for layer in small.layers if hasattr(layer, "pruning_mask")),
        key=lambda layer: int(np.prod(layer.kernel.shape)),
    )
    kernel = layer.masked_kernel.numpy()
    size, _, channels, filters = kernel.shape
    height, width = layer.input.shape[1:3]
    images = tf.constant(
        np.random.default_rng(0).standard_normal((256, height, width, channels)), tf.float32
    )
    dense_kernel = tf.constant(kernel)
    sparse_kernel = sparse_kernel_from_dense(kernel.reshape(size * size * channels, filters))

    @tf.function
    def dense():
        return tf.nn.conv2d(images, dense_kernel, 1, "SAME")

    @tf.function
    def sparse():
        patches = tf.image.extract_patches(
            images, [1, size, size, 1], [1, 1, 1, 1], [1, 1, 1, 1], "SAME"
        )
        product = sparse_matmul(tf.reshape(patches, [-1, size * size * channels]), sparse_kernel)
        return tf.reshape(product, [256, height, width, filters])

    difference = float(tf.reduce_max(tf.abs(dense() - sparse())))
    density = float(layer.pruning_mask.numpy().mean())
    results = harness.compare(
        {"dense conv2d": dense, "im2col x sparse": sparse}, warmup=3, repeats=repeats
    )
    header = (
        f"{layer.name} of the kernel/model shrunk model: {size}x{size}, {channels} -> {filters} "
        f"channels, {height}x{width} maps, batch 256, kernel density {density:.0%}, "
        f"max difference {difference:.1e}"
    )
    return header, results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small configuration (smoke test)")
    parser.add_argument(
        "--record", action="store_true", help=f"write the results to {harness.RESULTS_PATH.name}"
    )
    parser.add_argument("--retrain-epochs", type=int, default=None)
    parser.add_argument("--parameter-fraction", type=float, default=0.70)
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("TFEMERGENT_DATA_DIR")
        or str(pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"),
        help="directory with cifar10.npz (default: TFEMERGENT_DATA_DIR or ../shared/data)",
    )
    args = parser.parse_args(argv)
    num_train, num_test, epochs = (2000, 1000, 1) if args.quick else (10000, 2000, 6)
    retrain_epochs = args.retrain_epochs
    if retrain_epochs is None:
        retrain_epochs = 0 if args.quick else 2
    repeats = {256: 5 if args.quick else 30, 1: 20 if args.quick else 200}
    lines = []

    def report_line(text=""):
        print(text, flush=True)
        lines.append(str(text))

    x_train, y_train = load_numpy("cifar10", f"train[:{num_train}]", args.data_dir)
    x_test, y_test = load_numpy("cifar10", f"test[:{num_test}]", args.data_dir)
    # Per-channel standardisation (as the paper does); plain ReLU stacks without it
    # barely train on CPU budgets.
    x_train, x_test = x_train.astype("float32") / 255.0, x_test.astype("float32") / 255.0
    mean, std = x_train.mean(axis=(0, 1, 2)), x_train.std(axis=(0, 1, 2))
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

    keras.utils.set_random_seed(0)
    spec = SegmentCNN((32, 32, 3), 10, seed=0)
    model = spec.build()
    model.compile(
        keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    start = time.time()
    model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=0)
    seconds = time.time() - start
    report_line(f"trained {epochs} epoch(s) on {num_train} images in {seconds:.0f} s")
    accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
    total = _trainable(model)
    report_line(f"test accuracy before pruning: {accuracy:.3f}; trainable parameters {total}")
    weights = model.get_weights()
    scratch = spec.build()

    batches = {256: tf.constant(x_test[:256]), 1: tf.constant(x_test[:1])}
    summary, verdicts = [], []
    kernel_small = None
    for mode, options in MODES.items():
        masked = spec.build()
        fraction = _fraction_for_parameters(scratch, weights, args.parameter_fraction, options)
        masked.set_weights(weights)
        report = prune_kernels(masked, fraction=fraction, **options)
        dead = dead_neurons(masked)
        small = shrink(masked)
        if mode == "kernel/model":
            kernel_small = small
        masked.compile(metrics=["accuracy"], loss="sparse_categorical_crossentropy")
        pruned_accuracy = masked.evaluate(x_test, y_test, verbose=0)[1]
        difference = float(
            np.abs(small.predict(x_test, verbose=0) - masked.predict(x_test, verbose=0)).max()
        )
        with tempfile.TemporaryDirectory() as directory:
            masked_bytes = _saved_model_bytes(masked, pathlib.Path(directory) / "masked")
            small_bytes = _saved_model_bytes(small, pathlib.Path(directory) / "small")
        timings = {
            size: harness.compare(
                {"masked": _forward(masked, batch), "shrunk": _forward(small, batch)},
                warmup=3 if size == 256 else 10,
                repeats=repeats[size],
            )
            for size, batch in batches.items()
        }
        masked_fraction = _masked_parameters(masked) / total
        report_line(
            f"\n=== {mode} ({', '.join(f'{k}={v!r}' for k, v in options.items())}): "
            f"kernel fraction {fraction:.3f}, {masked_fraction:.1%} of the parameters masked ==="
        )
        report_line(report)
        report_line("removed channels per layer (no input / no output / kept constant):")
        for name, row in dead.items():
            report_line(
                f"  {name}: {masked.get_layer(name).filters} -> {small.get_layer(name).filters} "
                f"({len(row['no_input'])} / {len(row['no_output'])} / {len(row['constant'])})"
            )
        report_line(f"test accuracy after pruning (no retraining): {pruned_accuracy:.3f}")
        report_line(f"max |shrunk - masked| over {num_test} test images: {difference:.2e}")
        report_line(
            f"trainable parameters: masked {total}, of which {report.num_pruned_parameters} "
            f"masked to zero; shrunk {_trainable(small)} ({_trainable(small) / total:.1%})"
        )
        report_line(
            f"SavedModel bytes: masked {masked_bytes}, shrunk {small_bytes} "
            f"({small_bytes / masked_bytes:.1%})"
        )
        for size in batches:
            report_line(f"forward pass, batch {size}:")
            report_line(harness.format_comparison(timings[size]))
        retrained = None
        if retrain_epochs:
            small.compile(
                keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"]
            )
            start = time.time()
            small.fit(x_train, y_train, batch_size=64, epochs=retrain_epochs, verbose=0)
            seconds = time.time() - start
            retrained = small.evaluate(x_test, y_test, verbose=0)[1]
            report_line(
                f"retrained shrunk: {retrain_epochs} epoch(s), test accuracy {retrained:.3f} "
                f"({seconds:.0f} s)"
            )
        removed = sum(len(r["no_input"]) + len(r["no_output"]) for r in dead.values())
        num_channels = sum(masked.get_layer(name).filters for name in dead)
        multiply_adds = _multiply_adds(small) / _multiply_adds(masked)
        met = timings[256]["shrunk"]["speedup"] >= TARGET_SPEEDUP
        verdicts.append(
            f"- {mode}: {masked_fraction:.1%} of the parameters masked, shrunk model "
            f"{_trainable(small) / total:.1%} of the parameters and {multiply_adds:.0%} of the "
            f"multiply-adds; {timings[256]['shrunk']['speedup']:.2f}x faster at batch 256 "
            f"(CPU time {timings[256]['shrunk']['cpu_speedup']:.2f}x): target ≥ "
            f"{TARGET_SPEEDUP:g}x **{'met' if met else 'not met'}**; batch 1 "
            f"{timings[1]['shrunk']['speedup']:.2f}x."
        )
        summary.append(
            [
                mode,
                f"{masked_fraction:.1%}",
                f"{_trainable(small) / total:.1%}",
                f"{multiply_adds:.0%}",
                f"{removed}/{num_channels}",
                "/".join(str(small.get_layer(n).filters) for n in spec.conv_names[::4]) + " ...",
                f"{pruned_accuracy:.3f}",
                "-" if retrained is None else f"{retrained:.3f}",
                f"{small_bytes / masked_bytes:.1%}",
                _speedup(timings[256]),
                _speedup(timings[1]),
                "yes" if met else "no",
            ]
        )

    header, probe = _sparse_probe(kernel_small, repeats[256])
    report_line("\n=== kernel-sparse inference instead of shrinking (one layer) ===")
    report_line(header)
    report_line(harness.format_comparison(probe))

    table = harness.markdown_table(
        [
            "mode", "parameters masked", "shrunk parameters", "shrunk multiply-adds",
            "channels removed",
            "widths of conv_0_0/conv_1_0/conv_2_0", "accuracy, no retraining",
            f"accuracy, shrunk retrained {retrain_epochs} epochs",
            "SavedModel bytes (shrunk / masked)", "speed-up batch 256 wall (CPU)",
            "speed-up batch 1 wall (CPU)", f"≥ {TARGET_SPEEDUP:g}x at batch 256?",
        ],
        summary,
    )
    sparse_speedup = probe["im2col x sparse"]["speedup"]
    verdicts += [
        "",
        "Why. Kernel pruning (the paper's, the default) masks kernels one by one: at 70% "
        "of the parameters few channels lose all their kernels, and the kernels pruned "
        "inside kept channels stay stored as zeros, so the dense convolutions hardly "
        "shrink. Channel pruning removes whole channels, so every pruned parameter leaves "
        "the model. Ranked over the whole model (channel/model) it removes channels of the "
        "late layers (more inputs per kernel, hence a smaller kernel standard deviation): "
        "they hold most of the parameters but, on 8 x 8 maps, little of the compute. The "
        "same share of every convolution (channel/layer) shrinks the compute of every "
        "layer alike, but the time falls less than the multiply-adds (ReLU, pooling, the "
        "convolution of the 3-channel image and per-operation overhead shrink less), and "
        "at exactly 70% the widths (e.g. 9/17/35) are not multiples of the 8- or "
        "16-channel blocks of the CPU convolutions; rounding the widths down to multiples "
        "of 8 (channel_multiple=8, a few more parameters pruned) gives aligned widths, "
        "which run faster per multiply-add. At batch 1 a forward "
        "pass is a few milliseconds of per-operation overhead, which no width reduction "
        "removes. Kernel-sparse inference instead of shrinking (skipping the zero "
        f"kernels of the kernel-pruned layer with im2col x sparse kernel) runs at "
        f"{sparse_speedup:.2f}x the dense convolution, so the shrunk model stays dense.",
    ]
    print("\n" + table + "\n\n" + "\n".join(verdicts))
    if args.record:
        body = (
            f"Same trained network for every mode; accuracy before pruning {accuracy:.3f}. "
            "Speed-up = masked / shrunk forward time (median of interleaved repeats; "
            "in brackets the ratio of process CPU time). Multiply-adds: of the dense "
            "convolutions and the head, shrunk / masked.\n\n"
            + table
            + "\n\n"
            + "\n".join(verdicts)
            + "\n\n```\n"
            + "\n".join(lines)
            + "\n```"
        )
        harness.record_section("shrink", body)


if __name__ == "__main__":
    main()
