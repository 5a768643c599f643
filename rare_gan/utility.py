"""Downstream utility with a strong baseline: does synthetic data help a classifier of the rare code?

Fixed in advance and used everywhere (:mod:`rare_gan.evaluate`, :mod:`rare_gan.candidates`,
:mod:`rare_gan.realism`):

* **Test set: folds 9 and 10 together** (PTB-XL's validation and test folds), real ECGs only,
  never seen by a generator and never used to select anything; every number is reported with the
  count of test positives it rests on.
* **Model selection inside folds 1–8 only**: fixed classifier settings, thresholds from
  out-of-fold scores of the training folds.

Classifier families:

* ``features`` — gradient boosting (:func:`rare_gan.realism.feature_classifier`) on the ECG feature
  set of :mod:`rare_gan.features` (amplitudes, band powers, RR/HRV, median-beat morphology,
  inter-lead correlations); seconds per fit.
* ``cnn`` — the inception/residual CNN of :func:`rare_gan.models.build_classifier` (see
  :mod:`rare_gan.evaluate`).
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from rare_gan import features, realism

FAMILIES = ("features", "cnn")


def task_features(task) -> dict[str, np.ndarray]:
    """Feature matrices of every record of ``task`` per split ('train', 'val', 'test'), cached on disk."""
    return {s: features.cached(task.scaler.inverse(task.x[s]), tag=s) for s in task.x}


def fit_feature_model(x: np.ndarray, y: np.ndarray, seed: int = 0, balanced: bool = False):
    """The feature classifier fitted on ``(x, y)``; ``balanced`` weights the classes inversely to their size."""
    model = realism.feature_classifier(seed, len(y))
    if balanced:
        model.set_params(class_weight="balanced")
    with threadpool_limits(1):
        return model.fit(x, y)


def feature_scores(model, x: np.ndarray) -> np.ndarray:
    """Probability of the target class for feature rows ``x``."""
    with threadpool_limits(1):
        return model.predict_proba(x)[:, 1]


def oof_scores(x: np.ndarray, y: np.ndarray, seed: int = 0, folds: int = 5, balanced: bool = False) -> np.ndarray:
    """Out-of-fold scores of the feature classifier over stratified ``folds``-fold CV of ``(x, y)``.

    What a threshold or any other choice is made on, so that nothing is chosen on the test folds.
    """
    scores = np.empty(len(y))
    folds = max(2, min(folds, int(np.sum(y == 1)), int(np.sum(y == 0))))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        scores[test] = feature_scores(fit_feature_model(x[train], y[train], seed, balanced), x[test])
    return scores


__all__ = ["FAMILIES", "task_features", "fit_feature_model", "feature_scores", "oof_scores"]
