"""Downstream utility with strong baselines: does synthetic data help a classifier of the rare code?

Fixed in advance and used everywhere (here, in :mod:`rare_gan.candidates` and :mod:`rare_gan.realism`):

* **Test set: folds 9 and 10 together** (PTB-XL's validation and test folds), real ECGs only, never
  seen by a generator and never used to choose anything; every number comes with the count of
  test positives it rests on.
* **Everything else is chosen inside folds 1–8**: classifier settings are fixed, decision
  thresholds come from out-of-fold scores of the training set (F1-optimal), no early stopping.
* **Primary comparison**: GAN augmentation vs oversampling (jittered copies of the real positives)
  to the same positive fraction, test AUROC, paired bootstrap, Holm-corrected over every primary
  comparison of a classifier family.

Two classifier families, both run on every training-set variant (``real``, ``real_weighted``,
``oversample@r``, ``gan@r``, ``tstr``):

* ``features`` — gradient boosting (:func:`rare_gan.realism.feature_classifier`) on the feature set
  of :mod:`rare_gan.features`; seconds per fit;
* ``cnn`` — an inception/residual CNN pretrained once per data set and seed on *every*
  training-fold record as a multi-label classifier of their SCP codes (:func:`pretrained_cnn`),
  whose pooled features feed a per-code logistic-regression head fitted on each variant's
  training set (synthetic ECGs pass through the same frozen trunk). Beside the 12 leads it sees
  two *rhythm channels* (:func:`rhythm_channels`): the RR interval each sample lies in, from the
  lead-II R-peak detector. On the 1,999-record subset a CNN on the leads alone did not learn
  prematurity from 45 PAC positives (test AUROC 0.69 against the feature model's 0.96); with the
  channels it is within 0.05 (README *Downstream utility*).

:func:`low_data_study` subsamples the real training positives to k = 5, 10, 20 and all, fine-tunes
the GAN on those k only (from a pretraining that never saw the code's records) and compares real
only, class weighting, oversampling and GAN augmentation of the same k.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from rare_gan import atomic, evaluate, features, metrics, realism
from rare_gan.leads import N_LEADS, SAMPLING_RATE_HZ

log = logging.getLogger(__name__)

FAMILIES = ("features", "cnn")
BENCHMARK_ANCHORS = {"PAC": 0.956, "PVC": 0.991, "AFLT": 0.959, "CLBBB": 0.998, "AFIB": 0.986, "BIGU": 0.965,
                     "SVARR": 0.966}
"""Per-label test AUROC of the PTB-XL benchmark's xresnet1d101 (fold 10, multi-label over 71
statements, trained on ~17,000 records of folds 1–8): a ceiling from far more data, not a like-for-like."""
HEADLINE = ("auroc", "auprc", "accuracy", "f1", "sens_at_spec90", "balanced_accuracy")


# ---------------------------------------------------------------------------------------------
# Test split
# ---------------------------------------------------------------------------------------------
def test_split(task) -> tuple[np.ndarray, np.ndarray]:
    """The fixed test set: scaled ECGs and labels of folds 9 and 10 together."""
    return np.concatenate([task.x["val"], task.x["test"]]), np.concatenate([task.y["val"], task.y["test"]])


# ---------------------------------------------------------------------------------------------
# The two families: a representation of ECGs and a classifier on it
# ---------------------------------------------------------------------------------------------
def fit_feature_model(x: np.ndarray, y: np.ndarray, seed: int = 0, balanced: bool = False):
    """The feature classifier fitted on ``(x, y)``.

    ``balanced`` weights each positive by round(n_negative / n_positive) by repeating it that many
    times: for gradient-boosted trees nearly the same as that sample weight (leaves see the same
    gradient and hessian sums; only the minimum-leaf-size count differs), and it keeps the
    unweighted binning, 10× faster than scikit-learn's weighted one.
    """
    model = realism.feature_classifier(seed, len(y))
    if balanced:
        positives = np.flatnonzero(y == 1)
        factor = int(round(np.sum(y == 0) / max(len(positives), 1)))
        if factor > 1:
            order = np.r_[np.arange(len(y)), np.repeat(positives, factor - 1)]
            x, y = x[order], y[order]
    with threadpool_limits(1):
        return model.fit(x, y)


CNN_HEAD_C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
"""Inverse L2 strengths of the CNN's logistic head compared by :func:`cnn_budget_rows` (inner validation)."""
CNN_HEAD_C = 0.003
"""The CNN head's inverse L2 strength, chosen with the trunk's budget by ``python -m rare_gan.study
cnn_budget`` (README *CNN trunk budget*). The trunk learnt the training folds' labels, so their
embeddings separate the code better than unseen records' do; only a head fitted on trunk-seen
records and scored on records the trunk never saw (folds 1–7 → fold 8) measures that."""


CNN_HEAD_C_UNSEEN = 0.03
"""The head's inverse L2 strength for codes the trunk never learnt (the low-data study's trunk leaves out every
record of the studied codes), chosen by ``python -m rare_gan.study cnn_budget --cnn-unseen-head`` (inner validation
on fold 8 over the common codes that a folds-1–7 trunk was not trained on; README *CNN trunk budget*)."""


def _fit_linear_head(x: np.ndarray, y: np.ndarray, seed: int = 0, balanced: bool = False, c: float = CNN_HEAD_C):
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000, random_state=seed,
                                                               class_weight="balanced" if balanced else None))
    with threadpool_limits(1):
        return model.fit(x, y)


def scores_of(model, x: np.ndarray) -> np.ndarray:
    """Probability of the target class for representation rows ``x``."""
    with threadpool_limits(1):
        return model.predict_proba(x)[:, 1]


@dataclass
class Family:
    """One classifier family: how ECGs (mV) become rows, and the classifier fitted on the rows."""

    name: str
    represent: object  # callable(ecgs_mv) -> (n, d)
    fit: object  # callable(x, y, seed, balanced) -> model
    description: str = ""
    seconds: dict = field(default_factory=dict)
    fit_jobs: int = 1
    """Processes that the fits of one variant (its seeds and threshold folds) share (-1: every core)."""
    head_c: float | None = None
    """The CNN family's head strength (``fit``'s inverse L2 strength); None for other families."""


def feature_family() -> Family:
    """Gradient boosting on :mod:`rare_gan.features`; one variant's fits run on every core (each fit is
    single-threaded: on 1,500 rows two threads were no faster than one)."""
    return Family("features", lambda ecgs: features.extract(ecgs), fit_feature_model,
                  "gradient boosting on ECG features (amplitudes, band powers, RR/HRV, median beat, lead correlations)",
                  fit_jobs=-1)


def cnn_family(trunk_dir: str | Path, scale_mv: float, head_c: float = CNN_HEAD_C) -> Family:
    """The CNN family on a pretrained trunk (``trunk_dir`` from :func:`pretrained_cnn`); inputs scaled by
    ``scale_mv``; a logistic head of inverse L2 strength ``head_c``."""
    return Family("cnn", cnn_embedder(trunk_dir, scale_mv), functools.partial(_fit_linear_head, c=head_c),
                  "inception/residual CNN on the 12 leads and 2 rhythm channels, pretrained multi-label on every "
                  f"training-fold record, per-code logistic head (C {head_c:g}) on its pooled features", head_c=head_c)


def oof_scores(family: Family, x: np.ndarray, y: np.ndarray, seed: int = 0, folds: int = 3,
               balanced: bool = False) -> np.ndarray:
    """Out-of-fold scores of ``family``'s classifier over stratified ``folds``-fold CV of ``(x, y)``:
    what thresholds are chosen on, so that nothing is chosen on the test folds."""
    splits = _oof_splits(y, seed, folds)
    return _oof_assembled(_fit_all(family, [(x[train], y[train], seed, balanced) for train, _ in splits]), splits, x)


def _oof_assembled(fitted: list, splits: list, x: np.ndarray) -> np.ndarray:
    """Each fold's test rows scored by the model fitted on its training rows (``fitted`` from :func:`_fit_all`)."""
    scores = np.empty(len(x))
    for (model, _), (_, test) in zip(fitted, splits):
        scores[test] = scores_of(model, x[test])
    return scores


def _oof_splits(y: np.ndarray, seed: int, folds: int = 3) -> list:
    """The stratified (train, test) index pairs of :func:`oof_scores` (2 to ``folds`` folds, as the classes allow)."""
    folds = max(2, min(folds, int(np.sum(y == 1)), int(np.sum(y == 0))))
    return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros((len(y), 1)), y))


# ---------------------------------------------------------------------------------------------
# The CNN trunk: multi-label pretraining on every training-fold record
# ---------------------------------------------------------------------------------------------
CNN_BLOCKS = (64, 128, 128, 256, 256)
"""Inception/residual blocks of the CNN trunk, each after a 2× pooling: its receptive field spans ~5 s
(several RR intervals), and global average + maximum pooling keep a single ectopic beat visible."""
CNN_EPOCHS = {"test": 1, "quick": 5, "full": 100}
"""Multi-label pretraining epochs of the CNN trunk per profile (cosine-decayed Adam 1e-3, batch 64).
The full profile's is the budget that inner validation inside folds 1–8 chooses on PTB-XL
(``python -m rare_gan.study cnn_budget``: 30, 100 and 200 epochs compared on the fold-8 macro AUROC
over the common codes, the rule takes the smallest within 0.005 of the best; the figures are in the
README's utility section and ``outputs/reference/results.json``); no rare code and no test fold decides it."""


RHYTHM_CHANNELS = ("rr_relative", "rr_s")
"""The CNN's inputs beside the 12 leads: at every sample, the RR interval (lead-II R peaks,
:func:`rare_gan.physiology.detect_rpeaks`) that the sample lies in, relative to the record's median
RR minus 1 (a premature beat is negative, its pause positive), and in seconds minus 0.8; 0 before
the first and after the last detected R peak."""
RR_CENTRE_S = 0.8


def rhythm_channels(ecgs_mv: np.ndarray, fs: float = SAMPLING_RATE_HZ) -> np.ndarray:
    """:data:`RHYTHM_CHANNELS` ``(n, T, 2)`` float32 of ECGs ``(n, T, 12)`` in mV (~6 ms per ECG)."""
    from rare_gan import physiology

    x = np.asarray(ecgs_mv)
    out = np.zeros(x.shape[:2] + (len(RHYTHM_CHANNELS),), np.float32)
    for i, ecg in enumerate(x):
        peaks = physiology.detect_rpeaks(ecg[:, 1], fs) if np.isfinite(ecg).all() else ()
        if len(peaks) < 2:
            continue
        rr_s = np.diff(peaks) / fs
        spans = np.repeat(np.arange(len(rr_s)), np.diff(peaks))
        out[i, peaks[0]:peaks[-1], 0] = rr_s[spans] / np.median(rr_s) - 1.0
        out[i, peaks[0]:peaks[-1], 1] = rr_s[spans] - RR_CENTRE_S
    return out


def cnn_inputs(ecgs_mv: np.ndarray, scale_mv: float, rhythm: bool = True) -> np.ndarray:
    """What the CNN trunk reads: the ECGs scaled by ``scale_mv`` and, with ``rhythm``, :func:`rhythm_channels`."""
    scaled = (np.asarray(ecgs_mv, np.float32) / np.float32(scale_mv)).astype(np.float32)
    return np.concatenate([scaled, rhythm_channels(ecgs_mv)], axis=-1) if rhythm else scaled


def pretrained_cnn(task, seed: int = 0, exclude: Sequence[str] = (), cache_root: str | Path = "outputs/classifiers",
                   epochs: int = CNN_EPOCHS["full"], min_records: int = 3, rhythm: bool = True,
                   unlabelled: Sequence[str] = ()) -> Path:
    """Train (once, cached) the multi-label CNN trunk on the training folds of ``task``'s data set.

    Targets: every SCP code carried by at least ``min_records`` training-fold records. Records
    carrying a code of ``exclude`` are left out entirely (the low-data study excludes the code it
    studies, so the trunk never saw its positives). Codes of ``unlabelled`` are not targets, but their
    records stay. Inputs are scaled by ``task.scaler``; random
    circular shifts (±0.5 s) and gains (±20 %, leads only) augment every batch. With ``rhythm`` the
    trunk also reads :func:`rhythm_channels` (``rhythm=False``: the leads alone, for comparison).
    """
    import keras
    import tensorflow as tf

    from rare_gan import data, models, train

    meta = data.load_metadata(task.data_root)
    ids = task.ecg_ids["train"]
    codes = train.record_codes(meta, ids)
    excluded = {c.upper() for c in exclude}
    keep = np.array([not (set(c) & excluded) for c in codes])
    dropped = excluded | {c.upper() for c in unlabelled}
    vocabulary = [c for c in train.label_vocabulary(meta, min_records) if c not in dropped]
    key = hashlib.sha256(json.dumps([task.data_root, ids[keep].tolist(), vocabulary, seed, epochs,
                                     task.scaler.scale_mv, CNN_BLOCKS, "v2"] + (["rhythm-v1"] if rhythm else []))
                 .encode()).hexdigest()[:10]
    folder = Path(cache_root) / f"cnn_trunk-seed{seed}-{key}"
    if atomic.is_complete(folder):
        return folder
    x = cnn_inputs(task.scaler.inverse(task.x["train"][keep]), task.scaler.scale_mv, rhythm)
    y = train.multi_hot([c for c, k in zip(codes, keep) if k], vocabulary)
    keras.utils.set_random_seed(seed)
    trunk = models.build_classifier(n_leads=x.shape[-1], block_filters=CNN_BLOCKS, pooling="average_max")
    head = keras.layers.Dense(len(vocabulary), dtype="float32", name="codes")(trunk.get_layer("gap").output)
    model = keras.Model(trunk.input, head, name="multilabel_cnn")
    steps = epochs * max(1, len(x) // 64)
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, steps)),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True))

    leads = tf.constant(np.arange(x.shape[-1]) < task.x["train"].shape[-1], tf.float32)

    def augment(ecg, target):
        shift = tf.random.uniform((), -50, 51, dtype=tf.int32)
        gain = tf.random.uniform((), 0.8, 1.2)
        return tf.roll(ecg, shift, axis=0) * (1.0 + (gain - 1.0) * leads), target

    stream = (tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed).map(augment)
              .batch(64, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
    start = time.perf_counter()
    log.info("pretraining the CNN trunk on %d training-fold records, %d codes, %d epochs", len(x), len(vocabulary),
             epochs)
    model.fit(stream, epochs=epochs, verbose=0, shuffle=False, callbacks=[_epoch_bar(epochs, "CNN trunk")])
    folder.mkdir(parents=True, exist_ok=True)
    atomic.mark_incomplete(folder)
    embedder = keras.Model(model.input, model.get_layer("gap").output, name="cnn_trunk")
    with atomic.atomic_path(folder / "trunk.keras") as tmp:
        embedder.save(tmp)
    atomic.mark_complete(folder, {"codes": vocabulary, "excluded": sorted(excluded),
                                  "unlabelled": sorted(dropped - excluded), "n_records": int(len(x)),
                                  "epochs": epochs, "seconds": time.perf_counter() - start})
    return folder


def _epoch_bar(epochs: int, desc: str):
    """A Keras callback showing epochs done, rate, ETA and the last loss (tqdm)."""
    import keras
    from tqdm.auto import tqdm

    class EpochBar(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=epochs, unit="epoch", desc=desc, dynamic_ncols=True, mininterval=1.0)

        def on_epoch_end(self, epoch, logs=None):
            self.bar.set_postfix(loss=f"{(logs or {}).get('loss', float('nan')):.4f}", refresh=False)
            self.bar.update(1)

        def on_train_end(self, logs=None):
            self.bar.close()

    return EpochBar()


CNN_BUDGET_TOLERANCE = 0.005
""":func:`choose_cnn_epochs` takes the smallest budget within this macro AUROC of the best one."""


def cnn_budget_rows(task, epochs: Sequence[int], seed: int = 0, cache_root: str | Path = "outputs/classifiers",
                    min_positives: int = 5, report: Sequence[str] = ("PAC", "PVC", "CLBBB", "AFIB"),
                    head_cs: Sequence[float] = CNN_HEAD_C_GRID, unseen: bool = False) -> list[dict]:
    """Inner validation of the trunk's pretraining budget and the head's L2 strength, inside folds 1–8 only.

    For each budget, the trunk is pretrained on folds 1–7 (:func:`pretrained_cnn`) and a logistic head
    per code and inverse L2 strength of ``head_cs`` is fitted on their pooled features and scored on
    fold 8. The criterion is the macro AUROC over every code with at least ``min_positives`` fold-8
    positives (common classes, no rare code decides); each budget's row holds it for every C
    (``macro_auroc_common_by_c``) and, as ``macro_auroc_common`` and ``head_c``, its best C's (ties:
    the smaller C). The codes of ``report`` are listed too at that C, with their (few) fold-8 positives.

    ``unseen``: the head for codes the trunk never learnt (the low-data study's trunk never saw its codes).
    Every other common code (sorted; :func:`unseen_codes`) is then not a target of the trunk, and the
    criterion is the macro AUROC over those codes alone (their names in the row's ``unseen_codes``).
    """
    from sklearn.metrics import roc_auc_score

    from rare_gan import data, train

    meta = data.load_metadata(task.data_root)
    ids = task.ecg_ids["train"]
    inner = meta.database.loc[ids, "strat_fold"].to_numpy() <= 7
    fit_task = dataclasses.replace(task, x={"train": task.x["train"][inner]}, ecg_ids={"train": ids[inner]})
    labels = {part: train.record_codes(meta, ids[mask]) for part, mask in (("fit", inner), ("check", ~inner))}
    targets = {}  # code -> (fit labels, check labels), for the codes a head can be fitted and scored on
    for code in train.label_vocabulary(meta, 3):
        y_fit = np.array([code in c for c in labels["fit"]], int)
        y_check = np.array([code in c for c in labels["check"]], int)
        if y_fit.sum() >= 2 and 0 < y_check.sum() < len(y_check) and (y_check.sum() >= min_positives or code in report):
            targets[code] = (y_fit, y_check)
    common = [code for code, (_, y) in targets.items() if y.sum() >= min_positives]
    judged = unseen_codes(common) if unseen else common
    mv = task.scaler.inverse(task.x["train"])
    rows = []
    for budget in epochs:
        trunk = pretrained_cnn(fit_task, seed, cache_root=cache_root, epochs=budget, unlabelled=judged if unseen else ())
        seconds = json.loads((trunk / atomic.COMPLETE_MARKER).read_text())["seconds"]  # also when cached
        embed = cnn_embedder(trunk, task.scaler.scale_mv)
        x_fit, x_check = embed(mv[inner]), embed(mv[~inner])
        aucs = {c: {code: float(roc_auc_score(y_check, scores_of(_fit_linear_head(x_fit, y_fit, seed, c=c), x_check)))
                    for code, (y_fit, y_check) in targets.items() if code in judged or code in report}
                for c in head_cs}
        by_c = {c: float(np.mean([aucs[c][code] for code in judged])) if judged else float("nan") for c in head_cs}
        best = min(head_cs, key=lambda c: (-np.nan_to_num(by_c[c], nan=-np.inf), c))
        rows.append({"epochs": int(budget), "seed": seed, "trunk_seconds": seconds, "n_fit_records": int(inner.sum()),
                     "n_check_records": int((~inner).sum()), "macro_auroc_common": by_c[best], "head_c": best,
                     "macro_auroc_common_by_c": {f"{c:g}": v for c, v in by_c.items()},
                     "n_common_codes": len(judged), "min_positives": min_positives,
                     "codes": {c: {"auroc": aucs[best].get(c), "n_check_positives": int(targets[c][1].sum())
                                   if c in targets else 0} for c in report}}
                    | ({"unseen_codes": judged} if unseen else {}))
        log.info("CNN budget %d epochs%s: macro AUROC %.3f over %d codes (fold 8), head C %g", budget,
                 ", codes unseen by the trunk" if unseen else "", rows[-1]["macro_auroc_common"], len(judged), best)
    return rows


def unseen_codes(common: Sequence[str]) -> list[str]:
    """The common codes held out of the trunk's targets for the unseen-code head choice: every other one of
    the sorted list (the 2nd, 4th, …), a rule fixed before any result."""
    return sorted(common)[1::2]


def choose_cnn_epochs(rows: Sequence[dict], tolerance: float = CNN_BUDGET_TOLERANCE) -> int:
    """The smallest budget whose inner-validation macro AUROC is within ``tolerance`` of the best one's."""
    scored = [r for r in rows if np.isfinite(r["macro_auroc_common"])]
    if not scored:
        raise ValueError("no budget has a macro AUROC: fold 8 holds no code with enough positives")
    best = max(r["macro_auroc_common"] for r in scored)
    return min(r["epochs"] for r in scored if r["macro_auroc_common"] >= best - tolerance)


def choose_cnn_head_c(rows: Sequence[dict], tolerance: float = CNN_BUDGET_TOLERANCE) -> float:
    """The head's inverse L2 strength chosen with the budget: the best one of :func:`choose_cnn_epochs`'s row."""
    epochs = choose_cnn_epochs(rows, tolerance)
    return next(r["head_c"] for r in rows if r["epochs"] == epochs and np.isfinite(r["macro_auroc_common"]))


def cnn_embedder(trunk_dir: str | Path, scale_mv: float):
    """A function ECGs in mV (n, 1000, 12) → pooled CNN features (n, 512: average and maximum), batched;
    the rhythm channels are added when the trunk reads them (its input width says so)."""
    import keras
    import tensorflow as tf

    from rare_gan import models  # noqa: F401  (custom layers)

    trunk = keras.saving.load_model(Path(trunk_dir) / "trunk.keras", compile=False)
    step = tf.function(lambda x: trunk(x, training=False),  # one trace for every batch size
                       input_signature=[tf.TensorSpec((None, *trunk.input.shape[1:]), tf.float32)])
    rhythm = trunk.input.shape[-1] > N_LEADS

    def embed(ecgs_mv: np.ndarray, batch: int = 256) -> np.ndarray:
        x = cnn_inputs(ecgs_mv, scale_mv, rhythm)
        parts = [step(tf.constant(x[i:i + batch])).numpy() for i in range(0, len(x), batch)]
        return np.concatenate(parts) if parts else np.zeros((0, trunk.output.shape[-1]), np.float32)

    return embed


# ---------------------------------------------------------------------------------------------
# Training-set variants, fits and the utility table
# ---------------------------------------------------------------------------------------------
@dataclass
class Rows:
    """One family's representation of the real data of a task (computed once, shared by every variant)."""

    train: np.ndarray
    train_y: np.ndarray
    test: np.ndarray
    test_y: np.ndarray
    train_positives_mv: np.ndarray


def real_rows(family: Family, task, positives: np.ndarray | None = None) -> Rows:
    """``family``'s rows of the task's training folds and of the test folds 9–10 (features are cached)."""
    mv = {s: task.scaler.inverse(task.x[s]) for s in task.x}
    if family.name == "features":
        rep = {s: features.cached(mv[s], tag=s) for s in mv}
    else:
        rep = {s: family.represent(mv[s]) for s in mv}
    test = np.concatenate([rep["val"], rep["test"]])
    test_y = np.concatenate([task.y["val"], task.y["test"]])
    y = task.y["train"]
    keep = np.ones(len(y), bool) if positives is None else (y == 0) | np.isin(np.arange(len(y)), positives)
    return Rows(rep["train"][keep], y[keep], test, test_y, mv["train"][keep][y[keep] == 1])


def variant_rows(family: Family, rows: Rows, variant: str, seed: int, synthetic_mv: np.ndarray | None = None,
                 synthetic_rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """(x, y, balanced) of one training-set variant in ``family``'s representation."""
    rng = np.random.default_rng([seed, 17])
    x, y = rows.train, rows.train_y
    if variant in ("real", "real_weighted"):
        return x, y, variant == "real_weighted"
    kind, _, ratio = variant.partition("@")
    if kind == "oversample":
        picks = rng.integers(0, len(rows.train_positives_mv), size=evaluate.n_to_add(len(y), int(y.sum()), float(ratio)))
        extra = family.represent(evaluate.jitter(rows.train_positives_mv[picks], rng, noise=0.01, clip=False))
    elif kind in ("gan", "tstr"):
        if synthetic_rows is None:
            if synthetic_mv is None or len(synthetic_mv) == 0:
                raise ValueError(f"variant {variant!r} needs synthetic ECGs")
            synthetic_rows = family.represent(synthetic_mv)
        if kind == "tstr":
            return np.concatenate([x[y == 0], synthetic_rows]), np.r_[y[y == 0], np.ones(len(synthetic_rows))], False
        count = evaluate.n_to_add(len(y), int(y.sum()), float(ratio))
        extra = synthetic_rows[rng.choice(len(synthetic_rows), size=count, replace=count > len(synthetic_rows))]
    else:
        raise ValueError(f"unknown variant {variant!r}")
    return np.concatenate([x, extra]), np.r_[y, np.ones(len(extra))], False


@dataclass
class Fit:
    """Test scores of one family × variant over classifier seeds, with training-chosen thresholds."""

    family: str
    variant: str
    test_scores: np.ndarray  # (n_seeds, n_test)
    thresholds: np.ndarray  # (n_seeds,)
    seconds_per_fit: float


def fit_variant(family: Family, rows: Rows, variant: str, seeds: Sequence[int], synthetic_mv=None,
                label: str | None = None, thresholds: bool = True) -> Fit:
    """Fit ``variant`` once per seed. The decision threshold maximises F1 on 3-fold out-of-fold scores
    of the variant's training set (first seed; reused for the others), or is 0.5 without ``thresholds``
    (and when a class has fewer than 2 members, so that no out-of-fold split exists). The fits share
    ``family.fit_jobs`` processes."""
    synthetic_rows = family.represent(synthetic_mv) if synthetic_mv is not None and len(synthetic_mv) else None
    sets = [variant_rows(family, rows, variant, seed, synthetic_mv, synthetic_rows) for seed in seeds]
    x, y, balanced = sets[0]
    folds = _oof_splits(y, seeds[0]) if thresholds and min(np.sum(y == 1), np.sum(y == 0)) >= 2 else []
    jobs = [(xs, ys, seed, bs) for (xs, ys, bs), seed in zip(sets, seeds)]
    done = _fit_all(family, jobs + [(x[train], y[train], seeds[0], balanced) for train, _ in folds])
    cut = metrics.choose_threshold(y, _oof_assembled(done[len(seeds):], folds, x), rule="f1") if folds else 0.5
    scores = np.stack([scores_of(model, rows.test) for model, _ in done[:len(seeds)]])
    return Fit(family.name, label or variant, scores, np.full(len(seeds), cut),
               float(np.mean([seconds for _, seconds in done[:len(seeds)]])))


def _fit_all(family: Family, jobs: list) -> list:
    """``family.fit(x, y, seed, balanced)`` of every job as (model, seconds), on ``family.fit_jobs`` processes."""
    if family.fit_jobs != 1 and len(jobs) > 1:
        from joblib import Parallel, delayed

        return Parallel(n_jobs=family.fit_jobs)(delayed(_timed_fit)(family.fit, *job) for job in jobs)
    return [_timed_fit(family.fit, *job) for job in jobs]


def _timed_fit(fit, x, y, seed, balanced):
    start = time.perf_counter()
    model = fit(x, y, seed, balanced)
    return model, time.perf_counter() - start


def utility_table(rows: Rows, fits: Sequence[Fit], n_boot: int, seed: int = 0) -> pd.DataFrame:
    """Long table: family × variant × metric, seed-averaged value with its stratified-bootstrap 95% CI."""
    frames = []
    for f in fits:
        table = metrics.bootstrap_metrics(rows.test_y, f.test_scores, f.thresholds, n_boot=n_boot, seed=seed)
        frames.append(table.assign(family=f.family, variant=f.variant, seconds_per_fit=f.seconds_per_fit)
                      .reset_index(names="metric"))
    return pd.concat(frames, ignore_index=True)


def compare(rows: Rows, a: Fit, b: Fit, n_boot: int, metric: str = "auroc") -> dict:
    """Paired bootstrap of ``a`` − ``b`` on the same test records."""
    diff = metrics.paired_bootstrap_difference(rows.test_y, a.test_scores, b.test_scores, a.thresholds, b.thresholds,
                                               metric=metric, n_boot=n_boot)
    return {"family": a.family, "a": a.variant, "b": b.variant, "metric": metric, **diff}


def primary_comparisons(rows_by_family: dict[str, Rows], fits: Sequence[Fit], n_boot: int) -> pd.DataFrame:
    """The pre-specified primary test: every ``<run>:gan@r`` vs ``oversample@r`` per family, Holm within the family."""
    out = []
    for family, rows in rows_by_family.items():
        mine = {f.variant: f for f in fits if f.family == family}
        part = [compare(rows, f, mine[f"oversample@{f.variant.split('@')[1]}"], n_boot)
                for name, f in mine.items() if ":gan@" in name and f"oversample@{name.split('@')[1]}" in mine]
        frame = pd.DataFrame(part)
        if len(frame):
            frame["p_holm"] = metrics.holm_adjust(frame["p_value"])
            frame["significant_holm"] = frame["p_holm"] < 0.05
        out.append(frame)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


# ---------------------------------------------------------------------------------------------
# The low-data study
# ---------------------------------------------------------------------------------------------
def subsample_positives(task, k: int | None, draw: int) -> np.ndarray:
    """Indices (into the training fold) of ``k`` real training positives drawn with seed (draw, k); all if None.

    Only folds 1–8 are ever drawn from: the test folds are not in ``task.x["train"]``.
    """
    positives = np.flatnonzero(task.y["train"] == 1)
    if k is None or k >= len(positives):
        return positives
    return np.sort(np.random.default_rng([draw, k, 101]).choice(positives, k, replace=False))


__all__ = ["FAMILIES", "BENCHMARK_ANCHORS", "test_split", "fit_feature_model", "scores_of", "Family",
           "feature_family", "cnn_family", "oof_scores", "pretrained_cnn", "cnn_budget_rows", "choose_cnn_epochs",
           "choose_cnn_head_c", "cnn_embedder", "RHYTHM_CHANNELS", "rhythm_channels", "cnn_inputs", "Rows", "real_rows",
           "variant_rows", "Fit", "fit_variant", "utility_table", "compare", "primary_comparisons",
           "subsample_positives"]
