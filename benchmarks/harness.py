"""Shared benchmark harness: side-by-side timing, peak memory, RESULTS.md records.

Conventions (see STYLE.md rule 13):

* Every benchmark is a module ``benchmarks/bench_<name>.py`` run as
  ``python -m benchmarks.bench_<name> [--quick] [--record]``; use `parse_args`.
  ``--quick`` runs a small configuration (smoke test); ``--record`` writes the
  benchmark's section of ``benchmarks/RESULTS.md`` with `record_section`.
* Implementations are compared in one process with `compare`: repeats are
  interleaved (the order rotates every round) so that load from other processes
  on a shared machine hits all implementations alike; warm-up calls (tracing,
  XLA compilation) are excluded; the report gives the median and the
  inter-quartile range of the wall time per implementation and the speed-up of
  each implementation relative to a baseline.
* Peak memory is measured with `peak_memory`.
"""

import argparse
import contextlib
import datetime
import os
import pathlib
import platform
import sys
import time

import numpy as np

RESULTS_PATH = pathlib.Path(__file__).resolve().parent / "RESULTS.md"


def parse_args(description, argv=None):
    """The common command line: ``--quick`` and ``--record``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small configuration (smoke test)")
    parser.add_argument(
        "--record", action="store_true", help=f"write the results to {RESULTS_PATH.name}"
    )
    return parser.parse_args(argv)


def _block(result):
    """Wait for ``result``: fetch one element of each tensor in it.

    TensorFlow executes eagerly and synchronously on CPU, so this only guards
    against asynchronous execution; fetching a single element copies nothing big.
    """
    import tensorflow as tf

    for value in tf.nest.flatten(result):
        if tf.is_tensor(value) and value.shape.num_elements():
            tf.reshape(value, [-1])[0].numpy()


def compare(impls, *, warmup=3, repeats=15, baseline=None):
    """Time several implementations side by side.

    Args:
        impls: dict ``name -> callable`` taking no argument; each call is one
            measured unit of work (e.g. a forward + backward step).
        warmup: calls per implementation before timing (tracing, compilation).
        repeats: timed calls per implementation, interleaved across
            implementations; the order rotates every round.
        baseline: name of the implementation the others are compared to
            (default: the first one).

    Returns:
        dict ``name -> {"median_ms", "iqr_ms", "q1_ms", "q3_ms", "cpu_median_ms",
        "speedup", "cpu_speedup", "times_ms"}`` where ``speedup = median(baseline) /
        median(name)`` of the wall time (> 1 means faster than the baseline) and
        ``cpu_speedup`` the same ratio of the process CPU time (all threads), which
        is less sensitive to other processes on a shared machine.
    """
    names = list(impls)
    if not names:
        raise ValueError(f"`impls` must not be empty. Received: impls={impls!r}")
    baseline = names[0] if baseline is None else baseline
    if baseline not in impls:
        raise ValueError(
            f"`baseline` must be one of {names}. Received: baseline={baseline!r}"
        )
    for name in names:
        for _ in range(warmup):
            _block(impls[name]())
    times = {name: [] for name in names}
    cpu_times = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start, cpu_start = time.perf_counter(), time.process_time()
            _block(impls[name]())
            times[name].append((time.perf_counter() - start) * 1e3)
            cpu_times[name].append((time.process_time() - cpu_start) * 1e3)
    results = {}
    for name in names:
        values = np.asarray(times[name])
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        results[name] = {
            "median_ms": float(median),
            "q1_ms": float(q1),
            "q3_ms": float(q3),
            "iqr_ms": float(q3 - q1),
            "cpu_median_ms": float(np.median(cpu_times[name])),
            "times_ms": values.tolist(),
        }
    base = results[baseline]["median_ms"]
    cpu_base = results[baseline]["cpu_median_ms"]
    for name in names:
        results[name]["speedup"] = base / results[name]["median_ms"]
        results[name]["cpu_speedup"] = cpu_base / max(results[name]["cpu_median_ms"], 1e-9)
    return results


def format_comparison(results, baseline=None):
    """A plain-text table of `compare` results (one line per implementation)."""
    names = list(results)
    baseline = names[0] if baseline is None else baseline
    width = max(len("implementation"), *(len(name) for name in names))
    lines = [
        f"{'implementation':<{width}} {'median ms':>10} {'IQR ms':>9} {'speed-up':>9} "
        f"{'CPU ms':>9} {'CPU speed-up':>13}   (speed-up = {baseline} / implementation)"
    ]
    for name in names:
        result = results[name]
        lines.append(
            f"{name:<{width}} {result['median_ms']:>10.2f} {result['iqr_ms']:>9.2f} "
            f"{result['speedup']:>8.2f}x {result['cpu_median_ms']:>9.2f} "
            f"{result['cpu_speedup']:>12.2f}x"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# Peak memory
# ----------------------------------------------------------------------------

PEAK_MEMORY_METHOD = (
    "TensorFlow allocator statistics: tf.config.experimental.get_memory_info('CPU:0') "
    "after reset_memory_stats (counts tensors and XLA buffers allocated through "
    "TensorFlow's CPU allocator; not Python objects or library scratch space)"
)
RSS_METHOD = (
    "process resident set size: peak VmHWM after writing 5 to /proc/self/clear_refs "
    "(fallback when the allocator statistics are unavailable)"
)


def _read_status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not found in /proc/self/status")


def peak_memory(fn, *, device="CPU:0"):
    """Peak extra memory (bytes) while ``fn()`` runs, beyond what was live before.

    Call ``fn`` once beforehand to exclude tracing and compilation. Uses the
    TensorFlow allocator statistics of ``device`` (available on CPU in TF 2.21);
    if they are unavailable, falls back to the process's peak resident set size
    (Linux, reset through ``/proc/self/clear_refs``). The method used is returned.

    Returns:
        dict with ``extra_bytes`` (peak minus the memory live before the call),
        ``baseline_bytes``, ``peak_bytes`` and ``method`` (a sentence).
    """
    import tensorflow as tf

    try:
        tf.config.experimental.reset_memory_stats(device)
        baseline = tf.config.experimental.get_memory_info(device)["current"]
        _block(fn())
        peak = tf.config.experimental.get_memory_info(device)["peak"]
        return {
            "extra_bytes": peak - baseline,
            "baseline_bytes": baseline,
            "peak_bytes": peak,
            "method": PEAK_MEMORY_METHOD,
        }
    except (ValueError, RuntimeError, tf.errors.OpError):
        pass
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    baseline = _read_status_kib("VmRSS") * 1024
    _block(fn())
    peak = _read_status_kib("VmHWM") * 1024
    return {
        "extra_bytes": peak - baseline,
        "baseline_bytes": baseline,
        "peak_bytes": peak,
        "method": RSS_METHOD,
    }


# ----------------------------------------------------------------------------
# RESULTS.md
# ----------------------------------------------------------------------------


def machine_description():
    """Cores, CPU model, Python and TensorFlow/Keras versions, as one line."""
    import keras
    import tensorflow as tf

    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    return (
        f"{os.cpu_count()} CPU cores ({model}), Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"load average {' '.join(f'{value:.1f}' for value in os.getloadavg())} at start"
    )


def command_line():
    """The command that is running, as ``python -m benchmarks.bench_x ...``."""
    module = sys.modules["__main__"].__spec__
    args = " ".join(sys.argv[1:])
    if module is not None and module.name:
        return f"python -m {module.name} {args}".strip()
    return f"python {' '.join(sys.argv)}".strip()


def markdown_table(header, rows):
    """A markdown table from a header list and rows of cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def record_section(name, body, *, machine=None, command=None, path=RESULTS_PATH):
    """Write (or replace) the section ``## name`` of RESULTS.md.

    The section starts with the command, the UTC date and the machine, followed
    by ``body`` (markdown). Other sections are kept; the file is locked while it
    is rewritten because several benchmarks may record at once.
    """
    import fcntl

    machine = machine_description() if machine is None else machine
    command = command_line() if command is None else command
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%a %b %d %H:%M:%S UTC %Y")
    section = (
        f"## {name}\n\n"
        f"- command: `{command}`\n"
        f"- date: {date}\n"
        f"- machine: {machine}\n\n"
        f"{body.strip()}\n"
    )
    path = pathlib.Path(path)
    path.touch(exist_ok=True)
    with open(path, "r+") as results:
        fcntl.flock(results, fcntl.LOCK_EX)
        try:
            text = results.read()
            if not text.strip():
                text = (
                    "# Benchmark results\n\nWritten by `python -m benchmarks.bench_<name> "
                    "--record`; one section per benchmark, replaced when it is re-recorded.\n"
                )
            text = _replace_section(text, name, section)
            results.seek(0)
            results.write(text)
            results.truncate()
        finally:
            fcntl.flock(results, fcntl.LOCK_UN)
    return section


def _replace_section(text, name, section):
    lines = text.splitlines(keepends=True)
    heading = f"## {name}"
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        return text.rstrip("\n") + "\n\n" + section
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
    )
    before = "".join(lines[:start])
    after = "".join(lines[end:])
    return before + section + ("\n" + after if after else "")
