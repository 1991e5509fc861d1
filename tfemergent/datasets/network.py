"""Whether tensorflow-datasets could download anything: a fast check before it retries for minutes.

Offline, ``tensorflow_datasets.load`` retries its downloads for minutes (3 min 24 s measured)
before it fails. The loaders first look for a copy that tensorflow-datasets prepared earlier
(`prepared_by_tfds`) and otherwise try one TCP connection to its download host
(`tfds_reachable`, 3 s at most, name resolution included); when neither holds they raise
`DatasetNotFoundError` at once, pointing at ``TFEMERGENT_DATA_DIR``.
"""

import glob
import os
import socket
import threading

# tensorflow-datasets downloads its prepared datasets from Google Cloud Storage.
TFDS_HOST = "storage.googleapis.com"
TFDS_PORT = 443
TIMEOUT_SECONDS = 3.0


def tfds_reachable(host=TFDS_HOST, port=TFDS_PORT, timeout=TIMEOUT_SECONDS):
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds.

    Name resolution counts towards the timeout (it runs in a helper thread, as
    ``socket.getaddrinfo`` has no timeout of its own).

    >>> from tfemergent.datasets.network import tfds_reachable
    >>> tfds_reachable("localhost", 9, timeout=0.5)  # the discard port: nothing listens
    False
    """
    outcome = []

    def connect():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(True)
        except OSError:
            outcome.append(False)

    thread = threading.Thread(target=connect, daemon=True, name="tfemergent-network-check")
    thread.start()
    thread.join(timeout)
    return bool(outcome and outcome[0])


def tfds_data_dir():
    """The directory tensorflow-datasets keeps its datasets in (``TFDS_DATA_DIR`` or
    ``~/tensorflow_datasets``)."""
    return os.path.expanduser(os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets")


def prepared_by_tfds(name, data_dir=None):
    """Whether tensorflow-datasets holds a prepared copy of ``name`` (no download needed)."""
    root = os.path.join(data_dir or tfds_data_dir(), name)
    patterns = ("*/dataset_info.json", "*/*/dataset_info.json")
    return any(glob.glob(os.path.join(root, pattern)) for pattern in patterns)
