"""Known-answer tests of rare_gan.metrics: classification with bootstrap CIs, realism, smoothness, memorisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import uniform_filter1d
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from rare_gan import metrics as M

FS, T, L = 100, 1000, 12
# P, Q, R, S, T waves: amplitude (mV), width (s), offset from the R peak (s)
WAVES = np.array([[0.15, 0.025, -0.16], [-0.10, 0.010, -0.03], [1.00, 0.012, 0.0], [-0.25, 0.012, 0.03],
                  [0.30, 0.060, 0.28]])
LEAD_GAIN = np.random.default_rng(12345).uniform(-1.0, 1.5, (L, len(WAVES)))


def ecg_like(n: int, seed: int, hr=(55, 100), noise_mv: float = 0.01) -> np.ndarray:
    """(n, 1000, 12) mV ECG-like records: Gaussian P-QRS-T beats with jittered RR, per-record
    morphology and lead gains, baseline wander and white noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(T + 200) / FS
    out = np.empty((n, T, L))
    for i in range(n):
        rr = 60 / rng.uniform(*hr)
        beats = np.cumsum(rr * (1 + 0.03 * rng.standard_normal(int(14 / rr))))
        amp = WAVES[:, 0] * (1 + 0.25 * rng.standard_normal(len(WAVES)))
        gain = LEAD_GAIN * (1 + 0.3 * rng.standard_normal(LEAD_GAIN.shape))
        centres = beats[:, None] + WAVES[None, :, 2]
        waves = np.exp(-0.5 * ((t[:, None, None] - centres[None]) / WAVES[None, None, :, 1]) ** 2).sum(axis=1)
        sig = (waves * amp) @ gain.T + 0.1 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 6.3))[:, None]
        out[i] = sig[100:100 + T] + noise_mv * rng.standard_normal((T, L))
    return out.astype(np.float32)


@pytest.fixture(scope="module")
def two_halves():
    """Two independent sets of 300 ECG-like records from the same distribution."""
    return ecg_like(300, 0), ecg_like(300, 1)


def smooth(ecgs: np.ndarray, width: int = 5) -> np.ndarray:
    """Moving average over ``width`` samples (a crude low-pass, like an overly smooth generator)."""
    return uniform_filter1d(ecgs, width, axis=1)


def near_copy(ecg: np.ndarray, seed: int = 0) -> np.ndarray:
    """``ecg`` delayed by 7 samples, rescaled ×1.3, plus 0.02 mV white noise."""
    noise = 0.02 * np.random.default_rng(seed).standard_normal(ecg.shape)
    return (1.3 * np.roll(ecg, 7, axis=0) + noise).astype(np.float32)


# --- classification metrics -------------------------------------------------------------------

def test_sens_at_spec_toy_example():
    # 10 negatives 0.1..1.0, positives 0.95, 0.85, 0.65, 0.05.
    # spec >= 90 % allows 1 false positive: threshold above 0.9 -> only 0.95 detected -> 1/4.
    # spec >= 95 % allows 0 false positives: threshold above 1.0 -> none detected.
    neg = np.arange(1, 11) / 10
    pos = np.array([0.95, 0.85, 0.65, 0.05])
    y = np.r_[np.zeros(10), np.ones(4)]
    m = M.binary_metrics(y, np.r_[neg, pos], threshold=0.6)
    assert m["sens_at_spec90"] == pytest.approx(0.25)
    assert m["sens_at_spec95"] == pytest.approx(0.0)
    # at 0.6: TP 3 (0.95, 0.85, 0.65), FP 5 (0.6..1.0), TN 5, FN 1
    assert m["sensitivity"] == pytest.approx(0.75)
    assert m["specificity"] == pytest.approx(0.5)
    assert m["accuracy"] == pytest.approx(8 / 14)
    assert m["f1"] == pytest.approx(6 / 12)
    assert m["balanced_accuracy"] == pytest.approx(0.625)


def test_binary_metrics_match_sklearn_with_ties():
    rng = np.random.default_rng(3)
    y = (rng.random(300) < 0.1).astype(int)
    score = np.round(rng.random(300) + 0.5 * y, 1)  # coarse scores: many ties
    m = M.binary_metrics(y, score, threshold=0.8)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, score))
    assert m["auprc"] == pytest.approx(average_precision_score(y, score))
    fpr, tpr, _ = roc_curve(y, score)
    assert m["sens_at_spec90"] == pytest.approx(tpr[fpr <= 0.1 + 1e-12].max())
    assert m["sens_at_spec95"] == pytest.approx(tpr[fpr <= 0.05 + 1e-12].max())


def test_single_class_gives_nan_not_exception():
    m = M.binary_metrics(np.zeros(20), np.linspace(0, 1, 20), threshold=0.5)
    assert np.isnan(m["auroc"]) and np.isnan(m["sensitivity"]) and np.isnan(m["sens_at_spec90"])
    assert m["specificity"] == pytest.approx(0.5)
    table = M.bootstrap_metrics(np.zeros(20), np.linspace(0, 1, 20)[None], [0.5], n_boot=50)
    assert np.isnan(table.loc["auroc", ["mean", "ci_low", "ci_high"]]).all()
    assert table.loc["auroc", "n_pos"] == 0


def test_choose_threshold_uses_validation_scores():
    y_val = np.array([0, 0, 0, 1, 1])
    s_val = np.array([0.1, 0.2, 0.6, 0.7, 0.9])
    # perfect split between 0.6 and 0.7: both rules return the midpoint
    assert M.choose_threshold(y_val, s_val, "f1") == pytest.approx(0.65)
    assert M.choose_threshold(y_val, s_val, "youden") == pytest.approx(0.65)
    # F1 prefers catching the positive at 0.3 (TP 3, FP 1 -> F1 6/7) over missing it (F1 4/5)
    y_val2 = np.array([0, 0, 1, 0, 1, 1])
    s_val2 = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    assert M.choose_threshold(y_val2, s_val2, "f1") == pytest.approx(0.25)
    with pytest.raises(ValueError):
        M.choose_threshold(np.ones(5), s_val, "f1")
    with pytest.raises(ValueError):
        M.choose_threshold(y_val, s_val, "accuracy")


def _labels(n_pos: int, n: int = 255) -> np.ndarray:
    return np.r_[np.ones(n_pos), np.zeros(n - n_pos)].astype(int)


def test_bootstrap_perfect_classifier_ci_is_one():
    y = _labels(10)
    scores = np.stack([y + 0.1 * np.random.default_rng(s).random(255) for s in range(3)])
    table = M.bootstrap_metrics(y, scores, [0.5, 0.5, 0.5], n_boot=300)
    assert list(table.columns) == ["mean", "ci_low", "ci_high", "n_pos", "n_neg"]
    assert tuple(table.loc["auroc", ["mean", "ci_low", "ci_high"]]) == (1.0, 1.0, 1.0)
    assert table.loc["sensitivity", "ci_low"] == 1.0
    assert (table["n_pos"] == 10).all() and (table["n_neg"] == 245).all()


def test_bootstrap_random_scores_ci_contains_half():
    y = _labels(10)
    scores = np.random.default_rng(7).random((3, 255))
    one_seed = M.bootstrap_metrics(y, scores[:1], [0.5]).loc["auroc"]
    three_seeds = M.bootstrap_metrics(y, scores, [0.5] * 3).loc["auroc"]
    for row in (one_seed, three_seeds):
        assert row["ci_low"] < 0.5 < row["ci_high"]
    # ten positives: SE ≈ sqrt(1 / (12 · 10)) ≈ 0.09 for one seed, still wide averaged over three
    assert one_seed["ci_high"] - one_seed["ci_low"] > 0.25
    assert three_seeds["ci_high"] - three_seeds["ci_low"] > 0.1


def test_bootstrap_ci_wider_with_fewer_positives():
    rng = np.random.default_rng(11)

    def width(n_pos):
        y = _labels(n_pos, 400)
        scores = rng.standard_normal((3, 400)) + 1.0 * y
        table = M.bootstrap_metrics(y, scores, [0.5] * 3, n_boot=500)
        return table.loc["auroc", "ci_high"] - table.loc["auroc", "ci_low"]

    assert width(8) > 1.5 * width(80)


def test_bootstrap_mean_is_seed_average_of_point_estimates():
    rng = np.random.default_rng(5)
    y = _labels(12, 100)
    scores = rng.standard_normal((3, 100)) + y
    table = M.bootstrap_metrics(y, scores, [0.3, 0.5, 0.7], n_boot=100)
    expected = np.mean([M.binary_metrics(y, s, t)["f1"] for s, t in zip(scores, [0.3, 0.5, 0.7])])
    assert table.loc["f1", "mean"] == pytest.approx(expected)


def test_paired_difference_of_model_with_itself_is_zero():
    rng = np.random.default_rng(2)
    y = _labels(10)
    scores = rng.standard_normal((3, 255)) + y
    result = M.paired_bootstrap_difference(y, scores, scores, [0.5] * 3, [0.5] * 3, n_boot=500)
    assert result["difference"] == 0 and result["ci_low"] == 0 and result["ci_high"] == 0
    assert not result["significant"] and result["p_value"] == 1.0


def test_paired_difference_detects_a_much_better_model():
    rng = np.random.default_rng(4)
    y = _labels(30)
    good = rng.standard_normal((3, 255)) + 3 * y
    weak = rng.standard_normal((3, 255)) + 0.3 * y
    result = M.paired_bootstrap_difference(y, good, weak, [1.5] * 3, [0.2] * 3, metric="auroc", n_boot=500)
    assert result["difference"] > 0.2 and result["ci_low"] > 0
    assert result["significant"] and result["p_value"] < 0.01
    f1 = M.paired_bootstrap_difference(y, good, weak, [1.5] * 3, [0.2] * 3, metric="f1", n_boot=200)
    assert f1["difference"] > 0 and f1["significant"]


# --- realism ------------------------------------------------------------------------------------

def test_smoothing_lowers_high_frequency_ratio(two_halves):
    a, _ = two_halves
    a = a[:50]
    hfr, hfr_smooth = M.high_frequency_ratio(a), M.high_frequency_ratio(smooth(a))
    assert hfr.shape == (50,) and (hfr_smooth < hfr).all()
    white = np.random.default_rng(0).standard_normal((5, T, 12))
    assert (M.high_frequency_ratio(white) > 0.5).all()


def test_wasserstein_ignores_nan():
    assert M.wasserstein([0.0, 1.0, np.nan], [1.0, 2.0]) == pytest.approx(1.0)
    assert np.isnan(M.wasserstein([np.nan], [1.0]))


# --- memorisation -------------------------------------------------------------------------------

def _brute_force_similarity(a: np.ndarray, b: np.ndarray, max_shift: int) -> float:
    za, zb = ((x - x.mean(0)) / x.std(0) for x in (a.astype(np.float64), b.astype(np.float64)))
    best = -1.0
    for lag in range(-max_shift, max_shift + 1):
        x, y = (za[:T - lag], zb[lag:]) if lag >= 0 else (za[-lag:], zb[:T + lag])
        best = max(best, (x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))
    return best


def test_nn_similarity_matches_brute_force():
    rng = np.random.default_rng(1)
    queries = np.cumsum(rng.standard_normal((3, T, 12)), axis=1)
    refs = np.cumsum(rng.standard_normal((4, T, 12)), axis=1)
    sim, idx = M.nearest_neighbour_similarity(queries, refs, max_shift=20)
    for q in range(3):
        brute = [_brute_force_similarity(queries[q], r, 20) for r in refs]
        assert sim[q] == pytest.approx(max(brute), abs=1e-4) and idx[q] == int(np.argmax(brute))


def test_nn_similarity_is_shift_and_scale_invariant():
    train = ecg_like(20, 2)
    sim, idx = M.nearest_neighbour_similarity(train[:3], train)
    np.testing.assert_allclose(sim, 1.0, atol=1e-4)
    assert idx.tolist() == [0, 1, 2]
    shifted = 2.5 * np.roll(train[5], -40, axis=0) + 3.0  # 0.4 s earlier, x2.5, +3 mV offset
    sim, idx = M.nearest_neighbour_similarity(shifted[None], train)
    assert idx[0] == 5 and sim[0] > 0.95
    sim, idx = M.nearest_neighbour_similarity(train, train, exclude_self=True)
    assert (idx != np.arange(20)).all() and (sim < 0.95).all() and (sim >= -1).all()


def test_memorisation_flags_copies_not_new_ecgs():
    train = ecg_like(30, 2, hr=(55, 70))
    test_real = ecg_like(15, 3, hr=(55, 70))
    different = ecg_like(3, 4, hr=(100, 110))
    synth = np.concatenate([train[3][None], near_copy(train[8])[None], different])
    table, summary = M.memorisation_report(synth, train, test_real)
    assert table["near_copy"].tolist() == [True, True, False, False, False]
    assert table["nn_train_index"].tolist()[:2] == [3, 8]
    assert table["nn_similarity"].iloc[1] > 0.95
    assert summary["fraction_near_copy"] == pytest.approx(0.4)
    assert summary["threshold"] == pytest.approx(min(summary["test_quantile"], 0.95))
    assert summary["median_test_to_train"] < 0.95
    assert 0 <= summary["test_false_flag_rate"] <= 0.2


def test_memorisation_p_value_detects_copying_generator():
    train = ecg_like(30, 5)
    test_real = ecg_like(20, 6)
    copies = np.stack([near_copy(train[k], seed=k) for k in range(20)])
    _, summary = M.memorisation_report(copies, train, test_real)
    assert summary["fraction_near_copy"] == 1.0 and summary["mannwhitney_p"] < 1e-4
    _, honest = M.memorisation_report(ecg_like(20, 7), train, test_real)
    assert honest["fraction_above_absolute"] == 0.0 and honest["mannwhitney_p"] > 0.01


@pytest.mark.ptbxl
def test_memorisation_on_real_ptbxl(ptbxl_dir):
    from rare_gan.data import read_record

    db = pd.read_csv(ptbxl_dir / "ptbxl_database.csv", index_col="ecg_id")
    on_disk = db[[(ptbxl_dir / (f + ".hea")).is_file() for f in db["filename_lr"]]]

    def load(rows):
        return np.stack([read_record(ptbxl_dir / f) for f in rows["filename_lr"]])

    train = load(on_disk[on_disk["strat_fold"] <= 8].head(40))
    test_real = load(on_disk[on_disk["strat_fold"] == 10].head(30))
    unseen = load(on_disk[on_disk["strat_fold"] == 9].head(20))
    synth = np.concatenate([near_copy(train[k], seed=k)[None] for k in (0, 17)] + [unseen])
    table, summary = M.memorisation_report(synth, train, test_real)
    assert table["near_copy"].iloc[:2].all() and (table["nn_similarity"].iloc[:2] > 0.95).all()
    assert table["nn_train_index"].iloc[:2].tolist() == [0, 17]
    new = table.iloc[2:]
    assert not new["above_absolute"].any() and new["near_copy"].mean() <= 0.2  # ≈ 1/(n_test+1) by design
    assert summary["median_test_to_train"] < 0.6


def test_speed_of_nn_and_bootstrap():
    import time

    rng = np.random.default_rng(0)
    queries = rng.standard_normal((1000, T, 12)).astype(np.float32)
    refs = rng.standard_normal((100, T, 12)).astype(np.float32)
    start = time.perf_counter()
    M.nearest_neighbour_similarity(queries, refs)
    nn_seconds = time.perf_counter() - start
    y = _labels(10)
    start = time.perf_counter()
    M.bootstrap_metrics(y, rng.random((3, 255)) + y, [0.5] * 3, n_boot=1000)
    boot_seconds = time.perf_counter() - start
    assert nn_seconds < 15 and boot_seconds < 3  # typically ~1 s and ~0.1 s; generous for loaded CI machines


def test_holm_adjust_matches_hand_computation():
    from rare_gan.metrics import holm_adjust

    adjusted = holm_adjust([0.01, 0.04, 0.03, 0.2])
    np.testing.assert_allclose(adjusted, [0.04, 0.09, 0.09, 0.2])
    assert holm_adjust([0.5, 0.9]).max() <= 1.0
