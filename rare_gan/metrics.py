"""Evaluation metrics: classification with bootstrap uncertainty, realism, smoothness, memorisation.

Pure numpy/scipy/scikit-learn. ECG sets are arrays ``(n, T, 12)`` in mV sampled at ``fs`` Hz
(PTB-XL ``records100``: T = 1000, fs = 100), leads in PTB-XL order.

Classification (target vs rest, few positives):
  * :func:`binary_metrics` — point estimates; :func:`choose_threshold` — operating point from
    *validation* scores; :func:`bootstrap_metrics` — seed-averaged estimates with stratified
    percentile-bootstrap CIs over test records; :func:`paired_bootstrap_difference` — model A vs B
    on the same resamples; :func:`holm_adjust` — family-wise correction of several comparisons.
Realism (real vs synthetic):
  * :func:`amplitude_stats` / :func:`amplitude_table`, :func:`welch_psd` / :func:`psd_distance`,
    :func:`mmd_rbf`, :func:`c2st_auroc`, :func:`wasserstein`; smoothness:
    :func:`high_frequency_ratio`, :func:`spectral_entropy`. Feature map: :func:`ecg_features`.
Memorisation:
  * :func:`nearest_neighbour_similarity` (shift- and scale-invariant), :func:`memorisation_report`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.fft
from scipy import signal, special, stats
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from rare_gan.leads import DISPLAY_NAMES, SAMPLING_RATE_HZ

METRIC_NAMES: tuple[str, ...] = (
    "auroc", "auprc", "sens_at_spec90", "sens_at_spec95",
    "accuracy", "f1", "sensitivity", "specificity", "balanced_accuracy",
)
"""Rows of :func:`bootstrap_metrics`; keys of :func:`binary_metrics`."""

NEAR_COPY_ABSOLUTE = 0.95
"""Nearest-neighbour similarity above which a synthetic ECG is always a near-copy (see :func:`memorisation_report`)."""

PSD_BAND_HZ = (0.5, 45.0)
"""Frequency band of :func:`psd_distance` (Hz): above baseline wander, below the 50 Hz Nyquist limit."""

SPECTRUM_LOW_HZ = 0.5
"""Power below this frequency (baseline wander) is ignored by the smoothness metrics (Hz)."""

FEATURE_BANDS_HZ: tuple[tuple[float, float], ...] = ((0.5, 3), (3, 8), (8, 15), (15, 25), (25, 45))
"""Welch-PSD bands of :func:`ecg_features` (Hz)."""

_NPERSEG = 256
_NN_CHUNK_ELEMENTS = 2 ** 23  # per-chunk (lags x queries x references) budget of nearest_neighbour_similarity


# ---------------------------------------------------------------------------------------------
# Classification metrics
# ---------------------------------------------------------------------------------------------

def _metric_rows(scores: np.ndarray, n_pos: int, thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """All :data:`METRIC_NAMES` for each row of ``scores`` (R, n_pos + n_neg), positives first.

    Rank-based and vectorised over rows: AUROC by Mann–Whitney ranks (ties count 1/2), average
    precision by ``mean over positives of precision at that positive's score`` (same as sklearn),
    sensitivity at ≥X% specificity from the exact ROC curve (no interpolation).
    """
    scores = np.asarray(scores, dtype=np.float64)
    n_rows, n = scores.shape
    n_neg = n - n_pos
    pos, neg = scores[:, :n_pos], scores[:, n_pos:]
    nan = np.full(n_rows, np.nan)
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        if n_pos and n_neg:
            ranks = stats.rankdata(scores, axis=1)
            out["auroc"] = (ranks[:, :n_pos].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        else:
            out["auroc"] = nan
        if n_pos:
            n_at_or_above = stats.rankdata(-scores, method="max", axis=1)[:, :n_pos]
            tp_at_or_above = stats.rankdata(-pos, method="max", axis=1)
            out["auprc"] = (tp_at_or_above / n_at_or_above).mean(axis=1)
        else:
            out["auprc"] = nan
        for spec in (90, 95):
            # Largest TPR with FP <= floor((1 - spec) * n_neg): threshold just above the (k+1)-th highest negative.
            k = int(np.floor((1 - spec / 100) * n_neg + 1e-9))
            if n_pos and n_neg:
                kth = -np.partition(-neg, k, axis=1)[:, k]  # k < n_neg always
                out[f"sens_at_spec{spec}"] = (pos > kth[:, None]).mean(axis=1)
            else:
                out[f"sens_at_spec{spec}"] = nan
        thr = np.asarray(thresholds, dtype=np.float64).reshape(-1, 1)
        tp = (pos >= thr).sum(axis=1)
        fp = (neg >= thr).sum(axis=1)
        fn, tn = n_pos - tp, n_neg - fp
        out["accuracy"] = (tp + tn) / n
        out["f1"] = 2 * tp / (2 * tp + fp + fn)
        out["sensitivity"] = tp / n_pos if n_pos else nan
        out["specificity"] = tn / n_neg if n_neg else nan
        out["balanced_accuracy"] = (out["sensitivity"] + out["specificity"]) / 2
    return {name: np.asarray(out[name], dtype=np.float64) for name in METRIC_NAMES}


def _split_classes(y_true) -> tuple[np.ndarray, np.ndarray]:
    """Indices of positives and negatives of a binary label vector (anything truthy = positive)."""
    y = np.asarray(y_true).astype(bool).ravel()
    return np.flatnonzero(y), np.flatnonzero(~y)


def binary_metrics(y_true, y_score, threshold: float) -> dict[str, float]:
    """Point estimates of :data:`METRIC_NAMES` for one classifier (a prediction is ``score >= threshold``).

    ``sens_at_spec90``/``95``: highest sensitivity over all thresholds whose specificity is at
    least 90 %/95 % (threshold-free, read off the ROC curve). Metrics undefined for a single-class
    ``y_true`` (AUROC, sensitivity or specificity, …) are NaN; no exception is raised.
    """
    pos, neg = _split_classes(y_true)
    score = np.asarray(y_score, dtype=np.float64).ravel()
    rows = _metric_rows(score[np.r_[pos, neg]][None, :], len(pos), np.array([threshold]))
    return {name: float(value[0]) for name, value in rows.items()}


def choose_threshold(y_val, score_val, rule: str = "f1") -> float:
    """Decision threshold chosen on *validation* data only: maximise F1 (``"f1"``) or Youden's J (``"youden"``).

    Candidates are the distinct validation scores; the returned value is the midpoint between the
    best candidate and the next lower score (the same validation predictions, more margin on test).
    """
    y = np.asarray(y_val).astype(bool).ravel()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        raise ValueError("choose_threshold needs both classes in the validation labels")
    score = np.asarray(score_val, dtype=np.float64).ravel()
    order = np.argsort(-score, kind="stable")
    ranked, hits = score[order], y[order]
    last_of_tie = np.r_[ranked[1:] != ranked[:-1], True]
    cand = ranked[last_of_tie]  # distinct scores, descending
    tp = np.cumsum(hits)[last_of_tie]  # predictions score >= cand
    fp = np.cumsum(~hits)[last_of_tie]
    if rule == "f1":
        objective = 2 * tp / (tp + fp + n_pos)
    elif rule == "youden":
        objective = tp / n_pos - fp / n_neg
    else:
        raise ValueError(f"unknown rule {rule!r}; use 'f1' or 'youden'")
    best = int(np.argmax(objective))
    return float(cand[best] if best == len(cand) - 1 else (cand[best] + cand[best + 1]) / 2)


def _stratified_resamples(pos: np.ndarray, neg: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_pos + n_neg) indices: positives drawn with replacement from positives, then negatives."""
    rng = np.random.default_rng(seed)
    return np.concatenate([group[rng.integers(0, max(len(group), 1), (n_boot, len(group)))]
                           for group in (pos, neg)], axis=1)


def _seed_averaged(y_true, scores_by_seed, threshold_by_seed, n_boot: int, seed: int):
    """Seed-averaged point estimates {metric: float} and bootstrap replicates {metric: (n_boot,)}."""
    pos, neg = _split_classes(y_true)
    scores = np.atleast_2d(np.asarray(scores_by_seed, dtype=np.float64))
    thresholds = np.broadcast_to(np.asarray(threshold_by_seed, dtype=np.float64), (len(scores),))
    if scores.shape[1] != len(pos) + len(neg):
        raise ValueError(f"scores have {scores.shape[1]} records, labels {len(pos) + len(neg)}")
    order = np.r_[pos, neg]
    idx = _stratified_resamples(pos, neg, n_boot, seed)
    point = {m: [] for m in METRIC_NAMES}
    boot = {m: np.zeros(n_boot) for m in METRIC_NAMES}
    for s, thr in zip(scores, thresholds):
        for m, v in _metric_rows(s[order][None, :], len(pos), np.array([thr])).items():
            point[m].append(v[0])
        for m, v in _metric_rows(s[idx], len(pos), np.full(n_boot, thr)).items():
            boot[m] += v / len(scores)
    return {m: float(np.mean(v)) for m, v in point.items()}, boot, len(pos), len(neg)


def bootstrap_metrics(y_true, scores_by_seed, threshold_by_seed, n_boot: int = 1000, seed: int = 0,
                      ci: float = 0.95) -> pd.DataFrame:
    """Seed-averaged test metrics with stratified percentile-bootstrap CIs over test records.

    ``scores_by_seed``: (n_seeds, n) scores of models trained with different seeds on the same
    test set; ``threshold_by_seed``: (n_seeds,) thresholds chosen on validation data. Each
    resample draws positives from positives and negatives from negatives (so every resample has
    both classes, class counts fixed); the *same* indices serve every seed, and a resample's value
    is the mean over seeds. Returns a DataFrame indexed by metric with columns ``mean`` (mean over
    seeds of the full-test-set estimates), ``ci_low``, ``ci_high``, ``n_pos``, ``n_neg``.
    """
    point, boot, n_pos, n_neg = _seed_averaged(y_true, scores_by_seed, threshold_by_seed, n_boot, seed)
    tail = 100 * (1 - ci) / 2
    rows = []
    for m in METRIC_NAMES:
        finite = boot[m][np.isfinite(boot[m])]
        low, high = np.percentile(finite, [tail, 100 - tail]) if finite.size else (np.nan, np.nan)
        rows.append({"mean": point[m], "ci_low": low, "ci_high": high, "n_pos": n_pos, "n_neg": n_neg})
    return pd.DataFrame(rows, index=pd.Index(METRIC_NAMES, name="metric"))


def paired_bootstrap_difference(y_true, scores_a, scores_b, thresholds_a, thresholds_b, metric: str = "auroc",
                                n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> dict:
    """Difference A − B of a seed-averaged metric, bootstrapped on the same stratified resamples.

    ``scores_a``/``scores_b``: (n_seeds, n) or (n,). Returns ``difference`` (full test set),
    ``ci_low``/``ci_high`` (percentile CI), ``p_value`` (two-sided, from the bootstrap distribution:
    ``2·min(P*(Δ ≤ 0), P*(Δ ≥ 0))`` with a +1 correction, capped at 1) and ``significant`` (the CI
    excludes 0). Say "A beats B" only when ``significant`` and the difference is positive.
    """
    if metric not in METRIC_NAMES:
        raise ValueError(f"unknown metric {metric!r}; choose from {METRIC_NAMES}")
    point_a, boot_a, _, _ = _seed_averaged(y_true, scores_a, thresholds_a, n_boot, seed)
    point_b, boot_b, _, _ = _seed_averaged(y_true, scores_b, thresholds_b, n_boot, seed)
    delta = boot_a[metric] - boot_b[metric]
    delta = delta[np.isfinite(delta)]
    tail = 100 * (1 - ci) / 2
    low, high = np.percentile(delta, [tail, 100 - tail]) if delta.size else (np.nan, np.nan)
    extreme = min((delta <= 0).sum(), (delta >= 0).sum())
    return {
        "metric": metric,
        "difference": point_a[metric] - point_b[metric],
        "ci_low": float(low),
        "ci_high": float(high),
        "p_value": float(min(1.0, 2 * (extreme + 1) / (delta.size + 1))),
        "significant": bool(low > 0 or high < 0),
        "n_boot": int(delta.size),
    }


def holm_adjust(p_values) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values for a family of tests (same order as given).

    Use it whenever several comparisons are read together (ratios × runs × baselines), so that
    "significant" keeps its 5 % meaning for the whole family.
    """
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (len(p) - rank) * p[i])
        adjusted[i] = min(1.0, running)
    return adjusted


# ---------------------------------------------------------------------------------------------
# Realism
# ---------------------------------------------------------------------------------------------

def _as_ecgs(ecgs) -> np.ndarray:
    """ECG set as float64 (n, samples, leads); anything else is a ValueError."""
    x = np.asarray(ecgs, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"expected ECGs shaped (n, samples, leads), got {x.shape}")
    return x


def _lead_names(n_leads: int) -> list[str]:
    """Row labels for a per-lead table: clinical lead names for 12 leads, else lead0, lead1, …"""
    return list(DISPLAY_NAMES) if n_leads == len(DISPLAY_NAMES) else [f"lead{i}" for i in range(n_leads)]


def amplitude_stats(ecgs) -> pd.DataFrame:
    """Per-lead amplitude summary (mV): mean, std, 1st/99th percentile over all samples and records,
    and the median over records of each record's peak-to-peak amplitude."""
    x = _as_ecgs(ecgs)
    flat = x.reshape(-1, x.shape[2])
    p1, p99 = np.percentile(flat, [1, 99], axis=0)
    return pd.DataFrame({
        "mean_mv": flat.mean(axis=0),
        "std_mv": flat.std(axis=0),
        "p1_mv": p1,
        "p99_mv": p99,
        "ptp_median_mv": np.median(np.ptp(x, axis=1), axis=0),
    }, index=pd.Index(_lead_names(x.shape[2]), name="lead"))


def amplitude_table(real, synth) -> pd.DataFrame:
    """:func:`amplitude_stats` of both sets side by side: columns ``<stat>_real``, ``<stat>_synth``."""
    a, b = amplitude_stats(real), amplitude_stats(synth)
    return pd.concat([pd.DataFrame({f"{c}_real": a[c], f"{c}_synth": b[c]}) for c in a.columns], axis=1)


def _record_psd(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Welch PSD per record and lead: freqs (F,) Hz, psd (n, leads, F) mV²/Hz (nperseg 256, mean removed)."""
    freqs, psd = signal.welch(x, fs=fs, nperseg=min(_NPERSEG, x.shape[1]), axis=1)
    return freqs, np.moveaxis(psd, 1, 2)


def welch_psd(ecgs, fs: float = SAMPLING_RATE_HZ) -> tuple[np.ndarray, np.ndarray]:
    """Welch PSD (nperseg 256) averaged over records: freqs (F,) in Hz, psd (leads, F) in mV²/Hz."""
    freqs, psd = _record_psd(_as_ecgs(ecgs), fs)
    return freqs, psd.mean(axis=0)


def psd_distance(real, synth, fs: float = SAMPLING_RATE_HZ, band_hz: tuple[float, float] = PSD_BAND_HZ) -> float:
    """Log-spectral distance (dB) between the record-averaged Welch PSDs of two ECG sets.

    Per lead: ``sqrt(mean_f (10·log10(P_real(f) / P_synth(f)))²)`` over frequencies f in
    ``band_hz`` (default 0.5–45 Hz); the result is the mean over leads. 0 = identical spectra; a
    uniform gain error g on every frequency gives 20·log10(g) dB (e.g. ×2 amplitude → 6.0 dB).
    """
    freqs, p_real = welch_psd(real, fs)
    _, p_synth = welch_psd(synth, fs)
    in_band = (freqs >= band_hz[0]) & (freqs <= band_hz[1])
    tiny = np.finfo(np.float64).tiny
    ratio_db = 10 * np.log10(np.maximum(p_real[:, in_band], tiny) / np.maximum(p_synth[:, in_band], tiny))
    return float(np.sqrt((ratio_db ** 2).mean(axis=1)).mean())


def _band_power_fractions(ecgs, fs: float, cutoff_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Per ECG and lead: normalised spectrum p(f) over f ≥ 0.5 Hz (n, leads, F'), and its mask of f ≥ cutoff."""
    freqs, psd = _record_psd(_as_ecgs(ecgs), fs)
    keep = freqs >= SPECTRUM_LOW_HZ
    psd = psd[..., keep]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = psd / psd.sum(axis=-1, keepdims=True)  # NaN for a flat lead
    return p, freqs[keep] >= cutoff_hz


def high_frequency_ratio(ecgs, fs: float = SAMPLING_RATE_HZ, cutoff_hz: float = 15.0) -> np.ndarray:
    """Fraction of spectral power above ``cutoff_hz`` per ECG, shape (n,), averaged over leads.

    Power from the per-record Welch PSD; the total is taken over f ≥ 0.5 Hz so that baseline wander
    does not dilute it. Lower = smoother (less QRS sharpness / high-frequency detail). Flat leads are skipped.
    """
    p, high = _band_power_fractions(ecgs, fs, cutoff_hz)
    return np.nanmean(p[..., high].sum(axis=-1), axis=1)


def spectral_entropy(ecgs, fs: float = SAMPLING_RATE_HZ) -> np.ndarray:
    """Normalised spectral (Shannon) entropy per ECG in [0, 1], shape (n,), averaged over leads.

    ``H = -Σ p(f) log p(f) / log(F)`` of the Welch PSD normalised over f ≥ 0.5 Hz; 1 = white
    spectrum, lower = power concentrated in few (for ECGs: low) frequencies. Flat leads are skipped.
    """
    p, _ = _band_power_fractions(ecgs, fs, 0.0)
    h = special.entr(p).sum(axis=-1) / np.log(p.shape[-1])  # NaN for flat leads
    return np.nanmean(h, axis=1)


def ecg_features(ecgs, fs: float = SAMPLING_RATE_HZ) -> np.ndarray:
    """Fixed, cheap, shift-invariant feature vector per ECG, shape (n, 11·leads) (132 for 12 leads).

    Per lead: log10 total power over 0.5–45 Hz (mV²) and the fraction of it in each of
    :data:`FEATURE_BANDS_HZ` (5, Welch PSD); the 1st, 25th, 75th and 99th percentile of the
    median-removed signal (mV); log10 of the standard deviation of the first difference (mV per
    sample, QRS sharpness). No rhythm (RR) features, no absolute timing.
    """
    x = _as_ecgs(ecgs)
    freqs, psd = _record_psd(x, fs)
    df = freqs[1] - freqs[0]
    bands = np.stack([psd[..., (freqs >= lo) & (freqs < hi)].sum(axis=-1) * df for lo, hi in FEATURE_BANDS_HZ], -1)
    total = bands.sum(axis=-1, keepdims=True)
    floor = 1e-12
    q = np.percentile(x, [1, 25, 50, 75, 99], axis=1)  # (5, n, leads)
    quantiles = np.moveaxis(q[[0, 1, 3, 4]] - q[2], 0, -1)
    slope = np.log10(np.diff(x, axis=1).std(axis=1) + floor)[..., None]
    per_lead = np.concatenate([np.log10(total + floor), bands / (total + floor), quantiles, slope], axis=-1)
    return per_lead.reshape(len(x), -1)


def _as_features(data, fs: float) -> np.ndarray:
    """ECG sets (n, T, leads) go through :func:`ecg_features`; 2-D arrays are used as given."""
    data = np.asarray(data, dtype=np.float64)
    return ecg_features(data, fs) if data.ndim == 3 else data


def mmd_rbf(x, y, max_per_side: int = 500, n_perm: int = 0, seed: int = 0, fs: float = SAMPLING_RATE_HZ) -> dict:
    """Unbiased squared maximum mean discrepancy with an RBF kernel, optional permutation test.

    ``x``/``y``: ECG sets (n, T, leads), mapped by :func:`ecg_features`, or ready feature matrices
    (n, d). Features are standardised with the pooled mean/std; the kernel is
    ``exp(-‖a-b‖² / (2σ²))`` with σ the median pairwise distance of the pooled set (median
    heuristic). At most ``max_per_side`` rows per side are used (random subsample). ``p_value``
    = (1 + #{permuted MMD² ≥ observed}) / (1 + n_perm), NaN when ``n_perm`` = 0.
    Returns ``mmd2`` (≈ 0 or slightly negative for equal distributions), ``bandwidth``, ``p_value``,
    ``n_x``, ``n_y``.
    """
    rng = np.random.default_rng(seed)
    fx, fy = (_subsample(_as_features(d, fs), max_per_side, rng) for d in (x, y))
    pooled = np.concatenate([fx, fy])
    sd = pooled.std(axis=0)
    pooled = (pooled - pooled.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    sq = np.sum(pooled ** 2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * pooled @ pooled.T, 0.0)
    sigma = float(np.sqrt(np.median(d2[np.triu_indices(len(pooled), k=1)])))
    kernel = np.exp(-d2 / (2 * max(sigma, 1e-12) ** 2))
    labels = np.zeros((len(pooled), 1 + n_perm), dtype=bool)
    labels[:len(fx), 0] = True
    for j in range(1, n_perm + 1):
        labels[rng.permutation(len(pooled))[:len(fx)], j] = True
    stat = _mmd2_unbiased(kernel, labels)
    p_value = (1 + np.sum(stat[1:] >= stat[0])) / (1 + n_perm) if n_perm else np.nan
    return {"mmd2": float(stat[0]), "bandwidth": sigma, "p_value": float(p_value), "n_x": len(fx), "n_y": len(fy)}


def _subsample(a: np.ndarray, n_max: int, rng: np.random.Generator) -> np.ndarray:
    return a[np.sort(rng.choice(len(a), n_max, replace=False))] if len(a) > n_max else a


def _mmd2_unbiased(kernel: np.ndarray, in_x: np.ndarray) -> np.ndarray:
    """Unbiased MMD² for each column of the boolean split matrix ``in_x`` (N, P) over the pooled kernel (N, N)."""
    a = in_x.astype(np.float64)
    b = 1.0 - a
    m, n = a.sum(axis=0), b.sum(axis=0)
    k_off = kernel - np.diag(np.diag(kernel))
    kxx = np.einsum("ip,ip->p", a, k_off @ a) / (m * (m - 1))
    kyy = np.einsum("ip,ip->p", b, k_off @ b) / (n * (n - 1))
    kxy = np.einsum("ip,ip->p", a, kernel @ b) / (m * n)
    return kxx + kyy - 2 * kxy


def c2st_auroc(real, synth, seed: int = 0, folds: int = 5, classifier: str = "logistic",
               extra_real=None, extra_synth=None, fs: float = SAMPLING_RATE_HZ) -> dict:
    """Classifier two-sample test: cross-validated AUROC of telling real from synthetic ECGs.

    Features: :func:`ecg_features`, plus optional extra per-ECG columns (``extra_real`` (n_real, k),
    ``extra_synth`` (n_synth, k)). The larger set is randomly subsampled to the size of the smaller;
    ``classifier`` is ``"logistic"`` (standardised, L2-regularised logistic regression) or ``"hgb"``
    (HistGradientBoostingClassifier). AUROC over stratified ``folds``-fold CV: 0.5 =
    indistinguishable, 1.0 = trivially separable. Returns ``auroc`` (mean over folds),
    ``auroc_sd``, ``auroc_folds``, ``n_per_class``.
    """
    fr, fsyn = ecg_features(real, fs), ecg_features(synth, fs)
    if (extra_real is None) != (extra_synth is None):
        raise ValueError("give extra feature columns for both sets or for neither")
    if extra_real is not None:
        fr = np.column_stack([fr, np.asarray(extra_real, dtype=np.float64).reshape(len(fr), -1)])
        fsyn = np.column_stack([fsyn, np.asarray(extra_synth, dtype=np.float64).reshape(len(fsyn), -1)])
    rng = np.random.default_rng(seed)
    n = min(len(fr), len(fsyn))
    if n < folds:
        raise ValueError(f"need at least {folds} ECGs per set for {folds}-fold C2ST, got {n}")
    features = np.concatenate([_subsample(fr, n, rng), _subsample(fsyn, n, rng)])
    labels = np.r_[np.zeros(n), np.ones(n)]
    if classifier == "logistic":
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    elif classifier == "hgb":
        model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=seed)
    else:
        raise ValueError(f"unknown classifier {classifier!r}; use 'logistic' or 'hgb'")
    aucs = []
    with threadpool_limits(1):  # small problem: BLAS/OpenMP threads only add contention
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(features, labels):
            model.fit(features[train], labels[train])
            aucs.append(roc_auc_score(labels[test], model.predict_proba(features[test])[:, 1]))
    return {"auroc": float(np.mean(aucs)), "auroc_sd": float(np.std(aucs)), "auroc_folds": [float(a) for a in aucs],
            "n_per_class": n}


def wasserstein(real_values, synth_values) -> float:
    """1-D Wasserstein (earth mover's) distance between two samples, NaN values dropped (input units).

    NaN if either sample is empty after dropping NaN.
    """
    a, b = (np.asarray(v, dtype=np.float64).ravel() for v in (real_values, synth_values))
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    return float(stats.wasserstein_distance(a, b)) if a.size and b.size else float("nan")


# ---------------------------------------------------------------------------------------------
# Memorisation
# ---------------------------------------------------------------------------------------------

def _znorm(ecgs) -> np.ndarray:
    """Per-record, per-lead z-normalisation over time, as (n, leads, T) float32; flat leads become 0."""
    x = np.asarray(ecgs, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"expected ECGs shaped (n, samples, leads), got {x.shape}")
    x = np.moveaxis(x, 1, 2)
    x = x - x.mean(axis=2, keepdims=True)
    sd = x.std(axis=2, keepdims=True)
    return np.divide(x, sd, out=np.zeros_like(x), where=sd > 0)


def _overlap_energy(z: np.ndarray, max_shift: int, leading: bool) -> np.ndarray:
    """Energy Σ_leads Σ_t z² over the part of each record that overlaps at every lag, shape (n, 2·max_shift+1).

    Lag τ pairs query sample t with reference sample t + τ: the query keeps t ∈ [max(0, -τ), T - max(0, τ)),
    the reference t ∈ [max(0, τ), T - max(0, -τ)). ``leading`` selects the query (True) or reference role.
    """
    n_t = z.shape[2]
    csum = np.concatenate([np.zeros((len(z), 1)), np.cumsum((z ** 2).sum(axis=1), axis=1, dtype=np.float64)], axis=1)
    lags = np.arange(-max_shift, max_shift + 1)
    start = np.maximum(0, -lags) if leading else np.maximum(0, lags)
    stop = n_t - (np.maximum(0, lags) if leading else np.maximum(0, -lags))
    return csum[:, stop] - csum[:, start]


def nearest_neighbour_similarity(queries, references, max_shift: int = 50,
                                 exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """For each query ECG, its most similar reference ECG under a shift- and scale-invariant similarity.

    Each ECG is z-normalised per lead (mean 0, std 1 over time: removes offsets and per-lead
    gain). The similarity of query q and reference r at lag τ is the multichannel normalised
    cross-correlation over the samples where they overlap,

        s(τ) = Σ_l Σ_t q_l(t) r_l(t+τ) / sqrt(Σ_l Σ_t q_l(t)² · Σ_l Σ_t r_l(t+τ)²),

    in [-1, 1] by Cauchy–Schwarz, 1 for an exact copy up to a shift and a positive rescaling. The
    similarity of the pair is max over |τ| ≤ ``max_shift`` samples (50 = 0.5 s at 100 Hz).
    Cross-correlations come from FFTs (float32) summed over leads, vectorised over chunks of queries
    sized to keep the working arrays near 100 MB.
    ``exclude_self`` (queries and references the same set, same order) ignores the pair (i, i).
    Returns (similarity (n_queries,), index of the nearest reference (n_queries,)).
    """
    zq, zr = _znorm(queries), _znorm(references)
    if zq.shape[1:] != zr.shape[1:]:
        raise ValueError(f"queries {zq.shape} and references {zr.shape} differ in leads or length")
    if exclude_self and len(zq) != len(zr):
        raise ValueError("exclude_self needs queries and references to be the same set")
    n_t = zq.shape[2]
    max_shift = int(min(max_shift, n_t - 1))
    n_fft = scipy.fft.next_fast_len(n_t + max_shift, real=True)
    # Contiguous (F, ·, ·) stacks so that the batched matmul below runs on BLAS.
    fq = np.ascontiguousarray(scipy.fft.rfft(zq, n_fft, axis=2).transpose(2, 0, 1).conj())
    fr = np.ascontiguousarray(scipy.fft.rfft(zr, n_fft, axis=2).transpose(2, 1, 0))
    chunk_size = max(1, _NN_CHUNK_ELEMENTS // (n_fft * len(zr)))
    eq, er = _overlap_energy(zq, max_shift, True), _overlap_energy(zr, max_shift, False)
    lag_index = np.r_[np.arange(n_fft - max_shift, n_fft), np.arange(max_shift + 1)]  # lags -S..S
    best_sim = np.empty(len(zq))
    best_idx = np.empty(len(zq), dtype=np.int64)
    for start in range(0, len(zq), chunk_size):
        stop = min(start + chunk_size, len(zq))
        with threadpool_limits(1, user_api="blas"):  # tiny per-frequency products: threads only contend
            cross = np.matmul(fq[:, start:stop], fr)  # (F, chunk, nr), summed over leads
        xcorr = scipy.fft.irfft(cross, n_fft, axis=0, workers=-1)[lag_index]  # (lags, chunk, nr)
        denom = np.sqrt(eq[start:stop].T[:, :, None] * er.T[:, None, :])
        sim = np.divide(xcorr, denom, out=np.zeros_like(xcorr), where=denom > 0).max(axis=0)  # (chunk, nr)
        if exclude_self:
            sim[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        best_idx[start:stop] = sim.argmax(axis=1)
        best_sim[start:stop] = sim[np.arange(stop - start), best_idx[start:stop]]
    return best_sim, best_idx


def memorisation_report(synth, train, test_real, quantile: float = 0.01, absolute: float = NEAR_COPY_ABSOLUTE,
                        max_shift: int = 50) -> tuple[pd.DataFrame, dict]:
    """Nearest-neighbour check that synthetic ECGs are not copies of training ECGs.

    Reference distribution: similarity of each *real test* ECG (never seen in training) to its
    nearest training ECG (:func:`nearest_neighbour_similarity`). Rule: a synthetic ECG is a
    near-copy when its similarity to its nearest training ECG exceeds the (1 − ``quantile``)
    quantile of that reference distribution (closer to the training set than 99 % of unseen real
    ECGs are) **or** exceeds ``absolute`` (0.95: a copy up to shift/scale whatever the reference
    says). With m test ECGs the quantile is about their maximum, so even a novel ECG drawn like
    the real ones is flagged with probability ≈ 1/(m + 1): compare ``fraction_near_copy`` with
    ``test_false_flag_rate``, the same rule applied leave-one-out to the real test ECGs.

    Returns a DataFrame per synthetic ECG (``nn_similarity``, ``nn_train_index``,
    ``above_test_quantile``, ``above_absolute``, ``near_copy``) and a summary: ``n_synth``,
    ``n_test``, ``test_quantile``, ``threshold`` (effective cut = min(test_quantile, absolute)),
    ``fraction_near_copy``, ``fraction_above_absolute``, ``test_false_flag_rate``,
    ``median_synth_to_train``, ``median_test_to_train`` and ``mannwhitney_p``: one-sided
    Mann–Whitney U p-value for "synthetic ECGs are closer to the training set than real unseen
    ECGs are" (small = evidence of memorisation).
    """
    if len(test_real) == 0 or len(train) == 0:
        raise ValueError("memorisation_report needs training ECGs and unseen real ECGs of the code (got "
                         f"{len(train)} and {len(test_real)})")
    synth_sim, synth_idx = nearest_neighbour_similarity(synth, train, max_shift)
    test_sim, _ = nearest_neighbour_similarity(test_real, train, max_shift)
    test_q = float(np.quantile(test_sim, 1 - quantile))
    threshold = min(test_q, absolute)
    loo = [s > min(np.quantile(np.delete(test_sim, k), 1 - quantile), absolute) for k, s in enumerate(test_sim)]
    table = pd.DataFrame({"nn_similarity": synth_sim, "nn_train_index": synth_idx,
                          "above_test_quantile": synth_sim > test_q, "above_absolute": synth_sim > absolute,
                          "near_copy": synth_sim > threshold})
    summary = {
        "n_synth": len(synth_sim),
        "n_test": len(test_sim),
        "test_quantile": test_q,
        "threshold": threshold,
        "fraction_near_copy": float(table["near_copy"].mean()),
        "fraction_above_absolute": float(table["above_absolute"].mean()),
        "test_false_flag_rate": float(np.mean(loo)) if len(test_sim) > 1 else float("nan"),
        "median_synth_to_train": float(np.median(synth_sim)),
        "median_test_to_train": float(np.median(test_sim)),
        "mannwhitney_p": float(stats.mannwhitneyu(synth_sim, test_sim, alternative="greater").pvalue),
    }
    return table, summary
