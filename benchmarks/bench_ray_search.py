"""Scale-out of a search: `RayExecutor` with 2 local Ray workers vs the serial path.

A `HillClimbing` search (``acceptance="total"``, ``num_candidates=8``: eight
candidates per step) over three training settings of a small Keras MLP on MNIST
(784-256-256-10, ReLU, dropout; parts: learning rate, dropout rate, L2 weight,
which barely change the compute, so the candidates take about the same time).
Each candidate builds the model, seeds it with ``trial.seed``, trains it
single-threaded (``tf.config.threading.set_intra_op_parallelism_threads(1)``
and inter-op 1) for a fixed number of epochs on the first ``N`` training
images (>= 10 s per candidate in the full run), and returns the validation
accuracy as fitness, with its own measured training time (``model.fit``), the
whole call's time, and the process CPU time of the training (about the
training time when single-threaded).

The same search runs twice in this process: with ``SearchRunner(executor=None)``
(serial) and with ``SearchRunner(executor=RayExecutor())`` on a local Ray
instance with ``num_cpus=2`` (two workers, one CPU each), interleaved: one step
of one path, then one of the other (the order alternates), so that load from
other processes on a shared machine hits both alike. The baselines (trial 0,
one candidate) run before the timed part; so does a warm-up task per Ray worker
(TensorFlow import, MNIST load: a one-time cost per worker, reported apart).
Reported, over the timed candidates ``N`` (the 8-candidate steps):

- wall time of each path and speed-up = serial / Ray;
- overhead per candidate = (wall x workers - sum of the candidates' own
  training times) / N: the worker-seconds per candidate not spent in
  ``model.fit`` (model building, evaluation, idle workers, Ray), with
  workers = 1 (serial) or 2 (Ray); as a share of the mean training time
  (target for Ray: <= 5%);
- Ray's own overhead per candidate = (wall x 2 - sum of the whole evaluation
  calls) / N: what Ray adds beyond the work the serial path does too;
- whether both paths gave the same search (same candidates, fitness, best).

    python -m benchmarks.bench_ray_search [--quick] [--record]
"""

import os
import pathlib
import tempfile
import time

import numpy as np

from benchmarks import harness

TARGET_OVERHEAD = 0.05
NUM_WORKERS = 2
NUM_CANDIDATES = 8
LEARNING_RATES = (0.003, 0.01, 0.02, 0.05, 0.1, 0.2)
DROPOUT_RATES = (0.0, 0.1, 0.2, 0.3, 0.5)
L2_WEIGHTS = (0.0, 1e-5, 1e-4, 1e-3)
_DATA = {}  # per process: the MNIST arrays


def _settings(quick):
    if quick:
        return {"num_train": 3000, "num_validation": 1000, "epochs": 1, "num_steps": 1}
    return {"num_train": 24000, "num_validation": 2000, "epochs": 10, "num_steps": 2}


def _make_space():
    from tfemergent import search

    @search.register_search_class
    class TrainingSettingsSpace(search.SearchSpace):
        """Indices into LEARNING_RATES, DROPOUT_RATES, L2_WEIGHTS; a part moves by one."""

        sizes = (len(LEARNING_RATES), len(DROPOUT_RATES), len(L2_WEIGHTS))

        @property
        def num_parts(self):
            return 3

        def sample(self, rng):
            return [int(rng.integers(0, size)) for size in self.sizes]

        def neighbour(self, candidate, part, rng):
            step = 1 if rng.random() < 0.5 else -1
            value = candidate[part] + step
            if not 0 <= value < self.sizes[part]:
                value = candidate[part] - step
            candidate[part] = value
            return candidate

    return TrainingSettingsSpace()


def _data(num_train, num_validation, data_dir):
    key = (num_train, num_validation)
    if key not in _DATA:
        from tfemergent.datasets import load_numpy

        x, y = load_numpy("mnist", f"train[:{num_train + num_validation}]", data_dir)
        x = x.reshape(len(x), -1).astype("float32") / 255.0
        _DATA[key] = (x[:num_train], y[:num_train], x[num_train:], y[num_train:])
    return _DATA[key]


def train_candidate(trial, num_train, num_validation, epochs, data_dir):
    """Train one candidate (single-threaded TensorFlow); the result with its timings."""
    start = time.perf_counter()
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    x_train, y_train, x_validation, y_validation = _data(num_train, num_validation, data_dir)
    learning_rate = LEARNING_RATES[trial.params[0]]
    dropout = DROPOUT_RATES[trial.params[1]]
    l2 = L2_WEIGHTS[trial.params[2]]
    keras.utils.set_random_seed(trial.seed)
    regularizer = keras.regularizers.L2(l2) if l2 else None
    model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(256, "relu", kernel_regularizer=regularizer),
            keras.layers.Dropout(dropout),
            keras.layers.Dense(256, "relu", kernel_regularizer=regularizer),
            keras.layers.Dropout(dropout),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        keras.optimizers.SGD(learning_rate, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    fit_start, cpu_start = time.perf_counter(), time.process_time()
    history = model.fit(x_train, y_train, batch_size=64, epochs=epochs, shuffle=True, verbose=0)
    train_seconds = time.perf_counter() - fit_start
    train_cpu_seconds = time.process_time() - cpu_start
    _, accuracy = model.evaluate(x_validation, y_validation, batch_size=500, verbose=0)
    return {
        "fitness": float(accuracy),
        "loss": float(history.history["loss"][-1]),
        "train_seconds": train_seconds,
        "train_cpu_seconds": train_cpu_seconds,
        "evaluate_seconds": time.perf_counter() - start,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "pid": os.getpid(),
    }


def _warm_up(data_dir, num_train, num_validation):
    """One-time per-process cost: TensorFlow import, single-threading, MNIST load."""
    start = time.perf_counter()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    _data(num_train, num_validation, data_dir)
    time.sleep(1.0)  # keeps this worker busy so that the other takes the other task
    return os.getpid(), time.perf_counter() - start


def _run_interleaved(runners):
    """Baselines (trial 0) first, untimed; then the 8-candidate steps, one step per runner
    in turn (the order alternates), so that load from other processes hits both alike.
    Returns the wall seconds per runner, summed over its steps."""
    for runner in runners.values():
        runner.run(max_trials=1)
    walls = dict.fromkeys(runners, 0.0)
    names = list(runners)
    step = 0
    while not all(runner.strategy.done for runner in runners.values()):
        for name in names if step % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            runners[name].run(max_trials=1 + (step + 1) * NUM_CANDIDATES)
            walls[name] += time.perf_counter() - start
        step += 1
    return walls


def _summary(name, result, wall, workers):
    timed = [r for trial, r in result.history if trial.trial_id > 0]
    train = sum(r["train_seconds"] for r in timed)
    calls = sum(r["evaluate_seconds"] for r in timed)
    count = len(timed)
    mean_train = train / count
    overhead = (wall * workers - train) / count
    return {
        "name": name,
        "count": count,
        "wall": wall,
        "mean_train": mean_train,
        "min_train": min(r["train_seconds"] for r in timed),
        "cpu_per_train": sum(r["train_cpu_seconds"] for r in timed) / train,
        "overhead": overhead,
        "overhead_share": overhead / mean_train,
        "ray_overhead": (wall * workers - calls) / count,
        "threads": sorted({r["intra_op_threads"] for r in timed}),
        "pids": len({r["pid"] for r in timed}),
    }


def main(argv=None):
    args = harness.parse_args(__doc__.splitlines()[0], argv)
    import functools

    import ray
    import tensorflow as tf

    # By name (not __main__), so that Ray pickles these functions by reference and
    # every worker imports this module once (its MNIST cache included).
    from benchmarks import bench_ray_search as this
    from tfemergent import search

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    settings = _settings(args.quick)
    data_dir = os.environ.get("TFEMERGENT_DATA_DIR") or str(
        pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    machine = harness.machine_description()
    load_before = os.getloadavg()
    evaluate = functools.partial(
        this.train_candidate,
        num_train=settings["num_train"],
        num_validation=settings["num_validation"],
        epochs=settings["epochs"],
        data_dir=data_dir,
    )
    space = _make_space()

    def strategy():
        return search.HillClimbing(
            space,
            num_steps=settings["num_steps"],
            initial=[2, 1, 1],
            seed=0,
            acceptance="total",
            num_candidates=NUM_CANDIDATES,
        )

    lines = []

    def report(text="", bullet=False):
        print(text, flush=True)
        lines.append(f"- {text}" if bullet else str(text))

    report(
        f"HillClimbing: {settings['num_steps']} step(s) of {NUM_CANDIDATES} candidates after "
        f"the baseline; MLP 784-256-256-10 on {settings['num_train']} MNIST images, "
        f"{settings['epochs']} epoch(s) per candidate, single-threaded TensorFlow"
    )
    with tempfile.TemporaryDirectory() as directory:
        # Ray workers import this module (and tfemergent) by name.
        repo = str(pathlib.Path(__file__).resolve().parents[1])
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [repo] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        )
        start = time.perf_counter()
        with search.RayExecutor(
            init_kwargs={"num_cpus": NUM_WORKERS, "log_to_driver": False}
        ) as executor:
            ray_start = time.perf_counter() - start
            start = time.perf_counter()
            warm = [
                executor.submit(
                    this._warm_up, data_dir, settings["num_train"], settings["num_validation"]
                )
                for _ in range(NUM_WORKERS)
            ]
            warm = [future.result() for future in warm]
            warm_wall = time.perf_counter() - start
            this._data(settings["num_train"], settings["num_validation"], data_dir)
            runners = {
                name: search.SearchRunner(
                    strategy(), evaluate, os.path.join(directory, name), executor=path_executor,
                    verbose=0,
                )
                for name, path_executor in (("serial", None), ("ray", executor))
            }
            walls = _run_interleaved(runners)
        serial, on_ray = runners["serial"].result, runners["ray"].result
        serial_wall, ray_wall = walls["serial"], walls["ray"]
        report(f"serial: {serial_wall:.1f} s wall for the timed candidates", bullet=True)
        report(f"Ray: {ray_wall:.1f} s wall for the timed candidates", bullet=True)
        assert not ray.is_initialized()
    load_after = os.getloadavg()

    summaries = [_summary("serial", serial, serial_wall, 1),
                 _summary(f"Ray, {NUM_WORKERS} workers", on_ray, ray_wall, NUM_WORKERS)]
    same = [(t.trial_id, t.params, r["fitness"]) for t, r in serial.history] == [
        (t.trial_id, t.params, r["fitness"]) for t, r in on_ray.history
    ] and serial.best_trial.trial_id == on_ray.best_trial.trial_id
    header = [
        "path", "candidates", "wall s", "mean train s", "min train s", "CPU s / train s",
        "overhead s / candidate", "overhead / train", "Ray's own s / candidate",
    ]
    rows = []
    for summary in summaries:
        rows.append([
            summary["name"], summary["count"], f"{summary['wall']:.1f}",
            f"{summary['mean_train']:.2f}", f"{summary['min_train']:.2f}",
            f"{summary['cpu_per_train']:.2f}", f"{summary['overhead']:.2f}",
            f"{summary['overhead_share']:.1%}",
            "-" if summary["name"] == "serial" else f"{summary['ray_overhead']:.2f}",
        ])
    speedup = serial_wall / ray_wall
    ray_summary = summaries[1]
    verdict = "met" if ray_summary["overhead_share"] <= TARGET_OVERHEAD else "NOT met"
    report()
    report(harness.markdown_table(header, rows))
    report()
    report(f"speed-up (serial wall / Ray wall): {speedup:.2f}x with {NUM_WORKERS} workers",
           bullet=True)
    report(
        f"Ray overhead per candidate: {ray_summary['overhead']:.2f} s = "
        f"{ray_summary['overhead_share']:.1%} of a candidate's training time "
        f"(target <= {TARGET_OVERHEAD:.0%}: {verdict}); of which Ray's own (beyond the "
        f"evaluation calls): {ray_summary['ray_overhead']:.2f} s",
        bullet=True,
    )
    report(
        f"one-time costs: ray.init {ray_start:.1f} s; worker warm-up (TensorFlow import, "
        f"MNIST load, 1 s sleep) {warm_wall:.1f} s wall, per worker "
        + ", ".join(f"{seconds:.1f} s" for _, seconds in warm),
        bullet=True,
    )
    report(
        f"intra-op threads per candidate: {ray_summary['threads']} (Ray), "
        f"{summaries[0]['threads']} (serial); Ray candidates ran in "
        f"{ray_summary['pids']} worker processes",
        bullet=True,
    )
    report(f"same search on both paths (candidates, fitness, best): {same}; best: trial "
           f"{on_ray.best_trial.trial_id}, settings {on_ray.best_trial.params}, validation "
           f"accuracy {on_ray.best_result['fitness']:.4f}", bullet=True)
    report(
        "load average (1, 5, 15 min): "
        f"{' '.join(f'{v:.1f}' for v in load_before)} before, "
        f"{' '.join(f'{v:.1f}' for v in load_after)} after (other processes share the 2 cores)",
        bullet=True,
    )
    if args.record:
        harness.record_section("Ray search scale-out", "\n".join(lines), machine=machine)


if __name__ == "__main__":
    main()
