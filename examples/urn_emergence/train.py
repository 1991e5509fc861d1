"""Emergent structures of Golkar's unstructured recursive network (URN).

Three parts, as in the paper:

(a) ``shells``: concentric 10-d shells, URN with S neurons and I=4 iterations,
    L1 costs on weights (c_W) and activities (c_N); active neurons, emergent
    layer sizes and the verification error over several seeds.
(b) ``shells-residual``: the same with residual output nodes (eq. 6); the
    paper's emergent network has a single hidden layer.
(c) ``cifar``: gray CIFAR-10 embedded on the input plane of an uplifted
    lattice (x*y*z neurons), residual output, with and without the
    synaptic-length cost; accuracy, forward share of the weight mass, mean
    synaptic length and a connectomics drawing.

Usage::

    python examples/urn_emergence/train.py --part shells --num-neurons 1000 --epochs 40
    TFEMERGENT_DATA_DIR=../shared/data python examples/urn_emergence/train.py --part cifar

Results go to ``--output`` (default ``output/`` beside this file) as JSON and PNG.
"""

import argparse
import dataclasses
import json
import os
import time

import keras

from tfemergent import analysis, datasets, plotting
from tfemergent.models.urn import experiment as urn_spheres
from tfemergent.geometry import UpliftedLattice
from tfemergent.layers import RecursiveURNLayer
from tfemergent.regularizers import IterationActivityL1, SynapticLength

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclasses.dataclass
class CifarConfig:
    """Part (c): gray CIFAR-10 on an uplifted lattice (paper: 60x60x6, I=4)."""

    width: int = 16
    height: int = 16
    depth: int = 4
    beta: float = 1.0
    num_iterations: int = 4
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 7e-4
    c_w: float = 5e-7
    c_n: float = 2e-5
    c_syn: float = 1e-4
    gamma: float = 1.0
    num_train: int = 30000
    seed: int = 0


def _gray(images):
    return images.astype("float32").mean(axis=-1) / 255.0


def run_cifar(config, synaptic, output_dir):
    """Train one lattice URN on gray CIFAR-10; returns a result dict."""
    lattice = UpliftedLattice(
        config.width, config.height, config.depth, beta=config.beta, num_outputs=10
    )
    x_train, y_train = datasets.load_numpy("cifar10", "train")
    x_test, y_test = datasets.load_numpy("cifar10", "test")
    x_train, y_train = _gray(x_train[: config.num_train]), y_train[: config.num_train]
    x_test = _gray(x_test)
    keras.utils.set_random_seed(config.seed)
    layer = RecursiveURNLayer(
        lattice.num_neurons,
        config.num_iterations,
        input_dim=config.width * config.height,
        output_dim=10,
        residual="output",
        lattice=lattice,
        kernel_regularizer=keras.regularizers.L1(config.c_w),
        state_regularizer=IterationActivityL1(config.c_n),
        synaptic_length=SynapticLength(config.c_syn, config.gamma) if synaptic else None,
        seed=config.seed,
        name="urn",
    )
    inputs = keras.Input((32, 32))
    model = keras.Model(inputs, layer(inputs))
    model.compile(
        keras.optimizers.Adam(config.learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.time()
    model.fit(x_train, y_train, batch_size=config.batch_size, epochs=config.epochs, verbose=2)
    seconds = time.time() - start
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    probe = lattice.embed(x_test[:1000]).numpy()
    twin = RecursiveURNLayer.from_config({**layer.get_config(), "name": "probe"})
    twin.build((None, lattice.width * lattice.height))
    twin.set_weights(layer.get_weights())
    structure = analysis.urn_structure_of(
        twin, probe, tolerance=1e-3, coordinates=lattice.coordinates("float64")
    )
    name = "with_synaptic_length" if synaptic else "without_synaptic_length"
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    if hasattr(plotting, "plot_connectomics"):
        figure = plotting.plot_connectomics(
            lattice.coordinates("float64"), kernel, structure.active
        )
        with open(os.path.join(output_dir, f"connectomics_{name}.png"), "wb") as handle:
            handle.write(plotting.figure_to_png(figure))
    return {
        "run": name,
        "test_accuracy": float(accuracy),
        "num_active": int(structure.num_active),
        "forward_share": float(structure.forward),
        "backward_share": float(structure.backward),
        "lateral_share": float(structure.lateral),
        "mean_synaptic_length": float(structure.mean_synaptic_length),
        "train_seconds": seconds,
    }


def main(part, output_dir, shells_config=None, cifar_config=None):
    """Run one part; writes ``<part>.json`` into ``output_dir`` and returns the results."""
    os.makedirs(output_dir, exist_ok=True)
    if part in ("shells", "shells-residual"):
        config = shells_config or urn_spheres.URNSpheresConfig()
        if part == "shells-residual":
            config = dataclasses.replace(config, residual="output")
        config = dataclasses.replace(config, plots=os.path.join(output_dir, f"{part}-plots"))
        outcome = urn_spheres.run(config)
        outcome["config"] = dataclasses.asdict(config)
    elif part == "cifar":
        config = cifar_config or CifarConfig()
        outcome = {
            "config": dataclasses.asdict(config),
            "results": [run_cifar(config, synaptic, output_dir) for synaptic in (True, False)],
        }
    else:
        raise ValueError(
            "`part` must be one of 'shells', 'shells-residual', 'cifar'. "
            f"Received: part={part!r}"
        )
    with open(os.path.join(output_dir, f"{part}.json"), "w") as handle:
        json.dump(outcome, handle, indent=2, default=str)
    return outcome


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", required=True, choices=["shells", "shells-residual", "cifar"])
    parser.add_argument("--output", default=os.path.join(HERE, "output"))
    parser.add_argument("--num-neurons", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--c-w", type=float, default=5e-7)
    parser.add_argument("--c-n", type=float, default=2e-5)
    parser.add_argument("--c-syn", type=float, default=1e-4)
    args = parser.parse_args()
    shells = urn_spheres.URNSpheresConfig(
        num_neurons=args.num_neurons,
        epochs=args.epochs or 40,
        seeds=tuple(int(s) for s in args.seeds.split(",")),
        c_w=args.c_w,
        c_n=args.c_n,
    )
    cifar = dataclasses.replace(
        CifarConfig(), epochs=args.epochs or CifarConfig.epochs, c_w=args.c_w, c_n=args.c_n,
        c_syn=args.c_syn,
    )
    main(args.part, args.output, shells_config=shells, cifar_config=cifar)
