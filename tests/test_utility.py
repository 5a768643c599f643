"""Utility: both classifier families, fixed test split, k-subsampling, the low-data study end to end."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from rare_gan import data, evaluate, lowdata, metrics, utility


@pytest.fixture(scope="module")
def afib(demo_dir):
    return evaluate.load_task("demo", "AFIB")


def test_feature_model_separates_a_known_separable_demo_pair(afib):
    family = utility.feature_family()
    rows = utility.real_rows(family, afib)
    fit = utility.fit_variant(family, rows, "real", [0, 1])
    table = utility.utility_table(rows, [fit], n_boot=200).set_index("metric")
    assert table.at["auroc", "mean"] > 0.95 and table.at["auroc", "n_pos"] == int(rows.test_y.sum())
    assert fit.test_scores.shape == (2, len(rows.test_y)) and 0 < fit.thresholds[0] < 1
    x, y = utility.test_split(afib)
    assert len(y) == len(rows.test_y) == len(afib.y["val"]) + len(afib.y["test"])


def test_parallel_fits_equal_serial_ones_and_keep_the_out_of_fold_threshold(afib):
    family = utility.feature_family()
    rows = utility.real_rows(family, afib)
    parallel = utility.fit_variant(family, rows, "oversample@0.25", [0, 1])
    serial = utility.fit_variant(dataclasses.replace(family, fit_jobs=1), rows, "oversample@0.25", [0, 1])
    np.testing.assert_array_equal(parallel.test_scores, serial.test_scores)
    x, y, balanced = utility.variant_rows(family, rows, "oversample@0.25", 0)
    expected = metrics.choose_threshold(y, utility.oof_scores(family, x, y, 0, balanced=balanced), rule="f1")
    assert parallel.thresholds.tolist() == serial.thresholds.tolist() == [expected, expected]
    assert parallel.seconds_per_fit > 0


def test_subsampling_is_reproducible_and_never_touches_the_test_folds(afib, demo_dir):
    a = utility.subsample_positives(afib, 5, draw=0)
    assert np.array_equal(a, utility.subsample_positives(afib, 5, draw=0))
    assert not np.array_equal(a, utility.subsample_positives(afib, 5, draw=1))
    assert len(a) == 5 and (afib.y["train"][a] == 1).all()
    folds = data.load_metadata(demo_dir).database.loc[afib.ecg_ids["train"][a], "strat_fold"]
    assert folds.between(1, 8).all()
    assert np.array_equal(utility.subsample_positives(afib, None, 0), np.flatnonzero(afib.y["train"] == 1))
    rows = utility.real_rows(utility.feature_family(), afib, positives=a)
    assert rows.train_y.sum() == 5 and len(rows.train_y) == (afib.y["train"] == 0).sum() + 5


def test_primary_comparison_is_holm_corrected_per_family(afib):
    family = utility.feature_family()
    rows = utility.real_rows(family, afib)
    synthetic = afib.positives_mv("train")
    fits = [utility.fit_variant(family, rows, v, [0], synthetic if "gan" in v else None, label=label, thresholds=False)
            for v, label in (("oversample@0.25", "oversample@0.25"), ("gan@0.25", "A:gan@0.25"),
                             ("gan@0.25", "B:gan@0.25"))]
    primary = utility.primary_comparisons({"features": rows}, fits, n_boot=200)
    assert list(primary["a"]) == ["A:gan@0.25", "B:gan@0.25"] and set(primary["b"]) == {"oversample@0.25"}
    assert (primary["p_holm"] >= primary["p_value"]).all()


def test_low_data_study_runs_end_to_end_on_demo(demo_dir, tmp_path):
    table = lowdata.run(["AFIB"], "demo", tmp_path, ks=(5,), draws=1, profile="test", n_generate=16,
                        n_boot=50)
    assert set(table["family"]) == {"features", "cnn"} and set(table["k_label"]) == {"5"}
    # the head chosen for codes a trunk never learnt (the study's trunk never saw its codes)
    assert set(table.loc[table["family"] == "cnn", "head_c"]) == {utility.CNN_HEAD_C_UNSEEN}
    assert table.loc[table["family"] == "features", "head_c"].isna().all()
    assert {"real", "real_weighted", "oversample"} <= set(table["variant"])
    assert table["auroc"].between(0, 1).all() and (table["n_test_positives"] > 0).all()
    assert (tmp_path / "rows.csv").is_file() and (tmp_path / "low_data_auroc.png").is_file()
    config = pd.read_json(next((tmp_path / "AFIB").glob("k5-draw0/config.json")), typ="series")["train"]
    assert len(config["records"]) == 5 and config["init_from"].startswith(str(tmp_path / "pretrained"))
    pretrained = pd.read_json(next((tmp_path / "pretrained").glob("*/config.json")), typ="series")["train"]
    assert pretrained["exclude_codes"] == ["AFIB"]
    assert not lowdata.summary(table).empty
    # the pre-specified primary comparison: one per family at k = 5, Holm within the family
    primary = pd.read_csv(tmp_path / lowdata.PRIMARY_CSV, dtype={"k_label": str})
    assert (table["variant"] == "gan").any()  # the seed's draw gives usable synthetic ECGs on DEMO
    assert sorted(primary["family"]) == ["cnn", "features"] and set(primary["k_label"]) == {"5"}
    assert (primary["diff_ci_low"] <= primary["diff_ci_high"]).all() and (primary["p_holm"] >= primary["p_value"]).all()
    gan, over = (table[(table["family"] == "features") & (table["variant"] == v)]["auroc"].iloc[0]
                 for v in ("gan", "oversample"))
    assert primary.set_index("family").at["features", "difference"] == pytest.approx(gan - over)
    # the realism of the GAN just fine-tuned, from the ECGs the study drew: the same usable count
    (row,) = lowdata.gan_realism("AFIB", "demo", tmp_path, n_generate=16, effort="test")
    assert (row["code"], row["k_label"], row["draw"], row["k"]) == ("AFIB", "5", 0, 5)
    assert 0 <= row["c2st_auroc"] <= 1 and row["c2st_n_per_class"] == min(16, row["n_real_positives"])
    assert row["n_usable"] == table["n_synthetic"].iloc[0]


def test_low_data_realism_without_finished_runs_says_so(tmp_path, capsys):
    (tmp_path / "PAC" / "k5-draw0").mkdir(parents=True)  # interrupted: no _COMPLETE, so not read
    assert lowdata.main(["--realism", "--codes", "PAC", "--out", str(tmp_path)]) == 2
    assert f"no finished low-data GAN runs of PAC in {tmp_path}" in capsys.readouterr().err


def test_primary_comparison_pairs_the_draws_of_gan_and_oversampling_on_one_test_set():
    y = np.array([0, 0, 0, 1, 1, 1] * 5)
    fit = lambda scores: utility.Fit("features", "v", np.array([scores * 5]), np.array([0.5]), 0.0)  # noqa: E731
    perfect, quarter = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9], [0.9, 0.2, 0.3, 0.8, 0.1, 0.25]
    fits = {("features", "gan"): [fit(perfect), fit(perfect)], ("features", "oversample"): [fit(quarter), fit(quarter)]}
    row = lowdata.primary_comparison("PAC", "features", 5, y, fits, 0.25, n_boot=200, seed=0)
    auroc_quarter = metrics.binary_metrics(y, np.array(quarter * 5), 0.5)["auroc"]
    assert row["difference"] == pytest.approx(1 - auroc_quarter) and row["draws"] == 2
    assert row["diff_ci_low"] > 0 and row["p_value"] < 0.05 and row["comparison"] == "gan@0.25 - oversample@0.25"
    fits[("features", "gan")] = fits[("features", "gan")][:1]  # a draw without usable synthetic ECGs: no comparison
    assert lowdata.primary_comparison("PAC", "features", 5, y, fits, 0.25, n_boot=200, seed=0) is None


def test_primary_comparisons_are_holm_adjusted_within_each_family_over_codes_and_k():
    table = pd.DataFrame({"code": ["PAC", "PAC", "PVC", "PAC"], "family": ["features", "features", "features", "cnn"],
                          "k_label": ["5", "10", "5", "5"], "p_value": [0.01, 0.04, 0.03, 0.01]})
    adjusted = lowdata.holm_within_family(table)
    np.testing.assert_allclose(adjusted["p_holm"], [0.03, 0.06, 0.06, 0.01])  # 3 tests for features, 1 for cnn


def test_low_data_rows_of_codes_run_one_at_a_time_are_merged(tmp_path):
    path = tmp_path / "rows.csv"
    pac = pd.DataFrame({"code": ["PAC", "PAC"], "k_label": ["5", "all"], "auroc": [0.6, 0.9]})
    assert lowdata.merged_rows(path, pac) is pac  # nothing earlier
    pac.to_csv(path, index=False)
    pvc = pd.DataFrame({"code": ["PVC"], "k_label": ["5"], "auroc": [0.7]})
    both = lowdata.merged_rows(path, pvc)
    assert list(both["code"]) == ["PAC", "PAC", "PVC"] and list(both["k_label"]) == ["5", "all", "5"]
    again = lowdata.merged_rows(path, pac.assign(auroc=[0.65, 0.95]))  # a rerun replaces that code's rows
    assert list(again["auroc"]) == [0.65, 0.95]


def test_cnn_budget_rule_takes_the_smallest_budget_near_the_best():
    budgets = [{"epochs": e, "macro_auroc_common": a} for e, a in ((30, 0.822), (100, 0.844), (200, 0.848))]
    assert utility.choose_cnn_epochs(budgets) == 100 and utility.choose_cnn_epochs(budgets, tolerance=0.001) == 200
    with pytest.raises(ValueError, match="no budget has a macro AUROC"):
        utility.choose_cnn_epochs([{"epochs": 1, "macro_auroc_common": float("nan")}])
    with_heads = [b | {"head_c": c} for b, c in zip(budgets, (0.01, 0.003, 0.3))]
    assert utility.choose_cnn_head_c(with_heads) == 0.003  # the chosen budget's best head, not the best budget's


def test_rhythm_channels_hold_each_samples_rr_interval(monkeypatch):
    from rare_gan import physiology

    monkeypatch.setattr(physiology, "detect_rpeaks", lambda signal, fs=100.0: np.array([100, 200, 250, 400]))
    ecgs = np.zeros((2, 1000, 12), np.float32)
    ecgs[1, 5, 3] = np.nan  # a non-finite ECG gets no rhythm, and no error
    ch = utility.rhythm_channels(ecgs)
    assert ch.shape == (2, 1000, len(utility.RHYTHM_CHANNELS)) and ch.dtype == np.float32
    relative, seconds = ch[0, :, 0], ch[0, :, 1]
    # RR 1.0, 0.5 (premature), 1.5 s (pause); median 1.0
    np.testing.assert_allclose(relative[[99, 100, 199, 200, 249, 250, 399, 400]], [0, 0, 0, -0.5, -0.5, 0.5, 0.5, 0])
    np.testing.assert_allclose(seconds[[150, 225, 300]], np.array([1.0, 0.5, 1.5]) - utility.RR_CENTRE_S)
    assert not ch[1].any()
