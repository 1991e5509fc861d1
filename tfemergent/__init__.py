"""tfemergent: Keras 3 / TensorFlow networks that organise their own structure.

The package needs Keras 3 running on the TensorFlow backend; it refuses any other
backend at import time with an error that says how to switch.
"""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras as _keras  # noqa: E402

if _keras.backend.backend() != "tensorflow":
    raise ImportError(
        "tfemergent needs Keras 3 with the TensorFlow backend, but Keras is configured "
        f"for the {_keras.backend.backend()!r} backend. Set the environment variable "
        "KERAS_BACKEND=tensorflow (or edit ~/.keras/keras.json) before importing "
        f"tfemergent. Received: keras.backend.backend()={_keras.backend.backend()!r}"
    )

from tfemergent import analysis  # noqa: E402,F401
from tfemergent import callbacks  # noqa: E402,F401
from tfemergent import datasets  # noqa: E402,F401
from tfemergent import geometry  # noqa: E402,F401
from tfemergent import initializers  # noqa: E402,F401
from tfemergent import kernels  # noqa: E402,F401
from tfemergent import layers  # noqa: E402,F401
from tfemergent import losses  # noqa: E402,F401
from tfemergent import metrics  # noqa: E402,F401
from tfemergent import models  # noqa: E402,F401
from tfemergent import probes  # noqa: E402,F401
from tfemergent import pruning  # noqa: E402,F401
from tfemergent import regularizers  # noqa: E402,F401
from tfemergent import search  # noqa: E402,F401
from tfemergent.utils import keras_multi_worker as _keras_multi_worker  # noqa: E402
from tfemergent.version import __version__  # noqa: E402,F401

# model.fit under a multi-worker MultiWorkerMirroredStrategy (Keras 3.15 bugs; only
# active under such a strategy; TFEMERGENT_PATCH_KERAS=0 leaves Keras untouched).
_keras_multi_worker.patch_from_environment()
