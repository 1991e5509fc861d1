"""Read TensorBoard event files back (shared by the callback tests)."""

import glob

import tensorflow as tf


def read_events(log_dir):
    """``{tag: [(step, value)]}`` from the event files under ``log_dir``.

    Scalars give their float value; images give the decoded image's shape; text gives
    the string.
    """
    found = {}
    for path in glob.glob(f"{log_dir}/**/events.out.tfevents.*", recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tensor = tf.make_ndarray(value.tensor)
                if value.metadata.plugin_data.plugin_name == "images":
                    image = tf.io.decode_png(tensor[2]).numpy()
                    found.setdefault(value.tag, []).append((event.step, image.shape))
                elif value.metadata.plugin_data.plugin_name == "text":
                    text = tensor.item() if tensor.shape == () else tensor.ravel()[0]
                    found.setdefault(value.tag, []).append((event.step, text.decode()))
                else:
                    found.setdefault(value.tag, []).append((event.step, float(tensor)))
    return found
