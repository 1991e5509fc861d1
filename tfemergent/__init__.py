"""tfemergent: Keras 3 / TensorFlow networks that organise their own structure.

The package needs Keras 3 running on the TensorFlow backend; it refuses any other
backend at import time with an error that says how to switch. Importing it changes
no global state: no environment variable, no Keras function (the multi-worker
``fit`` patches of `tfemergent.utils.keras_multi_worker` are applied only under a
``MultiWorkerMirroredStrategy``), no random seed.

Layout, bottom to top (a module imports only from the rows above it):

* ``utils/``, ``version``: validators, the private TF/Keras accesses, the Keras
  multi-worker patches.
* ``kernels/``: the products and distances (pure TF/XLA and the C++ ops).
  ``geometry/``: lattices, the hierarchy layout, receptive fields.
* ``initializers/``, ``losses/``, ``regularizers/``, ``datasets/``, ``probes/``.
* ``layers/``, ``metrics/``.
* ``analysis/``, ``search/``, ``plotting``.
* ``pruning/``, then ``callbacks/``.
* ``models/<system>/`` for ``hierarchy``, ``urn``, ``spatial``, ``reset``, ``nhn``:
  each paper's models and its experiment runner (``experiment.py``).
* ``experiments/``: the registry of the runners; ``cli``: the ``tfemergent``
  command.
"""

from tfemergent.utils import tensorflow_start_up as _start_up

if _start_up.started_as_command():  # only the `tfemergent` command, never a library user
    _start_up.quiet_tensorflow_start_up()

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
from tfemergent.version import __version__  # noqa: E402,F401
