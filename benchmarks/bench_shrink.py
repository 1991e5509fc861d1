"""What `shrink` buys: the masked (pruned) SegmentCNN vs its physically shrunk copy.

A `SegmentCNN` (default CPU size: 3 segments of 4 layers, 16/32/64 filters, kernels
3/5/3/5, smooth initialisation) is trained briefly on CIFAR-10 (local ``cifar10.npz``,
standardised per channel; Adam 1e-3), then its 3x3/5x5 kernels are pruned by standard
deviation until about ``--parameter-fraction`` (default 70%) of the trainable
parameters are masked,
with one threshold over the model (``scope="model"``) and, separately, per layer
(``scope="layer"``). For each, `dead_neurons` and `shrink` give the smaller model;
the benchmark reports trainable parameters, SavedModel size on disk (``model.export``),
the largest output difference, the forward-pass time of the masked and the shrunk
model (batch 256, ``tf.function``, interleaved repeats after warm-up, one process), and
the time and test accuracy of retraining each for ``--retrain-epochs`` epochs.

    python -m benchmarks.bench_shrink [--quick] [--record] [--data-dir DIR]
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
from tfemergent.analysis import kernel_sensitivity, prunable_layers, select_kernels
from tfemergent.datasets import load_numpy
from tfemergent.models import SegmentCNN
from tfemergent.pruning import dead_neurons, prune_kernels, shrink


def _trainable(model):
    return int(sum(np.prod(weight.shape) for weight in model.trainable_weights))


def _saved_model_bytes(model, directory):
    model.export(str(directory), verbose=False)
    return sum(path.stat().st_size for path in pathlib.Path(directory).rglob("*") if path.is_file())


def _fraction_for_parameters(model, target, scope):
    """The kernel fraction whose pruning masks ``target`` of the trainable parameters."""
    layers = prunable_layers(model)
    masks = {layer.name: layer.kernel_mask.numpy() > 0.5 for layer in layers}
    sensitivities = {
        layer.name: kernel_sensitivity(layer.kernel.numpy(), masks[layer.name]) for layer in layers
    }
    taps = {layer.name: layer.kernel_size**2 for layer in layers}
    total = _trainable(model)
    low, high = 0.0, 1.0
    for _ in range(30):
        middle = (low + high) / 2
        keep = select_kernels(sensitivities, masks, fraction=middle, scope=scope)
        pruned = sum(taps[name] * int((~value).sum()) for name, value in keep.items())
        low, high = (middle, high) if pruned / total < target else (low, middle)
    return high


def _copy(model, spec):
    clone = spec.build()
    clone.set_weights(model.get_weights())
    return clone


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
    lines = []

    def report_line(text=""):
        print(text)
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
    report_line(
        f"test accuracy before pruning: {accuracy:.3f}; trainable parameters {_trainable(model)}"
    )

    batch = tf.constant(x_test[:256])
    for scope in ("model", "layer"):
        masked = _copy(model, spec)
        fraction = _fraction_for_parameters(masked, args.parameter_fraction, scope)
        report = prune_kernels(masked, fraction=fraction, scope=scope)
        dead = dead_neurons(masked)
        small = shrink(masked)
        masked.compile(metrics=["accuracy"], loss="sparse_categorical_crossentropy")
        pruned_accuracy = masked.evaluate(x_test, y_test, verbose=0)[1]
        difference = float(
            np.abs(small.predict(x_test, verbose=0) - masked.predict(x_test, verbose=0)).max()
        )
        with tempfile.TemporaryDirectory() as directory:
            masked_bytes = _saved_model_bytes(masked, pathlib.Path(directory) / "masked")
            small_bytes = _saved_model_bytes(small, pathlib.Path(directory) / "small")
        masked_forward = tf.function(lambda: masked(batch, training=False))
        small_forward = tf.function(lambda: small(batch, training=False))
        results = harness.compare(
            {"masked": masked_forward, "shrunk": small_forward},
            warmup=3,
            repeats=5 if args.quick else 30,
        )
        report_line(f"\n=== scope={scope!r}: kernel fraction {fraction:.3f} ===")
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
            f"trainable parameters: masked {_trainable(masked)}, of which "
            f"{report.num_pruned_parameters} masked to zero; shrunk {_trainable(small)} "
            f"({_trainable(small) / _trainable(masked):.1%})"
        )
        report_line(
            f"SavedModel bytes: masked {masked_bytes}, shrunk {small_bytes} "
            f"({small_bytes / masked_bytes:.1%})"
        )
        report_line(harness.format_comparison(results))
        for name, candidate in (("masked", masked), ("shrunk", small)):
            if not retrain_epochs:
                break
            candidate.compile(
                keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"]
            )
            start = time.time()
            candidate.fit(x_train, y_train, batch_size=64, epochs=retrain_epochs, verbose=0)
            seconds = time.time() - start
            retrained = candidate.evaluate(x_test, y_test, verbose=0)[1]
            report_line(
                f"retrained {name}: {retrain_epochs} epoch(s), test accuracy {retrained:.3f} "
                f"({seconds:.0f} s, one run, not interleaved)"
            )
    if args.record:
        harness.record_section("shrink", "```\n" + "\n".join(lines) + "\n```")


if __name__ == "__main__":
    main()
