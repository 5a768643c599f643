"""The plain-language verdicts of the 05 report follow the numbers: CI, Holm correction, smoothness, rhythm."""

import numpy as np
import pandas as pd
import pytest

from rare_gan import report


def _utility(best_auroc_ci, holm_p, difference):
    rows = []
    for variant, (mean, low, high) in {"real": (0.66, 0.53, 0.80), "oversample@0.25": (0.70, 0.50, 0.88),
                                       "Initial:gan@0.25": best_auroc_ci, "Modified:gan@0.25": (0.60, 0.40, 0.80)}.items():
        rows += [{"variant": variant, "metric": "auroc", "mean": mean, "ci_low": low, "ci_high": high},
                 {"variant": variant, "metric": "accuracy", "mean": 0.9, "ci_low": 0.88, "ci_high": 0.92}]
    comparisons = pd.DataFrame([{"a": f"{run}:gan@0.25", "b": "oversample@0.25", "metric": "auroc",
                                 "difference": difference, "ci_low": difference - 0.1, "ci_high": difference + 0.1,
                                 "p_value": holm_p / 2, "p_holm": holm_p, "significant_holm": holm_p < 0.05}
                                for run in ("Initial", "Modified")])
    results = dict.fromkeys(["real", "oversample@0.25", "Initial:gan@0.25", "Modified:gan@0.25"])
    return report.Utility("PAC vs rest", pd.DataFrame(rows), comparisons, results, {"Initial": 100, "Modified": 50})


def _realism(hf_initial, hf_modified, hf_real=0.227, p=1e-6):
    table = pd.DataFrame({"c2st_auroc": [0.5, 1.0, 0.7], "c2st_sd": [0.1, 0.0, 0.05],
                          "hf_ratio_median": [0.27, hf_initial, hf_modified]},
                         index=["real unseen (folds 9-10)", "Initial", "Modified"])
    table.attrs |= {"real_train_hf_ratio_median": hf_real, "hf_ratio_mannwhitney_p": p}
    return table


def _physiology(w_initial, w_modified):
    table = pd.DataFrame({"rr_sd_ms (median)": [120, 285, 188], "plausible %": [95, 75, 89],
                          "W1 RR-SD ms": [np.nan, w_initial, w_modified]}, index=["real", "Initial", "Modified"])
    return report.Physiology({}, table)


MEMORISATION = pd.DataFrame({"fraction_near_copy": [0.0, 0.001], "median_synth_to_train": [0.16, 0.17],
                             "median_test_to_train": [0.17, 0.17], "mannwhitney_p": [0.8, 0.4]},
                            index=["Initial", "Modified"])


def _verdicts(utility=None, realism=None, physiology=None):
    return "\n".join(report.verdicts(utility or _utility((0.74, 0.63, 0.85), 1.0, 0.0),
                                     realism if realism is not None else _realism(0.25, 0.24),
                                     physiology or _physiology(157, 56), MEMORISATION))


def test_research_auroc_outside_the_ci_is_not_reproduced():
    text = _verdicts()
    assert "Initial:gan@0.25: AUROC 0.740 [0.630, 0.850]" in text
    assert "0.9899 is outside its 95% CI, so it is not reproduced" in text


def test_research_auroc_inside_a_wide_ci_is_not_refuted():
    assert "inside its 95% CI, so it is not refuted" in _verdicts(_utility((0.90, 0.70, 1.0), 1.0, 0.0))


def test_research_auroc_below_the_ci_means_an_easier_task():
    assert "0.9899 is below its 95% CI: this task is easier here" in _verdicts(_utility((1.0, 1.0, 1.0), 1.0, 0.0))


@pytest.mark.parametrize("p_holm, difference, expected", [(1.0, 0.05, "no significant difference"),
                                                          (0.01, 0.2, "GAN significantly better"),
                                                          (0.01, -0.2, "GAN significantly worse")])
def test_primary_test_wording_follows_holm(p_holm, difference, expected):
    text = _verdicts(_utility((0.74, 0.63, 0.85), p_holm, difference))
    assert f"Initial:gan@0.25 vs oversample@0.25: ΔAUROC {difference:+.3f}" in text
    assert text.count(expected) == 2


@pytest.mark.parametrize("hf_initial, hf_modified, p, expected", [
    (0.25, 0.20, 1e-6, "consistent with these numbers"),
    (0.25, 0.24, 1e-6, "smoother than Initial but still less smooth than real"),
    (0.25, 0.20, 0.3, "not supported: Modified is not smoother than Initial"),
    (0.20, 0.25, 1e-6, "not supported: Modified is not smoother than Initial")])
def test_overly_smooth_claim_needs_a_significant_and_real_smoothing(hf_initial, hf_modified, p, expected):
    assert expected in _verdicts(realism=_realism(hf_initial, hf_modified, p=p))


def test_c2st_and_rhythm_name_the_closer_run():
    text = _verdicts()
    assert "Modified is closer to real" in text  # C2ST 0.7 vs 1.0, gap larger than the folds' SD
    assert "By rhythm, Modified is closer to real" in text
    assert "By rhythm, Initial is closer to real" in _verdicts(physiology=_physiology(40, 90))
