"""Reset networks: ours vs THANNAGA/Reset-Networks (its notebooks' model and index code).

Training step. One step (forward, cross-entropy, backward, Adam 1e-3) of
``Reset(n, 32)`` for n = 4 and 8 at batch 32 and 128, on MNIST 28 x 28 x 1
normalised as the MNIST notebook does (``Normalize((0.1307,), (0.3081,))``),
float32:

- peer: the model of ``Topography for mnist/Reset_Networks_Topography_MNIST.ipynb``
  built by executing the notebook's own cells (found by their source, not
  retyped): its parameter cell (``gridsize``, ``n_classes1`` set to n and
  (32 / n)², ``use_cuda=False``), its ``class Reset(nn.Module)`` cell (a
  ``ModuleList`` of n² sub-networks called in a Python loop, outputs stacked,
  each reshaped to a (32/n) x (32/n) block, blocks concatenated into the 32 x 32
  grid, tanh, dropout, a classifier network on the grid), its ``load_Model``
  cell and its Adam cell (``CrossEntropyLoss(weight=weights)``,
  ``optim.Adam(net.parameters(), lr=lrate)``, lr 1e-3). The step is the body
  of its training cell's loop (``zero_grad``, ``net(inputs)``, ``criterion``,
  ``backward``, ``step``, ``loss.item()``).
- ours: `tfemergent.models.ResetNetwork(10, grid_size=n, grid_width=32,
  subnetwork={"output_activation": "tanh"}, output_activation="linear",
  grid_dropout=0.2)` compiled with Adam 1e-3 and
  ``SparseCategoricalCrossentropy(from_logits=True)``, Keras' default
  ``jit_compile`` (``"auto"``, which is no XLA on a CPU), ``train_on_batch``.

Equivalence of the architecture. The notebook's sub-networks and classifier
are ``resnet20(num_channels, num_classes)`` from ``resnet_CIFAR10.py``, a file
that is not in the repository (its notebooks import it from the author's
Google Drive). In its place the notebook's namespace gets a ``resnet20`` that
builds, in torch, the network our spec describes: for the n² sub-networks our
default sub-network (conv 3x3 8 + relu + max pool 2, conv 3x3 16 + relu + max
pool 2, flatten, dense 32 relu, dense (32/n)²), for the classifier our default
final network (conv 3x3 16 + relu + pool, conv 3x3 32 + relu + pool, flatten,
dense 64 relu, dense 10). The notebook's tanh on the grid is our sub-networks'
``output_activation="tanh"`` (element-wise, so the same numbers). At start-up
the torch network gets our weights and is checked to compute the same grid and
logits (eval mode); the parameter counts are equal.

Patched at run time (the checkout is not edited): the Colab cells (drive
mount, ``!pip``, imports from the Drive) are not run, the namespace gets torch,
numpy and the ``resnet20`` above; the data cell is not run (QMNIST with
``download=True`` cannot run offline): MNIST from the offline ``mnist.npz``
with the same normalisation, the class weights computed as that cell does
(max class count / class count); the ``DataParallel``/CUDA cell is not run (it
asks for the CUDA device name); the grid's ``BatchNorm2d(1)`` (``BN0``) is
replaced by the identity before the optimizer is made, because ours has no
batch normalisation on the grid (in the peer's favour: one op fewer). The
dropout rate is the one the notebook runs with: ``load_Model`` does not pass
its ``drop_rate = 0.5``, so ``Reset``'s default 0.2 is used; ours uses 0.2. The
notebook's class weights in the loss are kept on its side, ours is unweighted
(a 10-element gather, immaterial).

Index code. The number-topography notebook's analysis cell
(``Topography for numbers/Reset_Networks_Number_topography.ipynb``:
``topo2``, ``clustering_index2``, ``compute_pipeline2``,
``compute_save_metrics2``) is executed as it is and its
``compute_save_metrics2(T=2, nopref=True)`` run on an 11-epoch x 10-class x
32 x 32 class-mean grid history (synthetic: smooth class fields growing over
the epochs, seeded); it computes the d′ maps and saves them
(``target_maps_history.npy``). Ours, `tfemergent.analysis.index_history`, reads
that same d′ history (threshold 2, 20 shuffles, 4-connectivity,
`number_similarity(10)`). Then both results are compared (preference maps,
per-class clustering, controls, topography; see `compare_indices`).

    python -m benchmarks.peers.reset [--quick]
"""

import argparse
import contextlib
import io
import json
import pathlib
import tempfile
import warnings

from benchmarks.peers import _common

GRID_WIDTH = 32
NUM_CLASSES = 10
IMAGE_SIZE = 28
GRID_SIZES = (4, 8)
BATCHES = (32, 128)
DROP_RATE = 0.2
MNIST_NOTEBOOK = "Topography for mnist/Reset_Networks_Topography_MNIST.ipynb"
NUMBERS_NOTEBOOK = "Topography for numbers/Reset_Networks_Number_topography.ipynb"
HISTORY_SHAPE = (11, NUM_CLASSES, GRID_WIDTH, GRID_WIDTH)


def notebook_cell(root, notebook, marker):
    """The source of the one code cell of ``notebook`` that contains ``marker``."""
    path = pathlib.Path(root) / notebook
    if not path.exists():
        raise _common.Skip(f"{path} not found in the Reset-Networks checkout")
    cells = [
        "".join(cell["source"]) for cell in json.load(open(path))["cells"]
        if cell["cell_type"] == "code" and marker in "".join(cell["source"])
    ]
    if len(cells) != 1:
        raise _common.Skip(f"{notebook}: expected one code cell with {marker!r}, found {len(cells)}")
    return cells[0]


def torch_stack_class(torch):
    """A torch module for one of our plain conv-stack specs (the stand-in for ``resnet20``)."""
    from tfemergent.layers.reset_grid import conv_stages

    nn = torch.nn

    class ConvStack(nn.Module):
        def __init__(self, spec, in_channels, image_size, num_outputs):
            super().__init__()
            if spec["activation"] != "relu" or spec["pooling"] not in ("max", "none"):
                raise ValueError(f"the torch stand-in supports relu and max pooling: {spec}")
            layers, size, channels = [], image_size, in_channels
            for stage in conv_stages(spec, in_channels):
                if stage["conv_b"] is not None:
                    raise ValueError(f"the torch stand-in supports plain blocks: {spec}")
                conv = stage["conv"]
                same = conv["padding"] == "same"
                layers += [nn.Conv2d(channels, conv["filters"], conv["kernel_size"],
                                     padding=conv["kernel_size"] // 2 if same else 0), nn.ReLU()]
                size = size if same else size - conv["kernel_size"] + 1
                if spec["pooling"] == "max":
                    layers.append(nn.MaxPool2d(spec["pool_size"]))
                    size //= spec["pool_size"]
                channels = conv["filters"]
            self.flatten_shape = (size, size, channels)  # (h, w, c) before the flatten
            layers.append(nn.Flatten())
            features = size * size * channels
            for units in spec["dense_units"]:
                layers += [nn.Linear(features, units), nn.ReLU()]
                features = units
            layers.append(nn.Linear(features, num_outputs))
            self.layers = nn.Sequential(*layers)

        def forward(self, x):
            return self.layers(x)

    return ConvStack


class ResNet20StandIn:
    """``resnet20(num_channels, num_classes)`` for the notebook: its calls, in order,
    build the n² sub-networks and then the classifier (``Reset.__init__``'s order)."""

    def __init__(self, stack_class, plans):
        self.stack_class, self.plans = stack_class, list(plans)

    def __call__(self, num_channels, num_classes):
        spec, image_size = self.plans.pop(0)
        return self.stack_class(spec, num_channels, image_size, num_classes)


def copy_weights(torch, keras_layers, stack):
    """Our Keras layers' weights into the torch stack (same order of conv and dense)."""
    import numpy as np

    modules = [m for m in stack.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    weighted = [layer for layer in keras_layers if layer.get_weights()]
    if len(modules) != len(weighted):
        raise AssertionError(f"{len(modules)} torch layers, {len(weighted)} Keras layers")
    first_dense = True
    for module, layer in zip(modules, weighted):
        kernel, bias = layer.get_weights()
        if isinstance(module, torch.nn.Conv2d):
            kernel = kernel.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        else:
            if first_dense:  # Keras flattens (h, w, c), torch (c, h, w)
                h, w, c = stack.flatten_shape
                kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
                first_dense = False
            kernel = kernel.T
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel)))
            module.bias.copy_(torch.from_numpy(np.ascontiguousarray(bias)))


def build_peer(root, torch, grid_size, sub_spec, final_spec, class_weights):
    """The notebook's Reset, load_Model and Adam cells, executed in one namespace."""
    import numpy as np

    stack_class = torch_stack_class(torch)
    block = GRID_WIDTH // grid_size
    namespace = {
        "torch": torch, "nn": torch.nn, "optim": torch.optim, "np": np,
        "F": torch.nn.functional,
        "resnet20": ResNet20StandIn(
            stack_class,
            [(sub_spec, IMAGE_SIZE)] * grid_size**2 + [(final_spec, GRID_WIDTH)]),
        "hresnet20reg": None,  # named in load_Model for modelname 'ResNet20' only
    }
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        # load_Model's `k is not 'fc2'` (dead code: load_submodels is False).
        warnings.simplefilter("ignore", SyntaxWarning)
        exec(notebook_cell(root, MNIST_NOTEBOOK, "modelname = 'ResetNumber4'"), namespace)
        namespace.update(gridsize=grid_size, n_classes1=block * block, use_cuda=False,
                         modelname=f"ResetNumber{grid_size}")
        exec(notebook_cell(root, MNIST_NOTEBOOK, "class Reset(nn.Module)"), namespace)
        load_model_cell = notebook_cell(root, MNIST_NOTEBOOK, "def load_Model(")
        # The cell ends by calling load_Model; the BatchNorm patch must come before
        # the optimizer cell, so run the definition and the call as the cell does.
        exec(load_model_cell, namespace)
    net = namespace["net"]
    if namespace["drop_rate"] != 0.5 or net.dropout.p != DROP_RATE:
        raise AssertionError("the notebook's dropout is not what the docstring says")
    net.BN0 = torch.nn.Identity()  # ours has no batch normalisation on the grid
    namespace["weights"] = class_weights
    exec(notebook_cell(root, MNIST_NOTEBOOK, "optimizer = optim.Adam("), namespace)
    if namespace["lrate"] != 1e-3:
        raise AssertionError(f"the notebook's lrate is {namespace['lrate']}, not 1e-3")
    return net, namespace["criterion"], namespace["optimizer"]


def build_ours(keras, grid_size):
    from tfemergent.models import ResetNetwork

    model = ResetNetwork(
        NUM_CLASSES, grid_size=grid_size, grid_width=GRID_WIDTH,
        subnetwork={"output_activation": "tanh"}, output_activation="linear",
        grid_dropout=DROP_RATE, seed=0,
    )
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.build((None, IMAGE_SIZE, IMAGE_SIZE, 1))
    return model


def check_same_function(torch, ours, net, images):
    """Our weights into the notebook's network; same grid and logits in eval mode."""
    import numpy as np

    grid_layer = ours.grid_layers[0]
    for index in range(grid_layer.num_subnetworks):
        copy_weights(torch, grid_layer.subnetwork_model(index).layers, net.Nest1[index])
    copy_weights(torch, list(ours.final_layers) + [ours.output_layer], net.Classifier)
    ours_params = sum(int(np.prod(w.shape)) for w in ours.trainable_weights)
    peer_params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    if ours_params != peer_params:
        raise AssertionError(f"parameters: ours {ours_params}, notebook {peer_params}")
    net.eval()
    with torch.no_grad():
        peer_grid, peer_logits = net(torch.from_numpy(images.transpose(0, 3, 1, 2).copy()))
    net.train()
    ours_grid = ours.grid_activations(images)
    ours_logits = np.asarray(ours.predict_on_batch(images))
    grid_diff = float(np.max(np.abs(peer_grid.numpy()[:, 0] - ours_grid)))
    logit_diff = float(np.max(np.abs(peer_logits.numpy() - ours_logits)))
    if not (grid_diff < 1e-4 and logit_diff < 1e-3):
        raise AssertionError(f"not the same function: grid {grid_diff}, logits {logit_diff}")
    return ours_params, grid_diff, logit_diff


def measure_steps(root, torch, keras, args, images, labels, class_weights):
    import numpy as np
    import tensorflow as tf

    rows = []
    for grid_size in GRID_SIZES:
        ours = build_ours(keras, grid_size)
        net, criterion, optimizer = build_peer(
            root, torch, grid_size, ours.subnetworks[0], ours.final_network, class_weights)
        params, grid_diff, logit_diff = check_same_function(torch, ours, net, images[:16])
        print(f"Reset({grid_size}, {GRID_WIDTH}): notebook network with our weights: same grid "
              f"(max |diff| {grid_diff:.1e}) and logits ({logit_diff:.1e}); {params} parameters "
              "each", flush=True)
        for batch in BATCHES:
            x, y = images[:batch], labels[:batch]
            peer_x = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
            peer_y = torch.from_numpy(y.astype(np.int64))
            ours_x, ours_y = tf.constant(x), tf.constant(y)

            def peer_step():
                # The body of the notebook's training loop.
                optimizer.zero_grad()
                grid, outputs = net(peer_x)
                loss = criterion(outputs, peer_y)
                loss.backward()
                optimizer.step()
                return loss.item()

            def ours_step():
                return ours.train_on_batch(ours_x, ours_y)

            net.train()
            steps = _common.interleaved({"notebook": peer_step, "ours": ours_step},
                                        warmup=3, repeats=6 if args.quick else 25)
            rows.append(_common.row(
                "reset", f"Reset({grid_size}, {GRID_WIDTH}) training step, batch {batch}",
                "notebook Reset (ModuleList loop)", steps["notebook"],
                "ResetNetwork.train_on_batch", steps["ours"],
                note=f"CPU-time ratio {steps['notebook']['cpu_median_ms'] / steps['ours']['cpu_median_ms']:.2f}",
            ))
    return rows


# --------------------------------------------------------------------------- indices


def synthetic_class_grids(seed=0):
    """``[epochs, classes, 32, 32]`` class-mean grids: smooth class fields that grow."""
    import numpy as np
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    epochs, classes, height, width = HISTORY_SHAPE
    fields = np.stack([gaussian_filter(rng.normal(size=(height, width)), 2.0) for _ in range(classes)])
    fields /= fields.std()
    growth = np.linspace(0.1, 1.0, epochs)[:, None, None, None]
    noise = rng.normal(scale=0.3, size=HISTORY_SHAPE)
    return np.tanh(0.5 * growth * fields[None] + 0.1 * noise)


def load_index_code(root):
    import math

    import cv2
    import numpy as np
    from numpy.ma import masked_array
    from scipy import ndimage
    from scipy.ndimage import gaussian_filter

    namespace = {"np": np, "math": math, "cv2": cv2, "ndimage": ndimage,
                 "gaussian_filter": gaussian_filter, "masked_array": masked_array}
    exec(notebook_cell(root, NUMBERS_NOTEBOOK, "def topo2("), namespace)
    return namespace


def load_mnist_topo(root):
    """The active ``topo`` of the MNIST notebook's analysis cell (the filter-bug one)."""
    import numpy as np
    from scipy import ndimage

    source = notebook_cell(root, MNIST_NOTEBOOK, "def clustering_index2(")
    start = source.index("def topo(data):")
    end = source.index("def clustering_index2(")
    namespace = {"np": np, "ndimage": ndimage}
    exec(source[start:end], namespace)
    return namespace["topo"]


def compare_indices(namespace, mnist_topo, folder, prefix, ours_history):
    """Notebook results (saved by compute_save_metrics2) vs ours on the same d′ history.

    Its per-class clustering thresholds each class's d′ map (``d′ > T``), ours
    splits the preference map; the two agree when no unit is above the threshold
    for two classes, so that part is checked on the d′ maps made exclusive (the
    classes a unit does not prefer set below the threshold), through its
    ``compute_pipeline2`` with inputs whose d′ is exactly the given map
    (``select1 = d′ / 2``, ``select2`` = the maps -1 and +1: mean 0, std 1).
    Its ``connectedComponentsWithStats(thresh, connectivity, cv2.CV_32S)``
    passes ``connectivity`` in the ``labels`` slot, so it always uses
    8-connectivity: ours is compared at 8.
    """
    import numpy as np

    from tfemergent.analysis import clustering_index, topography_index

    def saved(name):
        return np.load(folder / f"{prefix}{name}.npy")

    dprime = saved("target_maps_history")
    peer_maps = saved("label_maps_history_nopref").astype(np.int64)
    peer_topo, peer_topo_control = saved("topo_history"), saved("topo_history_ctrl")
    ours_maps = ours_history["preference_maps"]
    epochs = dprime.shape[0]
    checks = {"preference maps equal (theirs nopref label maps, ours preference_maps)":
              bool(np.array_equal(peer_maps, ours_maps))}
    checks["share of units with d' > 2 for two or more classes"] = float(
        np.mean((dprime > 2.0).sum(axis=1) >= 2))
    exclusive = np.where(np.arange(NUM_CLASSES)[None, :, None, None] == ours_maps[:, None],
                         dprime, np.minimum(dprime, 1.0))
    signs = np.stack([-np.ones(dprime.shape[2:]), np.ones(dprime.shape[2:])])
    np.random.seed(1)
    worst, theirs_control, theirs_index, ours_control, ours_index = 0.0, [], [], [], []
    for epoch in range(epochs):
        details = clustering_index(ours_maps[epoch], num_shuffles=20, connectivity=8, seed=epoch,
                                   legacy=True, return_details=True)
        ours_class = np.zeros(NUM_CLASSES)
        ours_class[: details["class_clustering"].size] = details["class_clustering"]
        present = np.zeros(NUM_CLASSES, np.int64)
        present[: details["num_units"].size] = details["num_units"]
        if not present.all():
            continue  # theirs gives an absent class clustering 1, ours leaves it out
        ours_control.append(details["control"])
        ours_index.append(details["index"])
        controls, indices = [], []
        for cls in range(NUM_CLASSES):
            _, clustering, control = namespace["compute_pipeline2"](
                exclusive[epoch, cls][None] / 2.0, signs, T=2.0, connectivity=8)
            worst = max(worst, abs(clustering - ours_class[cls]))
            controls.append(control)
            indices.append(clustering - control)
        theirs_control.append(np.mean(controls))
        theirs_index.append(np.mean(indices))
    checks["exclusive d' maps: epochs with every class present"] = len(ours_index)
    checks["exclusive d' maps: per-class clustering, max |theirs - ours (8-conn.)|"] = float(worst)
    checks["exclusive d' maps: clustering control, mean: theirs (10 shuffles / 20)"] = float(
        np.mean(theirs_control))
    checks["exclusive d' maps: clustering control, mean: ours legacy=True"] = float(
        np.mean(ours_control))
    checks["exclusive d' maps: clustering index, mean: theirs"] = float(np.mean(theirs_index))
    checks["exclusive d' maps: clustering index, mean: ours legacy=True"] = float(
        np.mean(ours_index))
    # On the raw d' maps the definitions differ (overlapping class maps).
    peer_clustering = saved("clustering_history")
    peer_control = saved("clustering_history_ctrl")
    checks["raw d' maps: clustering index, mean: theirs (mean over classes of clu - ctrl)"] = (
        float((peer_clustering - peer_control).mean()))
    checks["raw d' maps: clustering index, mean: ours (4-conn., 20 shuffles)"] = float(
        ours_history["clustering_index"].mean())
    # Topography: its topo2 averages over interior units only, with similarity
    # 1 - |a - b| / 10 and no-preference neighbours counted as similarity 0 of 8;
    # ours over every unit with a preferring neighbour, number_similarity (/ 9),
    # no-preference neighbours left out.
    s10 = 1.0 - np.abs(np.subtract.outer(np.arange(NUM_CLASSES), np.arange(NUM_CLASSES))) / 10.0
    checks["topography, mean: theirs topo2"] = float(peer_topo.mean())
    checks["topography, mean: ours (number_similarity)"] = float(ours_history["topography"].mean())
    checks["topography, mean: ours with 1 - |a-b|/10"] = float(np.mean(
        [topography_index(m, s10, num_shuffles=1, seed=0, return_details=True)["topography"]
         for m in ours_maps]))
    checks["topography index, mean: theirs"] = float((peer_topo - peer_topo_control).mean())
    checks["topography index, mean: ours"] = float(ours_history["topography_index"].mean())
    # The MNIST notebook's topo() (the filter bug): 1 / mean(convolve(binary map,
    # filter)), not a similarity in [0, 1]; ours legacy=True copies its window
    # placement only.
    values = [mnist_topo((exclusive[e, c] > 2.0).astype(np.uint8))
              for e in range(epochs) for c in range(NUM_CLASSES)]
    checks["MNIST notebook topo() on the class maps: min, median, max"] = [
        float(np.min(values)), float(np.median(values)), float(np.max(values))]
    return checks


def measure_indices(root, args):
    import numpy as np

    from tfemergent.analysis import index_history, number_similarity

    namespace = load_index_code(root)
    folder = pathlib.Path(tempfile.mkdtemp(prefix="peer_reset_"))
    modelname, dataset = "ResetNumber4", "Synthetic"
    prefix = modelname + dataset
    grids = synthetic_class_grids()
    np.save(folder / f"{prefix}class_grid_history.npy", grids)
    np.save(folder / f"{prefix}class_acc_history.npy", np.full(HISTORY_SHAPE[:2], 90.0))
    namespace.update(checkpointpath=f"{folder}/", lc=NUM_CLASSES)
    np.random.seed(0)

    def peer():
        with contextlib.redirect_stdout(io.StringIO()):
            namespace["compute_save_metrics2"](modelname=modelname, dataset=dataset, T=2, S=0,
                                               nopref=True, n_epochs=HISTORY_SHAPE[0])

    peer()
    dprime = np.load(folder / f"{prefix}target_maps_history.npy")
    similarity = number_similarity(NUM_CLASSES)

    def ours():
        return index_history(dprime, similarity=similarity, threshold=2.0, num_shuffles=20,
                             connectivity=4, seed=0)

    checks = compare_indices(namespace, load_mnist_topo(root), folder, prefix, ours())
    for name, value in checks.items():
        print(f"  {name}: {value}")
    times = _common.interleaved({"notebook": peer, "ours": ours}, warmup=1,
                                repeats=3 if args.quick else 7)
    row = _common.row(
        "reset", "clustering + topography indices of an 11-epoch d' history (10 classes, 32x32)",
        "notebook compute_save_metrics2", times["notebook"],
        "index_history", times["ours"],
        note="theirs: d' from class-mean grids, clustering with 10 shuffles, topo2 with 20, "
        "8 np.save; ours: clustering and topography with 20 shuffles each",
    )
    row["checks"] = checks
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-steps", action="store_true", help="only the index code")
    args = parser.parse_args(argv)
    torch = _common.require_torch()
    root = _common.peer_dir("Reset-Networks", "PEER_RESET_DIR")
    import keras
    import numpy as np

    print(_common.machine_line(), "| peer commit", _common.git_commit(root), flush=True)
    rows = []
    if not args.skip_steps:
        with np.load(_common.DATA_DIR / "mnist.npz") as data:
            images = data["x_train"][:512].astype("float32") / 255.0
            all_labels = data["y_train"]
        images = ((images - 0.1307) / 0.3081)[..., None]
        labels = all_labels[:512].astype("int64")
        counts = np.bincount(all_labels, minlength=NUM_CLASSES)
        class_weights = torch.Tensor(np.max(counts) / counts)  # the notebook's data cell
        keras.utils.set_random_seed(0)
        torch.manual_seed(0)
        rows += measure_steps(root, torch, keras, args, images, labels, class_weights)
    rows.append(measure_indices(root, args))
    return rows


if __name__ == "__main__":
    _common.main_guard(main)
