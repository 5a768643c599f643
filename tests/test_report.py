"""The plain-language verdicts of the 05 report follow the numbers: CI, Holm correction, smoothness, realism."""

from types import SimpleNamespace

import pandas as pd
import pytest

from rare_gan import report

FAMILIES = {"features": "gradient boosting on ECG features", "cnn": "pretrained CNN"}


def _utility(best_auroc_ci, holm_p, difference):
    rows = []
    for family in FAMILIES:
        for variant, (mean, low, high) in {"real": (0.96, 0.93, 0.99), "oversample@0.25": (0.96, 0.92, 0.99),
                                           "Initial:gan@0.25": best_auroc_ci,
                                           "Modified:gan@0.25": (0.60, 0.40, 0.80)}.items():
            rows += [{"family": family, "variant": variant, "metric": "auroc", "mean": mean, "ci_low": low,
                      "ci_high": high},
                     {"family": family, "variant": variant, "metric": "accuracy", "mean": 0.95, "ci_low": 0.94,
                      "ci_high": 0.96}]
    primary = pd.DataFrame([{"family": family, "a": f"{run}:gan@0.25", "b": "oversample@0.25", "metric": "auroc",
                             "difference": difference, "ci_low": difference - 0.1, "ci_high": difference + 0.1,
                             "p_value": holm_p / 2, "p_holm": holm_p, "significant_holm": holm_p < 0.05}
                            for family in FAMILIES for run in ("Initial", "Modified")])
    return report.Utility("PAC vs rest", 10, 500, pd.DataFrame(rows), primary, [], {"Initial": 100, "Modified": 50},
                          3, FAMILIES)


def _realism(c2st_initial=0.95, c2st_modified=0.99, hf_initial=0.25, hf_modified=0.24, hf_real=0.227, p=1e-6):
    def row(c2st, hf):
        return {"c2st_auroc": c2st, "c2st_null_sd": 0.06, "c2st_cnn_auroc": 0.7, "tstr_auroc": 0.9,
                "real_auroc_same_classifier": 0.96, "hf_ratio_median": hf, "near_copy_fraction": 0.0,
                "nn_distance_ratio": 1.0, "c2st_top_features": [{"feature": "beat:II:beat_consistency", "auroc": 0.9}]}

    reference = SimpleNamespace(controls={"c2st_real_control": 0.52, "c2st_common_control": 0.55})
    return report.Realism(reference, {"Initial": row(c2st_initial, hf_initial), "Modified": row(c2st_modified, hf_modified)},
                          hf_real, {"beat": p})


def _verdicts(utility=None, realism=None):
    return "\n".join(report.verdicts(utility or _utility((0.74, 0.63, 0.85), 1.0, 0.0), realism or _realism(), "PAC"))


def test_test_set_anchor_and_families_are_stated():
    text = _verdicts()
    assert "folds 9 and 10, 10 positives of 500 records" in text
    assert "features: real-only AUROC 0.960 [0.930, 0.990] (PTB-XL benchmark anchor 0.956" in text
    assert "cnn: real-only AUROC" in text and "a ceiling, not a like-for-like" in text


def test_research_auroc_outside_the_ci_is_not_reproduced():
    text = _verdicts()
    assert "Initial:gan@0.25: AUROC 0.740 [0.630, 0.850]" in text
    assert "0.9899 is above its 95% CI: not reproduced" in text


def test_research_auroc_inside_a_wide_ci_is_not_refuted():
    assert "inside its 95% CI, so not refuted" in _verdicts(_utility((0.90, 0.70, 1.0), 1.0, 0.0))


def test_research_auroc_below_the_ci_means_an_easier_task():
    assert "below its 95% CI: this task is easier here" in _verdicts(_utility((1.0, 1.0, 1.0), 1.0, 0.0))


@pytest.mark.parametrize("p_holm, difference, expected", [(1.0, 0.05, "no significant difference"),
                                                          (0.01, 0.2, "GAN significantly better"),
                                                          (0.01, -0.2, "GAN significantly worse")])
def test_primary_test_wording_follows_holm(p_holm, difference, expected):
    text = _verdicts(_utility((0.74, 0.63, 0.85), p_holm, difference))
    assert f"features: Initial:gan@0.25 vs oversample@0.25: ΔAUROC {difference:+.3f}" in text
    assert text.count(expected) == 4  # two runs × two families


@pytest.mark.parametrize("hf_initial, hf_modified, p, expected", [
    (0.25, 0.20, 1e-6, "consistent: Modified is smoother than Initial and than real ECGs"),
    (0.25, 0.24, 1e-6, "smoother than Initial but not smoother than real"),
    (0.25, 0.20, 0.3, "not supported: Modified is not smoother than Initial"),
    (0.20, 0.25, 1e-6, "not supported: Modified is not smoother than Initial")])
def test_overly_smooth_claim_needs_a_significant_and_real_smoothing(hf_initial, hf_modified, p, expected):
    assert expected in _verdicts(realism=_realism(hf_initial=hf_initial, hf_modified=hf_modified, p=p))


@pytest.mark.parametrize("initial, modified, expected", [
    (0.80, 0.99, "Initial is closer to real"), (0.99, 0.80, "Modified is closer to real"),
    (0.95, 0.97, "within the C2ST's null SD")])
def test_initial_more_realistic_follows_the_c2st_and_its_null(initial, modified, expected):
    text = _verdicts(realism=_realism(c2st_initial=initial, c2st_modified=modified))
    assert expected in text and "told apart mostly by beat:II:beat_consistency (0.90)" in text


def test_runs_are_read_with_the_trainer_that_made_their_ecgs(tmp_path):
    """A run folder holding an older trainer beside the new one (``<folder>-<digest>``) is read with the
    trainer its generated ECGs name, also after the outputs folder moved; an undecidable folder is an error."""
    for name in ("arrhythmia_gan_outputs", "arrhythmia_gan_outputs-1a2b3c4d"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "generator.keras").write_bytes(b"")
    made_by = pd.DataFrame({"gen_run_dir": ["/elsewhere/Rare_GAN/arrhythmia_gan_outputs-1a2b3c4d"] * 2})
    assert report._trainer_of(tmp_path, made_by) == tmp_path / "arrhythmia_gan_outputs-1a2b3c4d"
    with pytest.raises(FileNotFoundError, match="cannot tell which trainer.*none"):
        report._trainer_of(tmp_path, pd.DataFrame({"ecg_id": [1]}))
    (tmp_path / "arrhythmia_gan_outputs-1a2b3c4d" / "generator.keras").unlink()
    assert report._trainer_of(tmp_path, pd.DataFrame({"ecg_id": [1]})) == tmp_path / "arrhythmia_gan_outputs"
    with pytest.raises(FileNotFoundError, match="arrhythmia_gan_outputs-1a2b3c4d"):  # made by a trainer not here
        report._trainer_of(tmp_path, made_by)
