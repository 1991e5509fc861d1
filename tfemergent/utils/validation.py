"""Shared argument validators.

Every public class and function of tfemergent validates its arguments with these
helpers so that all errors read the same way: what was wrong, what was expected,
and ``Received: name=value``.
"""

import numbers

import numpy as np


def describe(value):
    """``repr(value)``, cut to 80 characters, for error messages."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_array(value):
    """``value`` (array, tensor, nested lists) as a NumPy array, or None when it cannot be one."""
    try:
        if isinstance(value, (np.ndarray, np.generic, numbers.Number, str, list, tuple)):
            return np.asarray(value)
        # Tensors and variables: Keras (and so TensorFlow) is imported only for them,
        # so that the TF-free modules (`tfemergent.search`) can use these validators.
        import keras

        return np.asarray(keras.ops.convert_to_numpy(value))
    except (TypeError, ValueError):
        return None


def received(name, value, array=None):
    """The ``Received: ...`` part of an error message.

    ``Received: name.shape=..., name.dtype=...`` when ``array`` (``value`` as a
    NumPy array) is given and is not an object array, else
    ``Received: name=<repr of value, cut to 80 characters>``.

    >>> from tfemergent.utils.validation import received
    >>> import numpy as np
    >>> received("x", 3)
    'Received: x=3'
    >>> received("x", [[1, 2]], np.asarray([[1, 2]]))
    'Received: x.shape=(1, 2), x.dtype=int64'
    """
    if array is not None and array.dtype != object:
        return f"Received: {name}.shape={array.shape}, {name}.dtype={array.dtype}"
    return f"Received: {name}={describe(value)}"



def validate_int(name, value, *, minimum=None, maximum=None, allow_none=False):
    """Return ``value`` as an ``int`` or raise ``ValueError``.

    Booleans are rejected (``True`` is not a count).
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ValueError(
            f"Argument `{name}` must be an integer"
            + (f" >= {minimum}" if minimum is not None else "")
            + f". {received(name, value)}"
        )
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(
            f"Argument `{name}` must be an integer >= {minimum}. {received(name, value)}"
        )
    if maximum is not None and value > maximum:
        raise ValueError(
            f"Argument `{name}` must be an integer <= {maximum}. {received(name, value)}"
        )
    return value


def validate_float(
    name, value, *, minimum=None, maximum=None, min_inclusive=True, allow_none=False
):
    """Return ``value`` as a finite ``float`` or raise ``ValueError``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise ValueError(f"Argument `{name}` must be a real number. {received(name, value)}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"Argument `{name}` must be finite. {received(name, value)}")
    if minimum is not None:
        too_small = value < minimum if min_inclusive else value <= minimum
        if too_small:
            relation = ">=" if min_inclusive else ">"
            raise ValueError(
                f"Argument `{name}` must be {relation} {minimum}. {received(name, value)}"
            )
    if maximum is not None and value > maximum:
        raise ValueError(f"Argument `{name}` must be <= {maximum}. {received(name, value)}")
    return value


def validate_choice(name, value, choices):
    """Return ``value`` if it is one of ``choices`` (strings), else raise ``ValueError``."""
    if value not in choices:
        raise ValueError(
            f"Argument `{name}` must be one of {sorted(choices)}. {received(name, value)}"
        )
    return value


def validate_connectivity(name, value):
    """A grid neighbourhood: 4 (edge neighbours) or 8 (edge and corner neighbours).

    >>> from tfemergent.utils.validation import validate_connectivity
    >>> validate_connectivity("connectivity", 8)
    8
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, (numbers.Integral, np.integer))
        or int(value) not in (4, 8)
    ):
        raise ValueError(
            f"Argument `{name}` must be 4 (edge neighbours) or 8 (edge and corner "
            f"neighbours). {received(name, value)}"
        )
    return int(value)


def validate_seed(name, value):
    """A seed is ``None`` or a non-negative integer."""
    return validate_int(name, value, minimum=0, allow_none=True)


def validate_bool(name, value):
    """Return ``value`` if it is a ``bool`` (not merely truthy), else raise ``ValueError``."""
    if not isinstance(value, bool):
        raise ValueError(f"Argument `{name}` must be a bool. {received(name, value)}")
    return value


def validate_spec(name, value, defaults, note=""):
    """``defaults`` updated with the dict ``value`` (None: the defaults), or ``ValueError``.

    Args:
        name: the argument's name, for the messages.
        value: None or a dict whose keys are some of ``defaults``' keys.
        defaults: the full spec with every key.
        note: a sentence added to the unknown-keys message (e.g. which keys are
            set elsewhere).

    Returns:
        A new dict with every key of ``defaults``; the values are not checked.
    """
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ValueError(
            f"Argument `{name}` must be a dict of settings with keys {sorted(defaults)} "
            f"(missing keys take the defaults {defaults}), or None. {received(name, value)}"
        )
    unknown = sorted(set(value) - set(defaults))
    if unknown:
        raise ValueError(
            f"Argument `{name}` has unknown keys {unknown}; the keys are {sorted(defaults)}"
            f"{' (' + note + ')' if note else ''}. {received(name, value)}"
        )
    return {**defaults, **value}


def validate_keras_object(name, value, getter, kind):
    """``getter(value)`` (e.g. ``keras.initializers.get``), or ``ValueError`` naming ``name``.

    ``kind`` names what ``getter`` returns in the message (``"initializer"``).

    >>> import keras
    >>> from tfemergent.utils.validation import validate_keras_object
    >>> validate_keras_object("activation", "relu", keras.activations.get, "activation").__name__
    'relu'
    """
    try:
        return getter(value)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"Argument `{name}` must be a Keras {kind} (an object, its name or its "
            f"config): {error}. {received(name, value)}"
        ) from None


def validate_labels(name, labels, num_images):
    """``labels`` as int64 ``(num_images,)``: 1-D integer class labels, one per image.

    >>> from tfemergent.utils.validation import validate_labels
    >>> validate_labels("labels", [0, 2, 1], 3).tolist()
    [0, 2, 1]
    """
    array = as_array(labels)
    if (
        array is None
        or array.ndim != 1
        or array.dtype == bool
        or not np.issubdtype(array.dtype, np.integer)
        or len(array) != num_images
    ):
        raise ValueError(
            f"Argument `{name}` must be 1-D integer class labels, one per image "
            f"({num_images}). {received(name, labels, array)}"
        )
    return array.astype(np.int64)


def validate_images(name, images, *, single_channel=False):
    """``images`` as finite float32 ``(N, h, w)`` or ``(N, h, w, c)``, ``N, h, w, c >= 1``.

    With ``single_channel=True`` the 4-D form must have ``c == 1`` and the result
    is ``(N, h, w)`` (the channel axis dropped).

    >>> from tfemergent.utils.validation import validate_images
    >>> import numpy as np
    >>> validate_images("images", np.zeros((2, 3, 3, 1)), single_channel=True).shape
    (2, 3, 3)
    """
    array = as_array(images)
    valid = (
        array is not None
        and array.dtype != bool
        and (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating))
        and (array.ndim == 3 or (array.ndim == 4 and (not single_channel or array.shape[-1] == 1)))
        and 0 not in array.shape
    )
    if not valid:
        shapes = "(N, h, w) or (N, h, w, 1)" if single_channel else "(N, h, w) or (N, h, w, c)"
        raise ValueError(
            f"Argument `{name}` must be a numeric array of at least one image, {shapes}. "
            f"{received(name, images, array)}"
        )
    array = array.astype(np.float32)
    if single_channel and array.ndim == 4:
        array = array[..., 0]
    return validate_finite(name, array)


def validate_real_array(name, value, *, ndim=None, min_ndim=None, expected=None, finite=True,
                        dtype=np.float64):
    """``value`` as a non-empty real NumPy array of ``dtype`` (finite by default).

    The one array check of the package: rejects empty, boolean, complex and
    non-numeric arrays, a wrong number of dimensions (``ndim`` exactly, or at least
    ``min_ndim``) and, with ``finite=True``, NaN or inf, counting them in the message.
    ``expected`` describes the shape in the message (e.g. ``"[rows, cols]"``).

    >>> from tfemergent.utils.validation import validate_real_array
    >>> validate_real_array("x", [[1, 2]], ndim=2).dtype
    dtype('float64')
    >>> validate_real_array("x", [1.0, float("nan")])
    Traceback (most recent call last):
    ...
    ValueError: `x` must be finite (no NaN or inf). Received: x with 1 non-finite values
    """
    array = np.asarray(value)
    if expected is None:
        if ndim is not None:
            expected = f"with {ndim} dimensions"
        elif min_ndim is not None:
            expected = f"with at least {min_ndim} dimensions"
        else:
            expected = "of any shape"
    if (
        (ndim is not None and array.ndim != ndim)
        or (min_ndim is not None and array.ndim < min_ndim)
        or array.size == 0
        or array.dtype == bool
        or not np.issubdtype(array.dtype, np.number)
        or np.iscomplexobj(array)
    ):
        raise ValueError(
            f"`{name}` must be a non-empty real array {expected}. "
            f"Received: {name}.shape={array.shape}, {name}.dtype={array.dtype}"
        )
    array = array.astype(dtype)
    if finite:
        validate_finite(name, array)
    return array


def validate_finite(name, array):
    """Raise ``ValueError`` if the NumPy ``array`` holds NaN or inf; return it."""
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise ValueError(
            f"`{name}` must be finite (no NaN or inf). "
            f"Received: {name} with {bad} non-finite values"
        )
    return array


# ----------------------------------------------------------------------------
# Tensor arguments (the kernels in `tfemergent.kernels`)
# ----------------------------------------------------------------------------
#
# The kernels take tensors that may be symbolic (inside a `tf.function`), so they
# cannot be checked as NumPy arrays like `validate_real_array` does; these
# validators look only at dtypes and static shapes, and read values only when
# they are concrete (`concrete_array`).


def is_variable(value):
    """True for `tf.Variable` and Keras 3 variables (read at use time)."""
    import keras
    import tensorflow as tf

    return isinstance(value, (tf.Variable, keras.Variable))


def is_symbolic(value):
    """True for graph tensors whose values are unknown while tracing."""
    import tensorflow as tf

    if is_variable(value):
        return not tf.executing_eagerly()
    return tf.is_tensor(value) and not hasattr(value, "numpy")


def describe_tensor(value):
    """``<Type shape=... dtype=...>`` for tensors and arrays, else `describe`."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        dtype = getattr(dtype, "name", dtype)
        return f"<{type(value).__name__} shape={tuple(shape)} dtype={dtype}>"
    return describe(value)


def validate_tensor(name, value):
    """``value`` converted to a tensor (variables are read), or ``ValueError``.

    >>> from tfemergent.utils.validation import validate_tensor
    >>> validate_tensor("x", [1.0, 2.0]).shape
    TensorShape([2])
    >>> validate_tensor("x", "abc")
    Traceback (most recent call last):
    ...
    ValueError: Argument `x` must be a tensor, array or variable. Received: x='abc'
    """
    import tensorflow as tf

    message = (
        f"Argument `{name}` must be a tensor, array or variable. "
        f"Received: {name}={describe_tensor(value)}"
    )
    if isinstance(value, (str, bytes)) or value is None:
        raise ValueError(message)
    try:
        return tf.convert_to_tensor(value)
    except (TypeError, ValueError):
        raise ValueError(message) from None


def validate_float_matrix(name, value, *, description, dtype=None, static=False):
    """A non-empty rank-2 floating tensor (of ``dtype`` if given).

    ``description`` names the expected shape in messages (e.g. ``"[N_in, N_out]"``);
    ``static=True`` also requires both dimensions to be known.
    """
    tensor = validate_tensor(name, value)
    if not tensor.dtype.is_floating:
        raise ValueError(
            f"Argument `{name}` must be a floating-point tensor {description}. "
            f"Received: {name}.dtype={tensor.dtype.name}"
        )
    if dtype is not None and tensor.dtype != dtype:
        raise ValueError(
            f"Argument `{name}` must have the same dtype as the other inputs "
            f"({dtype.name}); cast it first. Received: {name}.dtype={tensor.dtype.name}"
        )
    if tensor.shape.rank != 2:
        raise ValueError(
            f"Argument `{name}` must be a matrix {description}. "
            f"Received: {name}.shape={tensor.shape}"
        )
    if static and (tensor.shape[0] is None or tensor.shape[1] is None):
        raise ValueError(
            f"Argument `{name}` must have a static shape {description}. "
            f"Received: {name}.shape={tensor.shape}"
        )
    for size in tensor.shape:
        if size is not None and size < 1:
            raise ValueError(
                f"Argument `{name}` must not be empty {description}. "
                f"Received: {name}.shape={tensor.shape}"
            )
    return tensor


def validate_dim(name, tensor, axis, expected, what):
    """Raise if dimension ``axis`` of ``tensor`` is known and differs from ``expected``."""
    actual = tensor.shape[axis]
    if actual is not None and expected is not None and actual != expected:
        raise ValueError(
            f"Argument `{name}` must have {what} ({expected}) in dimension {axis}. "
            f"Received: {name}.shape={tensor.shape}"
        )


def concrete_array(value):
    """A NumPy copy of ``value`` if its value is known now, else ``None``."""
    import tensorflow as tf

    if is_symbolic(value) or not tf.executing_eagerly():
        return None
    return np.asarray(value)


def validate_model(name, value, *, built=False):
    """Return ``value`` if it is a Keras model or layer (built, if asked), else raise.

    >>> from tfemergent.utils.validation import validate_model
    >>> validate_model("model", "x")
    Traceback (most recent call last):
    ...
    ValueError: Argument `model` must be a Keras model or layer. Received: model='x'
    """
    import keras

    if not isinstance(value, keras.layers.Layer):
        raise ValueError(
            f"Argument `{name}` must be a Keras model or layer. {received(name, value)}"
        )
    if built and not value.built:
        raise ValueError(
            f"Argument `{name}` must be built (call it on data or `build` it) first. "
            f"Received: {name}={value.name!r} (not built)"
        )
    return value


def validate_numeric_inputs(layer, inputs):
    """``inputs`` (a tensor) cast to ``layer.compute_dtype``, or ``ValueError``.

    Floating, integer and boolean inputs are cast (as `keras.layers.Dense` does);
    strings and other non-numeric dtypes are refused, naming the layer, before
    they reach a TensorFlow kernel.
    """
    import tensorflow as tf

    dtype = tf.as_dtype(inputs.dtype)
    if not (dtype.is_floating or dtype.is_integer or dtype.is_bool):
        raise ValueError(
            f"{type(layer).__name__} {layer.name!r} needs numeric inputs (floating, integer "
            f"or boolean). Received: inputs.dtype={dtype.name}"
        )
    if dtype != tf.as_dtype(layer.compute_dtype):
        inputs = tf.cast(inputs, layer.compute_dtype)
    return inputs
