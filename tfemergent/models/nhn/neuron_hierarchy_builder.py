"""`NeuronHierarchyBuilder`: Algorithm 2 of Neuron Hierarchical Networks, stage by stage."""

import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from tfemergent.analysis.parameter_count import count_parameters, performance_score
from tfemergent.layers.add_on_conv2d import AddOnConv2D
from tfemergent.layers.masked_conv2d import MaskedConv2D
from tfemergent.models.nhn.add_on_super_network import AddOnSuperNetwork
from tfemergent.models.nhn.config_values import validate_config
from tfemergent.models.nhn.data_checks import validate_images_and_labels, validate_pair
from tfemergent.models.nhn.location_evaluator import SHARED_DIRECTORY_NAME, LocationEvaluator
from tfemergent.models.nhn.pruning_config import PruningConfig
from tfemergent.models.nhn.search_config import SearchConfig
from tfemergent.models.nhn.segment_cnn import HEAD_NAME, SegmentCNN
from tfemergent.models.nhn.stage_logging import log_run
from tfemergent.models.nhn.training_config import TrainingConfig
from tfemergent.pruning.activation_scale import activation_scales, restore_activation_scales
from tfemergent.pruning.prune_kernels import prune_kernels
from tfemergent.pruning.shrink import shrink
from tfemergent.search.search_runner import SearchRunner
from tfemergent.utils.validation import validate_int

STAGES = ("base", "pruned", "retrained", "searched", "final", "ablation")
STAGE_DESCRIPTIONS = {
    "base": "base network, smooth init, trained",
    "pruned": "kernels of lowest std pruned (no retraining)",
    "retrained": "pruned, shrunk, retrained",
    "searched": "add-ons found by LDS (base frozen), before the final training",
    "final": "with add-ons, retrained (NHN)",
    "ablation": "final network with its add-ons removed",
}

# Training images on which `PruningConfig.rescale` measures the activation scales.
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


def _add_on_rows(model, searched=None):
    """The add-ons of a `SegmentCNN` model: location and kept connections.

    ``searched``: the rows of the same add-ons before the final shrink, whose
    connection counts are added as ``"num_selected_connections"`` and
    ``"num_selectable_connections"``.
    """
    rows = []
    for add_on in SegmentCNN.from_model(model).add_ons:
        name = SegmentCNN.add_on_name(add_on)
        mask = model.get_layer(name).connection_mask.numpy()
        row = {
            **{key: add_on[key] for key in ("segment", "source", "target", "kernel_size")},
            "num_connections": int(mask.sum()),
            "num_possible_connections": int(mask.size),
        }
        if searched is not None:
            before = searched[name]
            row["num_selected_connections"] = before["num_connections"]
            row["num_selectable_connections"] = before["num_possible_connections"]
        rows.append(row)
    return rows


def _search_summary(result):
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
        "best_trial_id": result.best_trial.trial_id,
        "best_fitness": result.best_result["fitness"],
        "history": history,
    }


def _validate_executor(executor, shared_weights):
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise ValueError(
            "Argument `executor` must be None or an object with `submit(fn, trial)` "
            "returning a concurrent.futures.Future (a ThreadPoolExecutor, a "
            "ProcessPoolExecutor with the 'spawn' start method, "
            f"tfemergent.search.RayExecutor). Received: executor={executor!r}"
        )
    if executor is not None and shared_weights != "per_cycle":
        raise ValueError(
            "Argument `executor` evaluates a cycle's candidates in parallel, which needs "
            "shared_weights='per_cycle' (with 'sequential' every candidate starts from the "
            f"previous one's weights). Received: executor={executor!r}, "
            f"shared_weights={shared_weights!r}"
        )
    return executor


class NeuronHierarchyBuilder:
    """Builds a neuron hierarchical network (NHN): Algorithm 2 of the paper, with reports.

    The stages, each reported on the test set:

    1. ``"base"``: build the base `SegmentCNN` (``spec``, smooth
       initialisation) and train it (``training.epochs``);
    2. ``"pruned"``: prune the kernels of lowest standard deviation as
       ``pruning`` says (`PruningConfig`, `tfemergent.pruning.prune_kernels`;
       by default the same fraction of every layer);
    3. ``"retrained"``: remove the channels left without input or output
       (`tfemergent.pruning.shrink`: a physically smaller network) and
       retrain (``training.retrain_epochs``);
    4. ``"searched"``: the location-direction search (LDS, `SearchConfig`).
       An `AddOnSuperNetwork` holds the frozen network and the weights of
       every possible add-on; `EvolutionarySearch` over its `LocationSpace`
       with `LocationEvaluator` as fitness under a `SearchRunner` (resumable
       with ``search.directory``); the best genome's add-ons are then trained
       densely, keep their most sensitive connections
       (`AddOnSuperNetwork.select_directions`) and train sparse (base still
       frozen). Reported: the network with those add-ons before the final
       training;
    5. ``"final"``: the network with the add-ons, every weight trainable,
       retrained (``training.final_epochs``), then shrunk: the returned model;
    6. ``"ablation"``: the final network with its add-ons removed and no
       retraining.

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

    Training (stages 1, 3, 5) is described by `TrainingConfig`. No cutout,
    dropout or weight decay (the paper uses them in its final training only).

    Randomness. Everything random derives from ``seed``, passed explicitly
    (no global seed is set): the initial weights (a ``spec`` without a seed is
    built with ``seed``), the per-epoch shuffles of every training stage
    (``np.random.default_rng([seed, stage])``), the held-out validation split,
    the search and the direction training. Two runs with the same arguments
    in one process give the same stage table.

    Where the paper is ambiguous: Algorithm 2 says "train from scratch" after
    pruning and after LDS, while Section 3 says the original weights go
    through three passes of training (ENAS, after DNP, after LDS);
    ``training.retrain_from_scratch`` chooses. The paper scores LDS
    candidates on test batches; we hold out ``search.validation_fraction`` of
    the training images for that, and train every stage on the rest. The
    direction search is the standard-deviation choice described in
    `AddOnSuperNetwork`.

    Reference: "Neuron Hierarchical Networks" (anonymous, ICLR 2019
    submission), Algorithm 2, Sections 2.2, 2.3 and 3.

    Args:
        spec: the base `SegmentCNN` (no add-ons).
        training: a `TrainingConfig`, a dict of its fields, or None (defaults).
        pruning: a `PruningConfig`, a dict of its fields, or None (defaults).
        search: a `SearchConfig`, a dict of its fields, or None (defaults).
        executor: None (candidates one after the other) or an executor with
            ``submit`` (``concurrent.futures.ThreadPoolExecutor``, a
            ``ProcessPoolExecutor`` with the ``"spawn"`` start method,
            `tfemergent.search.RayExecutor`) evaluating a cycle's candidates in
            parallel; needs ``search.shared_weights="per_cycle"``. Not part of
            `get_config` (a live object).
        seed: int >= 0, the seed of everything (see above).
        logdir: None or a directory for TensorBoard logs: Keras' scalars of
            each training stage (``<logdir>/<stage>``) and, at the end, the
            stages, pruning report, search and chosen add-ons
            (``<logdir>/nhn``, see `stage_logging.log_run`).
        latency_batch_size: int >= 1; latency_repeats: int >= 1.
        verbose: 0 silent, 1 a line per stage and per search cycle and a
            progress bar of the search's trials (stderr), 2 one line per trial
            instead of the bar.

    Example:

    >>> import numpy as np
    >>> from tfemergent.models import SegmentCNN
    >>> from tfemergent.models import NeuronHierarchyBuilder
    >>> from tfemergent.models.nhn import TrainingConfig
    >>> from tfemergent.models.nhn import PruningConfig
    >>> from tfemergent.models.nhn import SearchConfig
    >>> rng = np.random.default_rng(0)
    >>> images = rng.normal(size=(96, 8, 8, 1)).astype("float32")
    >>> labels = (images[:, :4].mean(axis=(1, 2, 3)) > 0).astype("int64")
    >>> spec = SegmentCNN((8, 8, 1), 2, segments=[[4, 4], [4]], seed=0)
    >>> builder = NeuronHierarchyBuilder(
    ...     spec, training=TrainingConfig(epochs=1), pruning=PruningConfig(fraction=0.5),
    ...     search=SearchConfig(num_cycles=1, population_size=3, num_parents=2,
    ...                         num_children=1, num_fresh=1, train_batches=1, batch_size=16),
    ...     latency_repeats=2, verbose=0)
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
        training=None,
        pruning=None,
        search=None,
        executor=None,
        seed=0,
        logdir=None,
        latency_batch_size=64,
        latency_repeats=10,
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
        self.training = validate_config("training", training, TrainingConfig)
        self.pruning = validate_config("pruning", pruning, PruningConfig)
        self.search = validate_config("search", search, SearchConfig)
        self.executor = _validate_executor(executor, self.search.shared_weights)
        self.seed = validate_int("seed", seed, minimum=0)
        if logdir is not None and not isinstance(logdir, (str, os.PathLike)):
            raise ValueError(
                f"Argument `logdir` must be None or a path. Received: logdir={logdir!r}"
            )
        self.logdir = None if logdir is None else os.fspath(logdir)
        self.latency_batch_size = validate_int("latency_batch_size", latency_batch_size,
                                               minimum=1)
        self.latency_repeats = validate_int("latency_repeats", latency_repeats, minimum=1)
        self.verbose = validate_int("verbose", verbose, minimum=0, maximum=2)
        self.search.strategy(self.spec.segment_sizes, self.seed)  # the space fits the spec

    # ------------------------------------------------------------------ config
    def get_config(self):
        return {
            "spec": self.spec.get_config(),
            "training": self.training.get_config(),
            "pruning": self.pruning.get_config(),
            "search": self.search.get_config(),
            "seed": self.seed,
            "logdir": self.logdir,
            "latency_batch_size": self.latency_batch_size,
            "latency_repeats": self.latency_repeats,
            "verbose": self.verbose,
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

    def _seeded_spec(self, spec, seed):
        """``spec`` with ``seed`` when it has none (its initial weights then follow ours)."""
        if spec.seed is not None:
            return spec
        return SegmentCNN.from_config({**spec.get_config(), "seed": seed})

    def _optimizer(self, steps):
        training = self.training
        schedule = keras.optimizers.schedules.CosineDecay(
            training.learning_rate,
            decay_steps=steps,
            alpha=training.min_learning_rate / training.learning_rate,
        )
        return keras.optimizers.SGD(
            schedule, momentum=training.momentum, nesterov=True,
            global_clipnorm=training.global_clipnorm,
        )

    def _fit(self, model, data, stage):
        """Train ``model`` for the stage's epochs, shuffled per epoch from the seed."""
        epochs = self.training.stage_epochs(stage)
        if epochs == 0:
            return
        x_train, y_train, x_val, y_val = data
        batch_size = self.training.batch_size
        model.compile(
            self._optimizer(math.ceil(len(x_train) / batch_size) * epochs),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        callbacks = []
        if self.logdir:
            callbacks.append(keras.callbacks.TensorBoard(os.path.join(self.logdir, stage)))
        rng = np.random.default_rng([self.seed, STAGES.index(stage)])
        for epoch in range(epochs):
            order = rng.permutation(len(x_train))
            model.fit(
                x_train[order],
                y_train[order],
                batch_size=batch_size,
                epochs=epoch + 1,
                initial_epoch=epoch,
                shuffle=False,
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
            if isinstance(layer, (MaskedConv2D, AddOnConv2D)):
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
            return (x_train, y_train) + tuple(validation_data)
        fraction = self.search.validation_fraction
        order = np.random.default_rng(self.seed).permutation(len(x_train))
        num_val = max(1, int(round(fraction * len(x_train))))
        if num_val >= len(x_train):
            raise ValueError(
                f"Argument `x_train` has too few images ({len(x_train)}) to hold out "
                f"validation_fraction={fraction} and train on the rest. "
                f"Received: len(x_train)={len(x_train)}"
            )
        val, fit = order[:num_val], order[num_val:]
        return x_train[fit], y_train[fit], x_train[val], y_train[val]

    def _check(self, name, images, labels):
        return validate_images_and_labels(name, images, labels, self.spec.input_shape)

    # ------------------------------------------------------------------ search
    def _evaluator(self, network, data):
        x_fit, y_fit, x_val, y_val = data
        search = self.search
        return LocationEvaluator(
            network,
            (x_fit, y_fit),
            (x_val, y_val),
            train_batches=search.train_batches,
            batch_size=search.batch_size,
            eval_size=search.eval_size,
            learning_rate=search.learning_rate,
            min_learning_rate=search.min_learning_rate,
            num_cycles=search.num_cycles,
            momentum=self.training.momentum,
            directory=None
            if search.directory is None
            else os.path.join(search.directory, SHARED_DIRECTORY_NAME),
            seed=self.seed,
            shared_weights=search.shared_weights,
        )

    def _search(self, network, data):
        evaluator = self._evaluator(network, data)
        strategy = self.search.strategy(self.spec.segment_sizes, self.seed)
        runner = SearchRunner(
            strategy,
            evaluator,
            directory=self.search.directory,
            executor=self.executor,
            verbose={0: 0, 1: 2, 2: 1}[self.verbose],  # 1: a progress bar; 2: lines
        )
        size, num_cycles = self.search.population_size, self.search.num_cycles
        for cycle in range(num_cycles):
            result = runner.run(max_trials=(cycle + 1) * size)
            generation = [r["fitness"] for _, r in result.history[-size:]]
            self._log(
                f"[search] cycle {cycle + 1}/{num_cycles}: best validation accuracy "
                f"{max(generation):.4f}, mean {np.mean(generation):.4f}; best genome "
                f"{strategy.best[0].params}"
            )
        # The shared weights after the last trial (also when a finished search was
        # only resumed, so that nothing ran in this process).
        evaluator.restore(strategy.num_asked)
        return runner.result

    def _train_directions(self, network, data, phase):
        """``search.direction_epochs`` of add-on training (base frozen), shuffled per epoch."""
        x_fit, y_fit = data[0], data[1]
        rng = np.random.default_rng([self.seed, phase])
        for _ in range(self.search.direction_epochs):
            order = rng.permutation(len(x_fit))
            network.train_add_ons(
                x_fit[order],
                y_fit[order],
                batch_size=self.search.batch_size,
                learning_rate=self.search.learning_rate,
                momentum=self.training.momentum,
            )

    # ------------------------------------------------------------------ stages
    def _base_stage(self, data, test, stages):
        started = time.perf_counter()
        model = self._seeded_spec(self.spec, self.seed).build(name="base")
        self._fit(model, data, "base")
        stages.append(self._report("base", model, test, started))
        return model

    def _prune(self, model, images):
        """Prune ``model`` in place as `PruningConfig` says; the report as a dict."""
        pruning = self.pruning
        target_scales = activation_scales(model, images) if pruning.rescale else None
        report = prune_kernels(
            model,
            fraction=pruning.fraction,
            granularity=pruning.granularity,
            scope=pruning.scope,
            channel_multiple=pruning.channel_multiple,
        )
        rescale_factors = (
            restore_activation_scales(model, images, target_scales) if pruning.rescale else None
        )
        return {**report.to_dict(), "rescale_factors": rescale_factors}

    def _pruning_stages(self, model, data, test, stages):
        started = time.perf_counter()
        pruning = self._prune(model, data[0][:RESCALE_IMAGES])
        stages.append(self._report("pruned", model, test, started))
        started = time.perf_counter()
        model = shrink(model)
        if self.training.retrain_from_scratch:
            model = self._reinitialise(model, 1)
        self._fit(model, data, "retrained")
        stages.append(self._report("retrained", model, test, started))
        return model, pruning

    def _search_stage(self, model, data, test, stages):
        started = time.perf_counter()
        network = AddOnSuperNetwork.from_model(
            model,
            kernel_sizes=self.search.kernel_sizes,
            include_segment_input=self.search.include_segment_input,
            add_on_initializer=self.search.add_on_initializer,
            smoothing_sigma=self.spec.smoothing_sigma,
            seed=self.seed,
        )
        result = self._search(network, data)
        network.set_genome(list(result.best_trial.params))
        if network.active_add_ons:
            self._train_directions(network, data, phase=1)
            network.select_directions(self.search.direction_density)
            self._train_directions(network, data, phase=2)
        model = network.to_model(name="nhn")
        stages.append(self._report("searched", model, test, started))
        searched = {SegmentCNN.add_on_name(row): row for row in _add_on_rows(model)}
        return model, result, searched

    def _final_stages(self, model, data, test, stages):
        started = time.perf_counter()
        if self.training.retrain_from_scratch:
            model = self._reinitialise(model, 2)
        self._fit(model, data, "final")
        model = shrink(model)
        stages.append(self._report("final", model, test, started))
        started = time.perf_counter()
        stages.append(self._report("ablation", _without_add_ons(model), test, started))
        return model

    # ------------------------------------------------------------------ run
    def run(self, x_train, y_train, x_test, y_test, validation_data=None):
        """Run every stage; returns the stage table, the final (shrunk) model and details.

        Args:
            x_train, y_train: training images (float, standardised) and labels.
            x_test, y_test: test images and labels (the reported errors).
            validation_data: None (hold out ``search.validation_fraction`` of
                the training images) or ``(images, labels)`` scoring the search.

        Returns:
            dict with ``"stages"`` (list of row dicts, see the class),
            ``"model"`` (the final shrunk `keras.Model`), ``"add_ons"`` (the
            final add-ons: location, kept connections, and the connections
            selected by the direction search out of those possible before the
            final shrink), ``"genome"``,
            ``"search"`` (``best_trial_id``, ``best_fitness``, ``history``:
            one dict per trial), ``"pruning"`` (the `PruningReport` as a dict,
            with ``"rescale_factors"``) and ``"ablation_drop"`` (final minus
            ablated test accuracy).
        """
        x_train, y_train = self._check("x_train", x_train, y_train)
        test = self._check("x_test", x_test, y_test)
        if validation_data is not None:
            validation_data = self._check(
                "validation_data", *validate_pair("validation_data", validation_data)
            )
        data = self._split(x_train, y_train, validation_data)
        stages = []
        model = self._base_stage(data, test, stages)
        model, pruning = self._pruning_stages(model, data, test, stages)
        model, result, searched = self._search_stage(model, data, test, stages)
        model = self._final_stages(model, data, test, stages)
        outcome = {
            "stages": stages,
            "model": model,
            "add_ons": _add_on_rows(model, searched),
            "genome": list(result.best_trial.params),
            "search": _search_summary(result),
            "pruning": pruning,
            "ablation_drop": stages[4]["test_accuracy"] - stages[5]["test_accuracy"],
        }
        if self.logdir:
            log_run(self.logdir, outcome)
        return outcome
