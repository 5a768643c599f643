"""A rich, fixed feature vector per 12-lead ECG: what a cardiologist's measuring program would read off.

Shared by the strong realism test (:mod:`rare_gan.realism`: a gradient-boosting classifier told to
separate real from synthetic ECGs) and by the feature classifier of the utility study
(:mod:`rare_gan.utility`). ECGs are ``(n, 1000, 12)`` in mV at 100 Hz, PTB-XL lead order.

Groups (:data:`GROUPS`; names in :func:`feature_names`):

* ``amp`` — per lead: SD, percentiles 1/5/25/75/95/99 of the median-removed signal, skewness,
  kurtosis, SD of the first difference (QRS sharpness) and of the second difference (noise);
* ``band`` — per lead: log10 power 0–45 Hz and the fraction in 0–0.5 (baseline wander), 0.5–3,
  3–8, 8–15, 15–25, 25–45 Hz (Welch, 256 samples);
* ``rr`` — R peaks of lead II (:func:`rare_gan.physiology.detect_rpeaks`): number of beats, mean
  heart rate, RR mean/SD/min/max, RMSSD, pNN50, coefficient of variation, largest successive change,
  fraction of RR more than 15 % off the median (ectopy), the lag-1 autocorrelation of RR
  (bigeminy is negative);
* ``beat`` — per lead, the R-aligned median beat (−250 … +450 ms): its value every 50 ms, R, S,
  T and P amplitudes, QRS width proxy (samples above half the R amplitude), the mean correlation of
  the single beats with it (beat-to-beat consistency) and the RMS left after subtracting it;
* ``corr`` — correlations between the 8 independent leads (0.5–40 Hz band-passed), 28 values.

The R-peak step runs neurokit2 per ECG; :func:`extract` spreads it over processes. NaN marks a
feature that cannot be measured (too few beats): tree models take NaN as information.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
from scipy import signal, stats

from rare_gan.leads import DISPLAY_NAMES, INDEPENDENT_INDEX, N_LEADS, SAMPLING_RATE_HZ

GROUPS = ("amp", "band", "rr", "beat", "corr")
BANDS_HZ = ((0.0, 0.5), (0.5, 3.0), (3.0, 8.0), (8.0, 15.0), (15.0, 25.0), (25.0, 45.0))
BEAT_WINDOW_MS = (-250, 450)
BEAT_POINTS_MS = tuple(range(-250, 451, 50))
PERCENTILES = (1, 5, 25, 75, 95, 99)
_RR_NAMES = ("n_beats", "hr_bpm", "rr_mean_ms", "rr_sd_ms", "rr_min_ms", "rr_max_ms", "rmssd_ms", "pnn50",
             "rr_cv", "rr_max_jump_ms", "ectopic_fraction", "rr_lag1_autocorr")
_AMP_NAMES = ("sd_mv", *(f"p{p:02d}_mv" for p in PERCENTILES), "skew", "kurtosis", "diff1_sd_mv", "diff2_sd_mv")
_BAND_NAMES = ("log_power", *(f"frac_{lo:g}_{hi:g}hz" for lo, hi in BANDS_HZ))
_BEAT_NAMES = (*(f"beat_{t:+d}ms_mv" for t in BEAT_POINTS_MS), "r_amp_mv", "s_amp_mv", "t_amp_mv", "p_amp_mv",
               "qrs_width_ms", "beat_consistency", "residual_rms_mv")


def feature_names() -> list[str]:
    """Names of the columns of :func:`extract`, in order (``<group>:<lead>:<feature>``)."""
    leads = list(DISPLAY_NAMES)
    names = [f"amp:{lead}:{n}" for lead in leads for n in _AMP_NAMES]
    names += [f"band:{lead}:{n}" for lead in leads for n in _BAND_NAMES]
    names += [f"rr:{n}" for n in _RR_NAMES]
    names += [f"beat:{lead}:{n}" for lead in leads for n in _BEAT_NAMES]
    independent = [DISPLAY_NAMES[i] for i in INDEPENDENT_INDEX]
    names += [f"corr:{a}-{b}" for i, a in enumerate(independent) for b in independent[i + 1:]]
    return names


def group_of(name: str) -> str:
    """The group (:data:`GROUPS`) a feature name belongs to."""
    return name.split(":", 1)[0]


# ---------------------------------------------------------------------------------------------
# Vectorised groups (whole batch at once)
# ---------------------------------------------------------------------------------------------
def _amplitude(x: np.ndarray) -> np.ndarray:
    centred = x - np.median(x, axis=1, keepdims=True)
    q = np.moveaxis(np.percentile(centred, PERCENTILES, axis=1), 0, -1)  # (n, leads, 6)
    with np.errstate(all="ignore"):
        skew = stats.skew(x, axis=1)
        kurt = stats.kurtosis(x, axis=1)
    d1 = np.diff(x, axis=1)
    cols = [x.std(axis=1)[..., None], q, skew[..., None], kurt[..., None], d1.std(axis=1)[..., None],
            np.diff(d1, axis=1).std(axis=1)[..., None]]
    return np.concatenate(cols, axis=-1).reshape(len(x), -1)


def _bands(x: np.ndarray, fs: float) -> np.ndarray:
    freqs, psd = signal.welch(x, fs=fs, nperseg=min(256, x.shape[1]), axis=1)  # (n, F, leads)
    psd = np.moveaxis(psd, 1, 2)
    df = freqs[1] - freqs[0]
    powers = np.stack([psd[..., (freqs >= lo) & (freqs < hi)].sum(axis=-1) * df for lo, hi in BANDS_HZ], -1)
    total = powers.sum(axis=-1, keepdims=True)
    floor = 1e-12
    return np.concatenate([np.log10(total + floor), powers / (total + floor)], axis=-1).reshape(len(x), -1)


def _independent_bandpassed(x: np.ndarray, fs: float) -> np.ndarray:
    """The 8 independent leads, 0.5–40 Hz band-passed (zero phase) and centred: ``(n, T, 8)``."""
    sos = signal.butter(2, (0.5, 40.0), btype="bandpass", fs=fs, output="sos")
    y = signal.sosfiltfilt(sos, x[:, :, list(INDEPENDENT_INDEX)], axis=1)
    return y - y.mean(axis=1, keepdims=True)


def principal_lead_share(ecgs, k: int = 3, fs: float = SAMPLING_RATE_HZ) -> np.ndarray:
    """Per ECG, the share of the 8 independent leads' variance (0.5–40 Hz) held by their first ``k``
    principal components: how close the leads are to projections of ``k`` sources (the heart's
    dipole gives 3). Diagnostic only, not one of :func:`extract`'s features."""
    x = np.asarray(ecgs, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != N_LEADS:
        raise ValueError(f"expected ECGs shaped (n, samples, {N_LEADS}), got {x.shape}")
    power = np.linalg.svd(_independent_bandpassed(x, fs), compute_uv=False) ** 2  # (n, 8), descending
    return power[:, :k].sum(axis=1) / power.sum(axis=1)


def _correlations(x: np.ndarray, fs: float) -> np.ndarray:
    y = _independent_bandpassed(x, fs)
    sd = np.linalg.norm(y, axis=1)
    with np.errstate(all="ignore"):
        c = np.einsum("ntl,ntm->nlm", y, y) / (sd[:, :, None] * sd[:, None, :])
    iu = np.triu_indices(len(INDEPENDENT_INDEX), k=1)
    return c[:, iu[0], iu[1]]


# ---------------------------------------------------------------------------------------------
# Beat-based groups (per ECG, after R-peak detection)
# ---------------------------------------------------------------------------------------------
def _rr_features(peaks: np.ndarray, fs: float) -> list[float]:
    out = [float(len(peaks))] + [math.nan] * (len(_RR_NAMES) - 1)
    rr = np.diff(peaks) * (1000.0 / fs)
    if rr.size < 2:
        return out
    d = np.diff(rr)
    median = np.median(rr)
    lag1 = float(np.corrcoef(rr[:-1], rr[1:])[0, 1]) if rr.size >= 4 and rr.std() > 0 else math.nan
    return [float(len(peaks)), 60000.0 / rr.mean(), rr.mean(), rr.std(ddof=1), rr.min(), rr.max(),
            float(np.sqrt(np.mean(d ** 2))), float(np.mean(np.abs(d) > 50.0)), rr.std(ddof=1) / rr.mean(),
            float(np.abs(d).max()), float(np.mean(np.abs(rr - median) > 0.15 * median)), lag1]


def _beat_features(x: np.ndarray, peaks: np.ndarray, fs: float) -> np.ndarray:
    """(leads, len(_BEAT_NAMES)) from the beats whose window fits inside the record."""
    lo, hi = (int(round(ms * fs / 1000.0)) for ms in BEAT_WINDOW_MS)
    out = np.full((N_LEADS, len(_BEAT_NAMES)), np.nan)
    peaks = peaks[(peaks + lo >= 0) & (peaks + hi < x.shape[0])]
    if peaks.size < 2:
        return out
    beats = np.stack([x[p + lo:p + hi + 1] for p in peaks])  # (beats, window, leads)
    beats = beats - np.median(beats[:, :int(round(-0.1 * fs)) - lo], axis=1, keepdims=True)  # PR-segment baseline
    median = np.median(beats, axis=0)  # (window, leads)
    r_index = -lo
    points = [int(round(t * fs / 1000.0)) - lo for t in BEAT_POINTS_MS]
    qrs = slice(r_index - int(0.06 * fs), r_index + int(0.06 * fs) + 1)
    t_wave = slice(r_index + int(0.15 * fs), r_index + int(0.42 * fs) + 1)
    p_wave = slice(r_index - int(0.25 * fs), r_index - int(0.08 * fs) + 1)
    r_amp = median[qrs].max(axis=0)
    s_amp = median[qrs].min(axis=0)
    t_seg = median[t_wave]
    t_amp = t_seg[np.abs(t_seg).argmax(axis=0), np.arange(N_LEADS)]
    p_seg = median[p_wave]
    p_amp = p_seg[np.abs(p_seg).argmax(axis=0), np.arange(N_LEADS)]
    peak_abs = np.abs(median[qrs]).max(axis=0)
    width_ms = (np.abs(median[qrs]) > 0.5 * peak_abs).sum(axis=0) * (1000.0 / fs)
    centred = beats - beats.mean(axis=1, keepdims=True)
    template = median - median.mean(axis=0, keepdims=True)
    with np.errstate(all="ignore"):
        corr = (centred * template).sum(axis=1) / (np.linalg.norm(centred, axis=1) * np.linalg.norm(template, axis=0))
    residual = np.sqrt(np.mean((beats - median) ** 2, axis=(0, 1)))
    out[:] = np.column_stack([median[points].T, r_amp, s_amp, t_amp, p_amp, width_ms, np.nanmean(corr, axis=0),
                              residual])
    return out


def _beat_groups_one(ecg: np.ndarray, fs: float) -> np.ndarray:
    from rare_gan import physiology

    if not np.all(np.isfinite(ecg)):
        return np.full(len(_RR_NAMES) + N_LEADS * len(_BEAT_NAMES), np.nan)
    peaks = physiology.detect_rpeaks(ecg[:, 1], fs)  # lead II
    with np.errstate(all="ignore"):
        return np.concatenate([_rr_features(peaks, fs), _beat_features(ecg, peaks, fs).ravel()])


def _beat_groups_chunk(x: np.ndarray, fs: float) -> np.ndarray:
    return np.stack([_beat_groups_one(e, fs) for e in x])


MIN_ECGS_PER_PROCESS = 1000
"""Below this many ECGs per process, starting the workers and shipping the signals to them costs
more than they save (2-core CPU, 1,499 PTB-XL records: 7.6 s serial, 7.5 s parallel with warm
workers, 9.9 s cold), so the default runs serially there."""


def _n_jobs(n: int, n_jobs: int | None) -> int:
    if n_jobs is None:
        return max(1, min(os.cpu_count() or 1, n // MIN_ECGS_PER_PROCESS))
    return max(1, min(n_jobs, n // 64))


def extract(ecgs, fs: float = SAMPLING_RATE_HZ, n_jobs: int | None = None) -> np.ndarray:
    """Feature matrix ``(n, len(feature_names()))`` (float64) of ECGs ``(n, T, 12)`` in mV.

    The R-peak-based groups run in ``n_jobs`` processes (at most one per 64 ECGs; default: every
    core, one per :data:`MIN_ECGS_PER_PROCESS` ECGs).
    Non-finite ECGs give NaN features instead of raising.
    """
    x = np.asarray(ecgs, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != N_LEADS:
        raise ValueError(f"expected ECGs shaped (n, samples, {N_LEADS}), got {x.shape}")
    if len(x) == 0:
        return np.zeros((0, len(feature_names())))
    finite = np.isfinite(x).all(axis=(1, 2))
    clean = np.where(finite[:, None, None], x, 0.0)
    with np.errstate(all="ignore"):
        amp, bands, corr = _amplitude(clean), _bands(clean, fs), _correlations(clean, fs)
    jobs = _n_jobs(len(x), n_jobs)
    if jobs > 1:  # loky workers: safe after TensorFlow has started threads, no __main__ guard needed
        from joblib import Parallel, delayed

        parts = np.array_split(x, jobs * 4)
        beat = np.concatenate(Parallel(n_jobs=jobs, backend="loky")(delayed(_beat_groups_chunk)(p, fs) for p in parts))
    else:
        beat = _beat_groups_chunk(x, fs)
    n_rr = len(_RR_NAMES)
    features = np.concatenate([amp, bands, beat[:, :n_rr], beat[:, n_rr:], corr], axis=1)
    features[~finite] = np.nan
    return features


def cached(ecgs, tag: str | None = None, fs: float = SAMPLING_RATE_HZ, n_jobs: int | None = None) -> np.ndarray:
    """:func:`extract` with an on-disk cache under ``<cache>/features`` keyed by the ECGs' bytes.

    For real data sets that many comparisons share (the same training folds for every GAN); ``tag``
    names the file for readability only.
    """
    from rare_gan import atomic
    from rare_gan.data import cache_dir

    x = np.ascontiguousarray(ecgs, dtype=np.float32)
    key = hashlib.sha256(x.tobytes() + f"{x.shape}|{fs}|{len(feature_names())}|v1".encode()).hexdigest()[:20]
    path = Path(cache_dir()) / "features" / f"{tag + '_' if tag else ''}{key}.npy"
    if path.is_file():
        return np.load(path)
    features = extract(x, fs, n_jobs)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(path) as tmp:
        np.save(tmp, features)
    return features


__all__ = ["GROUPS", "feature_names", "group_of", "extract", "cached", "principal_lead_share"]
