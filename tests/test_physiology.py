"""Known-answer tests of rare_gan.physiology (R-peaks, RR-SD, features, Wasserstein table)."""

from __future__ import annotations

import ast
import math
import time

import numpy as np
import pandas as pd
import pytest

from rare_gan import physiology as ph
from rare_gan.leads import LEAD_NAMES, N_SAMPLES, SAMPLING_RATE_HZ, assemble_12_leads

FS = SAMPLING_RATE_HZ


# Beat shapes: Gaussian waves (offset from the R-peak in s, SD in s, amplitude in mV).
NORMAL_BEAT = ((-0.16, 0.025, 0.15), (-0.03, 0.012, -0.1), (0.0, 0.012, 1.2), (0.03, 0.012, -0.25), (0.28, 0.05, 0.3))
TALL_T_BEAT = ((-0.16, 0.025, 0.15), (-0.03, 0.012, -0.1), (0.0, 0.012, 1.0), (0.03, 0.012, -0.25), (0.30, 0.06, 0.8))
TALL_P_BEAT = ((-0.15, 0.03, 0.7), (-0.03, 0.012, -0.1), (0.0, 0.01, 0.8), (0.03, 0.012, -0.25), (0.28, 0.05, 0.3))
SMALL_BEAT = ((-0.16, 0.025, 0.1), (-0.03, 0.012, -0.05), (0.0, 0.012, 0.35), (0.03, 0.012, -0.1), (0.28, 0.05, 0.15))
PVC_BEAT = ((0.0, 0.03, 2.5), (0.08, 0.03, -0.8), (0.3, 0.07, -0.6))  # wide, tall, no P wave, inverted T


def beat_train(beat_times_s, n: int = N_SAMPLES, fs: int = FS, shapes=(NORMAL_BEAT,)) -> np.ndarray:
    """Lead-II-like signal (mV) with a beat at each time (s); beat i has shape ``shapes[i % len(shapes)]``."""
    t = np.arange(n) / fs
    x = np.zeros(n)
    for i, b in enumerate(beat_times_s):
        for mu, sd, amp in shapes[i % len(shapes)]:
            x += amp * np.exp(-0.5 * ((t - b - mu) / sd) ** 2)
    return x


def twelve_leads(lead_ii: np.ndarray) -> np.ndarray:
    """(T, 12) ECG whose limb leads follow Einthoven/Goldberger exactly."""
    independent = np.stack([0.6 * lead_ii, lead_ii] + [f * lead_ii for f in (-0.5, 0.3, 0.8, 1.2, 1.0, 0.7)], axis=-1)
    return assemble_12_leads(independent)


REGULAR_TIMES = np.arange(0.4, 10.0, 0.8)  # every 800 ms = 75 bpm
IRREGULAR_TIMES = 0.3 + np.concatenate([[0.0], np.cumsum(np.tile([0.6, 1.0], 6))])[:12]  # RR 600/1000 ms


@pytest.fixture(scope="module")
def regular() -> np.ndarray:
    return twelve_leads(beat_train(REGULAR_TIMES))


@pytest.fixture(scope="module")
def irregular() -> np.ndarray:
    return twelve_leads(beat_train(IRREGULAR_TIMES))


def test_regular_rhythm_known_answer(regular):
    peaks = ph.detect_rpeaks(regular[:, 1])
    np.testing.assert_array_equal(peaks, np.round(REGULAR_TIMES * FS).astype(int))
    row = ph.ecg_features(regular).iloc[0]
    assert row.heart_rate_bpm == pytest.approx(75.0, rel=0.02)
    assert row.rr_sd_ms < 20
    assert row.rr_mean_ms == pytest.approx(800.0, abs=10)
    assert row.n_rpeaks == len(REGULAR_TIMES)
    assert row.ok and row.plausible
    assert 0.9 <= row.signal_quality <= 1.0
    assert 40 <= row.qrs_ms <= 150 and 80 <= row.pr_ms <= 260 and 250 <= row.qt_ms <= 500


@pytest.mark.parametrize("fs", [100, 250, 500])
def test_ecg_clean_gives_neurokits_numbers(fs):
    import neurokit2 as nk

    rng = np.random.default_rng(fs)
    t = np.arange(10 * fs) / fs
    x = np.sin(2 * np.pi * 1.2 * t) ** 63 + 0.3 * np.sin(2 * np.pi * 0.2 * t) + 0.02 * rng.standard_normal(t.size)
    np.testing.assert_array_equal(ph.ecg_clean(x, fs), nk.ecg_clean(x, sampling_rate=fs, method="neurokit"))


def test_rpeak_memo_answers_a_repeat_without_sharing_its_array(regular, monkeypatch):
    monkeypatch.setattr(ph, "RPEAK_MEMO_SIZE", 2)
    monkeypatch.setattr(ph, "_RPEAK_MEMO", ph.OrderedDict())
    expected = np.round(REGULAR_TIMES * FS).astype(int)
    first = ph.detect_rpeaks(regular[:, 1])
    first[:] = -1  # a caller's change must not reach the memo
    np.testing.assert_array_equal(ph.detect_rpeaks(regular[:, 1].copy()), expected)
    assert len(ph._RPEAK_MEMO) == 1
    ph.detect_rpeaks(regular[:, 1], fs=2 * FS)  # another rate is another answer
    ph.detect_rpeaks(regular[:, 0])
    assert len(ph._RPEAK_MEMO) == 2  # bounded: the oldest answer went
    np.testing.assert_array_equal(ph.detect_rpeaks(regular[:, 1]), expected)


def test_neurokit_simulated_75_bpm():
    import neurokit2 as nk

    sim = nk.ecg_simulate(duration=10, sampling_rate=FS, heart_rate=75, heart_rate_std=0, random_state=0)
    ecg = twelve_leads(np.asarray(sim))
    assert ph.rr_sd_ms(ecg) < 20
    row = ph.ecg_features(ecg, delineate=False).iloc[0]
    assert row.heart_rate_bpm == pytest.approx(75.0, rel=0.03)
    assert row.plausible and math.isnan(row.qrs_ms)


def test_irregular_rhythm_known_answer(irregular):
    expected = np.std(np.diff(IRREGULAR_TIMES) * 1000, ddof=1)  # ≈ 209 ms: RR alternating 600/1000 ms
    value = ph.rr_sd_ms(irregular)
    assert value == pytest.approx(200, abs=25)
    assert value == pytest.approx(expected, abs=10)
    assert ph.rr_sd_ms(irregular[:, 1]) == pytest.approx(value)  # 1-D lead accepted


@pytest.mark.parametrize("source", ["gaussian", "tall_t", "neurokit"])
def test_record_ends_cutting_through_a_beat_add_no_peaks(source):
    """Crops of a regular 75 bpm ECG at every phase of the cycle (the ends cut P, QRS or T waves)."""
    import neurokit2 as nk

    times = np.arange(0.4, 14.0, 0.8)
    long = {"gaussian": lambda: beat_train(times, n=1400),
            "tall_t": lambda: beat_train(times, n=1400, shapes=(TALL_T_BEAT,)),
            "neurokit": lambda: np.asarray(nk.ecg_simulate(duration=14, sampling_rate=FS, heart_rate=75,
                                                           heart_rate_std=0, random_state=0))}[source]()
    for offset in range(0, 80, 5):
        crop = long[offset:offset + N_SAMPLES]
        assert ph.rr_sd_ms(crop) < 20, offset
        if source != "neurokit":  # known R times: every peak is one of them (no T or P wave peaks)
            r_times = np.round(times * FS).astype(int) - offset
            peaks = ph.detect_rpeaks(crop)
            assert np.abs(peaks[:, None] - r_times[None]).min(axis=1).max() <= 1, offset


def test_tall_p_wave_does_not_hide_its_qrs():
    times = np.arange(0.5, 10.0, 0.8)
    np.testing.assert_array_equal(ph.detect_rpeaks(beat_train(times, shapes=(TALL_P_BEAT,))),
                                  np.round(times * FS).astype(int))


def test_bigeminy_keeps_small_normal_beats():
    """Normal beats much flatter than the PVCs between them are kept: the rhythm stays irregular."""
    times = 0.3 + np.concatenate([[0.0], np.cumsum(np.tile([0.55, 1.15], 6))])[:12]  # coupling 550 ms, pause 1150 ms
    x = beat_train(times, shapes=(SMALL_BEAT, PVC_BEAT))
    np.testing.assert_array_equal(ph.detect_rpeaks(x), np.round(times * FS).astype(int))
    assert ph.rr_sd_ms(x) == pytest.approx(np.std(np.diff(times) * 1000, ddof=1), abs=5)


def test_lead_selection(regular):
    assert ph.rr_sd_ms(regular, lead="aVR") == ph.rr_sd_ms(regular, lead="AVR") == ph.rr_sd_ms(regular, lead=3)
    with pytest.raises(ValueError):
        ph.rr_sd_ms(regular, lead="V7")


@pytest.mark.parametrize("kind", ["zeros", "constant", "nan", "inf", "short", "empty", "huge_flat"])
def test_flat_and_broken_signals_give_nan(kind):
    ecg = {"zeros": np.zeros((N_SAMPLES, 12)), "constant": np.full((N_SAMPLES, 12), 0.3),
           "nan": np.full((N_SAMPLES, 12), np.nan), "inf": np.full((N_SAMPLES, 12), np.inf),
           "short": np.zeros((50, 12)), "empty": np.zeros((0, 12)), "huge_flat": np.full((N_SAMPLES, 12), 1e30)}[kind]
    assert ph.detect_rpeaks(ecg[:, 1]).size == 0
    assert math.isnan(ph.rr_sd_ms(ecg))
    row = ph.ecg_features(ecg).iloc[0]
    assert row.n_rpeaks == 0 and not row.ok and not row.plausible
    measured = ["heart_rate_bpm", "rr_sd_ms", "qrs_ms", "pr_ms", "qt_ms", "signal_quality"]
    assert np.isnan(row[measured].astype(float)).all()


def test_partly_nan_ecg_is_not_plausible(regular):
    ecg = regular.copy()
    ecg[500, 4] = np.nan  # aVL only; lead II intact
    row = ph.ecg_features(ecg).iloc[0]
    assert row.n_rpeaks == len(REGULAR_TIMES)
    assert math.isnan(row.limb_residual_mv) and not row.plausible


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_white_noise_is_not_plausible(seed):
    noise = np.random.default_rng(seed).normal(0.0, 0.3, (3, N_SAMPLES, 12))
    df = ph.ecg_features(noise)
    assert not df.plausible.any()
    assert ph.rr_sd_ms_batch(noise).shape == (3,)


def test_limb_residual(regular):
    assert ph.ecg_features(regular).limb_residual_mv.iloc[0] < 1e-9
    broken = regular.copy()
    broken[:, LEAD_NAMES.index("III")] += 0.5
    assert ph.ecg_features(broken, delineate=False).limb_residual_mv.iloc[0] == pytest.approx(0.5)


def test_batch_matches_single_and_mixes_bad_ecgs(regular, irregular):
    batch = np.stack([regular, np.zeros_like(regular), irregular, np.full_like(regular, np.nan)]).astype(np.float32)
    out = ph.rr_sd_ms_batch(batch)
    assert out.dtype == np.float64 and out.shape == (4,)
    assert out[0] == pytest.approx(ph.rr_sd_ms(regular), abs=1e-6)
    assert out[2] == pytest.approx(ph.rr_sd_ms(irregular), abs=1e-6)
    assert np.isnan(out[[1, 3]]).all()
    df = ph.ecg_features(batch)
    assert list(df.columns) == list(ph.FEATURE_COLUMNS) and len(df) == 4
    assert df.plausible.tolist() == [True, False, True, False]
    assert df.ok.dtype == bool and df.n_rpeaks.dtype == np.int64


def test_batch_of_64_is_fast(regular, irregular):
    noise = 1e-3 * np.random.default_rng(0).standard_normal((64, *regular.shape))  # 64 different ECGs for the memo
    batch = np.stack([regular, irregular] * 32) + noise
    ph.rr_sd_ms_batch(batch[:2] - noise[:2])  # neurokit2 import and first-call overheads
    t0 = time.process_time()  # CPU seconds of this process (serial): other tests beside it do not count
    out = ph.rr_sd_ms_batch(batch)
    assert time.process_time() - t0 < 1.0
    assert np.isfinite(out).all()


def test_parallel_equals_serial(regular, irregular):
    batch = np.stack([regular, irregular, np.zeros_like(regular), regular])
    serial = ph.ecg_features(batch, delineate=False)
    parallel = ph.ecg_features(batch, delineate=False, n_jobs=2)
    pd.testing.assert_frame_equal(serial, parallel)


def test_wasserstein_table_known_answer():
    real = pd.DataFrame({"hr": [60.0, 70.0, 80.0, np.nan], "ok": [True, True, False, True]})
    synth = pd.DataFrame({"hr": [70.0, 80.0, 90.0], "ok": [True, True, True]})
    table = ph.wasserstein_table(real, synth, ["hr", "ok"])
    assert table.loc["hr", "wasserstein"] == pytest.approx(10.0)
    assert table.loc["hr", ["n_real", "n_synth"]].tolist() == [3, 3]
    assert table.loc["ok", "wasserstein"] == pytest.approx(0.25)
    empty = ph.wasserstein_table(real, synth.assign(hr=np.nan), ["hr"])
    assert math.isnan(empty.loc["hr", "wasserstein"]) and empty.loc["hr", "n_synth"] == 0
    assert set(ph.wasserstein_table(real, synth).index) == {"hr", "ok"}


# Beats counted by eye (QRS complexes in V1 and II over the 10 s) in PTB-XL records.
HAND_COUNTED_BEATS = {1: 11, 3: 11, 18: 22, 23: 21, 152: 14}  # 18, 23: AFLT; 152: AFIB


@pytest.mark.ptbxl
def test_real_ptbxl_heart_rate_matches_beat_count(ptbxl_dir):
    import wfdb

    root = ptbxl_dir
    db = pd.read_csv(root / "ptbxl_database.csv", index_col="ecg_id")
    ecgs = np.stack([wfdb.rdsamp(str(root / db.loc[i, "filename_lr"]))[0] for i in HAND_COUNTED_BEATS])
    df = ph.ecg_features(ecgs)
    counts = np.array(list(HAND_COUNTED_BEATS.values()))
    np.testing.assert_allclose(df.heart_rate_bpm, 6.0 * counts, rtol=0.10)
    assert (np.abs(df.n_rpeaks - counts) <= 1).all()
    assert df.plausible.all()
    assert (df.limb_residual_mv < 0.01).all()  # PTB-XL limb leads are derived (µV quantisation only)
    assert df.rr_sd_ms.iloc[4] > 2 * df.rr_sd_ms.iloc[:2].max()  # AFIB is irregular
    assert np.isfinite(df[["qrs_ms", "pr_ms", "qt_ms"]].to_numpy()).all()


@pytest.mark.ptbxl
def test_real_ptbxl_norm_is_regular_and_afib_irregular(ptbxl_dir):
    """Lead II of the first 100 NORM+SR records and all AFIB records that have waveforms.

    Measured: 23 % of these NORM records have RR-SD > 50 ms, as by an all-lead reference detector
    (26 %: sinus arrhythmia of young subjects, PACs, PVCs; plain neurokit2 25 %); detections on T
    waves cut at the record ends made it 44 %. AFIB median 135 ms vs NORM 35 ms.
    """
    import wfdb

    db = pd.read_csv(ptbxl_dir / "ptbxl_database.csv", index_col="ecg_id").sort_index()
    db = db[[(ptbxl_dir / (f + ".hea")).is_file() for f in db["filename_lr"]]]
    codes = db["scp_codes"].map(ast.literal_eval)
    norm = db.index[codes.map(lambda c: "NORM" in c and "SR" in c)][:100]
    afib = db.index[codes.map(lambda c: "AFIB" in c)]
    assert len(norm) == 100 and len(afib) >= 20

    def rr_sd(ids) -> np.ndarray:
        return ph.rr_sd_ms_batch(np.stack([wfdb.rdsamp(str(ptbxl_dir / db.loc[i, "filename_lr"]))[0] for i in ids]))

    rr_norm, rr_afib = rr_sd(norm), rr_sd(afib)
    assert np.isfinite(rr_norm).all()
    assert np.mean(rr_norm > 50) < 0.30
    assert np.nanmedian(rr_afib) >= 3 * np.median(rr_norm)
