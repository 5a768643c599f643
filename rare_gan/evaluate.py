"""Downstream utility: does synthetic data help a target-vs-rest ECG classifier on held-out real data?

Task (always state it with the numbers): binary classification *target SCP code(s) vs every other
record*, one 1D inception/residual CNN (:func:`rare_gan.models.build_classifier`), trained on
``strat_fold`` 1–8, early-stopped on fold 9, tested on fold 10 — real ECGs only in validation and
test. Training-set variants:

* ``real``            real training folds as they are (the baseline);
* ``real_weighted``   the same with class-balanced loss weights (a second cheap baseline);
* ``oversample@r``    real positives duplicated with jitter (amplitude ×0.9–1.1, shift ±0.2 s,
  0.01 mV noise) until positives make up a fraction ``r`` of the training set;
* ``gan@r``           vetted synthetic positives added until positives make up ``r``;
* ``tstr``            train on synthetic positives + real negatives, test on real.

Synthetic data counts as useful only when ``gan@r`` beats both ``real`` and ``oversample@r`` with a
paired bootstrap CI that excludes zero.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from rare_gan import atomic
from rare_gan.data import PTBXL, SPLIT_FOLDS, SignalScaler, load_metadata, load_signals

log = logging.getLogger(__name__)

SPLITS = tuple(SPLIT_FOLDS)


@dataclass
class Task:
    """Target-vs-rest data on the real folds: scaled signals, labels and ids per split."""

    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    ecg_ids: dict[str, np.ndarray]
    scaler: SignalScaler
    codes: list[str]
    data_root: str
    demo: bool

    @property
    def description(self) -> str:
        """The task in one sentence (print it next to every number)."""
        counts = ", ".join(f"{s} {int(self.y[s].sum())}/{len(self.y[s])}" for s in SPLITS)
        return (f"{'+'.join(self.codes)} vs rest, 12-lead 10 s ECGs at 100 Hz, folds 1-8 train / 9 val / 10 test "
                f"(positives/records: {counts}){' — DEMO data, not PTB-XL' if self.demo else ''}")

    def positives_mv(self, split: str) -> np.ndarray:
        """The real target ECGs of ``split`` in mV."""
        return self.scaler.inverse(self.x[split][self.y[split] == 1])

    def unseen_positives_mv(self) -> np.ndarray:
        """The real target ECGs no generator trains on (folds 9 and 10) in mV."""
        return np.concatenate([self.positives_mv("val"), self.positives_mv("test")])


def load_task(data_dir: str | None, target: str | Sequence[str], meta: PTBXL | None = None) -> Task:
    """Load every on-disk record, label it target-vs-rest and scale with a scaler fit on folds 1–8."""
    meta = meta or load_metadata(data_dir, demo_fallback=True)
    codes = meta.validate_codes(target)
    positive = meta.has_codes(codes)
    signals = load_signals(meta, meta.select(on_disk=True), progress=False)
    split = meta.database.loc[signals.ecg_ids, "split"].to_numpy()
    labels = positive.loc[signals.ecg_ids].to_numpy().astype(np.int32)
    mv = np.asarray(signals.mv)
    scaler = SignalScaler.fit(mv[split == "train"])
    x, y, ids = {}, {}, {}
    for s in SPLITS:
        rows = split == s
        x[s], y[s], ids[s] = scaler.transform(mv[rows]), labels[rows], signals.ecg_ids[rows]
    return Task(x=x, y=y, ecg_ids=ids, scaler=scaler, codes=codes, data_root=str(meta.root), demo=meta.demo)


# ----------------------------------------------------------------------------------------------
# Training-set variants
# ----------------------------------------------------------------------------------------------
def n_to_add(n_total: int, n_pos: int, ratio: float) -> int:
    """Positives to add so that positives make up ``ratio`` of the set (0 if already there)."""
    if not 0 < ratio < 1:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    return max(0, math.ceil((ratio * n_total - n_pos) / (1 - ratio)))


def jitter(x: np.ndarray, rng: np.random.Generator, max_shift: int = 20, scale: float = 0.1,
           noise: float = 0.003, clip: bool = True) -> np.ndarray:
    """Classical augmentation of scaled ECGs: amplitude ×(1±scale), circular shift ≤ ``max_shift`` samples
    (0.2 s at 100 Hz), Gaussian noise of SD ``noise`` (scaled units; ≈0.01 mV), clipped to [-1, 1]
    unless ``clip`` is False (for ECGs in mV)."""
    gains = rng.uniform(1 - scale, 1 + scale, size=(len(x), 1, 1)).astype(np.float32)
    shifts = rng.integers(-max_shift, max_shift + 1, size=len(x))
    shifted = np.stack([np.roll(e, s, axis=0) for e, s in zip(x, shifts)]) if len(x) else x
    out = shifted * gains + rng.normal(0, noise, size=x.shape).astype(np.float32)
    return np.clip(out, -1, 1) if clip else out


def training_set(task: Task, variant: str, seed: int, synthetic: np.ndarray | None = None):
    """(x, y, class_weight) for a variant name: real, real_weighted, oversample@r, gan@r, tstr."""
    x, y = task.x["train"], task.y["train"]
    rng = np.random.default_rng([seed, 17])
    if variant == "real":
        return x, y, None
    if variant == "real_weighted":
        pos = max(int(y.sum()), 1)
        return x, y, {0: len(y) / (2 * (len(y) - pos)), 1: len(y) / (2 * pos)}
    kind, _, ratio = variant.partition("@")
    if kind == "oversample":
        positives = x[y == 1]
        picks = rng.integers(0, len(positives), size=n_to_add(len(y), int(y.sum()), float(ratio)))
        extra = jitter(positives[picks], rng)
    elif kind in ("gan", "tstr"):
        if synthetic is None or len(synthetic) == 0:
            raise ValueError(f"variant {variant!r} needs synthetic ECGs")
        if kind == "tstr":
            negatives = y == 0
            return (np.concatenate([x[negatives], synthetic]),
                    np.concatenate([y[negatives], np.ones(len(synthetic), np.int32)]), None)
        count = n_to_add(len(y), int(y.sum()), float(ratio))
        extra = synthetic[rng.choice(len(synthetic), size=count, replace=count > len(synthetic))]
    else:
        raise ValueError(f"unknown variant {variant!r}")
    return np.concatenate([x, extra]), np.concatenate([y, np.ones(len(extra), np.int32)]), None


# ----------------------------------------------------------------------------------------------
# The classifier
# ----------------------------------------------------------------------------------------------
def train_classifier(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                     epochs: int, seed: int, batch_size: int = 64, class_weight: dict | None = None,
                     patience: int = 5, learning_rate: float = 1e-3):
    """Fit :func:`rare_gan.models.build_classifier` (scaled ECGs → logit), early-stopped on validation AUROC.

    Returns the model with the weights of its best validation epoch.
    """
    import keras
    import tensorflow as tf

    from rare_gan import models

    keras.utils.set_random_seed(seed)
    model = models.build_classifier()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  metrics=[keras.metrics.AUC(from_logits=True, name="auroc")])
    data = (tf.data.Dataset.from_tensor_slices((x_train, y_train.astype(np.float32)))
            .shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
            .batch(batch_size).prefetch(tf.data.AUTOTUNE))
    has_both = 0 < int(y_val.sum()) < len(y_val)
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_auroc", mode="max", patience=patience,
                                               restore_best_weights=True)] if has_both else []
    model.fit(data, validation_data=(x_val, y_val.astype(np.float32)), epochs=epochs, verbose=0, shuffle=False,
              class_weight=class_weight, callbacks=callbacks)
    return model


def predict_proba(model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Probabilities of the target class for scaled ECGs (n, 1000, 12)."""
    logits = model.predict(x, batch_size=batch_size, verbose=0).reshape(-1)
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


def synthetic_tag(ecgs: np.ndarray) -> str:
    """A short digest of a set of synthetic ECGs: the ``synthetic_tag`` that keys cached classifiers."""
    return hashlib.sha256(ecgs.tobytes()).hexdigest()[:16]


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fit_or_load(task: Task, variant: str, seed: int, epochs: int, cache_dir: str | Path | None,
                synthetic: np.ndarray | None = None, synthetic_tag: str = ""):
    """Train a classifier for ``variant``/``seed`` or load it from ``cache_dir``; return (model, val/test scores)."""
    import keras

    from rare_gan import models  # noqa: F401  (custom layers for loading)

    key = _key(task.data_root, task.codes, variant, seed, epochs, synthetic_tag, len(task.y["train"]))
    folder = Path(cache_dir) / f"{variant.replace('@', '_at_')}_seed{seed}_{key}" if cache_dir else None
    if folder is not None and atomic.is_complete(folder):
        model = keras.saving.load_model(folder / "classifier.keras", compile=False)
        scores = json.loads((folder / "scores.json").read_text())
        return model, {s: np.asarray(v) for s, v in scores.items()}
    x, y, weights = training_set(task, variant, seed, synthetic)
    model = train_classifier(x, y, task.x["val"], task.y["val"], epochs=epochs, seed=seed, class_weight=weights)
    scores = {s: predict_proba(model, task.x[s]) for s in ("val", "test")}
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        atomic.mark_incomplete(folder)
        with atomic.atomic_path(folder / "classifier.keras") as tmp:
            model.save(tmp)
        atomic.write_json(folder / "scores.json", {s: v.tolist() for s, v in scores.items()})
        atomic.mark_complete(folder, {"variant": variant, "seed": seed, "epochs": epochs, "n_train": len(y),
                                      "n_train_pos": int(y.sum()), "task": task.description})
    return model, scores


@dataclass
class VariantResult:
    """Validation/test scores of one variant over seeds, with the val-chosen thresholds."""

    variant: str
    test_scores: np.ndarray  # (n_seeds, n_test)
    thresholds: np.ndarray  # (n_seeds,)


def run_variant(task: Task, variant: str, seeds: Sequence[int], epochs: int, cache_dir: str | Path | None,
                synthetic: np.ndarray | None = None, synthetic_tag: str = "", label: str | None = None) -> VariantResult:
    """Train ``variant`` once per seed (reported as ``label``); thresholds maximise F1 on the validation fold."""
    from rare_gan import metrics

    test, thresholds = [], []
    for seed in seeds:
        _, scores = fit_or_load(task, variant, seed, epochs, cache_dir, synthetic, synthetic_tag)
        test.append(scores["test"])
        thresholds.append(metrics.choose_threshold(task.y["val"], scores["val"], rule="f1"))
    return VariantResult(label or variant, np.stack(test), np.asarray(thresholds))


def utility_table(task: Task, results: Sequence[VariantResult], n_boot: int, seed: int = 0) -> pd.DataFrame:
    """Long table: variant × metric with the seed-averaged value and its bootstrap 95% CI on fold 10."""
    from rare_gan import metrics

    frames = []
    for r in results:
        table = metrics.bootstrap_metrics(task.y["test"], r.test_scores, r.thresholds, n_boot=n_boot, seed=seed)
        frames.append(table.assign(variant=r.variant).reset_index(names="metric"))
    return pd.concat(frames, ignore_index=True)


def compare_variants(task: Task, a: VariantResult, b: VariantResult, n_boot: int, metric: str = "auroc") -> dict:
    """Paired bootstrap of ``a`` − ``b`` on the same test records (``significant``: CI excludes 0)."""
    from rare_gan import metrics

    diff = metrics.paired_bootstrap_difference(task.y["test"], a.test_scores, b.test_scores, a.thresholds,
                                               b.thresholds, metric=metric, n_boot=n_boot)
    return {"a": a.variant, "b": b.variant, "metric": metric, **diff}
