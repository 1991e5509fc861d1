"""Spatial networks: ours vs gmum/SpatialNetworks on the concatenated double task.

Both sides train the paper network 1568-128-128-128-256-20 (sigmoid hidden
layers, 2 x 10 logits) with the transport cost (alpha = 1, L2 of the weights,
mean over connections) and the proximity/density cost (beta = 3) on the third
layer onwards, Adam 5e-3, batch 256, float32, on MNIST concatenated with
Fashion-MNIST (two 28 x 28 images side by side in the channels: 1568 inputs,
one label per task).

- peer: gmum's own code, imported from its checkout: ``nn.models.get`` with the
  arguments of its ``train`` command (``--type linear --input concatenate
  --activation Sigmoid --layers 128 128 128 256 --where 2 3 4 --transport 1
  --proximity 3 --norm l2``), its ``nn.loss.SpatialCrossEntropyLoss``, its
  optimizer factory with its ``hyperparameters.json`` (Adam 5e-3, batch 256),
  its ``nn.passes.Train`` step and, for the epoch, its ``data.datasets.Stacked``
  dataset with ``JoinedSampler`` and its ``nn.train.get_loop`` loop (a
  ``DataLoader`` of batch 256 over the per-sample Python iterator, tqdm bar).
- ours: `tfemergent.models.build_spatial_network(1568,
  transport_normalization="connections")` (the authors' code's normalisation),
  ``train_on_batch`` for the step and ``fit(epochs=1, batch_size=256)`` over the
  arrays of `tfemergent.datasets.double_task("concatenated", "train")` for the
  epoch; for the step also the same model compiled with ``jit_compile=True``
  (its default is Keras' "auto", no XLA on a CPU), a second row of the same
  interleaved run.

Patched at run time (nothing in the checkout is edited):
``torchfunc`` and ``torchdata`` (not installed; only ``torchfunc.seed`` is used
and ``torchdata`` is imported but unused) are replaced by stubs; the datasets
come from the offline copies (torchvision's ``download=True`` cannot run
offline) as the same ``(1, 28, 28)`` float tensors in [0, 1] that
``ToTensor`` gives; no CUDA (``cuda=False`` in its ``Train`` pass).

    python -m benchmarks.peers.spatial [--quick]
"""

import argparse
import sys
import time
import types

from benchmarks.peers import _common

BATCH = 256
LAYERS = [128, 128, 128, 256]


def load_gmum():
    torch = _common.require_torch()
    root = _common.peer_dir("SpatialNetworks", "PEER_SPATIAL_DIR")
    _common.import_path(root / "deps" / "torchlayers")
    _common.import_path(root / "src")
    sys.modules.setdefault("torchfunc", types.SimpleNamespace(
        seed=lambda seed, cuda=False: torch.manual_seed(seed)))
    sys.modules.setdefault("torchdata", types.ModuleType("torchdata"))
    import data as gmum_data  # gmum's src/data
    import nn as gmum_nn  # gmum's src/nn

    return root, gmum_nn, gmum_data


class _ImageDataset:
    """What ``torchvision.datasets.MNIST(..., transform=ToTensor())`` yields: (1, 28, 28) float, int."""

    def __init__(self, images, labels, torch):
        self.images = torch.from_numpy(images.reshape(-1, 1, 28, 28))
        self.labels = labels.tolist()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    root, gmum_nn, gmum_data = load_gmum()
    torch = _common.torch
    import json

    import keras
    import numpy as np

    import tensorflow as tf

    from tfemergent.datasets import double_task, load_numpy
    from tfemergent.losses import MultiTaskCrossEntropy
    from tfemergent.metrics import TaskAccuracy
    from tfemergent.models import build_spatial_network

    hyper = json.load(open(root / "src" / "hyperparameters.json"))
    assert hyper["batch"] == BATCH and hyper["optimizer_args"]["lr"] == 5e-3
    options = argparse.Namespace(
        type="linear", input="concatenate", labels=10, datasets=["MNIST", "FashionMNIST"],
        activation="Sigmoid", layers=LAYERS, where=[2, 3, 4], proximity=3.0, transport=1.0,
        norm="l2", task=False,
    )
    torch.manual_seed(hyper["seed"])
    peer_model = gmum_nn.models.get(options)
    num_samples = 12800 if args.quick else None
    # The data: the offline MNIST and Fashion-MNIST training sets.
    fashion_note = "Fashion-MNIST from the IDX files"
    try:
        x, y = double_task("concatenated", "train", num_samples=num_samples, data_dir=str(_common.DATA_DIR))
        parts = [load_numpy(name, "train", data_dir=str(_common.DATA_DIR)) for name in ("mnist", "fashion_mnist")]
    except Exception as error:  # Fashion-MNIST missing: MNIST twice
        fashion_note = f"MNIST twice (Fashion-MNIST unavailable: {str(error).splitlines()[0]})"
        x, y = double_task("concatenated", "train", first="mnist", second="mnist",
                           num_samples=num_samples, data_dir=str(_common.DATA_DIR))
        parts = [load_numpy("mnist", "train", data_dir=str(_common.DATA_DIR))] * 2
    if isinstance(y, (tuple, list)):
        y = np.stack(y, axis=1)  # (y_first, y_second) -> [n, 2], MultiTaskCrossEntropy's labels
    datasets = []
    for images, labels in parts:
        images = (np.asarray(images, dtype=np.float32) / 255.0)[:num_samples]
        datasets.append(_ImageDataset(images, np.asarray(labels)[:num_samples], torch))
    stacked = gmum_data.datasets.get(options, *datasets)
    peer_model(stacked.shape)  # gmum's shape-inference dummy pass (torchlayers)
    peer_loss = gmum_nn.loss.get(options, peer_model)
    peer_optimizer = gmum_nn.optimizer.get(hyper, peer_model)
    peer_pass = gmum_nn.passes.Train(peer_model, peer_loss, peer_optimizer, False)

    keras.utils.set_random_seed(0)
    ours = build_spatial_network(x.shape[1], hidden_units=tuple(LAYERS),
                                 transport_normalization="connections", seed=0)
    rng = np.random.default_rng(0)
    index = rng.choice(len(x), BATCH, replace=False)
    x_batch, y_batch = x[index], y[index]
    peer_x = torch.from_numpy(x_batch.reshape(BATCH, 2, 28, 28).copy())
    peer_y = torch.from_numpy(y_batch.astype(np.int64))
    # Same input: our row i is gmum's two channels flattened.
    assert np.array_equal(peer_x.reshape(BATCH, -1).numpy(), x_batch)

    def peer_step():
        loss, _, _ = peer_pass((peer_x, peer_y))
        return loss.item()

    # The same model compiled as build_spatial_network does, but with XLA (its
    # default is Keras' "auto": no XLA on a CPU).
    ours_xla = build_spatial_network(x.shape[1], hidden_units=tuple(LAYERS),
                                     transport_normalization="connections", seed=0, compile=False)
    ours_xla.compile(optimizer=keras.optimizers.Adam(hyper["optimizer_args"]["lr"]),
                     loss=MultiTaskCrossEntropy(num_tasks=2),
                     metrics=[TaskAccuracy(task, 2) for task in range(2)], jit_compile=True)
    tf_x, tf_y = tf.constant(x_batch), tf.constant(y_batch)
    steps = _common.interleaved(
        {"gmum step": peer_step, "ours step": lambda: ours.train_on_batch(tf_x, tf_y),
         "ours XLA step": lambda: ours_xla.train_on_batch(tf_x, tf_y)},
        warmup=5, repeats=10 if args.quick else 40,
    )
    rows = [_common.row(
        "spatial", f"one training step, batch {BATCH}, both costs", "gmum nn.passes.Train",
        steps["gmum step"], "build_spatial_network train_on_batch", steps["ours step"],
        note="ours as built: Keras' default jit_compile (no XLA on a CPU), two TaskAccuracy metrics",
    ), _common.row(
        "spatial", f"one training step, batch {BATCH}, both costs", "gmum nn.passes.Train",
        steps["gmum step"], "same model compiled with jit_compile=True", steps["ours XLA step"],
        note="the same compile as build_spatial_network's (Adam, MultiTaskCrossEntropy, two "
        "TaskAccuracy metrics) with jit_compile=True; same interleaved run as the row above",
    )]

    # One epoch of the concatenated double task (gmum's loop vs our fit).
    loop = gmum_nn.train.get_loop(peer_pass, stacked, hyper)

    def peer_epoch():
        for _ in loop():
            pass

    def ours_epoch():
        ours.fit(x, y, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)

    ours_epoch()  # warm-up (tracing)
    times = {"gmum": [], "ours": []}
    repeats = 2 if args.quick else 3
    for repeat in range(repeats):
        order = [("gmum", peer_epoch), ("ours", ours_epoch)]
        for name, fn in order if repeat % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) * 1e3)
    rows.append(_common.row(
        "spatial", f"one epoch, {len(x)} pairs, batch {BATCH} ({fashion_note})",
        "gmum get_loop(Stacked)", _common.summary(times["gmum"]),
        "fit(epochs=1)", _common.summary(times["ours"]),
        note=f"{repeats} interleaved repeats after one warm-up fit",
    ))
    return rows


if __name__ == "__main__":
    _common.main_guard(main)
