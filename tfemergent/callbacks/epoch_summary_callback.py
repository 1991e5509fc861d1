"""Shared base of the TensorBoard structure callbacks."""

import os

import keras
import tensorflow as tf

from tfemergent.utils.validation import validate_int


class EpochSummaryCallback(keras.callbacks.Callback):
    """Base class: writes summaries every ``update_freq`` epochs to ``log_dir``.

    Subclasses implement ``log(step)``, which writes its summaries inside
    ``with self.writer.as_default(step=step)``. The writer is opened lazily on
    first use. The first epoch, every ``update_freq``-th epoch and the last epoch
    are logged (the last one at train end if it was not logged already), and the
    writer is closed when training ends.

    Args:
        log_dir: directory of the event files (created if needed).
        update_freq: log every this many epochs (>= 1).
    """

    def __init__(self, log_dir, update_freq=1):
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)) or not str(log_dir):
            raise ValueError(
                f"Argument `log_dir` must be a non-empty path. Received: log_dir={log_dir!r}"
            )
        self.log_dir = os.fspath(log_dir)
        self.update_freq = validate_int("update_freq", update_freq, minimum=1)
        self._writer = None
        self._last_logged_epoch = None
        self._epoch = None

    @property
    def writer(self):
        """The summary writer, opened on first use."""
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        return self._writer

    def log(self, step):
        """Write all summaries for ``step`` (implemented by subclasses)."""
        raise NotImplementedError

    def on_train_begin(self, logs=None):
        self._epoch = None
        self._last_logged_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        self._epoch = epoch
        if epoch == 0 or (epoch + 1) % self.update_freq == 0:
            self.log(epoch)
            self._last_logged_epoch = epoch

    def on_train_end(self, logs=None):
        if self._epoch is not None and self._last_logged_epoch != self._epoch:
            self.log(self._epoch)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
