"""Multinomial logistic-regression probe of a learnt representation (Borgohain et al.)."""

import time

import numpy as np

from tfemergent.utils.validation import (
    validate_bool,
    validate_finite,
    validate_float,
    validate_int,
    validate_seed,
)

_SKLEARN_INSTALL = "pip install scikit-learn"


def _import_sklearn():
    """The scikit-learn pieces the probe needs, imported on first use."""
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as error:
        raise ImportError(
            "LogisticRegressionProbe needs scikit-learn, which could not be imported "
            f"({error}). Install it with `{_SKLEARN_INSTALL}`."
        ) from error
    return LogisticRegression, StandardScaler, make_pipeline


class LogisticRegressionProbe:
    """Accuracy of a multinomial logistic regression fitted on frozen features.

    The extrinsic metric of the self-organising hierarchy: the hidden codes of
    all K autoencoder units are concatenated into one ``K * num_hidden`` feature
    vector per sample and scikit-learn's multinomial ``LogisticRegression``
    (solver ``lbfgs``, L2 penalty) is fitted on them; its accuracy scores the
    representation. The probe wraps that fit with validation, optional
    standardisation, a deterministic subsample for CPU budgets, and a timed
    ``fit_score`` report.

    scikit-learn is imported only when the probe fits or predicts; if it is
    missing, an ``ImportError`` says how to install it. A
    ``ConvergenceWarning`` from lbfgs is not suppressed: raise ``max_iter``
    (or ``tolerance``) if you see it. With two classes scikit-learn fits the
    equivalent binary logistic model; with three or more (the paper's case) the
    softmax (multinomial) model.

    Reference: Borgohain et al., "Self-organising Neural Network Hierarchy"
    (the "two layer multinomial logistic regression classifier" on the
    concatenated codes).

    Args:
        max_iter: maximum number of lbfgs iterations, an integer >= 1. Defaults
            to 1000 (scikit-learn's default of 100 often stops short on
            thousands of samples of ``K * num_hidden`` ReLU codes).
        regularization: scikit-learn's ``C``, the *inverse* strength of the
            L2 penalty (larger = weaker), a float > 0. Defaults to 1.0
            (scikit-learn's default; the paper gives none).
        standardize: whether to fit a ``StandardScaler`` (zero mean, unit
            variance per feature, statistics from the training features) in
            front of the regression. Defaults to ``True``. The paper does not
            say; ReLU codes have unbounded, unit-dependent scales, and
            standardising makes the one L2 penalty weigh every feature alike
            and lets lbfgs converge in far fewer iterations.
        max_train_samples: ``None`` (fit on every training sample) or an
            integer >= 1: fit on a uniform random subset of this many training
            samples, drawn without replacement (in the original order) when
            the training set is larger. Use it to bound the CPU time of the fit.
        seed: ``None`` or an integer >= 0: the seed of that subsample (the same
            seed gives the same subset). With ``None`` the subset changes from
            fit to fit. lbfgs itself is deterministic.
        tolerance: lbfgs stopping tolerance (scikit-learn's ``tol``), a float
            > 0. Defaults to 1e-4 (scikit-learn's default).

    Attributes (after ``fit``):
        classes: the sorted class labels seen in training (an int64 array).
        num_features: the number of features the probe was fitted on.
        num_train: the number of samples it was fitted on.
        model: the fitted scikit-learn estimator (a ``Pipeline`` when
            ``standardize``, else the ``LogisticRegression``).

    Example:

    >>> import numpy as np
    >>> from tfemergent.probes import LogisticRegressionProbe
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 3, size=300)
    >>> features = np.eye(3)[labels] * 4.0 + rng.normal(size=(300, 3)) * 0.1
    >>> probe = LogisticRegressionProbe(max_train_samples=200, seed=0)
    >>> report = probe.fit_score(features[:240], labels[:240], features[240:], labels[240:])
    >>> report["train_accuracy"], report["test_accuracy"], report["num_train"]
    (1.0, 1.0, 200)
    >>> probe.predict(features[:4]).tolist() == labels[:4].tolist()
    True
    """

    def __init__(
        self,
        max_iter=1000,
        regularization=1.0,
        standardize=True,
        max_train_samples=None,
        seed=None,
        tolerance=1e-4,
    ):
        self.max_iter = validate_int("max_iter", max_iter, minimum=1)
        self.regularization = validate_float(
            "regularization", regularization, minimum=0.0, min_inclusive=False
        )
        self.standardize = validate_bool("standardize", standardize)
        self.max_train_samples = validate_int(
            "max_train_samples", max_train_samples, minimum=1, allow_none=True
        )
        self.seed = validate_seed("seed", seed)
        self.tolerance = validate_float("tolerance", tolerance, minimum=0.0, min_inclusive=False)
        self.model = None
        self.classes = None
        self.num_features = None
        self.num_train = None

    # ------------------------------------------------------------------ fitting

    def fit(self, features, labels):
        """Fit on ``features`` ``[n, num_features]`` and integer ``labels`` ``[n]``; return self."""
        features, labels = self._check_data(features, labels, "features", "labels")
        self._fit(features, labels)
        return self

    def _fit(self, features, labels, labels_name="labels"):
        """Fit on checked arrays; returns the (possibly subsampled) arrays fitted."""
        LogisticRegression, StandardScaler, make_pipeline = _import_sklearn()
        features, labels = self._subsample(features, labels)
        classes = np.unique(labels)
        if classes.size < 2:
            raise ValueError(
                f"`{labels_name}` must contain at least 2 classes to fit a classifier"
                + (" (after subsampling to `max_train_samples`)" if self.max_train_samples else "")
                + f". Received: {labels_name} with classes {classes.tolist()}"
            )
        regression = LogisticRegression(
            C=self.regularization,
            solver="lbfgs",
            max_iter=self.max_iter,
            tol=self.tolerance,
            random_state=self.seed,
        )
        model = make_pipeline(StandardScaler(), regression) if self.standardize else regression
        model.fit(features, labels)
        self.model = model
        self.classes = np.asarray(regression.classes_, dtype=np.int64)
        self.num_features = features.shape[1]
        self.num_train = features.shape[0]
        return features, labels

    def predict(self, features):
        """The predicted class label of every row of ``features`` (an int64 array ``[n]``)."""
        features = self._check_fitted_features(features)
        return np.asarray(self.model.predict(features), dtype=np.int64)

    def score(self, features, labels):
        """Accuracy (a float in [0, 1]) of the fitted probe on ``features`` and ``labels``."""
        self._check_fitted("score")
        features, labels = self._check_data(features, labels, "features", "labels")
        predictions = self.predict(features)
        return float(np.mean(predictions == labels))

    def fit_score(self, train_features, train_labels, test_features, test_labels):
        """Fit on the training set and score both sets.

        Returns:
            A dict with ``train_accuracy`` (on the samples actually fitted, i.e.
            the subsample when ``max_train_samples`` applies), ``test_accuracy``,
            ``num_train`` (samples fitted), ``num_features`` and ``seconds``
            (wall-clock time of the fit: subsampling, scaling and lbfgs; scoring
            is not included).
        """
        train_features, train_labels = self._check_data(
            train_features, train_labels, "train_features", "train_labels"
        )
        test_features, test_labels = self._check_data(
            test_features, test_labels, "test_features", "test_labels"
        )
        if test_features.shape[1] != train_features.shape[1]:
            raise ValueError(
                "`test_features` must have as many features as `train_features` "
                f"({train_features.shape[1]}). "
                f"Received: test_features.shape={test_features.shape}"
            )
        start = time.perf_counter()
        fitted_features, fitted_labels = self._fit(train_features, train_labels, "train_labels")
        seconds = time.perf_counter() - start
        return {
            "train_accuracy": self.score(fitted_features, fitted_labels),
            "test_accuracy": self.score(test_features, test_labels),
            "num_train": self.num_train,
            "num_features": self.num_features,
            "seconds": seconds,
        }

    # ------------------------------------------------------------------ config

    def get_config(self):
        return {
            "max_iter": self.max_iter,
            "regularization": self.regularization,
            "standardize": self.standardize,
            "max_train_samples": self.max_train_samples,
            "seed": self.seed,
            "tolerance": self.tolerance,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"

    # ------------------------------------------------------------------ helpers

    def _subsample(self, features, labels):
        size = features.shape[0]
        if self.max_train_samples is not None and size > self.max_train_samples:
            rng = np.random.default_rng(self.seed)
            keep = np.sort(rng.choice(size, size=self.max_train_samples, replace=False))
            features, labels = features[keep], labels[keep]
        return features, labels

    def _check_fitted(self, method):
        if self.model is None:
            raise RuntimeError(
                f"Call `fit` (or `fit_score`) before `{method}`: the probe has not been "
                "fitted. Received: an unfitted LogisticRegressionProbe"
            )

    def _check_fitted_features(self, features, name="features"):
        self._check_fitted("predict")
        features = _as_features(features, name)
        if features.shape[1] != self.num_features:
            raise ValueError(
                f"`{name}` must have the {self.num_features} features the probe was fitted "
                f"on. Received: {name}.shape={features.shape}"
            )
        return features

    def _check_data(self, features, labels, features_name, labels_name):
        features = _as_features(features, features_name)
        labels = _as_labels(labels, labels_name)
        if labels.shape[0] != features.shape[0]:
            raise ValueError(
                f"`{labels_name}` must have one label per row of `{features_name}` "
                f"({features.shape[0]}). Received: {labels_name}.shape={labels.shape}"
            )
        return features, labels


def _to_numpy(value, name):
    try:
        return np.asarray(value)
    except Exception as error:  # e.g. a symbolic tensor
        raise ValueError(
            f"`{name}` must be a numpy array or an eager tensor ({error}). "
            f"Received: {name} of type {type(value).__name__}"
        ) from None


def _as_features(features, name):
    array = _to_numpy(features, name)
    if array.ndim != 2:
        raise ValueError(
            f"`{name}` must be 2-D [num_samples, num_features] (concatenate the codes of "
            f"the units along the last axis). Received: {name}.shape={array.shape}"
        )
    if array.dtype == bool or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise ValueError(
            f"`{name}` must hold real numbers (a float or integer dtype). "
            f"Received: {name}.dtype={array.dtype}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(
            f"`{name}` must have at least one sample and one feature. "
            f"Received: {name}.shape={array.shape}"
        )
    return validate_finite(name, array.astype(np.float64, copy=False))


def _as_labels(labels, name):
    array = _to_numpy(labels, name)
    if array.ndim != 1:
        raise ValueError(
            f"`{name}` must be 1-D integer class labels (use argmax for one-hot labels). "
            f"Received: {name}.shape={array.shape}"
        )
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"`{name}` must have an integer dtype (class indices). "
            f"Received: {name}.dtype={array.dtype}"
        )
    return array.astype(np.int64, copy=False)
