"""Shared set-up of the peer comparisons: threads, torch, peer checkouts, rows.

Importing this module pins both frameworks to the same thread count
(``PEERS_THREADS``, default 2: ``torch.set_num_threads`` / ``set_num_interop_threads``
and TensorFlow's intra-/inter-op pools), so it must be imported before anything
runs a TensorFlow op.
"""

import datetime
import json
import os
import pathlib
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

THREADS = int(os.environ.get("PEERS_THREADS", "2"))
# Where the peers' repositories were extracted (one folder per repository).
PEERS_DIR = pathlib.Path(os.environ.get("TFEMERGENT_PEERS_DIR", "/tmp/peers"))
DATA_DIR = pathlib.Path(os.environ.get("TFEMERGENT_DATA_DIR", "/work/shared/data"))
RESULTS_JSON = pathlib.Path(os.environ.get("PEERS_RESULTS", "/tmp/logs/F/peers_rows.jsonl"))

# torch (and torchvision, which imports triton) must be loaded before TensorFlow:
# importing torchvision after TensorFlow segfaults in triton's import here
# (torch 2.14.1 / torchvision 0.29.1 / TF 2.21).
try:
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None
else:
    try:
        import torchvision  # noqa: F401
    except ImportError:
        pass
    torch.set_num_threads(THREADS)
    try:
        torch.set_num_interop_threads(THREADS)
    except RuntimeError:
        pass

import tensorflow as tf  # noqa: E402

try:
    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
except RuntimeError as error:  # TF already initialised by the caller
    print(f"warning: could not pin TensorFlow threads ({error})")


class Skip(Exception):
    """A comparison cannot run here (message says why)."""


def require_torch():
    if torch is None:
        raise Skip(
            "torch is not installed: `pip install -r benchmarks/peers/requirements.txt` "
            "(CPU build is enough)"
        )
    return torch


def peer_dir(name, env_var):
    """The extracted repository ``name`` (env var ``env_var``, else $TFEMERGENT_PEERS_DIR/name)."""
    path = pathlib.Path(os.environ.get(env_var, PEERS_DIR / name))
    if not path.is_dir():
        raise Skip(
            f"peer checkout {path} not found: extract the repository there (see "
            f"benchmarks/peers/README.md) or set {env_var}"
        )
    return path


def uptime():
    """`uptime`'s load averages, as recorded with every row."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def git_commit(path):
    """Commit of the peer checkout, from the COMMIT file the README's extraction writes."""
    marker = pathlib.Path(path) / "COMMIT"
    return marker.read_text().strip() if marker.exists() else "unknown"


def ours_commit():
    """The package's commit, with "+changes" when tfemergent/ differs from it."""
    repo = pathlib.Path(__file__).resolve().parents[2]
    head = run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"]).strip() or "unknown"
    dirty = subprocess.run(["git", "-C", str(repo), "diff", "--quiet", "HEAD", "--", "tfemergent"])
    return head + ("+changes" if dirty.returncode == 1 else "")


def summary(values_ms):
    import numpy as np

    values = np.asarray(values_ms, dtype=float)
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"median_ms": float(median), "q1_ms": float(q1), "q3_ms": float(q3),
            "iqr_ms": float(q3 - q1), "n": int(values.size)}


def row(system, work, peer_name, peer, ours_name, ours, note=""):
    """One table row: ``peer time / our time`` of the medians, with the load now."""
    entry = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "system": system,
        "work": work,
        "peer": peer_name,
        "peer_ms": peer["median_ms"],
        "peer_iqr_ms": peer["iqr_ms"],
        "ours": ours_name,
        "ours_ms": ours["median_ms"],
        "ours_iqr_ms": ours["iqr_ms"],
        "ratio": peer["median_ms"] / ours["median_ms"],
        "load": uptime(),
        "threads": THREADS,
        "ours_commit": OURS_COMMIT,
        "note": note,
    }
    if "cpu_median_ms" in peer and "cpu_median_ms" in ours:
        entry["cpu_ratio"] = peer["cpu_median_ms"] / ours["cpu_median_ms"]
    print(
        f"[{system}] {work}: {peer_name} {entry['peer_ms']:.2f} ms (IQR {entry['peer_iqr_ms']:.2f}) "
        f"/ {ours_name} {entry['ours_ms']:.2f} ms (IQR {entry['ours_iqr_ms']:.2f}) "
        f"= {entry['ratio']:.2f}x  (load {entry['load']})",
        flush=True,
    )
    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS_JSON, "a") as results:
        results.write(json.dumps(entry) + "\n")
    return entry


def interleaved(impls, *, warmup, repeats):
    """`benchmarks.harness.compare` (interleaved, rotating order, warm-up excluded)."""
    from benchmarks import harness

    return harness.compare(impls, warmup=warmup, repeats=repeats)


def main_guard(main):
    """Run ``main``; a `Skip` prints its reason and exits 0."""
    try:
        return main()
    except Skip as reason:
        print(f"SKIPPED: {reason}")
        return None


def import_path(path):
    path = str(path)
    if path not in sys.path:
        sys.path.insert(0, path)


def machine_line():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    torch_version = torch.__version__ if torch is not None else "absent"
    return (f"{os.cpu_count()} cores ({model}), TF {tf.__version__}, torch {torch_version}, "
            f"{THREADS} threads each")


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True).stdout


# The package as imported by this process (HEAD may move while a run goes on).
OURS_COMMIT = ours_commit()
