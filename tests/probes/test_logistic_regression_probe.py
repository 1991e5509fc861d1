"""LogisticRegressionProbe: scikit-learn's multinomial logistic regression as a probe."""

import sys
import warnings

import numpy as np
import pytest
import tensorflow as tf

from tfemergent.probes import LogisticRegressionProbe


def separable_problem(num_samples=240, seed=0):
    """Three well separated Gaussian blobs in 6-D: a linearly separable 3-class problem."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=num_samples)
    centres = np.array([[5.0, 0, 0, 0, 0, 0], [0, 5.0, 0, 0, 0, 0], [0, 0, 5.0, 0, 0, 0]])
    features = centres[labels] + rng.normal(scale=0.3, size=(num_samples, 6))
    return features.astype(np.float32), labels


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    features, labels = load_digits(return_X_y=True)
    return features[:1200], labels[:1200], features[1200:], labels[1200:]


def test_separable_three_classes_reach_full_accuracy():
    features, labels = separable_problem()
    probe = LogisticRegressionProbe(seed=0)
    report = probe.fit_score(features[:180], labels[:180], features[180:], labels[180:])
    assert report["train_accuracy"] == 1.0 and report["test_accuracy"] == 1.0
    assert report["num_train"] == 180 and report["num_features"] == 6
    assert report["seconds"] > 0.0
    assert probe.classes.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(probe.predict(features[180:]), labels[180:])
    assert probe.predict(features[180:]).dtype == np.int64
    assert probe.score(features, labels) == 1.0


@pytest.mark.parametrize("standardize", [True, False])
def test_matches_a_directly_fitted_sklearn_pipeline(digits, standardize):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_features, train_labels, test_features, test_labels = digits
    settings = {"max_iter": 300, "regularization": 0.5, "tolerance": 1e-4}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a ConvergenceWarning, if any, is the same for both
        probe = LogisticRegressionProbe(standardize=standardize, **settings)
        report = probe.fit_score(train_features, train_labels, test_features, test_labels)
        regression = LogisticRegression(C=0.5, max_iter=300, tol=1e-4, solver="lbfgs")
        direct = make_pipeline(StandardScaler(), regression) if standardize else regression
        direct.fit(train_features, train_labels)
    np.testing.assert_array_equal(probe.predict(test_features), direct.predict(test_features))
    assert report["test_accuracy"] == direct.score(test_features, test_labels)
    assert report["train_accuracy"] == direct.score(train_features, train_labels)
    assert report["num_train"] == 1200 and report["num_features"] == 64
    assert report["test_accuracy"] > 0.85


def test_subsampling_is_deterministic_with_a_seed(digits):
    train_features, train_labels, test_features, test_labels = digits

    def fitted(seed):
        probe = LogisticRegressionProbe(max_train_samples=300, seed=seed)
        report = probe.fit_score(train_features, train_labels, test_features, test_labels)
        return probe, report

    first, first_report = fitted(1)
    again, again_report = fitted(1)
    other, _ = fitted(2)
    assert first_report["num_train"] == first.num_train == 300
    regression = first.model[-1]
    np.testing.assert_array_equal(regression.coef_, again.model[-1].coef_)
    assert first_report["test_accuracy"] == again_report["test_accuracy"]
    assert not np.array_equal(regression.coef_, other.model[-1].coef_)
    # A cap above the training set size keeps every sample.
    probe = LogisticRegressionProbe(max_train_samples=5000, seed=1)
    probe.fit(train_features, train_labels)
    assert probe.num_train == 1200


def test_accepts_tensors():
    features, labels = separable_problem(90)
    probe = LogisticRegressionProbe().fit(tf.constant(features), tf.constant(labels, tf.int32))
    assert probe.score(tf.constant(features), tf.constant(labels)) == 1.0
    assert probe.predict(tf.constant(features[:5])).tolist() == labels[:5].tolist()


def test_config_round_trip():
    probe = LogisticRegressionProbe(
        max_iter=50,
        regularization=0.1,
        standardize=False,
        max_train_samples=10,
        seed=3,
        tolerance=1e-6,
    )
    config = probe.get_config()
    assert config == {
        "max_iter": 50,
        "regularization": 0.1,
        "standardize": False,
        "max_train_samples": 10,
        "seed": 3,
        "tolerance": 1e-6,
    }
    clone = LogisticRegressionProbe.from_config(config)
    assert clone.get_config() == config
    assert repr(clone).startswith("LogisticRegressionProbe(max_iter=50, ")
    defaults = LogisticRegressionProbe().get_config()
    assert LogisticRegressionProbe.from_config(defaults).get_config() == defaults


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_iter": 0}, r"Received: max_iter=0"),
        ({"max_iter": 10.0}, r"integer.*Received: max_iter=10.0"),
        ({"regularization": 0.0}, r"> 0.*Received: regularization=0.0"),
        ({"regularization": -1}, r"Received: regularization=-1"),
        ({"regularization": "1"}, r"real number.*Received: regularization='1'"),
        ({"standardize": 1}, r"bool.*Received: standardize=1"),
        ({"max_train_samples": 0}, r"Received: max_train_samples=0"),
        ({"max_train_samples": 1.5}, r"Received: max_train_samples=1.5"),
        ({"seed": -1}, r"Received: seed=-1"),
        ({"seed": "0"}, r"Received: seed='0'"),
        ({"tolerance": 0}, r"> 0.*Received: tolerance=0"),
        ({"tolerance": float("nan")}, r"finite.*Received: tolerance=nan"),
    ],
)
def test_invalid_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LogisticRegressionProbe(**kwargs)


FEATURES, LABELS = separable_problem(60)


@pytest.mark.parametrize(
    "features, labels, match",
    [
        (FEATURES[:, 0], LABELS, r"2-D.*Received: features.shape=\(60,\)"),
        (FEATURES[None], LABELS, r"2-D.*Received: features.shape=\(1, 60, 6\)"),
        (FEATURES.astype(str), LABELS, r"real numbers.*Received: features.dtype=<U"),
        (FEATURES > 0, LABELS, r"Received: features.dtype=bool"),
        (FEATURES[:0], LABELS[:0], r"at least one sample.*Received: features.shape=\(0, 6\)"),
        (np.where(FEATURES > 4, np.nan, FEATURES), LABELS, r"finite.*Received: features with \d+"),
        (FEATURES, LABELS.astype(np.float32), r"integer dtype.*Received: labels.dtype=float32"),
        (FEATURES, np.eye(3, dtype=int)[LABELS], r"1-D.*Received: labels.shape=\(60, 3\)"),
        (FEATURES, LABELS[:50], r"one label per row.*Received: labels.shape=\(50,\)"),
        (FEATURES, np.zeros(60, int), r"at least 2 classes.*Received: labels with classes \[0\]"),
    ],
)
def test_invalid_fit_data(features, labels, match):
    with pytest.raises(ValueError, match=match):
        LogisticRegressionProbe().fit(features, labels)


def test_misuse_after_and_before_fit():
    probe = LogisticRegressionProbe()
    with pytest.raises(RuntimeError, match=r"before `score`.*Received: an unfitted"):
        probe.score(FEATURES, LABELS)
    with pytest.raises(RuntimeError, match=r"before `predict`.*Received: an unfitted"):
        probe.predict(FEATURES)
    probe.fit(FEATURES, LABELS)
    with pytest.raises(ValueError, match=r"the 6 features.*Received: features.shape=\(60, 5\)"):
        probe.score(FEATURES[:, :5], LABELS)
    with pytest.raises(ValueError, match=r"the 6 features.*Received: features.shape=\(60, 7\)"):
        probe.predict(np.concatenate([FEATURES, FEATURES[:, :1]], axis=1))
    with pytest.raises(ValueError, match=r"Received: test_features.shape=\(60, 5\)"):
        probe.fit_score(FEATURES, LABELS, FEATURES[:, :5], LABELS)
    with pytest.raises(ValueError, match=r"Received: test_labels.shape=\(10,\)"):
        probe.fit_score(FEATURES, LABELS, FEATURES, LABELS[:10])
    match = r"at least 2 classes.*after subsampling.*Received: train_labels"
    with pytest.raises(ValueError, match=match):
        LogisticRegressionProbe(max_train_samples=1, seed=0).fit_score(
            FEATURES, LABELS, FEATURES, LABELS
        )


def test_missing_scikit_learn_raises_import_error_with_the_install_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.linear_model", None)
    with pytest.raises(ImportError, match=r"pip install scikit-learn"):
        LogisticRegressionProbe().fit(FEATURES, LABELS)
