"""channel_groups on small hand-made graphs: the groups are the hand-computed ones."""

import keras
import pytest
from docstring_examples import assert_docstring_examples

import importlib

from tfemergent.pruning import channel_groups

groups_module = importlib.import_module("tfemergent.pruning.channel_groups")


def test_residual_add_concatenate_flatten_groups():
    x = keras.Input((8, 8, 3), name="image")
    a = keras.layers.Conv2D(4, 3, padding="same", name="c1")(x)
    b = keras.layers.BatchNormalization(name="bn1")(a)
    b = keras.layers.ReLU(name="r1")(b)
    c = keras.layers.Conv2D(4, 3, padding="same", name="c2")(b)
    d = keras.layers.Add(name="add")([b, c])
    e = keras.layers.Conv2D(6, 1, name="c3")(d)
    f = keras.layers.Concatenate(name="cat")([d, e])
    g = keras.layers.Flatten(name="fl")(f)
    model = keras.Model(x, keras.layers.Dense(2, name="head")(g))
    groups = channel_groups(model)
    assert [(g["layers"], g["num_channels"], bool(g["fixed"])) for g in groups] == [
        (["image"], 3, True),
        (["c1", "bn1", "r1", "c2", "add", "cat", "fl"], 4, False),
        (["c3", "cat", "fl"], 6, False),
        (["head"], 2, True),
    ]


def test_unknown_layer_fixes_its_channels():
    x = keras.Input((6, 6, 2))
    a = keras.layers.Conv2D(3, 3, name="conv")(x)
    b = keras.layers.Lambda(lambda t: t * 2.0, name="double")(a)
    model = keras.Model(x, keras.layers.GlobalAveragePooling2D(name="pool")(b))
    conv_group = next(g for g in channel_groups(model) if "conv" in g["layers"])
    assert any("double" in reason for reason in conv_group["fixed"])


def test_bad_models():
    with pytest.raises(ValueError, match="built.*Received: model="):
        channel_groups(keras.Sequential([keras.layers.Dense(2)]))


def test_channel_groups_docstring_examples():
    assert_docstring_examples(groups_module)
