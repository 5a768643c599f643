"""The realism yardstick: feature set, strong C2ST known answers, controls, TSTR, memorisation of copies."""

from __future__ import annotations

import numpy as np
import pytest

from rare_gan import data, evaluate, features, metrics, realism


@pytest.fixture(scope="module")
def demo_sets(demo_dir):
    meta = data.load_metadata(demo_dir)
    out = {}
    for code in ("NORM", "AFIB"):
        out[code] = np.asarray(data.load_signals(meta, meta.select(code), progress=False).mv)
    out["features"] = {code: features.extract(out[code]) for code in ("NORM", "AFIB")}
    return out


def test_feature_matrix_shape_names_and_known_values(demo_sets):
    names = features.feature_names()
    f = demo_sets["features"]["NORM"]
    assert f.shape == (len(demo_sets["NORM"]), len(names)) and len(set(names)) == len(names)
    assert {features.group_of(n) for n in names} == set(features.GROUPS)
    column = {n: i for i, n in enumerate(names)}
    hr = f[:, column["rr:hr_bpm"]]
    assert np.nanmedian(hr) == pytest.approx(np.nanmedian(demo_sets["features"]["NORM"][:, column["rr:hr_bpm"]]))
    assert 50 < np.nanmedian(hr) < 100  # the DEMO sinus rhythm
    afib_rr_sd = np.nanmedian(demo_sets["features"]["AFIB"][:, column["rr:rr_sd_ms"]])
    assert afib_rr_sd > 2 * np.nanmedian(f[:, column["rr:rr_sd_ms"]])  # irregular rhythm measured as such
    flat = features.extract(np.zeros((1, 1000, 12)))
    assert np.isnan(flat[0, column["rr:hr_bpm"]]) and flat[0, column["rr:n_beats"]] == 0
    assert np.isnan(features.extract(np.full((1, 1000, 12), np.nan))).all()
    with pytest.raises(ValueError, match="expected ECGs shaped"):
        features.extract(np.zeros((2, 1000, 8)))


def test_principal_lead_share_known_answers():
    """Leads mixed from 3 sources: all variance in 3 components; 8 independent white leads: about 3/8."""
    from rare_gan.leads import INDEPENDENT_TO_12

    rng = np.random.default_rng(0)
    t = np.arange(1000) / 100.0
    sources = np.stack([np.sin(2 * np.pi * f * t + p) for f, p in ((1.1, 0), (5.3, 1), (12.7, 2))], axis=-1)
    dipole = np.stack([sources @ rng.standard_normal((3, 8)) for _ in range(4)]) @ INDEPENDENT_TO_12
    np.testing.assert_allclose(features.principal_lead_share(dipole), 1.0, atol=1e-9)
    assert features.principal_lead_share(dipole, k=2).max() < 0.999
    white = rng.standard_normal((20, 1000, 8)) @ INDEPENDENT_TO_12
    assert 0.35 < np.median(features.principal_lead_share(white)) < 0.5
    with pytest.raises(ValueError, match="expected ECGs shaped"):
        features.principal_lead_share(np.zeros((2, 1000, 8)))


def test_features_in_parallel_processes_equal_serial(demo_sets):
    x = np.concatenate([demo_sets["NORM"], demo_sets["AFIB"]])[:128]
    assert len(x) == 128 and features._n_jobs(len(x), None) == 1  # small sets stay in this process by default
    np.testing.assert_array_equal(features.extract(x, n_jobs=2), features.extract(x, n_jobs=1))


def test_c2st_identical_sets_is_chance(demo_sets):
    f = demo_sets["features"]["NORM"][:60]
    result = realism.c2st(f, f.copy(), seed=0, pairs=np.arange(len(f)), n_null=0)
    assert abs(result.auroc - 0.5) < 0.1 and result.n_per_class == 60


def test_c2st_real_vs_real_is_within_its_null(demo_sets):
    f = demo_sets["features"]["NORM"]
    result = realism.c2st(f[::2], f[1::2], seed=1, repeats=3, n_null=6)
    assert abs(result.auroc - 0.5) < max(3 * result.null_sd, 0.12), result
    assert 0.02 < result.null_sd < 0.2 and abs(result.null_mean - 0.5) < 0.1


def test_c2st_obviously_different_sets_are_told_apart_and_says_why(demo_sets):
    noise = np.random.default_rng(0).normal(0, 0.3, demo_sets["NORM"][:60].shape)
    result = realism.c2st(demo_sets["features"]["NORM"][:60], features.extract(noise), seed=0)
    assert result.auroc > 0.97 and result.p_value < 0.1
    assert len(result.top_features) == realism.TOP_FEATURES and result.top_features[0]["auroc"] > 0.95
    afib = realism.c2st(demo_sets["features"]["NORM"], demo_sets["features"]["AFIB"], seed=0, repeats=2, n_null=0)
    assert afib.auroc > 0.95
    assert any(f["feature"].startswith("rr:") for f in afib.top_features)  # AFIB is irregular: rhythm gives it away


def test_jittered_copies_pass_the_c2st_and_fail_the_memorisation_check(demo_sets):
    # DEMO ECGs are noise-free simulations, where 0.01 mV of added noise alone gives a copy away;
    # real ECGs carry more noise already, at levels that differ between records: so give them that
    rng = np.random.default_rng(5)
    clean = demo_sets["NORM"][:40]
    real = clean + rng.normal(0, 1, clean.shape) * rng.uniform(0.03, 0.1, (len(clean), 1, 1))
    copies = realism.jittered_copies(real, seed=0)
    assert not np.array_equal(copies, real) and copies.shape == real.shape
    result = realism.c2st(features.extract(real), features.extract(copies), seed=0, pairs=np.arange(len(real)))
    assert abs(result.auroc - 0.5) < 0.15, result.auroc
    _, memo = metrics.memorisation_report(copies, real, demo_sets["NORM"][40:80])
    assert memo["fraction_near_copy"] > 0.9
    assert realism.nn_distance_ratio(memo) < 0.9


def test_c2st_needs_enough_ecgs(demo_sets):
    f = demo_sets["features"]["NORM"]
    with pytest.raises(ValueError, match="at least 5 ECGs per set"):
        realism.c2st(f[:3], f[3:10])


def test_tstr_with_real_positives_matches_real(demo_dir):
    task = evaluate.load_task("demo", "AFIB")
    from rare_gan import utility

    rows = utility.real_rows(utility.feature_family(), task)
    positives = rows.train[rows.train_y == 1]
    out = realism.tstr(rows.train[rows.train_y == 0], positives, positives, rows.test, rows.test_y)
    assert out["tstr_auroc"] == pytest.approx(out["real_auroc"]) and out["real_auroc"] > 0.9
    noise = features.extract(np.random.default_rng(1).normal(0, 0.2, (30, 1000, 12)))
    bad = realism.tstr(rows.train[rows.train_y == 0], noise, positives, rows.test, rows.test_y)
    assert bad["tstr_auroc"] < out["real_auroc"] - 0.2


def test_controls_on_genuine_ptbxl(ptbxl_dir):
    """On real PTB-XL the yardstick calls real-vs-real and jittered copies indistinguishable."""
    task = evaluate.load_task(ptbxl_dir, "PVC")
    ref = realism.load_reference(task, seed=0, effort=realism.EFFORT["quick"])  # 3 repeats: enough for ±0.15
    c = ref.controls
    assert abs(c["c2st_common_control"] - 0.5) < 0.2 and abs(c["c2st_jitter_control"] - 0.5) < 0.15
    assert c["jitter_near_copy_fraction"] > 0.9 and 0.3 < c["c2st_real_control"] < 0.8


def test_controls_are_cached_by_data_and_seed(demo_dir, monkeypatch):
    task = evaluate.load_task("demo", "AFIB")
    first = realism.load_reference(task, seed=0, effort=realism.EFFORT["test"]).controls
    assert {"c2st_real_control", "c2st_jitter_control", "jitter_near_copy_fraction"} <= set(first)

    def must_not_run(*args, **kwargs):
        raise AssertionError("the controls were computed again")

    monkeypatch.setattr(realism, "_control_tests", must_not_run)
    assert realism.load_reference(task, seed=0, effort=realism.EFFORT["test"]).controls == first
    with pytest.raises(AssertionError, match="computed again"):
        realism.load_reference(task, seed=1, effort=realism.EFFORT["test"])  # another seed: other controls
    task.y["train"] = 1 - task.y["train"]  # other labels: other controls
    with pytest.raises(AssertionError, match="computed again"):
        realism.load_reference(task, seed=0, effort=realism.EFFORT["test"])


def test_cnn_c2st_reuses_one_compiled_cnn_and_each_call_starts_afresh(monkeypatch):
    """The compiled CNN is shared by every fold and call, yet a call's AUROC is the one a freshly built
    CNN gives: weights, dropout state and optimizer state are reset from the fold's seed."""
    rng = np.random.default_rng(0)
    real, synthetic = rng.normal(0, 0.3, (24, 1000, 12)), rng.normal(0, 0.4, (24, 1000, 12))
    monkeypatch.setattr(realism, "_C2ST_CNNS", {})
    first = realism.cnn_c2st(real, synthetic, seed=0, folds=2, epochs=1)
    (model, _), = realism._C2ST_CNNS.values()
    other = realism.cnn_c2st(real, synthetic, seed=1, folds=2, epochs=1)
    assert realism.cnn_c2st(real, synthetic, seed=0, folds=2, epochs=1) == first != other
    assert list(realism._C2ST_CNNS.values())[0][0] is model and len(realism._C2ST_CNNS) == 1
