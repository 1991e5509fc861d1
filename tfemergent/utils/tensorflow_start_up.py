"""Quiet TensorFlow's start-up log lines for the ``tfemergent`` command (never for a library user).

TensorFlow 2.21 writes its start-up lines (``oneDNN custom operations are on``, ``Could not
find cuda drivers``, ``failed call to cuInit``, the CPU-instructions notice) from C++ before
its logging is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` does not hide them. The command hides
them by importing TensorFlow (and initialising its devices) with the process's standard error
redirected to a temporary file, then writing back every captured line that is not one of
those notices. A plain ``import tfemergent`` never gets here: `started_as_command` is true
only in the ``tfemergent`` console script and ``python -m tfemergent.cli``, and ``--verbose``
anywhere on the command line keeps every line.

Only the standard library is imported at module level.
"""

import contextlib
import os
import re
import sys
import tempfile

# The start-up notices hidden by `quiet_tensorflow_start_up` (one regular expression per kind).
START_UP_NOISE = (
    r"oneDNN custom operations",
    r"TF_ENABLE_ONEDNN_OPTS",
    r"cudart_stub|cuda_platform|cuda_dnn|cuda_fft|cuda_blas|cuda drivers|cuInit|CUDA",
    r"cpu_feature_guard|This TensorFlow binary is optimized",
    r"To enable the following instructions",
    r"All log messages before absl::InitializeLog\(\) is called",
    r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"computation_placer|TF-TRT Warning",
)
_NOISE = re.compile("|".join(f"(?:{pattern})" for pattern in START_UP_NOISE))
COMMAND_NAMES = ("tfemergent", "tfemergent.exe", "tfemergent-script.py")
COMMAND_MODULES = ("tfemergent", "tfemergent.cli")


def is_start_up_noise(line):
    """Whether ``line`` is one of TensorFlow's start-up notices (`START_UP_NOISE`)."""
    return bool(_NOISE.search(line))


def started_as_command(argv=None, orig_argv=None):
    """Whether this process is the ``tfemergent`` command run without ``--verbose``.

    True for the console script (``argv[0]`` named ``tfemergent``) and for
    ``python -m tfemergent.cli`` (read from ``sys.orig_argv``); false for any other
    program that imports tfemergent.

    >>> from tfemergent.utils.tensorflow_start_up import started_as_command
    >>> from tfemergent.utils.tensorflow_start_up import started_as_command
    >>> started_as_command(["/usr/bin/tfemergent", "list"], [])
    True
    >>> started_as_command(["/usr/bin/tfemergent", "list", "--verbose"], [])
    False
    >>> started_as_command(["-m", "list"], ["python", "-m", "tfemergent.cli", "list"])
    True
    >>> started_as_command(["train.py"], ["python", "train.py"])
    False
    """
    argv = sys.argv if argv is None else argv
    orig_argv = getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    if "--verbose" in argv or "--verbose" in orig_argv:
        return False
    if argv and os.path.basename(str(argv[0])) in COMMAND_NAMES:
        return True
    options = iter(orig_argv[1:])
    for option in options:
        if option == "-m":
            return next(options, None) in COMMAND_MODULES
        if option in ("-X", "-W"):  # the interpreter's options that take a value
            next(options, None)
        elif option == "-c" or not option.startswith("-"):
            return False
    return False


@contextlib.contextmanager
def filtered_stderr(keep=lambda line: not is_start_up_noise(line)):
    """A context in which file descriptor 2 goes to a temporary file; on exit the lines for
    which ``keep`` is true are written to the real standard error (every line if the block
    raised)."""
    sys.stderr.flush()
    saved = os.dup(2)
    capture = tempfile.TemporaryFile()
    os.dup2(capture.fileno(), 2)
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        capture.seek(0)
        text = capture.read().decode("utf-8", errors="replace")
        capture.close()
        kept = [line for line in text.splitlines(keepends=True) if failed or keep(line)]
        if kept:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


def quiet_tensorflow_start_up():
    """Import TensorFlow and Keras and initialise the devices without the start-up notices.

    Also sets ``TF_CPP_MIN_LOG_LEVEL=2`` (unless set) for the C++ lines that come later.
    Does nothing once TensorFlow is imported. Returns whether it imported TensorFlow.
    """
    if "tensorflow" in sys.modules:
        return False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with filtered_stderr():
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_physical_devices()  # the cuInit error comes here on a CPU machine
    return True
