"""The embedded DEMO dataset: synthetic neurokit2 ECGs written in PTB-XL's exact layout.

Without PTB-XL the whole pipeline still runs end to end on this small deterministic dataset.
It is **not** PTB-XL and says nothing about real patients: the folder carries a ``DEMO_README.md``
(:func:`is_demo_dataset`) and the pipeline prints :data:`DEMO_BANNER` whenever it uses it.

How a record is made (units: mV, Hz, s):

1. ``neurokit2.ecg_simulate(method="multileads")`` simulates 2–4 s of strictly periodic beats at
   500 Hz (``heart_rate_std=0``, wave amplitudes/widths jittered per record; no P waves for AFIB).
   The last full beat, R peak to R peak, is detrended so that it tiles seamlessly; only the
   independent leads I, II, V1–V6 are kept, lead II blended with lead I (see ``_LEAD_II_FROM_I``)
   because neurokit2's own lead II is dominated by its T wave.
2. The beat is tiled along the record's own RR intervals (sinus arrhythmia for NORM/STACH,
   irregularly irregular RR for AFIB). Shortening a beat compresses it uniformly (as ecgsyn does);
   lengthening it stretches only the diastolic part, so QRS and T keep their width.
3. Per-record gains, baseline wander, fibrillatory f-waves (AFIB) and white noise are added; the
   500 Hz signal is resampled to 100 Hz; III, aVR, aVL, aVF are derived by Einthoven/Goldberger
   (:func:`rare_gan.leads.assemble_12_leads`) and everything is quantised to 1 µV (16-bit WFDB).

Every random draw comes from ``numpy.random.SeedSequence([seed, ecg_id])`` (metadata: from
``seed``), so the same arguments give byte-identical files whatever the number of workers.

Command line: ``python -m rare_gan.demo [--dest DIR] [--n-records N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator, Sequence

import neurokit2 as nk
import numpy as np
import pandas as pd
import wfdb
from scipy.signal import resample_poly

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None

from rare_gan import atomic
from rare_gan.data import record_name
from rare_gan.leads import INDEPENDENT_LEADS, LEAD_NAMES, N_SAMPLES, SAMPLING_RATE_HZ, assemble_12_leads

DEMO_VERSION = 1
"""Bump when the generator changes, so :func:`ensure_demo_dataset` rewrites existing folders."""

DEMO_README = "DEMO_README.md"
DEMO_MARKER = "rare_gan DEMO dataset"
"""Text that :func:`is_demo_dataset` looks for in :data:`DEMO_README`."""

_BANNER_LINES = (
    "",
    "DEMO DATA  --  NOT PTB-XL",
    "Running on synthetic neurokit2 ECGs (the embedded DEMO dataset).",
    "Every number, plot and model below says NOTHING about real patients.",
    "Get PTB-XL: python -m rare_gan.data download --dest data/ptbxl",
    "",
)
DEMO_BANNER = "\n".join(["#" * 78, *(f"#   {line}".ljust(77) + "#" for line in _BANNER_LINES), "#" * 78])
"""Loud banner the pipeline prints whenever it runs on the DEMO dataset."""

DEMO_CLASSES: dict[str, dict[str, float]] = {
    "NORM": {"NORM": 100.0, "SR": 0.0},
    "AFIB": {"AFIB": 100.0},
    "STACH": {"STACH": 100.0},
}
"""``scp_codes`` of each demo class; NORM is the common class, the others are rare."""
RARE_CLASSES: tuple[str, ...] = ("AFIB", "STACH")

N_FOLDS = 10
SIM_RATE_HZ = 500
"""Rate at which beats are simulated and tiled before resampling to 100 Hz."""

# Rhythm of each class: mean heart rate range (bpm), respiratory RR modulation (fraction of the
# mean RR), beat-to-beat RR jitter (s) and, for AFIB, the coefficient of variation of i.i.d. RR.
_RHYTHM = {
    "NORM": {"hr": (60.0, 90.0), "resp": 0.03, "jitter": 0.008, "af_cv": 0.0},
    "STACH": {"hr": (110.0, 140.0), "resp": 0.012, "jitter": 0.004, "af_cv": 0.0},
    "AFIB": {"hr": (80.0, 115.0), "resp": 0.0, "jitter": 0.0, "af_cv": 0.25},
}
_AGE = {"NORM": (50.0, 17.0), "STACH": (55.0, 18.0), "AFIB": (72.0, 10.0)}  # mean, sd (years)
_REPORT = {
    "NORM": "sinus rhythm. normal ecg.",
    "STACH": "sinus tachycardia. otherwise normal ecg.",
    "AFIB": "atrial fibrillation.",
}
# ecgsyn wave amplitudes (P, Q, R, S, T): neurokit2's defaults with P x0.6 and T x0.5, closer to
# PTB-XL's P/R and T/R ratios once neurokit2 has min-max scaled each lead.
_AI = (0.72, -5.0, 30.0, -7.5, 0.375)
# neurokit2's lead II has a T wave about 3x its R wave (R-peak detectors on II, the project's default
# lead, fire on T waves). Lead II is therefore a * I + b * II of neurokit2's leads: neurokit2's P/T
# shape with the dominant R of a normal frontal axis (a, b drawn per record: axis variability).
_LEAD_II_FROM_I, _LEAD_II_FROM_II = (0.7, 1.1), (0.3, 0.6)
# Per-lead gains (I, II, V1-V6) bringing the median 99.9th-percentile |amplitude| of the demo's NORM
# records to that of PTB-XL's NORM records (0.6-1.3 mV).
_LEAD_GAIN = (0.6, 0.8, 1.8, 1.4, 1.1, 1.3, 1.2, 1.3)
# Fraction of the simulated beat (R to R) kept rigid after / before the R peak when stretching.
_RIGID_AFTER_R, _RIGID_BEFORE_R = 0.45, 0.30
# f-wave weight per independent lead (I, II, V1..V6): strongest in V1 and the inferior leads.
_F_WAVE_WEIGHTS = np.array([0.3, 0.7, 1.0, 0.6, 0.4, 0.3, 0.3, 0.3])
_DEVICE = "DEMO nk2"
_FIRST_RECORDING = datetime(1990, 1, 1, 8, 0, 0)

DATABASE_COLUMNS: tuple[str, ...] = (
    "ecg_id", "patient_id", "age", "sex", "height", "weight", "nurse", "site", "device", "recording_date",
    "report", "scp_codes", "heart_axis", "infarction_stadium1", "infarction_stadium2", "validated_by",
    "second_opinion", "initial_autogenerated_report", "validated_by_human", "baseline_drift", "static_noise",
    "burst_noise", "electrodes_problems", "extra_beats", "pacemaker", "strat_fold", "filename_lr", "filename_hr",
)
"""Columns of PTB-XL v1.0.1's ``ptbxl_database.csv``, in order."""

STATEMENT_COLUMNS: tuple[str, ...] = (
    "description", "diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass",
    "Statement Category", "SCP-ECG Statement Description", "AHA code", "aECG REFID", "CDISC Code", "DICOM Code",
)
"""Columns of PTB-XL's ``scp_statements.csv`` after the unnamed code column."""

# Rows copied verbatim from PTB-XL v1.0.1's scp_statements.csv for the codes the demo uses.
_SCP_STATEMENTS: dict[str, tuple[str, ...]] = {
    "NORM": ("normal ECG", "1.0", "", "", "NORM", "NORM", "Normal/abnormal", "normal ECG", "1", "", "", "F-000B7"),
    "SR": ("sinus rhythm", "", "", "1.0", "", "", "Statements related to impulse formation (abnormalities)",
           "sinus rhythm", "20", "MDC_ECG_RHY_SINUS_RHY", "", ""),
    "AFIB": ("atrial fibrillation", "", "", "1.0", "", "", "Statements related to impulse formation (abnormalities)",
             "atrial fibrillation", "50", "MDC_ECG_RHY_ATR_FIB", "", "D3-31520"),
    "STACH": ("sinus tachycardia", "", "", "1.0", "", "", "Statements related to impulse formation (abnormalities)",
              "sinus tachycardia", "21", "MDC_ECG_RHY_SINUS_TACHY", "", ""),
}


# ----------------------------------------------------------------------------------------------
# Signals
# ----------------------------------------------------------------------------------------------
def simulate_beat(rng: np.random.Generator, cls: str) -> np.ndarray:
    """One neurokit2 beat of ``cls``, R peak to next R peak, (n + 1, 8) mV at 500 Hz, leads I, II, V1–V6.

    Its period n / 500 s is drawn from the class's heart-rate range. The first and last rows are
    equal, so copies join without a step; the median of each lead is 0 mV.
    """
    period = int(round(SIM_RATE_HZ * 60.0 / rng.uniform(*_RHYTHM[cls]["hr"])))
    ai = np.array(_AI) * rng.lognormal(0.0, 0.15, 5)
    if cls == "AFIB":
        ai[0] = 0.0  # no organised atrial activity: no P wave
    bi = np.array([0.25, 0.1, 0.1, 0.1, 0.4]) * rng.uniform(0.9, 1.1, 5)
    # ecgsyn integrates a power-of-two number of seconds whatever the duration asked for: request
    # as many whole beats as fit in the shortest such span that holds two, and keep the last one.
    span = SIM_RATE_HZ * 2 ** np.ceil(np.log2((2 * period + 1) / SIM_RATE_HZ))
    n_beats = int((span - 1) // period)
    ecg = nk.ecg_simulate(
        duration=(n_beats * period + 1) / SIM_RATE_HZ, sampling_rate=SIM_RATE_HZ, noise=0,
        heart_rate=60.0 * SIM_RATE_HZ / period, heart_rate_std=0, method="multileads",
        random_state=int(rng.integers(2**31)), ai=ai, bi=bi,
    )
    beat = ecg[list(INDEPENDENT_LEADS)].to_numpy()[(n_beats - 1) * period:n_beats * period + 1]
    beat[:, 1] = rng.uniform(*_LEAD_II_FROM_I) * beat[:, 0] + rng.uniform(*_LEAD_II_FROM_II) * beat[:, 1]
    beat = beat - np.linspace(0.0, 1.0, period + 1)[:, None] * (beat[-1] - beat[0])
    return beat - np.median(beat, axis=0)


def rr_intervals(rng: np.random.Generator, cls: str, duration_s: float) -> np.ndarray:
    """RR intervals (s) of ``cls``, about twice as many as cover ``duration_s`` seconds.

    NORM/STACH: sinus rhythm with respiratory modulation and small jitter (RR SD well under 50 ms);
    AFIB: independent gamma-distributed RR (coefficient of variation 0.25, RR SD over 100 ms).
    """
    rhythm = _RHYTHM[cls]
    mean_rr = 60.0 / rng.uniform(*rhythm["hr"])
    n = int(np.ceil(duration_s / (0.5 * mean_rr))) + 2
    if rhythm["af_cv"]:
        shape = rhythm["af_cv"] ** -2
        return np.clip(rng.gamma(shape, mean_rr / shape, n), 0.3, 2.0)
    t = np.arange(n) * mean_rr
    breathing = np.sin(2 * np.pi * rng.uniform(0.2, 0.33) * t + rng.uniform(0, 2 * np.pi))
    return mean_rr * (1.0 + rhythm["resp"] * breathing) + rng.normal(0.0, rhythm["jitter"], n)


def tile_beats(beat: np.ndarray, r_times: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Sample ``beat`` (from :func:`simulate_beat`) tiled between consecutive R times, at times ``t`` (s).

    ``r_times`` must bracket ``t``. A beat shorter than the template is compressed uniformly; a longer
    one keeps the QRS–T and P–QRS parts rigid and stretches only diastole. Returns (len(t), 8).
    """
    period = (len(beat) - 1) / SIM_RATE_HZ
    after, before = _RIGID_AFTER_R * period, _RIGID_BEFORE_R * period
    k = np.searchsorted(r_times, t, side="right") - 1
    u = t - r_times[k]  # time since the last R peak
    rr = r_times[k + 1] - r_times[k]
    scale = np.minimum(1.0, rr / period)
    rigid_after, rigid_before = scale * after, scale * before
    middle = (u - rigid_after) * (period - after - before) / (rr - rigid_after - rigid_before) + after
    src = np.where(u < rigid_after, u / scale, np.where(u > rr - rigid_before, period - (rr - u) / scale, middle))
    pos = np.clip(src * SIM_RATE_HZ, 0, len(beat) - 1)
    i0 = np.minimum(pos.astype(int), len(beat) - 2)
    frac = (pos - i0)[:, None]
    return beat[i0] * (1.0 - frac) + beat[i0 + 1] * frac


def _sinusoids(rng: np.random.Generator, t: np.ndarray, freq_hz: tuple[float, float], amp_mv: float,
                n_waves: int = 2) -> np.ndarray:
    """Sum of ``n_waves`` random sinusoids in ``freq_hz`` with total amplitude ~``amp_mv``, (len(t),)."""
    freqs = rng.uniform(*freq_hz, n_waves)
    phases = rng.uniform(0, 2 * np.pi, n_waves)
    return (amp_mv / n_waves) * np.sin(2 * np.pi * freqs * t[:, None] + phases).sum(axis=1)


def simulate_record(seed: int, ecg_id: int, cls: str) -> np.ndarray:
    """The 12-lead record ``ecg_id`` of class ``cls``: int16 (1000, 12) in µV (PTB-XL lead order).

    Deterministic in (seed, ecg_id, cls). Limb leads obey Einthoven/Goldberger before quantisation.
    """
    rng = np.random.default_rng([seed, ecg_id])
    beat = simulate_beat(rng, cls)
    margin = 0.5  # s rendered on each side so that resampling has no edge effects
    duration = N_SAMPLES / SAMPLING_RATE_HZ
    rr = rr_intervals(rng, cls, duration + 2 * margin)
    r_times = np.concatenate([[0.0], np.cumsum(rr)]) - margin - rng.uniform(0.0, rr[0])
    t = np.arange(-margin * SIM_RATE_HZ, (duration + margin) * SIM_RATE_HZ) / SIM_RATE_HZ
    ecg = tile_beats(beat, r_times, t)
    ecg *= np.array(_LEAD_GAIN) * rng.lognormal(0.0, 0.2) * rng.lognormal(0.0, 0.1, ecg.shape[1])
    if cls == "AFIB":
        f_waves = _sinusoids(rng, t, (4.0, 8.0), rng.uniform(0.03, 0.08), n_waves=3)
        ecg += f_waves[:, None] * _F_WAVE_WEIGHTS
    ecg += np.stack([_sinusoids(rng, t, (0.05, 0.5), rng.uniform(0.02, 0.15)) for _ in range(ecg.shape[1])], 1)
    step = SIM_RATE_HZ // SAMPLING_RATE_HZ
    ecg = resample_poly(ecg, 1, step, axis=0)[int(margin * SAMPLING_RATE_HZ):][:N_SAMPLES]
    ecg += rng.normal(0.0, 0.01, ecg.shape)
    return np.round(assemble_12_leads(ecg) * 1000.0).astype(np.int16)


# ----------------------------------------------------------------------------------------------
# Metadata
# ----------------------------------------------------------------------------------------------
def _class_counts(n_records: int, rare_fraction: float) -> dict[str, int]:
    """Records per class: each rare class gets ``rare_fraction`` of them but at least one per fold."""
    counts = {cls: max(N_FOLDS, int(round(n_records * rare_fraction))) for cls in RARE_CLASSES}
    counts["NORM"] = n_records - sum(counts.values())
    if counts["NORM"] < N_FOLDS:
        raise ValueError(f"n_records={n_records} is too small: every class needs at least {N_FOLDS} records "
                         f"(one per strat_fold) with rare_fraction={rare_fraction}")
    return {cls: counts[cls] for cls in DEMO_CLASSES}


def _assign_classes_and_folds(rng: np.random.Generator, counts: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled class labels and stratified folds 1–10: each class spread round-robin over the folds."""
    labels = rng.permutation(np.repeat(list(counts), list(counts.values())))
    folds = np.empty(len(labels), dtype=int)
    start = 0
    for cls in counts:
        idx = rng.permutation(np.flatnonzero(labels == cls))
        folds[idx] = (start + np.arange(len(idx))) % N_FOLDS + 1
        start += len(idx)
    return labels, folds


def _database(rng: np.random.Generator, labels: np.ndarray, folds: np.ndarray) -> pd.DataFrame:
    """``ptbxl_database.csv`` as a DataFrame indexed by ``ecg_id`` (PTB-XL's columns and dtypes)."""
    n = len(labels)
    ecg_ids = np.arange(1, n + 1)
    sex = rng.integers(0, 2, n)  # PTB-XL: 0 male, 1 female
    age = np.array([rng.normal(*_AGE[cls]) for cls in labels]).clip(18, 95).round()
    height = (rng.normal(176, 7, n) - 12 * sex).round()
    weight = (rng.normal(80, 12, n) - 12 * sex).round()
    gaps_s = rng.integers(600, 3 * 86400, n)
    dates = [(_FIRST_RECORDING + timedelta(seconds=int(s))).strftime("%Y-%m-%d %H:%M:%S") for s in np.cumsum(gaps_s)]
    blank = np.full(n, np.nan)
    db = pd.DataFrame({
        "ecg_id": ecg_ids,
        "patient_id": rng.choice(np.arange(1, 22000 + n), n, replace=False).astype(float),
        "age": age, "sex": sex, "height": height, "weight": weight,
        "nurse": rng.integers(0, 4, n).astype(float), "site": rng.integers(0, 3, n).astype(float),
        "device": _DEVICE, "recording_date": dates,
        "report": [_REPORT[cls] for cls in labels],
        "scp_codes": [str(DEMO_CLASSES[cls]) for cls in labels],
        "heart_axis": blank, "infarction_stadium1": blank, "infarction_stadium2": blank, "validated_by": blank,
        "second_opinion": False, "initial_autogenerated_report": False, "validated_by_human": True,
        "baseline_drift": blank, "static_noise": blank, "burst_noise": blank, "electrodes_problems": blank,
        "extra_beats": blank, "pacemaker": blank,
        "strat_fold": folds,
        "filename_lr": [record_name(i, "lr") for i in ecg_ids],
        "filename_hr": [record_name(i, "hr") for i in ecg_ids],
    })
    return db[list(DATABASE_COLUMNS)].set_index("ecg_id")


def _statements() -> pd.DataFrame:
    return pd.DataFrame.from_dict(_SCP_STATEMENTS, orient="index", columns=list(STATEMENT_COLUMNS))


def _readme(params: dict, counts: dict[str, int]) -> str:
    lines = [
        f"# DEMO dataset -- synthetic, NOT PTB-XL ({DEMO_MARKER})",
        "",
        "Every ECG in this folder was **simulated with neurokit2** (`ecg_simulate(method=\"multileads\")`)",
        "by `rare_gan.demo`. It only mimics the file layout of PTB-XL v1.0.1 (`ptbxl_database.csv`,",
        "`scp_statements.csv`, 100 Hz WFDB records in `records100/`) so that the pipeline runs end to end",
        "without the real data. Nothing learnt or measured on it says anything about real patients.",
        "`filename_hr` names 500 Hz records as PTB-XL does, but no `records500/` files are written.",
        "",
        "## Generator settings",
        "",
        *[f"- {key}: {value}" for key, value in params.items()],
        f"- beats: simulated at {SIM_RATE_HZ} Hz (2-4 s of periodic beats, last one kept), tiled along each "
        f"record's RR intervals, resampled to {SAMPLING_RATE_HZ} Hz, {N_SAMPLES} samples",
        "- leads: I, V1-V6 from neurokit2, II = a*I + b*II of neurokit2 (a {:g}-{:g}, b {:g}-{:g}: neurokit2's II "
        "is T-dominant); III, aVR, aVL, aVF derived by Einthoven/Goldberger; 1 uV steps".format(
            *_LEAD_II_FROM_I, *_LEAD_II_FROM_II),
        "- ecgsyn wave amplitudes (P, Q, R, S, T): " + ", ".join(f"{a:g}" for a in _AI)
        + " (P and T reduced), jittered x lognormal(0, 0.15) per record; AFIB: P = 0",
        "- rhythm: " + "; ".join(f"{cls} {r['hr'][0]:.0f}-{r['hr'][1]:.0f} bpm" for cls, r in _RHYTHM.items())
        + f"; AFIB RR i.i.d. gamma (CV {_RHYTHM['AFIB']['af_cv']}), no P waves, f-waves 4-8 Hz",
        "- noise: baseline wander 0.05-0.5 Hz (up to 0.15 mV), white noise 0.01 mV",
        "",
        "## Classes (scp_codes: records)",
        "",
        *[f"- {cls} `{DEMO_CLASSES[cls]}`: {n}" for cls, n in counts.items()],
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------
def generator_params(n_records: int = 300, seed: int = 0, rare_fraction: float = 0.09) -> dict:
    """The settings that determine a demo dataset's content (recorded in its completion marker)."""
    return {"generator": "rare_gan.demo", "version": DEMO_VERSION, "neurokit2": nk.__version__,
            "n_records": int(n_records), "seed": int(seed), "rare_fraction": float(rare_fraction)}


def write_demo_dataset(dest: str | os.PathLike, n_records: int = 300, seed: int = 0, rare_fraction: float = 0.09,
                       workers: int | None = None) -> Path:
    """Write a DEMO dataset in PTB-XL's layout under ``dest`` and return ``dest``.

    ``dest`` is created if needed; files of the same names are overwritten. ``rare_fraction`` is the
    share of records of each rare class (AFIB, STACH; at least 10 each so every ``strat_fold`` 1–10
    holds every class); the rest are NORM. Records are simulated in ``workers`` processes (default:
    up to 2); the output does not depend on it. The folder is marked complete
    (:func:`rare_gan.atomic.mark_complete`, with :func:`generator_params`) last.
    """
    dest = Path(dest)
    params = generator_params(n_records, seed, rare_fraction)
    rng = np.random.default_rng(seed)
    counts = _class_counts(n_records, rare_fraction)
    labels, folds = _assign_classes_and_folds(rng, counts)
    database = _database(rng, labels, folds)
    atomic.mark_incomplete(dest)
    dest.mkdir(parents=True, exist_ok=True)
    atomic.write_text(dest / DEMO_README, _readme(params, counts))
    records = _simulate_all(seed, database.index.tolist(), labels.tolist(), workers)
    for name, digital in zip(database["filename_lr"], records):
        _write_record(dest / name, digital)
    with atomic.atomic_path(dest / "scp_statements.csv") as tmp:
        _statements().to_csv(tmp, lineterminator="\n")
    with atomic.atomic_path(dest / "ptbxl_database.csv") as tmp:
        database.to_csv(tmp, lineterminator="\n")
    atomic.mark_complete(dest, params)
    return dest


def _simulate_all(seed: int, ecg_ids: list[int], labels: list[str], workers: int | None) -> Iterator[np.ndarray]:
    """:func:`simulate_record` of each record, in order, in ``workers`` processes (default: up to 2)."""
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    seeds = [seed] * len(ecg_ids)
    if workers <= 1:
        yield from map(simulate_record, seeds, ecg_ids, labels)
        return
    # spawn, not fork: the caller may already hold TensorFlow's threads.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(simulate_record, seeds, ecg_ids, labels, chunksize=max(1, len(ecg_ids) // (4 * workers)))


def _write_record(path: Path, digital: np.ndarray) -> None:
    """Write one 100 Hz WFDB record (``digital`` in µV) with PTB-XL's header fields."""
    path.parent.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(path.name, fs=SAMPLING_RATE_HZ, units=["mV"] * len(LEAD_NAMES), sig_name=list(LEAD_NAMES),
                d_signal=digital, fmt=["16"] * len(LEAD_NAMES), adc_gain=[1000.0] * len(LEAD_NAMES),
                baseline=[0] * len(LEAD_NAMES), write_dir=str(path.parent))


def is_demo_dataset(path: str | os.PathLike) -> bool:
    """True when ``path`` is a DEMO dataset folder (it holds the ``DEMO_README.md`` marker)."""
    readme = Path(path) / DEMO_README
    return readme.is_file() and DEMO_MARKER in readme.read_text(encoding="utf-8", errors="replace")


def default_demo_dir() -> Path:
    """``$RARE_GAN_DEMO_DIR`` if set, else ``<repo root>/data/demo_ptbxl``."""
    env = os.environ.get("RARE_GAN_DEMO_DIR")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[1] / "data" / "demo_ptbxl"


def _recorded_params(path: Path) -> dict | None:
    if not atomic.is_complete(path):
        return None
    try:
        return json.loads((path / atomic.COMPLETE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def ensure_demo_dataset(dest: str | os.PathLike | None = None, **kwargs) -> Path:
    """Return the DEMO dataset folder (default :func:`default_demo_dir`), writing it if needed.

    ``kwargs`` go to :func:`write_demo_dataset`. An existing folder is reused only when it is complete
    and was written with the same :func:`generator_params`; otherwise the dataset is written into a
    temporary sibling that replaces ``dest`` at the end, so an interrupted write never looks complete.
    Concurrent callers (e.g. parallel test sessions) wait for each other on a lock file beside ``dest``.
    Raises FileExistsError rather than replace a non-empty ``dest`` that is not a DEMO dataset.
    """
    dest = Path(dest).expanduser() if dest is not None else default_demo_dir()
    workers = kwargs.pop("workers", None)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(dest.parent / f".{dest.name}.lock"):
        if _recorded_params(dest) == generator_params(**kwargs):
            return dest
        if dest.exists() and any(dest.iterdir()) and not is_demo_dataset(dest):
            raise FileExistsError(f"{dest} exists and is not a DEMO dataset; refusing to replace it")
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
        try:
            write_demo_dataset(tmp, workers=workers, **kwargs)
            tmp.chmod(0o755)  # mkdtemp made it private
            _swap_in(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_path`` (no-op where ``fcntl`` is missing, e.g. Windows)."""
    with open(lock_path, "a") as fh:
        if fcntl is not None:
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _swap_in(new: Path, dest: Path) -> None:
    """Put folder ``new`` at ``dest``, deleting what was there (two renames: never a half-written ``dest``)."""
    if not dest.exists():
        new.rename(dest)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
    try:
        dest.rename(old / dest.name)
        new.rename(dest)
    finally:
        shutil.rmtree(old, ignore_errors=True)


def class_counts(path: str | os.PathLike) -> dict[str, int]:
    """Records per demo class in the ``ptbxl_database.csv`` of ``path``."""
    codes = pd.read_csv(Path(path) / "ptbxl_database.csv", usecols=["scp_codes"])["scp_codes"]
    by_codes = {str(c): cls for cls, c in DEMO_CLASSES.items()}
    labels = [by_codes.get(str(ast.literal_eval(text)), "other") for text in codes]
    return {cls: labels.count(cls) for cls in [*DEMO_CLASSES, "other"] if labels.count(cls)}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rare_gan.demo [--dest DIR] [--n-records N] [--seed S]``: write (or reuse) the DEMO dataset."""
    parser = argparse.ArgumentParser(
        prog="python -m rare_gan.demo",
        description="Write the synthetic DEMO dataset (neurokit2, PTB-XL layout; NOT PTB-XL).")
    parser.add_argument("--dest", help=f"target folder (default: $RARE_GAN_DEMO_DIR or {default_demo_dir()})")
    parser.add_argument("--n-records", type=int, default=300, help="number of records (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--rare-fraction", type=float, default=0.09, help="share of each rare class (default 0.09)")
    parser.add_argument("--workers", type=int, default=None, help="simulation processes (default: up to 2)")
    args = parser.parse_args(argv)
    try:
        root = ensure_demo_dataset(args.dest, n_records=args.n_records, seed=args.seed,
                                   rare_fraction=args.rare_fraction, workers=args.workers)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = class_counts(root)
    print(DEMO_BANNER)
    print(f"DEMO dataset at {root}: {sum(counts.values())} records ("
          + ", ".join(f"{cls} {n}" for cls, n in counts.items()) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
