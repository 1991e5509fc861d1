"""Former home of the callbacks' checks; re-exports only, for `reset_tensorboard.py`.

The validators live in `tfemergent.utils.validation`, `write_images` in
`tfemergent.callbacks.image_summaries`. Delete this module once
`reset_tensorboard.py` imports from there.
"""

from tfemergent.callbacks.image_summaries import write_images
from tfemergent.utils.validation import as_array, describe, received, validate_labels

__all__ = ["as_array", "describe", "received", "validate_labels", "write_images"]
