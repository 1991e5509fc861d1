"""The shared validators of `tfemergent.utils.validation`: good values, and for each bad
value the error type, the argument's name and ``Received:`` in the message."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfemergent.utils import validation
from tfemergent.utils.validation import (
    as_array,
    describe,
    received,
    validate_bool,
    validate_choice,
    validate_finite,
    validate_float,
    validate_images,
    validate_int,
    validate_keras_object,
    validate_labels,
    validate_real_array,
    validate_seed,
    validate_spec,
)

PUBLIC_VALIDATORS = {
    "validate_bool", "validate_choice", "validate_finite", "validate_float", "validate_images",
    "validate_int", "validate_keras_object", "validate_labels", "validate_real_array",
    "validate_seed", "validate_spec", "validate_model", "validate_numeric_inputs",
}


def test_every_public_validator_is_tested_here():
    public = {name for name in dir(validation) if name.startswith("validate_")}
    # Validators appended by other sections of the module (e.g. the kernels') have
    # their own tests; the ones above must all exist.
    assert PUBLIC_VALIDATORS <= public


# ------------------------------------------------------------------ message helpers


def test_describe_cuts_long_reprs_to_80_characters():
    assert describe("ab") == "'ab'"
    text = describe(list(range(100)))
    assert len(text) == 80 and text.endswith("...") and text.startswith("[0, 1, 2")
    assert describe("x" * 78) == "'" + "x" * 78 + "'"  # exactly 80: kept


def test_as_array_converts_tensors_and_lists_or_returns_none():
    np.testing.assert_array_equal(as_array(tf.constant([[1.0, 2.0]])), [[1.0, 2.0]])
    assert as_array([[1, 2], [3, 4]]).shape == (2, 2)
    assert as_array([[1, 2], [3]]) is None  # ragged: no array


def test_received_names_shape_and_dtype_for_arrays_else_the_repr():
    assert received("x", 3) == "Received: x=3"
    assert received("x", "a" * 100) == "Received: x=" + describe("a" * 100)
    array = np.zeros((2, 3), np.float32)
    assert received("x", array, array) == "Received: x.shape=(2, 3), x.dtype=float32"
    objects = np.array([1, "a"], dtype=object)
    assert received("x", objects, objects).startswith("Received: x=array(")
    assert received("x", None, None) == "Received: x=None"


def _raises(name, match=""):
    """``pytest.raises(ValueError)`` whose message names ``name`` and says ``Received:``."""
    return pytest.raises(
        ValueError, match=rf"(?=.*Received: {re.escape(name)})`{re.escape(name)}`.*{match}"
    )


# ------------------------------------------------------------------ scalars


def test_validate_int_good_values():
    assert validate_int("n", 3) == 3 and type(validate_int("n", np.int64(3))) is int
    assert validate_int("n", 0, minimum=0) == 0
    assert validate_int("n", 5, maximum=5) == 5
    assert validate_int("n", None, allow_none=True) is None


@pytest.mark.parametrize(
    "value, kwargs, match",
    [
        (1.0, {}, "must be an integer"),
        (True, {}, "must be an integer"),
        ("3", {}, "must be an integer"),
        (None, {}, "must be an integer"),
        (-1, {"minimum": 0}, ">= 0"),
        (6, {"maximum": 5}, "<= 5"),
    ],
)
def test_validate_int_bad_values(value, kwargs, match):
    with _raises("n", match):
        validate_int("n", value, **kwargs)
    with pytest.raises(ValueError, match=re.escape(f"Received: n={value!r}")):
        validate_int("n", value, **kwargs)


def test_validate_float_good_values():
    assert validate_float("x", 2) == 2.0 and type(validate_float("x", np.float32(0.5))) is float
    assert validate_float("x", 0.0, minimum=0.0) == 0.0
    assert validate_float("x", 1.0, maximum=1.0) == 1.0
    assert validate_float("x", None, allow_none=True) is None


@pytest.mark.parametrize(
    "value, kwargs, match",
    [
        ("1", {}, "real number"),
        (True, {}, "real number"),
        (float("nan"), {}, "finite"),
        (float("inf"), {}, "finite"),
        (-0.5, {"minimum": 0.0}, ">= 0.0"),
        (0.0, {"minimum": 0.0, "min_inclusive": False}, "> 0.0"),
        (1.5, {"maximum": 1.0}, "<= 1.0"),
    ],
)
def test_validate_float_bad_values(value, kwargs, match):
    with _raises("x", match):
        validate_float("x", value, **kwargs)


def test_validate_choice():
    assert validate_choice("mode", "a", ("a", "b")) == "a"
    with _raises("mode", r"one of \['a', 'b'\]"):
        validate_choice("mode", "c", ("b", "a"))
    with pytest.raises(ValueError, match="Received: mode='c'"):
        validate_choice("mode", "c", ("b", "a"))


def test_validate_seed():
    assert validate_seed("seed", None) is None and validate_seed("seed", 0) == 0
    for bad in (-1, 1.0, "0"):
        with _raises("seed", ">= 0"):
            validate_seed("seed", bad)


def test_validate_bool():
    assert validate_bool("flag", True) is True and validate_bool("flag", False) is False
    for bad in (1, 0, "True", None, np.bool_(True)):
        with _raises("flag", "must be a bool"):
            validate_bool("flag", bad)


def test_validate_spec():
    defaults = {"units": 8, "activation": "relu"}
    assert validate_spec("head", None, defaults) == defaults
    assert validate_spec("head", {"units": 2}, defaults) == {"units": 2, "activation": "relu"}
    with _raises("head", r"unknown keys \['size'\]"):
        validate_spec("head", {"size": 3}, defaults)
    with _raises("head", "must be a dict"):
        validate_spec("head", [8], defaults)


def test_validate_keras_object():
    relu = validate_keras_object("activation", "relu", keras.activations.get, "activation")
    assert relu is keras.activations.relu
    initializer = validate_keras_object(
        "kernel_initializer", {"class_name": "Constant", "config": {"value": 2.0}},
        keras.initializers.get, "initializer",
    )
    np.testing.assert_array_equal(initializer((2,)), [2.0, 2.0])
    with _raises("kernel_initializer", "must be a Keras initializer"):
        validate_keras_object(
            "kernel_initializer", "no_such_thing", keras.initializers.get, "initializer"
        )
    with pytest.raises(ValueError, match="Received: kernel_regularizer=3"):
        validate_keras_object("kernel_regularizer", 3, keras.regularizers.get, "regularizer")


# ------------------------------------------------------------------ arrays


def test_validate_real_array_good_values():
    array = validate_real_array("x", [[1, 2], [3, 4]], ndim=2)
    assert array.dtype == np.float64
    np.testing.assert_array_equal(array, [[1.0, 2.0], [3.0, 4.0]])
    assert validate_real_array("x", [1, 2], dtype=np.float32).dtype == np.float32
    assert validate_real_array("x", np.zeros((1, 2, 3)), min_ndim=2).shape == (1, 2, 3)
    with_nan = validate_real_array("x", [1.0, np.nan], finite=False)
    assert np.isnan(with_nan[1])


@pytest.mark.parametrize(
    "value, kwargs, match",
    [
        ([1.0, 2.0], {"ndim": 2}, r"with 2 dimensions\. Received: x.shape=\(2,\)"),
        ([1.0], {"min_ndim": 2}, r"at least 2 dimensions\. Received: x.shape=\(1,\)"),
        (np.zeros((0, 2)), {}, r"non-empty.*Received: x.shape=\(0, 2\)"),
        (np.array([True]), {}, r"real array.*x.dtype=bool"),
        (np.array([1j]), {}, r"real array.*x.dtype=complex128"),
        (np.array(["a"]), {}, r"real array.*x.dtype=<U1"),
        ([1.0, 2.0], {"ndim": 2, "expected": "[rows, cols]"}, r"array \[rows, cols\]\. Received"),
        ([1.0, np.inf, np.nan], {}, r"finite.*Received: x with 2 non-finite values"),
    ],
)
def test_validate_real_array_bad_values(value, kwargs, match):
    with _raises("x", match):
        validate_real_array("x", value, **kwargs)


def test_validate_finite():
    array = np.array([1.0, 2.0])
    assert validate_finite("x", array) is array
    with _raises("x", r"finite \(no NaN or inf\)"):
        validate_finite("x", np.array([[np.nan, 1.0], [np.inf, -np.inf]]))
    with pytest.raises(ValueError, match="Received: x with 3 non-finite values"):
        validate_finite("x", np.array([[np.nan, 1.0], [np.inf, -np.inf]]))


def test_validate_labels():
    labels = validate_labels("labels", tf.constant([2, 0, 1], tf.int32), 3)
    assert labels.dtype == np.int64 and labels.tolist() == [2, 0, 1]
    for bad, detail in [
        (np.array([0.0, 1.0, 2.0]), r"labels.shape=\(3,\), labels.dtype=float64"),
        (np.array([True, False, True]), r"labels.shape=\(3,\), labels.dtype=bool"),
        (np.array([[0, 1, 2]]), r"labels.shape=\(1, 3\)"),
        (np.array([0, 1]), r"labels.shape=\(2,\)"),
        ("abc", r"labels.shape=\(\), labels.dtype=<U3"),
    ]:
        with pytest.raises(ValueError, match=rf"`labels` must be 1-D integer class labels, "
                           rf"one per image \(3\)\. Received: {detail}"):
            validate_labels("labels", bad, 3)


def test_validate_images_good_values():
    images = validate_images("images", np.arange(8, dtype=np.uint8).reshape(2, 2, 2))
    assert images.dtype == np.float32 and images.shape == (2, 2, 2)
    np.testing.assert_array_equal(images[1], [[4.0, 5.0], [6.0, 7.0]])
    colour = validate_images("images", np.zeros((1, 2, 2, 3)))
    assert colour.shape == (1, 2, 2, 3)
    single = validate_images("images", np.ones((3, 2, 2, 1)), single_channel=True)
    assert single.shape == (3, 2, 2)


@pytest.mark.parametrize(
    "value, kwargs, match",
    [
        (np.ones((4, 4)), {}, r"\(N, h, w, c\)\. Received: images.shape=\(4, 4\)"),
        (np.ones((0, 4, 4)), {}, r"Received: images.shape=\(0, 4, 4\)"),
        (np.ones((1, 4, 0)), {}, r"Received: images.shape=\(1, 4, 0\)"),
        (np.ones((2, 4, 4, 3)), {"single_channel": True},
         r"\(N, h, w, 1\)\. Received: images.shape=\(2, 4, 4, 3\)"),
        (np.ones((2, 2, 2), bool), {}, r"Received: images.shape=\(2, 2, 2\), images.dtype=bool"),
        (np.array([["a"]]), {}, r"images.dtype=<U1"),
        ("picture", {}, r"Received: images.shape=\(\)"),
        (np.full((2, 4, 4), np.nan), {}, "finite.*Received: images with 32 non-finite values"),
    ],
)
def test_validate_images_bad_values(value, kwargs, match):
    with _raises("images", match):
        validate_images("images", value, **kwargs)


def test_validate_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert validation.validate_model("model", model) is model
    layer = keras.layers.Dense(2)
    assert validation.validate_model("model", layer) is layer  # layers are accepted
    for value in ("x", None, np.ones(3), keras.layers.Dense):
        with pytest.raises(ValueError, match=r"`model` must be a Keras model or layer. Received: model="):
            validation.validate_model("model", value)
    with pytest.raises(ValueError, match=r"must be built.*Received: model='unbuilt'"):
        validation.validate_model("model", keras.layers.Dense(2, name="unbuilt"), built=True)


def test_validate_numeric_inputs_casts_numbers_and_refuses_strings():
    layer = keras.layers.Dense(2, name="dense_inputs")
    for dtype in ("int32", "bool", "float64"):
        cast = validation.validate_numeric_inputs(layer, tf.ones((1, 2), dtype))
        assert cast.dtype == tf.float32
    same = tf.ones((1, 2))
    assert validation.validate_numeric_inputs(layer, same) is same
    with pytest.raises(ValueError, match=r"Dense 'dense_inputs' needs numeric inputs.*"
                                         r"Received: inputs.dtype=string"):
        validation.validate_numeric_inputs(layer, tf.constant([["a"]]))
