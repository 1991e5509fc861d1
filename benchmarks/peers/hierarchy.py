"""Self-organising hierarchy: ours vs satyaborg/self-organizing (the paper's code).

The 3-unit pyramidal meta-network on MNIST centre-cropped to 20 x 20 (map
20 x 40, num_hidden 100, N = 10: fields of 200 cells), batch 128, float32,
with the reference's hyper-parameters (its ``config.yaml``: Adam lr 0.01,
weight decay 1e-4, dropout 0.2):

- one training batch: K x K = 9 relaxation forward passes without gradients,
  then per unit a forward pass, its MSE and its code written into the map,
  then the units' backward passes and Adam updates. peer = its own
  ``Trainer`` methods, in the order its ``train_network`` calls them for one
  batch (``init_emap``; ``update_emap(train=False, saturate=True)`` K times
  under ``no_grad``; ``update_emap(train=True)``; ``backward_pass``); ours =
  `SelfOrganisingHierarchy.train_on_batch` (``jit_compile=True``).
- one meta-step: move one unit's receptive field by one cell, train one epoch
  over the training images, read the units' entropies. peer = the field moved
  in its ``autoencs`` dict then its ``Trainer.train_network`` (one epoch over
  its DataLoader, then its binned entropies, its checkpoint save); ours =
  ``set_topology`` + ``fit(epochs=1)`` + the entropies from the history.

Patched at run time (the checkout is not edited): ``config.yaml`` values
``device: cpu`` (no CUDA here), ``debug: 0`` (its default ``debug: 1`` calls
``plt.imshow``/``plt.show`` after every unit of every batch), epochs 1,
``num_workers: 0`` and ``valid_pct: 0`` (same images, same process and threads
for both sides); MNIST from the offline ``mnist.npz`` (torchvision's
``download=True`` cannot run offline) as the tensors its transform gives
(``CenterCrop(20)`` + ``ToTensor``), precomputed, so its DataLoader does no PIL
work (in its favour); ``fastprogress.progress_bar`` (not installed) replaced
by the identity (in its favour). Its meta-learning mode (``src/meta.py``)
cannot run: ``Meta.meta_heuristic`` calls undefined names (``cleared_weights``,
``train``, ``get_h``, ``erfs_topo``) and ``rand_shift`` uses undefined ``h``,
``w``, ``step_list``; its ``alter_erf`` writes a key ``'erf'`` that training
never reads. So its meta-step is built from its working parts as above.

    python -m benchmarks.peers.hierarchy [--quick] [--samples M]
"""

import argparse
import os
import sys
import tempfile
import time
import types

from benchmarks.peers import _common

BATCH = 128
IMAGE_SHAPE = (20, 20)


def load_reference(workdir):
    """Import the reference's ``src`` package with its config read from ``workdir``."""
    torch = _common.require_torch()
    root = _common.peer_dir("self-organizing", "PEER_HIERARCHY_DIR")
    import shutil

    shutil.copy(root / "config.yaml", workdir / "config.yaml")
    previous = os.getcwd()
    os.chdir(workdir)  # src/__init__ reads ./config.yaml; results/, runs/ go here
    fastprogress = types.ModuleType("fastprogress")
    fastprogress.progress_bar = lambda iterable, *args, **kwargs: iterable
    sys.modules.setdefault("fastprogress", fastprogress)
    torchsummary = types.ModuleType("torchsummary")  # imported by its trainer, never called
    torchsummary.summary = lambda *args, **kwargs: None
    sys.modules.setdefault("torchsummary", torchsummary)
    _common.import_path(root)
    import src  # noqa: F401  (the reference's package)
    from src import handcrafted, trainer
    from src.utils import create_folders

    create_folders(src.config["paths"])  # what its train.py does first

    return root, src.config, trainer, handcrafted, previous, torch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--samples", type=int, default=None,
                        help="images in the meta-step's epoch (default 48000, the reference's "
                        "training split; --quick 6400)")
    args = parser.parse_args(argv)
    samples = args.samples or (6400 if args.quick else 48000)
    import pathlib

    workdir = pathlib.Path(tempfile.mkdtemp(prefix="peer_hierarchy_"))
    root, config, trainer_module, handcrafted, previous_cwd, torch = load_reference(workdir)
    import keras
    import numpy as np

    from tfemergent.models import SelfOrganisingHierarchy
    from tfemergent.search import ReceptiveFieldSpace

    with np.load(_common.DATA_DIR / "mnist.npz") as data:
        images = (data["x_train"][:samples, 4:24, 4:24] / 255.0).astype("float32")
    hyper = config["hyperparams"]["ae_network"]
    lr, wd, dropout = hyper["lr"], hyper["wd"], hyper["dropout"]
    config.update(device="cpu", debug=0, n_units=3, filename="bench")
    hyper.update(epochs=1, num_workers=0, valid_pct=0.0)

    # --- reference set-up: its Trainer, its pyramidal topology, its network.
    reference = trainer_module.Trainer(**config)
    locs, topologies, reference.h, reference.w = handcrafted.Handcrafted(
        dataset="MNIST", n_units=3).get_topology()
    pyramidal = next(t for t in topologies if t["name"] == "pyramidal")["rfs"]
    reference.create_network(locs, pyramidal)
    criterion = torch.nn.MSELoss()
    batch = images[:BATCH]
    batch_torch = torch.from_numpy(batch[:, None])  # what CenterCrop(20) + ToTensor give

    def reference_batch():
        # train_network's loop body for one batch, as its own methods.
        emap = reference.init_emap(batch_torch)
        with torch.no_grad():
            for _ in range(reference.n_units):
                emap = reference.update_emap(emap, train=False, saturate=True)
        emap = reference.update_emap(emap, train=True, saturate=False, criterion=criterion)
        reference.backward_pass()
        return emap

    # --- ours, same hyper-parameters.
    keras.utils.set_random_seed(0)
    ours = SelfOrganisingHierarchy(IMAGE_SHAPE, topology="pyramidal", dropout=dropout, l2=wd, seed=0)
    ours.compile(keras.optimizers.Adam(lr), jit_compile=True)
    assert ours.feature_map_shape == (reference.h, reference.w)

    steps = _common.interleaved(
        {"reference batch": reference_batch, "ours batch": lambda: ours.train_on_batch(batch)},
        warmup=3, repeats=8 if args.quick else 30,
    )
    rows = [_common.row(
        "hierarchy", f"one training batch (batch {BATCH}, 3 units, 3x3 relaxation + 3 updates)",
        "reference Trainer methods", steps["reference batch"],
        "SelfOrganisingHierarchy.train_on_batch (XLA)", steps["ours batch"],
    )]

    # --- one meta-step each: move one field by one cell, one epoch, entropies.
    dataset = torch.utils.data.TensorDataset(
        torch.from_numpy(images[:, None]), torch.zeros(len(images), dtype=torch.int64))
    import src.dataset as reference_dataset

    trainloader, _, _ = reference_dataset.create_dataloaders(
        (dataset, dataset), batch_size=BATCH, valid_pct=0.0, num_workers=0)
    # Our pyramid lies on the same map as the reference's (unit 0 reads image columns
    # 0-9, unit 1 columns 10-19, unit 2 the codes of units 0 and 1 at columns 20-29).
    space = ReceptiveFieldSpace(IMAGE_SHAPE, num_units=3, num_hidden=100, window_size=10)
    rng = np.random.default_rng(0)

    def reference_meta(step):
        # Move unit 0's field one cell: its field spans all 20 rows, so along the
        # columns (right when at column 0, else back left), as its rand_shift would.
        unit = reference.autoencs["ae_1"]
        rows_range, (c0, c1) = unit["rf"]
        shift = 1 if c0 == 0 else -1
        unit["rf"] = [rows_range, (c0 + shift, c1 + shift)]
        _, entropy = reference.train_network(trainloader, prefix=f"meta{step}")
        return [values[-1]["h_bin"] for values in entropy.values()]

    def ours_meta(step):
        candidate = space.neighbour(space.validate(ours.layout.topology("pyramidal")), 0, rng)
        ours.set_topology(candidate)
        history = ours.fit(images, batch_size=BATCH, epochs=1, shuffle=True, verbose=0)
        return [history.history[f"unit_{k}_entropy"][-1] for k in range(ours.num_units)]

    ours.fit(images[: 2 * BATCH + (len(images) % BATCH or BATCH)], batch_size=BATCH,
             epochs=1, verbose=0)  # warm-up: compile the fit step and the last partial batch
    times = {"reference": [], "ours": []}
    repeats = 2 if args.quick else 3
    for step in range(repeats):
        order = [("reference", reference_meta), ("ours", ours_meta)]
        for name, fn in order if step % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            entropies = fn(step)
            times[name].append((time.perf_counter() - start) * 1e3)
            print(f"  meta-step {step} {name}: {times[name][-1] / 1e3:.2f} s, entropies "
                  f"{', '.join(f'{h:.3f}' for h in entropies)}", flush=True)
    rows.append(_common.row(
        "hierarchy", f"one meta-step (move one field one cell + 1 epoch of {len(images)} images + entropies)",
        "reference train_network", _common.summary(times["reference"]),
        "set_topology + fit + history entropies", _common.summary(times["ours"]),
        note=f"{repeats} interleaved repeats after warm-up; the reference's entropies are bits "
        "(base 2), ours nats",
    ))
    os.chdir(previous_cwd)
    return rows


if __name__ == "__main__":
    _common.main_guard(main)
