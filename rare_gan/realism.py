"""Realism yardstick: can a strong classifier tell synthetic ECGs from real ones, and why?

* :func:`c2st` — classifier two-sample test with gradient boosting on the rich feature set of
  :mod:`rare_gan.features`: balanced classes, repeated stratified cross-validation, AUROC of the
  out-of-fold scores (0.5 = indistinguishable), its null distribution from label permutations
  (``null_sd``: how far from 0.5 two samples of one distribution land at this n), and the single
  features that separate the sets most (univariate AUROC), so a report can say *why*;
* :func:`cnn_c2st` — the same question asked by a small CNN on the raw (scaled) signal;
* :func:`controls` — the yardstick's own calibration on real data: training-fold positives vs
  unseen positives, a common class (NORM) split the same way at the same n, and jittered copies of
  the training positives (≈ 0.5, and the memorisation check must flag them as near-copies);
* :func:`tstr` — train on synthetic positives + real negatives of folds 1–8, test on real folds
  9–10, next to the same feature classifier trained on the real positives;
* :func:`load_reference` and :func:`evaluate_synthetic` — all of it for one code and one synthetic
  set (one row of ``results.json``).

Test set, fixed in advance and used everywhere: folds 9 and 10 together ("unseen"); nothing is
selected or tuned on them, and no generator ever sees them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from joblib import Parallel, delayed
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from threadpoolctl import threadpool_limits

from rare_gan import features

TOP_FEATURES = 5


@dataclass(frozen=True)
class Effort:
    """How hard the two-sample tests try: cross-validation repeats, label permutations for the null,
    CNN epochs and folds. The default is the study's; the ``test`` profile only checks the mechanics."""

    repeats: int = 5
    n_null: int = 10
    cnn_epochs: int = 15
    cnn_folds: int = 5


EFFORT = {"test": Effort(1, 2, 1, 2), "quick": Effort(3, 3, 5, 3), "full": Effort()}


def feature_classifier(seed: int = 0, n_train: int = 1000) -> HistGradientBoostingClassifier:
    """The gradient-boosting classifier used for C2ST, TSTR and the utility study's feature model.

    Small leaves for small sets (``min_samples_leaf`` = 5 below 200 training rows, else 10),
    shrinkage 0.1, 100 trees of 15 leaves, half the features per split, 63 bins per feature: fixed
    in advance, not tuned per result.
    """
    return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, max_leaf_nodes=15, max_bins=63,
                                          min_samples_leaf=5 if n_train < 200 else 10, l2_regularization=1.0,
                                          max_features=0.5, early_stopping=False, random_state=seed)


@dataclass
class C2STResult:
    """Outcome of one classifier two-sample test (AUROC 0.5 = the classifier cannot tell the sets apart)."""

    auroc: float
    auroc_sd: float
    """SD over the cross-validation repeats (different subsamples and fold splits)."""
    null_mean: float
    null_sd: float
    """SD of the AUROC when the labels are permuted: the spread of a real-vs-real result at this n."""
    p_value: float
    n_per_class: int
    top_features: list[dict] = field(default_factory=list)
    """The features that separate most on their own: name, univariate AUROC (≥ 0.5), both medians."""

    def to_dict(self) -> dict:
        return asdict(self)


def _oof_auroc(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> float:
    """AUROC of out-of-fold gradient-boosting scores over one stratified ``folds``-fold split that
    keeps each group (an ECG and its copies) inside one fold."""
    scores = np.empty(len(y))
    split = StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(x, y, groups)
    with threadpool_limits(1):
        for k, (train, test) in enumerate(split):
            model = feature_classifier(seed + k, len(train)).fit(x[train], y[train])
            scores[test] = model.predict_proba(x[test])[:, 1]
    return float(roc_auc_score(y, scores))


def univariate_separation(a: np.ndarray, b: np.ndarray, names: list[str], top: int = TOP_FEATURES) -> list[dict]:
    """The ``top`` features with the largest |AUROC − 0.5| when used alone (NaN rows ignored per feature)."""
    rows = []
    for j, name in enumerate(names):
        fa, fb = a[:, j][np.isfinite(a[:, j])], b[:, j][np.isfinite(b[:, j])]
        if len(fa) < 2 or len(fb) < 2:
            continue
        u = stats.mannwhitneyu(fb, fa).statistic / (len(fa) * len(fb))
        rows.append({"feature": name, "auroc": float(max(u, 1 - u)), "real_median": float(np.median(fa)),
                     "synthetic_median": float(np.median(fb)),
                     "nan_real": float(np.isnan(a[:, j]).mean()), "nan_synthetic": float(np.isnan(b[:, j]).mean())})
    return sorted(rows, key=lambda r: -r["auroc"])[:top]


def c2st(real: np.ndarray, synthetic: np.ndarray, seed: int = 0, repeats: int = 5, folds: int = 5,
         n_null: int = 10, n_max: int | None = 500, names: list[str] | None = None,
         pairs: np.ndarray | None = None, n_jobs: int = -1) -> C2STResult:
    """Strong classifier two-sample test on feature matrices ``(n, d)`` (see :func:`rare_gan.features.extract`).

    Each repeat draws ``n = min(len(real), len(synthetic), n_max)`` rows per class without
    replacement, then scores every row out of fold (stratified ``folds``-fold); ``auroc`` is the
    mean over ``repeats``. The null: ``n_null`` repeats with the class labels permuted; ``p_value``
    = (1 + #{null ≥ observed mean}) / (1 + n_null). ``pairs`` (one per synthetic row: the index of
    the real row it was made from, or -1) keeps a copy and its source in the same fold; without it
    a classifier that memorises the pair scores the held-out source as synthetic and the AUROC
    drops below 0.5. Repeats run in parallel (``n_jobs``).
    """
    real, synthetic = np.asarray(real, np.float64), np.asarray(synthetic, np.float64)
    n = min(len(real), len(synthetic), n_max or len(real))
    if n < folds:
        raise ValueError(f"C2ST needs at least {folds} ECGs per set, got {len(real)} real and {len(synthetic)} synthetic")
    pairs = np.full(len(synthetic), -1) if pairs is None else np.asarray(pairs)
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n), np.ones(n)]
    jobs = []
    for r in range(repeats + n_null):
        pick_real = rng.choice(len(real), n, replace=False)
        pick_synth = rng.choice(len(synthetic), n, replace=False)
        source = pairs[pick_synth]
        groups = np.r_[pick_real, np.where(source >= 0, source, len(real) + pick_synth)]
        labels = y if r < repeats else rng.permutation(y)
        jobs.append((np.concatenate([real[pick_real], synthetic[pick_synth]]), labels, groups, folds, seed + 31 * r))
    aurocs = Parallel(n_jobs=n_jobs)(delayed(_oof_auroc)(*job) for job in jobs)
    observed, null = np.asarray(aurocs[:repeats]), np.asarray(aurocs[repeats:])
    auroc = float(observed.mean())
    p = (1 + np.sum(null >= auroc)) / (1 + len(null)) if len(null) else float("nan")
    top = univariate_separation(real, synthetic, names or features.feature_names())
    return C2STResult(auroc=auroc, auroc_sd=float(observed.std()),
                      null_mean=float(null.mean()) if len(null) else float("nan"),
                      null_sd=float(null.std()) if len(null) else float("nan"), p_value=float(p), n_per_class=n,
                      top_features=top)


def cnn_c2st(real_scaled: np.ndarray, synthetic_scaled: np.ndarray, seed: int = 0, folds: int = 5,
             epochs: int = 15, n_max: int = 300) -> float:
    """Out-of-fold AUROC of a small inception/residual CNN telling real from synthetic raw ECGs (scaled units).

    Each fold's CNN starts from the weights of seed ``seed + fold``; the compiled model is reused
    across folds and calls (:func:`_c2st_cnn`), so its training step is traced once per process."""
    rng = np.random.default_rng(seed)
    n = min(len(real_scaled), len(synthetic_scaled), n_max)
    x = np.concatenate([real_scaled[rng.choice(len(real_scaled), n, replace=False)],
                        synthetic_scaled[rng.choice(len(synthetic_scaled), n, replace=False)]]).astype(np.float32)
    y = np.r_[np.zeros(n), np.ones(n)].astype(np.float32)
    scores = np.empty(len(y))
    for k, (train, test) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y)):
        model = _c2st_cnn(x.shape[1:], seed + k)
        model.fit(x[train], y[train], batch_size=32, epochs=epochs, verbose=0, shuffle=True)
        scores[test] = model.predict(x[test], batch_size=256, verbose=0).ravel()
    return float(roc_auc_score(y, scores))


def _c2st_cnn(input_shape: tuple[int, int], seed: int):
    """The C2ST CNN with the initial weights, dropout state and optimizer state of a model built fresh
    after ``keras.utils.set_random_seed(seed)`` (the global RNG is left as that build leaves it)."""
    import keras

    from rare_gan import models

    def build():
        return models.build_classifier(*input_shape, stem_filters=(16, 32), block_filters=(32, 64), dropout=0.2)

    key = (tuple(input_shape), keras.mixed_precision.global_policy().name)
    if key not in _C2ST_CNNS:
        model = build()
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.BinaryCrossentropy(from_logits=True))
        model.optimizer.build(model.trainable_variables)
        _C2ST_CNNS[key] = model, [v.numpy() for v in model.optimizer.variables]
    model, optimizer_start = _C2ST_CNNS[key]
    keras.utils.set_random_seed(seed)
    for variable, value in zip(model.variables, build().variables):  # weights and dropout seed states
        variable.assign(value)
    for variable, value in zip(model.optimizer.variables, optimizer_start):
        variable.assign(value)
    return model


_C2ST_CNNS: dict = {}
"""Compiled C2ST CNNs by input shape and precision policy, with their optimizer's initial state."""


def jittered_copies(ecgs_mv: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each ECG once more, slightly changed: amplitude ×(0.9–1.1), circular shift ≤ 0.2 s, 0.01 mV noise.

    The classical augmentation of :func:`rare_gan.evaluate.jitter`, in mV: the control that a
    two-sample test must call indistinguishable and the memorisation check must call copies.
    """
    from rare_gan import evaluate

    return evaluate.jitter(np.asarray(ecgs_mv, np.float32), np.random.default_rng([seed, 23]), noise=0.01, clip=False)


def tstr(train_negatives: np.ndarray, synthetic_positives: np.ndarray, real_positives: np.ndarray,
         test_x: np.ndarray, test_y: np.ndarray, seed: int = 0) -> dict:
    """Train-on-synthetic-test-on-real with the feature classifier (feature matrices in, AUROCs out).

    ``tstr_auroc``: trained on ``synthetic_positives`` + ``train_negatives``; ``real_auroc``: the same
    classifier trained on ``real_positives`` + ``train_negatives``; both scored on ``test_x``/``test_y``
    (real, never seen by any generator). Classes balanced in both (:func:`rare_gan.utility.fit_feature_model`).
    """
    from rare_gan import utility

    out = {}
    for name, positives in (("tstr_auroc", synthetic_positives), ("real_auroc", real_positives)):
        x = np.concatenate([train_negatives, positives])
        y = np.r_[np.zeros(len(train_negatives)), np.ones(len(positives))]
        model = utility.fit_feature_model(x, y, seed, balanced=True)
        out[name] = float(roc_auc_score(test_y, utility.scores_of(model, test_x)))
    return out


__all__ = ["feature_classifier", "C2STResult", "c2st", "cnn_c2st", "univariate_separation", "jittered_copies", "tstr"]


# ---------------------------------------------------------------------------------------------
# One code's real reference and the evaluation of one synthetic set against it
# ---------------------------------------------------------------------------------------------
@dataclass
class Reference:
    """The real ECGs one code's synthetic ECGs are judged against, with their features computed once.

    ``train`` = the code's training-fold positives (what every generator learns from); ``unseen``
    = its positives of folds 9–10 (no generator ever sees them); TSTR and the feature classifier
    use every record: training-fold negatives to train, folds 9–10 to test.
    """

    code: str
    train_mv: np.ndarray
    unseen_mv: np.ndarray
    train_features: np.ndarray
    unseen_features: np.ndarray
    negatives_features: np.ndarray
    test_features: np.ndarray
    test_y: np.ndarray
    scale_mv: float
    physiology: "object"
    """neurokit2 features (:func:`rare_gan.physiology.ecg_features`) of the code's real ECGs."""
    controls: dict = field(default_factory=dict)
    effort: Effort = field(default_factory=Effort)

    def c2st(self, real, synthetic, seed: int = 0, **kwargs) -> C2STResult:
        """:func:`c2st` at this reference's effort."""
        return c2st(real, synthetic, seed, repeats=self.effort.repeats, n_null=self.effort.n_null, **kwargs)


def load_reference(task, controls: bool = True, seed: int = 0, common_class: str = "NORM",
                   meta=None, effort: Effort = Effort()) -> Reference:
    """Build the :class:`Reference` of ``task`` (a :class:`rare_gan.evaluate.Task`), features cached on disk."""
    from rare_gan import physiology

    x_mv = {s: task.scaler.inverse(task.x[s]) for s in task.x}
    f = {s: features.cached(x_mv[s], tag=f"{s}") for s in x_mv}
    unseen_y = np.concatenate([task.y["val"], task.y["test"]])
    unseen_f = np.concatenate([f["val"], f["test"]])
    pos = task.y["train"] == 1
    ref = Reference(code="+".join(task.codes), train_mv=x_mv["train"][pos], unseen_mv=task.unseen_positives_mv(),
                    train_features=f["train"][pos], unseen_features=unseen_f[unseen_y == 1],
                    negatives_features=f["train"][~pos], test_features=unseen_f, test_y=unseen_y,
                    scale_mv=task.scaler.scale_mv, effort=effort,
                    physiology=physiology.ecg_features(np.concatenate([x_mv["train"][pos], task.unseen_positives_mv()])))
    if controls:
        ref.controls = control_tests(ref, task, seed, common_class, meta)
    return ref


def control_tests(ref: Reference, task, seed: int = 0, common_class: str = "NORM", meta=None) -> dict:
    """The yardstick on real data: what a C2ST says when nothing is synthetic (:func:`_control_tests`).

    They depend on real data only, so they are cached on disk (``<cache>/controls``) by the task's
    signals, labels and records, ``seed``, ``common_class`` and the reference's effort: every
    evaluation of a code after the first reads them (~25–55 s each on a 2-core CPU).
    """
    import json
    from pathlib import Path

    from rare_gan import atomic
    from rare_gan.data import cache_dir

    key = task.digest(seed, common_class, sorted(asdict(ref.effort).items()))
    path = Path(cache_dir()) / "controls" / f"{ref.code}_{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    out = _control_tests(ref, task, seed, common_class, meta)
    atomic.write_json(path, out)
    return out


def _control_tests(ref: Reference, task, seed: int = 0, common_class: str = "NORM", meta=None) -> dict:
    """The controls of :func:`control_tests`, computed.

    * ``c2st_real_control`` — the code's training positives vs its unseen positives;
    * ``c2st_common_control`` — ``common_class`` records of the training folds vs unseen ones, at the
      code's number of training positives (the n every synthetic comparison of this code uses);
    * ``c2st_jitter_control`` — jittered copies of the training positives vs the positives, with
      each copy kept in its source's fold; ``jitter_near_copy_fraction`` — how many of those copies
      the memorisation check flags (it should flag them all).
    """
    from rare_gan import data, metrics

    out = {"c2st_real_control": ref.c2st(ref.train_features, ref.unseen_features, seed).auroc}
    meta = meta or data.load_metadata(task.data_root)
    common = meta.has_codes(common_class) if common_class in meta.statements.index else None
    if common is not None:
        mask = {s: common.loc[task.ecg_ids[s]].to_numpy() for s in ("train", "val", "test")}
        split = {s: features.cached(task.scaler.inverse(task.x[s]), tag=s) for s in mask}  # load_reference's cache
        train_c = split["train"][mask["train"]]
        unseen_c = np.concatenate([split[s][mask[s]] for s in ("val", "test")])
        if min(len(train_c), len(unseen_c)) >= 10:
            out["c2st_common_control"] = ref.c2st(train_c, unseen_c, seed, n_max=len(ref.train_features)).auroc
    copies = jittered_copies(ref.train_mv, seed)
    out["c2st_jitter_control"] = ref.c2st(ref.train_features, features.extract(copies), seed,
                                          pairs=np.arange(len(copies))).auroc
    _, memo = metrics.memorisation_report(copies, ref.train_mv, ref.unseen_mv)
    out["jitter_near_copy_fraction"] = memo["fraction_near_copy"]
    return out


def nn_distance_ratio(memorisation: dict) -> float:
    """Median nearest-neighbour distance synthetic → training over unseen real → training.

    Distances are the z-normalised Euclidean ones behind the similarity s of
    :func:`rare_gan.metrics.nearest_neighbour_similarity`, d = sqrt(2 (1 − s)); below 1 means the
    synthetic ECGs sit closer to the training ECGs than new real ECGs do.
    """
    d_synth = np.sqrt(2 * (1 - memorisation["median_synth_to_train"]))
    d_unseen = np.sqrt(2 * (1 - memorisation["median_test_to_train"]))
    return float(d_synth / d_unseen) if d_unseen > 0 else float("nan")


def evaluate_synthetic(ref: Reference, synthetic_mv: np.ndarray, seed: int = 0, cnn: bool = True,
                       physiology_frame=None) -> dict:
    """Every realism number of one synthetic set of ``ref.code``: the row of ``results.json``.

    ``c2st_auroc`` (strong, features; with ``c2st_null_sd`` and the top separating features),
    ``c2st_cnn_auroc``, ``tstr_auroc`` and ``real_auroc_same_classifier`` (test folds 9–10),
    Wasserstein distances of heart rate and RR-SD to the real positives, |median QRS| and |median
    PR| differences, plausibility, ``near_copy_fraction`` (with the rule's false-flag rate on unseen real
    ECGs and the Mann–Whitney p of :func:`rare_gan.metrics.memorisation_report`) and ``nn_distance_ratio``, and the median
    share of spectral power above 15 Hz of the synthetic and the real ECGs (smoothness).
    ``physiology_frame``: :func:`rare_gan.physiology.ecg_features` of ``synthetic_mv[:300]`` where the
    caller has it already (else computed here).
    """
    from rare_gan import metrics, physiology

    synth_features = features.extract(synthetic_mv)
    strong = ref.c2st(ref.train_features, synth_features, seed)
    row = {"c2st_auroc": strong.auroc, "c2st_auroc_sd": strong.auroc_sd, "c2st_null_sd": strong.null_sd,
           "c2st_n_per_class": strong.n_per_class, "c2st_top_features": strong.top_features}
    if cnn:
        row["c2st_cnn_auroc"] = cnn_c2st(ref.train_mv / ref.scale_mv, synthetic_mv / ref.scale_mv, seed,
                                         epochs=ref.effort.cnn_epochs, folds=ref.effort.cnn_folds)
    t = tstr(ref.negatives_features, synth_features, ref.train_features, ref.test_features, ref.test_y, seed)
    row |= {"tstr_auroc": t["tstr_auroc"], "real_auroc_same_classifier": t["real_auroc"]}
    phys = physiology.ecg_features(synthetic_mv[:300]) if physiology_frame is None else physiology_frame
    w = physiology.wasserstein_table(ref.physiology, phys, ["heart_rate_bpm", "rr_sd_ms", "qrs_ms", "pr_ms"])
    row |= {"w1_hr_bpm": w.at["heart_rate_bpm", "wasserstein"], "w1_rr_sd_ms": w.at["rr_sd_ms", "wasserstein"],
            "qrs_median_diff_ms": abs(w.at["qrs_ms", "synth_median"] - w.at["qrs_ms", "real_median"]),
            "pr_median_diff_ms": abs(w.at["pr_ms", "synth_median"] - w.at["pr_ms", "real_median"]),
            "plausible_fraction": float(phys["plausible"].mean())}
    _, memo = metrics.memorisation_report(synthetic_mv, ref.train_mv, ref.unseen_mv)
    row |= {"near_copy_fraction": memo["fraction_near_copy"], "near_copy_false_flag_rate": memo["test_false_flag_rate"],
            "near_copy_mannwhitney_p": memo["mannwhitney_p"], "nn_distance_ratio": nn_distance_ratio(memo),
            "hf_ratio_median": float(np.median(metrics.high_frequency_ratio(synthetic_mv))),
            "hf_ratio_median_real": float(np.median(metrics.high_frequency_ratio(ref.train_mv)))}
    return row
