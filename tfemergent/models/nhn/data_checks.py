"""The image/label checks shared by the NHN pipeline (builder, evaluator, super-network)."""

import numpy as np

from tfemergent.utils.validation import validate_real_array


def validate_pair(name, data):
    """``data`` as a tuple ``(images, labels)``; ``ValueError`` if it is not a pair.

    >>> from tfemergent.models.nhn.data_checks import validate_pair
    >>> validate_pair("train_data", ([0.0], [1]))
    ([0.0], [1])
    """
    if not isinstance(data, (list, tuple)) or len(data) != 2:
        raise ValueError(
            f"Argument `{name}` must be a pair (images, labels). "
            f"Received: {name} of type {type(data).__name__}"
        )
    return tuple(data)


def validate_images_and_labels(name, images, labels, image_shape):
    """``(images, labels)`` as float32 images ``(n,) + image_shape`` and int64 labels ``(n,)``.

    Rejects an empty set, a wrong image shape, non-numeric pixels, labels that
    are not one integer per image (non-finite pixels pass: a diverged training
    is a result of the search, not an argument error). ``name`` names the set in the messages.

    >>> from tfemergent.models.nhn.data_checks import validate_images_and_labels
    >>> import numpy as np
    >>> images, labels = validate_images_and_labels(
    ...     "x_train", np.zeros((2, 4, 4, 1)), [0, 1], (4, 4, 1))
    >>> images.dtype, labels.dtype
    (dtype('float32'), dtype('int64'))
    >>> validate_images_and_labels("x_train", np.zeros((2, 4, 4)), [0, 1], (4, 4, 1))
    Traceback (most recent call last):
    ...
    ValueError: Argument `x_train` must be a non-empty float array (n,) + (4, 4, 1) of images. Received: images with shape (2, 4, 4)
    """
    image_shape = tuple(image_shape)
    array = np.asarray(images)
    if array.ndim != len(image_shape) + 1 or array.shape[1:] != image_shape or len(array) == 0:
        raise ValueError(
            f"Argument `{name}` must be a non-empty float array (n,) + {image_shape} of "
            f"images. Received: images with shape {array.shape}"
        )
    array = validate_real_array(f"{name} images", array, dtype=np.float32, finite=False)
    labels = np.asarray(labels)
    if labels.shape != (len(array),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"The labels of `{name}` must be an int array ({len(array)},), one class per "
            f"image. Received: labels with shape {labels.shape}, dtype {labels.dtype}"
        )
    return array, labels.astype("int64")
