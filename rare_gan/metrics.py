"""Evaluation metrics: classification with bootstrap uncertainty, realism, smoothness, memorisation.

Pure numpy/scipy/scikit-learn. ECG sets are arrays ``(n, T, 12)`` in mV sampled at ``fs`` Hz
(PTB-XL ``records100``: T = 1000, fs = 100), leads in PTB-XL order.

Classification (target vs rest, few positives):
  * :func:`binary_metrics` — point estimates; :func:`choose_threshold` — operating point from
    *validation* scores; :func:`bootstrap_metrics` — seed-averaged estimates with stratified
    percentile-bootstrap CIs over test records; :func:`paired_bootstrap_difference` — model A vs B
    on the same resamples; :func:`holm_adjust` — family-wise correction of several comparisons.
Realism (real vs synthetic; the two-sample tests live in :mod:`rare_gan.realism`):
  * :func:`wasserstein`; smoothness: :func:`high_frequency_ratio`.
Memorisation:
  * :func:`nearest_neighbour_similarity` (shift- and scale-invariant), :func:`memorisation_report`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.fft
from scipy import signal, stats
from threadpoolctl import threadpool_limits

from rare_gan.leads import SAMPLING_RATE_HZ

METRIC_NAMES: tuple[str, ...] = (
    "auroc", "auprc", "sens_at_spec90", "sens_at_spec95",
    "accuracy", "f1", "sensitivity", "specificity", "balanced_accuracy",
)
"""Rows of :func:`bootstrap_metrics`; keys of :func:`binary_metrics`."""

NEAR_COPY_ABSOLUTE = 0.95
"""Nearest-neighbour similarity above which a synthetic ECG is always a near-copy (see :func:`memorisation_report`)."""

SPECTRUM_LOW_HZ = 0.5
"""Power below this frequency (baseline wander) is ignored by the smoothness metrics (Hz)."""


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


def _record_psd(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Welch PSD per record and lead: freqs (F,) Hz, psd (n, leads, F) mV²/Hz (nperseg 256, mean removed)."""
    freqs, psd = signal.welch(x, fs=fs, nperseg=min(_NPERSEG, x.shape[1]), axis=1)
    return freqs, np.moveaxis(psd, 1, 2)


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
