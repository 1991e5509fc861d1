"""Why 85% pruning kills the segment CNN, and what `prune_rescale` changes.

Trains the example's base network (SegmentCNN's default: 12 convolutions, no batch
normalisation) briefly on CIFAR-10, prunes 85% of its kernels (model-wide threshold,
the paper's, and the same share per layer) and prints:

1. the standard deviation of every ReLU output after pruning, as a fraction of its
   value before pruning (on 256 test images): the shrinkage compounds with depth;
2. the test accuracy after retraining, without and with
   `tfemergent.pruning.restore_activation_scales` (the builder's ``prune_rescale``).

Usage (offline data: ``TFEMERGENT_DATA_DIR`` with ``cifar10.npz``)::

    python examples/neuron_hierarchy/activation_decay.py [--num-train 4000] [--epochs 3]
"""

import argparse

import keras
import numpy as np

from tfemergent.models.nhn import experiment as nhn
from tfemergent.pruning import activation_scales, prune_kernels, restore_activation_scales


def _compiled(model, learning_rate):
    model.compile(
        keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True, global_clipnorm=5.0),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _relu_stds(model, images):
    names = [layer.name for layer in model.layers if layer.name.startswith("relu_")]
    probe = keras.Model(model.inputs, [model.get_layer(name).output for name in names])
    return names, [float(np.std(output)) for output in probe.predict(images, verbose=0)]


def main(num_train=4000, num_test=1000, epochs=3, fraction=0.85, learning_rate=0.01,
         data_dir=None):
    """Print both tables; returns ``[(scope, rescale, accuracy, losses, factors)]``."""
    config = nhn.NhnConfig(
        dataset="cifar10", data_dir=data_dir, segments=None, num_train=num_train, num_test=num_test,
        training={"batch_size": 100},
        search={"population_size": 20, "num_parents": 4, "num_children": 5, "num_fresh": 5},
        verbose=0,
    )
    x_train, y_train, x_test, y_test = nhn.load_data(config)
    keras.utils.set_random_seed(0)
    base = _compiled(config.spec().build(), learning_rate)
    base.fit(x_train, y_train, batch_size=100, epochs=epochs, verbose=0)
    base_accuracy = base.evaluate(x_test, y_test, verbose=0)[1]
    print(f"base: {epochs} epochs on {len(x_train)} images, test accuracy {base_accuracy:.3f}")
    names, before = _relu_stds(base, x_test[:256])
    rows = []
    for scope in ("model", "layer"):
        for rescale in (False, True):
            model = config.spec().build()
            model.set_weights(base.get_weights())
            targets = activation_scales(model, x_train[:1000])
            prune_kernels(model, fraction=fraction, scope=scope)
            if not rescale:
                _, after = _relu_stds(model, x_test[:256])
                print(f"\nReLU output std after pruning / before, scope={scope}:")
                for name, b, a in zip(names, before, after):
                    print(f"  {name:10s} {a / b:6.3f}")
                factors = None
            else:
                factors = restore_activation_scales(model, x_train[:1000], targets)
            _compiled(model, learning_rate)
            history = model.fit(x_train, y_train, batch_size=100, epochs=epochs, verbose=0)
            accuracy = model.evaluate(x_test, y_test, verbose=0)[1]
            rows.append((scope, rescale, accuracy, history.history["loss"], factors))
    print(f"\n{fraction:.0%} pruned, then {epochs} epochs (base {base_accuracy:.3f}):")
    for scope, rescale, accuracy, losses, factors in rows:
        print(f"  scope={scope:5s} rescale={str(rescale):5s} test accuracy {accuracy:.3f}, "
              f"loss {' -> '.join(f'{value:.3f}' for value in losses)}")
        if factors:
            print("    factors: " + ", ".join(f"{value:.2f}" for value in factors.values()))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-train", type=int, default=4000)
    parser.add_argument("--num-test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--fraction", type=float, default=0.85)
    args = parser.parse_args()
    main(args.num_train, args.num_test, args.epochs, args.fraction)
