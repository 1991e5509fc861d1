"""`NeuronHierarchyBuilder`: Algorithm 2 of Neuron Hierarchical Networks, stage by stage."""

import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from tfemergent.analysis.parameter_count import count_parameters, performance_score
from tfemergent.layers._masked_convolution import MaskedConvolutionBase
from tfemergent.layers.add_on_conv2d import ADD_ON_KERNEL_SIZES, AddOnConv2D
from tfemergent.models.nhn.add_on_super_network import (
    ADD_ON_INITIALIZERS,
    AddOnSuperNetwork,
    validate_kernel_sizes,
)
from tfemergent.models.nhn.location_evaluator import (
    SHARED_DIRECTORY_NAME,
    SHARED_WEIGHTS_MODES,
    LocationEvaluator,
)
from tfemergent.models.nhn.segment_cnn import HEAD_NAME, SegmentCNN
from tfemergent.pruning.activation_scale import activation_scales, restore_activation_scales
from tfemergent.pruning.prune_kernels import GRANULARITIES, SCOPES, prune_kernels
from tfemergent.pruning.shrink import shrink
from tfemergent.search.evolutionary_search import EvolutionarySearch
from tfemergent.search.location_space import LocationSpace
from tfemergent.search.search_runner import SearchRunner
from tfemergent.utils.validation import (
    validate_bool,
    validate_choice,
    validate_float,
    validate_int,
)

STAGES = ("base", "pruned", "retrained", "searched", "final", "ablation")
STAGE_DESCRIPTIONS = {
    "base": "base network, smooth init, trained",
    "pruned": "kernels of lowest std pruned (no retraining)",
    "retrained": "pruned, shrunk, retrained",
    "searched": "add-ons found by LDS (base frozen), before the final training",
    "final": "with add-ons, retrained (NHN)",
    "ablation": "final network with its add-ons removed",
}


# Training images on which `prune_rescale` measures the activation scales.
RESCALE_IMAGES = 1000


def _without_add_ons(model):
    """The `SegmentCNN` model without its add-ons, other weights copied (the ablation)."""
    spec = SegmentCNN.from_model(model)
    plain = spec.with_add_ons([]).build(name=f"{model.name}_without_add_ons")
    for name in spec.conv_names + [HEAD_NAME]:
        plain.get_layer(name).set_weights(model.get_layer(name).get_weights())
    return plain


def _num_add_ons(model):
    return sum(isinstance(layer, AddOnConv2D) for layer in model.layers)


class NeuronHierarchyBuilder:
    """Builds a neuron hierarchical network (NHN): Algorithm 2 of the paper, with reports.

    The stages, each reported on the test set:

    1. ``"base"``: build the base `SegmentCNN` (``spec``, smooth
       initialisation) and train it (``epochs``);
    2. ``"pruned"``: prune the fraction ``prune_fraction`` of its 3 x 3 / 5 x 5
       kernels with the lowest standard deviation, one threshold for the
       whole network (`tfemergent.pruning.prune_kernels`; the paper: ~85%)
       or, with ``prune_scope="layer"``, the same fraction of every layer;
       with ``prune_granularity="channel"``, in whole output channels ranked
       by the mean standard deviation of their kernels, so that the next
       stage removes them (a smaller, faster network; not the paper's);
    3. ``"retrained"``: remove the channels left without input or output
       (`tfemergent.pruning.shrink`: a physically smaller network) and
       retrain (``retrain_epochs``);
    4. ``"searched"``: the location-direction search (LDS). An
       `AddOnSuperNetwork` holds the frozen network and the weights of every
       possible add-on; `EvolutionarySearch` over its `LocationSpace`
       (``num_cycles``, ``population_size``, ...) with `LocationEvaluator`
       as fitness (each member trains its add-ons for ``search_batches``
       batches of its own slice of the training set and is scored on the
       validation set) under a `SearchRunner` (resumable with
       ``search_directory``); the best genome's add-ons are then trained
       densely for ``direction_epochs``, each keeps its ``direction_density``
       most sensitive connections (`AddOnSuperNetwork.select_directions`),
       and the sparse add-ons train for another ``direction_epochs`` (base
       still frozen). Reported: the network with those add-ons before the
       final training;
    5. ``"final"``: the network with the add-ons, every weight trainable,
       retrained (``final_epochs``), then shrunk: the returned model;
    6. ``"ablation"``: the final network with its add-ons removed and no
       retraining (the paper: -1.08 points).

    Every row of the stage table has: ``stage``, ``description``,
    ``test_accuracy``, ``test_error`` (percent), ``parameters`` (effective:
    pruned kernels not counted, `tfemergent.analysis.count_parameters`),
    ``stored_parameters`` (of the model as it is, pruned kernels stored as
    zeros), ``physical_parameters`` (stored after `shrink`, the deployable
    model), ``score`` (`tfemergent.analysis.performance_score` of
    ``test_error`` and ``parameters``), ``latency_ms`` (median time of one
    forward pass of the shrunk model on ``latency_batch_size`` test images,
    compiled, warm-up excluded), ``num_add_ons`` and ``seconds`` (the stage's
    wall time).

    Training (stages 1, 3, 5): SGD with Nesterov momentum 0.9, a cosine
    schedule from ``learning_rate`` to ``min_learning_rate`` over each stage
    (the paper: 0.05 to 0.001), global gradient-norm clipping
    ``global_clipnorm`` (the paper: 5.0), cross-entropy. No cutout, dropout or
    weight decay (the paper uses them in its final training only).

    Where the paper is ambiguous: Algorithm 2 says "train from scratch" after
    pruning and after LDS, while Section 3 says the original weights go
    through three passes of training (ENAS, after DNP, after LDS).
    ``retrain_from_scratch=False`` (default) continues from the trained
    weights; ``True`` re-initialises the weights (smooth init) and keeps the
    pruned structure and the add-ons' connections. The paper scores LDS
    candidates on test batches; we hold out ``validation_fraction`` of the
    training images for that, and train every stage on the rest. The
    direction search is the standard-deviation choice described in
    `AddOnSuperNetwork`.

    Reference: "Neuron Hierarchical Networks" (anonymous, ICLR 2019
    submission), Algorithm 2, Sections 2.2, 2.3 and 3.

    Args:
        spec: the base `SegmentCNN` (no add-ons).
        epochs: int >= 1, training epochs of the base network.
        retrain_epochs: int >= 0 or None (= ``epochs``), after pruning.
        final_epochs: int >= 0 or None (= ``epochs``), with the add-ons.
        batch_size: int >= 1.
        learning_rate, min_learning_rate: floats > 0, the cosine schedule.
        momentum: float in [0, 1).
        global_clipnorm: float > 0 or None.
        prune_fraction: fraction of kernels pruned, in [0, 1).
        prune_granularity: ``"kernel"`` (the paper's) or ``"channel"`` (see
            `tfemergent.pruning.prune_kernels`).
        prune_scope: ``"model"`` (the paper's: one threshold for the whole
            network) or ``"layer"`` (every convolution loses the same
            fraction; a model-wide threshold can empty the wide deep layers
            of a network without batch normalisation, whose He-scaled
            kernels have the smallest standard deviations).
        prune_channel_multiple: int >= 1, with ``prune_granularity="channel"``:
            round every kept width down to a multiple of it (8: aligned widths
            that the CPU convolutions run faster).
        prune_rescale: bool. True: after pruning, rescale every convolution so
            that its output has the standard deviation it had before pruning
            (`tfemergent.pruning.restore_activation_scales`, measured on the
            first 1000 training images). For networks without batch
            normalisation, whose activations otherwise shrink layer after
            layer (not the paper's: its base has batch normalisation). The
            factors are in ``outcome["pruning"]["rescale_factors"]``.
        retrain_from_scratch: bool (see above).
        kernel_sizes: add-on kernel sizes (subset of ``(3, 5)``).
        include_segment_input: whether add-ons may read a segment's input.
        add_on_initializer: ``"zeros"``, ``"smooth"`` or ``"he_normal"``, the
            initial add-on kernels of the search (see `AddOnSuperNetwork`).
        none_probability: probability of a "no add-on" gene, in [0, 1].
        num_cycles, population_size, num_parents, num_children, num_fresh:
            `EvolutionarySearch` (the paper: 300, 20, 4, 5, 5).
        search_batches: batches per member per cycle (the paper: 25).
        search_batch_size: their size (the paper: 100).
        search_eval_size: None (whole validation set) or validation images
            per member (the paper: 500).
        shared_weights: ``"sequential"`` (each candidate continues from the
            previous one's add-on weights) or ``"per_cycle"`` (every candidate
            of a cycle starts from the same merged state, so candidates can
            run in parallel); see `LocationEvaluator`.
        executor: None (candidates one after the other) or an executor with
            ``submit`` (``concurrent.futures.ThreadPoolExecutor``, a
            ``ProcessPoolExecutor`` with the ``"spawn"`` start method,
            `tfemergent.search.RayExecutor`) evaluating a cycle's candidates in
            parallel; needs ``shared_weights="per_cycle"``. Not part of
            `get_config` (a live object).
        search_learning_rate, min_search_learning_rate: the cosine over the
            cycles (the paper: 0.05 to 0.001). Our base has no batch
            normalisation: on the digits, 0.05 without gradient clipping made
            the shared add-ons diverge (a cycle's candidates at 15% validation
            accuracy where the frozen base had 90%); with clipping to norm 5
            (always on here) 0.05 gave cycle means of 84-91% and 0.01 of
            93-94%. The direction training uses ``search_learning_rate``.
        direction_density: fraction of connections kept per add-on (0.1).
        direction_epochs: int >= 0, epochs of add-on training before the
            choice of connections (dense) and after it (sparse).
        validation_fraction: fraction of the training images held out for
            the search, in (0, 1), when no validation data are given.
        latency_batch_size: int >= 1; latency_repeats: int >= 1.
        seed: int >= 0, the seed of everything (Keras, shuffles, search).
        search_directory: None or a path: the `SearchRunner` checkpoint (and
            shared add-on weights) directory; a killed search resumes there if
            the stages before it reproduce exactly.
        logdir: None or a directory for TensorBoard logs of the training
            stages (``<logdir>/<stage>``).
        verbose: 0 silent, 1 a line per stage and per search cycle and a
            progress bar of the search's trials (stderr), 2 one line per trial
            instead of the bar.

    Example:

    >>> import numpy as np
    >>> from tfemergent.models import SegmentCNN
    >>> rng = np.random.default_rng(0)
    >>> images = rng.normal(size=(96, 8, 8, 1)).astype("float32")
    >>> labels = (images[:, :4].mean(axis=(1, 2, 3)) > 0).astype("int64")
    >>> spec = SegmentCNN((8, 8, 1), 2, segments=[[4, 4], [4]], seed=0)
    >>> builder = NeuronHierarchyBuilder(spec, epochs=1, num_cycles=1, population_size=3,
    ...     num_parents=2, num_children=1, num_fresh=1, search_batches=1,
    ...     search_batch_size=16, prune_fraction=0.5, latency_repeats=2, verbose=0)
    >>> outcome = builder.run(images, labels, images[:32], labels[:32])
    >>> [row["stage"] for row in outcome["stages"]]
    ['base', 'pruned', 'retrained', 'searched', 'final', 'ablation']
    >>> outcome["stages"][1]["parameters"] < outcome["stages"][0]["parameters"]
    True
    >>> outcome["model"].name
    'nhn'
    """

    def __init__(
        self,
        spec,
        epochs=3,
        retrain_epochs=None,
        final_epochs=None,
        batch_size=64,
        learning_rate=0.05,
        min_learning_rate=0.001,
        momentum=0.9,
        global_clipnorm=5.0,
        prune_fraction=0.85,
        prune_granularity="kernel",
        prune_scope="model",
        prune_channel_multiple=1,
        prune_rescale=False,
        retrain_from_scratch=False,
        kernel_sizes=ADD_ON_KERNEL_SIZES,
        include_segment_input=True,
        add_on_initializer="zeros",
        none_probability=0.8,
        num_cycles=3,
        population_size=8,
        num_parents=3,
        num_children=3,
        num_fresh=2,
        search_batches=5,
        search_batch_size=32,
        search_eval_size=None,
        shared_weights="sequential",
        executor=None,
        search_learning_rate=0.01,
        min_search_learning_rate=0.001,
        direction_density=0.1,
        direction_epochs=1,
        validation_fraction=0.1,
        latency_batch_size=64,
        latency_repeats=10,
        seed=0,
        search_directory=None,
        logdir=None,
        verbose=1,
    ):
        if not isinstance(spec, SegmentCNN):
            raise ValueError(
                "Argument `spec` must be a tfemergent.models.SegmentCNN (the base network). "
                f"Received: spec={spec!r}"
            )
        if spec.add_ons:
            raise ValueError(
                "Argument `spec` must have no add-ons: the search adds them. "
                f"Received: spec with add_ons={spec.add_ons!r}"
            )
        self.spec = spec
        self.epochs = validate_int("epochs", epochs, minimum=1)
        self.retrain_epochs = validate_int(
            "retrain_epochs", self.epochs if retrain_epochs is None else retrain_epochs, minimum=0
        )
        self.final_epochs = validate_int(
            "final_epochs", self.epochs if final_epochs is None else final_epochs, minimum=0
        )
        self.batch_size = validate_int("batch_size", batch_size, minimum=1)
        self.learning_rate = validate_float(
            "learning_rate", learning_rate, minimum=0.0, min_inclusive=False
        )
        self.min_learning_rate = validate_float(
            "min_learning_rate", min_learning_rate, minimum=0.0, maximum=self.learning_rate,
            min_inclusive=False,
        )
        self.momentum = validate_float("momentum", momentum, minimum=0.0, maximum=0.999)
        self.global_clipnorm = validate_float(
            "global_clipnorm", global_clipnorm, minimum=0.0, min_inclusive=False, allow_none=True
        )
        self.prune_fraction = validate_float("prune_fraction", prune_fraction, minimum=0.0,
                                             maximum=0.999)
        self.prune_granularity = validate_choice(
            "prune_granularity", prune_granularity, GRANULARITIES
        )
        self.prune_scope = validate_choice("prune_scope", prune_scope, SCOPES)
        self.prune_channel_multiple = validate_int(
            "prune_channel_multiple", prune_channel_multiple, minimum=1
        )
        if self.prune_channel_multiple > 1 and self.prune_granularity != "channel":
            raise ValueError(
                "Argument `prune_channel_multiple` rounds the kept channels of "
                "prune_granularity='channel'; use prune_granularity='channel' or "
                f"prune_channel_multiple=1. Received: prune_channel_multiple="
                f"{prune_channel_multiple!r}, prune_granularity={prune_granularity!r}"
            )
        self.prune_rescale = validate_bool("prune_rescale", prune_rescale)
        self.retrain_from_scratch = validate_bool("retrain_from_scratch", retrain_from_scratch)
        self.include_segment_input = validate_bool("include_segment_input", include_segment_input)
        self.add_on_initializer = validate_choice(
            "add_on_initializer", add_on_initializer, ADD_ON_INITIALIZERS
        )
        self.none_probability = validate_float(
            "none_probability", none_probability, minimum=0.0, maximum=1.0
        )
        self.num_cycles = validate_int("num_cycles", num_cycles, minimum=1)
        self.population_size = validate_int("population_size", population_size, minimum=2)
        self.num_parents = validate_int("num_parents", num_parents, minimum=2)
        self.num_children = validate_int("num_children", num_children, minimum=0)
        self.num_fresh = validate_int("num_fresh", num_fresh, minimum=0)
        self.search_batches = validate_int("search_batches", search_batches, minimum=1)
        self.search_batch_size = validate_int("search_batch_size", search_batch_size, minimum=1)
        self.search_eval_size = validate_int(
            "search_eval_size", search_eval_size, minimum=1, allow_none=True
        )
        self.shared_weights = validate_choice(
            "shared_weights", shared_weights, SHARED_WEIGHTS_MODES
        )
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise ValueError(
                "Argument `executor` must be None or an object with `submit(fn, trial)` "
                "returning a concurrent.futures.Future (a ThreadPoolExecutor, a "
                "ProcessPoolExecutor with the 'spawn' start method, "
                f"tfemergent.search.RayExecutor). Received: executor={executor!r}"
            )
        if executor is not None and self.shared_weights != "per_cycle":
            raise ValueError(
                "Argument `executor` evaluates a cycle's candidates in parallel, which needs "
                "shared_weights='per_cycle' (with 'sequential' every candidate starts from the "
                "previous one's weights). Received: executor="
                f"{executor!r}, shared_weights={shared_weights!r}"
            )
        self.executor = executor
        self.search_learning_rate = validate_float(
            "search_learning_rate", search_learning_rate, minimum=0.0, min_inclusive=False
        )
        self.min_search_learning_rate = validate_float(
            "min_search_learning_rate", min_search_learning_rate, minimum=0.0,
            maximum=self.search_learning_rate, min_inclusive=False,
        )
        self.direction_density = validate_float(
            "direction_density", direction_density, minimum=0.0, maximum=1.0, min_inclusive=False
        )
        self.direction_epochs = validate_int("direction_epochs", direction_epochs, minimum=0)
        self.validation_fraction = validate_float(
            "validation_fraction", validation_fraction, minimum=0.0, maximum=1.0,
            min_inclusive=False,
        )
        if self.validation_fraction >= 1.0:
            raise ValueError(
                "Argument `validation_fraction` must be < 1 (some images must remain for "
                f"training). Received: validation_fraction={validation_fraction!r}"
            )
        self.latency_batch_size = validate_int("latency_batch_size", latency_batch_size,
                                               minimum=1)
        self.latency_repeats = validate_int("latency_repeats", latency_repeats, minimum=1)
        self.seed = validate_int("seed", seed, minimum=0)
        for name, value in (("search_directory", search_directory), ("logdir", logdir)):
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise ValueError(
                    f"Argument `{name}` must be None or a path. Received: {name}={value!r}"
                )
        self.search_directory = None if search_directory is None else os.fspath(search_directory)
        self.logdir = None if logdir is None else os.fspath(logdir)
        self.verbose = validate_int("verbose", verbose, minimum=0, maximum=2)
        self.kernel_sizes = validate_kernel_sizes(kernel_sizes)
        # EvolutionarySearch validates the evolution's counts together, early.
        self._make_strategy()

    # ------------------------------------------------------------------ config
    def get_config(self):
        return {
            "spec": self.spec.get_config(),
            **{
                name: getattr(self, name)
                for name in (
                    "epochs", "retrain_epochs", "final_epochs", "batch_size", "learning_rate",
                    "min_learning_rate", "momentum", "global_clipnorm", "prune_fraction",
                    "prune_granularity", "prune_scope", "prune_channel_multiple",
                    "prune_rescale", "retrain_from_scratch", "include_segment_input",
                    "add_on_initializer", "none_probability",
                    "num_cycles", "population_size", "num_parents", "num_children", "num_fresh",
                    "search_batches", "search_batch_size", "search_eval_size",
                    "shared_weights", "search_learning_rate", "min_search_learning_rate", "direction_density",
                    "direction_epochs", "validation_fraction", "latency_batch_size",
                    "latency_repeats", "seed", "search_directory", "logdir", "verbose",
                )
            },
            "kernel_sizes": list(self.kernel_sizes),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        spec = config.pop("spec")
        if isinstance(spec, dict):
            spec = SegmentCNN.from_config(spec)
        return cls(spec, **config)

    # ------------------------------------------------------------------ helpers
    def _log(self, text):
        if self.verbose:
            print(text, flush=True)

    def _make_strategy(self):
        space = LocationSpace(
            segment_sizes=self.spec.segment_sizes,
            kernel_sizes=self.kernel_sizes,
            none_probability=self.none_probability,
            include_segment_input=self.include_segment_input,
        )
        return EvolutionarySearch(
            space,
            num_cycles=self.num_cycles,
            population_size=self.population_size,
            num_parents=self.num_parents,
            num_children=self.num_children,
            num_fresh=self.num_fresh,
            seed=self.seed,
        )

    def _fit(self, model, data, epochs, stage):
        if epochs == 0:
            return
        x_train, y_train, x_val, y_val = data
        keras.utils.set_random_seed(self.seed + STAGES.index(stage))
        steps = math.ceil(len(x_train) / self.batch_size) * epochs
        schedule = keras.optimizers.schedules.CosineDecay(
            self.learning_rate, decay_steps=steps, alpha=self.min_learning_rate / self.learning_rate
        )
        optimizer = keras.optimizers.SGD(
            schedule, momentum=self.momentum, nesterov=True, global_clipnorm=self.global_clipnorm
        )
        model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
        callbacks = []
        if self.logdir:
            callbacks.append(keras.callbacks.TensorBoard(os.path.join(self.logdir, stage)))
        model.fit(
            x_train,
            y_train,
            batch_size=self.batch_size,
            epochs=epochs,
            validation_data=(x_val, y_val),
            callbacks=callbacks,
            verbose=0,
        )

    def _reinitialise(self, model, offset):
        """A fresh, smoothly initialised copy of ``model``'s structure (masks kept)."""
        spec = SegmentCNN.from_model(model)
        add_ons = [
            {**add_on,
             "connection_mask": model.get_layer(SegmentCNN.add_on_name(add_on))
             .connection_mask.numpy()}
            for add_on in spec.add_ons
        ]
        fresh_spec = SegmentCNN(
            spec.input_shape,
            spec.num_classes,
            spec.segments,
            add_ons=add_ons,
            smooth_init=self.spec.smooth_init,
            smoothing_sigma=self.spec.smoothing_sigma,
            seed=self.seed * 10 + offset,
        )
        fresh = fresh_spec.build(name=model.name)
        for layer in model.layers:
            if isinstance(layer, MaskedConvolutionBase):
                fresh.get_layer(layer.name).set_pruning_mask(layer.pruning_mask.numpy())
        return fresh

    def _accuracy(self, model, images, labels):
        probabilities = model.predict(images, batch_size=512, verbose=0)
        return float(np.mean(np.argmax(probabilities, axis=1) == labels))

    def _latency_ms(self, model, images):
        batch = tf.constant(images[: self.latency_batch_size])
        forward = tf.function(lambda x: model(x, training=False))
        forward(batch)  # trace and warm up
        forward(batch)
        times = []
        for _ in range(self.latency_repeats):
            start = time.perf_counter()
            forward(batch).numpy()
            times.append(time.perf_counter() - start)
        return 1000.0 * float(np.median(times))

    def _report(self, stage, model, test, started):
        x_test, y_test = test
        small = shrink(model)
        counts = count_parameters(model)
        accuracy = self._accuracy(model, x_test, y_test)
        error = 100.0 * (1.0 - accuracy)
        row = {
            "stage": stage,
            "description": STAGE_DESCRIPTIONS[stage],
            "test_accuracy": accuracy,
            "test_error": error,
            "parameters": counts["effective"],
            "stored_parameters": counts["stored"],
            "physical_parameters": count_parameters(small)["stored"],
            "score": performance_score(error, counts["effective"]),
            "latency_ms": self._latency_ms(small, x_test),
            "num_add_ons": _num_add_ons(model),
            "seconds": time.perf_counter() - started,
        }
        self._log(
            f"[{stage}] test error {error:.2f}%, {row['parameters']} parameters "
            f"({row['physical_parameters']} physical), score {row['score']:.3f}, "
            f"latency {row['latency_ms']:.2f} ms, {row['seconds']:.1f} s"
        )
        return row

    def _split(self, x_train, y_train, validation_data):
        if validation_data is not None:
            if not isinstance(validation_data, (list, tuple)) or len(validation_data) != 2:
                raise ValueError(
                    "Argument `validation_data` must be None or a pair (images, labels). "
                    f"Received: validation_data of type {type(validation_data).__name__}"
                )
            x_val, y_val = validation_data
            return x_train, y_train, np.asarray(x_val, "float32"), np.asarray(y_val, "int64")
        order = np.random.default_rng(self.seed).permutation(len(x_train))
        num_val = max(1, int(round(self.validation_fraction * len(x_train))))
        if num_val >= len(x_train):
            raise ValueError(
                f"Argument `x_train` has too few images ({len(x_train)}) to hold out "
                f"validation_fraction={self.validation_fraction} and train on the rest. "
                f"Received: len(x_train)={len(x_train)}"
            )
        val, fit = order[:num_val], order[num_val:]
        return x_train[fit], y_train[fit], x_train[val], y_train[val]

    def _check(self, name, images, labels):
        images = np.asarray(images, "float32")
        labels = np.asarray(labels)
        if images.shape[1:] != tuple(self.spec.input_shape) or len(images) == 0:
            raise ValueError(
                f"Argument `{name}` must be a non-empty float array (n,) + "
                f"{tuple(self.spec.input_shape)}. Received: shape {images.shape}"
            )
        if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"The labels of `{name}` must be an int array ({len(images)},). "
                f"Received: shape {labels.shape}, dtype {labels.dtype}"
            )
        return images, labels.astype("int64")

    # ------------------------------------------------------------------ search
    def _search(self, network, data):
        x_fit, y_fit, x_val, y_val = data
        evaluator = LocationEvaluator(
            network,
            (x_fit, y_fit),
            (x_val, y_val),
            train_batches=self.search_batches,
            batch_size=self.search_batch_size,
            eval_size=self.search_eval_size,
            learning_rate=self.search_learning_rate,
            min_learning_rate=self.min_search_learning_rate,
            num_cycles=self.num_cycles,
            momentum=self.momentum,
            directory=None
            if self.search_directory is None
            else os.path.join(self.search_directory, SHARED_DIRECTORY_NAME),
            seed=self.seed,
            shared_weights=self.shared_weights,
        )
        strategy = self._make_strategy()
        runner = SearchRunner(
            strategy,
            evaluator,
            directory=self.search_directory,
            executor=self.executor,
            verbose={0: 0, 1: 2, 2: 1}[self.verbose],  # 1: a progress bar; 2: lines
        )
        for cycle in range(self.num_cycles):
            result = runner.run(max_trials=(cycle + 1) * self.population_size)
            generation = [r["fitness"] for _, r in result.history[-self.population_size:]]
            self._log(
                f"[search] cycle {cycle + 1}/{self.num_cycles}: best validation accuracy "
                f"{max(generation):.4f}, mean {np.mean(generation):.4f}; best genome "
                f"{strategy.best[0].params}"
            )
        # The shared weights after the last trial (also when a finished search was
        # only resumed, so that nothing ran in this process).
        evaluator.restore(strategy.num_asked)
        return runner.result

    def _train_directions(self, network, data, phase):
        """``direction_epochs`` of add-on training (base frozen), shuffled per epoch."""
        x_fit, y_fit = data[0], data[1]
        rng = np.random.default_rng([self.seed, phase])
        for _ in range(self.direction_epochs):
            order = rng.permutation(len(x_fit))
            network.train_add_ons(
                x_fit[order],
                y_fit[order],
                batch_size=self.search_batch_size,
                learning_rate=self.search_learning_rate,
                momentum=self.momentum,
            )

    # ------------------------------------------------------------------ run
    def run(self, x_train, y_train, x_test, y_test, validation_data=None):
        """Run every stage; returns the stage table, the final (shrunk) model and details.

        Args:
            x_train, y_train: training images (float, standardised) and labels.
            x_test, y_test: test images and labels (the reported errors).
            validation_data: None (hold out ``validation_fraction`` of the
                training images) or ``(images, labels)`` scoring the search.

        Returns:
            dict with ``"stages"`` (list of row dicts, see the class),
            ``"model"`` (the final shrunk `keras.Model`), ``"add_ons"`` (the
            final add-ons: location and kept connections), ``"genome"``,
            ``"search"`` (``best_trial_id``, ``best_fitness``, ``history``:
            one dict per trial), ``"pruning"`` (the `PruningReport` as a dict)
            and ``"ablation_drop"`` (final minus ablated test accuracy).
        """
        x_train, y_train = self._check("x_train", x_train, y_train)
        x_test, y_test = self._check("x_test", x_test, y_test)
        if validation_data is not None:
            validation_data = self._check("validation_data", *validation_data)
        data = self._split(x_train, y_train, validation_data)
        test = (x_test, y_test)
        stages = []

        started = time.perf_counter()
        keras.utils.set_random_seed(self.seed)
        model = self.spec.build(name="base")
        self._fit(model, data, self.epochs, "base")
        stages.append(self._report("base", model, test, started))

        started = time.perf_counter()
        scale_images = data[0][:RESCALE_IMAGES]
        if self.prune_rescale:
            target_scales = activation_scales(model, scale_images)
        pruning = prune_kernels(
            model,
            fraction=self.prune_fraction,
            granularity=self.prune_granularity,
            scope=self.prune_scope,
            channel_multiple=self.prune_channel_multiple,
        )
        rescale_factors = (
            restore_activation_scales(model, scale_images, target_scales)
            if self.prune_rescale
            else None
        )
        stages.append(self._report("pruned", model, test, started))

        started = time.perf_counter()
        model = shrink(model)
        if self.retrain_from_scratch:
            model = self._reinitialise(model, 1)
        self._fit(model, data, self.retrain_epochs, "retrained")
        stages.append(self._report("retrained", model, test, started))

        started = time.perf_counter()
        network = AddOnSuperNetwork.from_model(
            model,
            kernel_sizes=self.kernel_sizes,
            include_segment_input=self.include_segment_input,
            add_on_initializer=self.add_on_initializer,
            smoothing_sigma=self.spec.smoothing_sigma,
            seed=self.seed,
        )
        result = self._search(network, data)
        genome = list(result.best_trial.params)
        network.set_genome(genome)
        if network.active_add_ons:
            self._train_directions(network, data, phase=1)
            network.select_directions(self.direction_density)
            self._train_directions(network, data, phase=2)
        model = network.to_model(name="nhn")
        stages.append(self._report("searched", model, test, started))

        started = time.perf_counter()
        if self.retrain_from_scratch:
            model = self._reinitialise(model, 2)
        self._fit(model, data, self.final_epochs, "final")
        model = shrink(model)
        stages.append(self._report("final", model, test, started))

        started = time.perf_counter()
        ablated = _without_add_ons(model)
        stages.append(self._report("ablation", ablated, test, started))

        add_ons = []
        for add_on in SegmentCNN.from_model(model).add_ons:
            mask = model.get_layer(SegmentCNN.add_on_name(add_on)).connection_mask.numpy()
            add_ons.append(
                {
                    **{key: add_on[key] for key in ("segment", "source", "target", "kernel_size")},
                    "num_connections": int(mask.sum()),
                    "num_possible_connections": int(mask.size),
                }
            )
        history = [
            {
                "trial_id": trial.trial_id,
                "cycle": trial.info["cycle"],
                "member": trial.info["member"],
                "origin": trial.info["origin"],
                "genome": list(trial.params),
                "fitness": trial_result["fitness"],
                "num_add_ons": trial_result["num_add_ons"],
            }
            for trial, trial_result in result.history
        ]
        return {
            "stages": stages,
            "model": model,
            "add_ons": add_ons,
            "genome": genome,
            "search": {
                "best_trial_id": result.best_trial.trial_id,
                "best_fitness": result.best_result["fitness"],
                "history": history,
            },
            "pruning": {**pruning.to_dict(), "rescale_factors": rescale_factors},
            "ablation_drop": stages[4]["test_accuracy"] - stages[5]["test_accuracy"],
        }
