"""Synthetic ECG export (PTB-XL layout, SYNTHETIC headers, atomic) and candidate vetting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import wfdb

from rare_gan import atomic, candidates, data, evaluate, export
from rare_gan.leads import LEAD_NAMES

PROVENANCE = {"run_name": "Initial", "checkpoint_sha256": "abc123", "train_seed": 0, "generation_seed": 7}


@pytest.fixture(scope="module")
def afib_task(demo_dir):
    return evaluate.load_task("demo", "AFIB")


def test_synthetic_dataset_drops_into_the_ptbxl_loader(tmp_path, demo_dir):
    rng = np.random.default_rng(0)
    ecgs = rng.normal(0, 0.3, size=(5, 1000, 12)).astype(np.float32)
    scores = pd.DataFrame({"classifier_prob": rng.uniform(size=5)})
    table = export.write_synthetic_dataset(ecgs, tmp_path / "syn", ["AFIB"], PROVENANCE, scores,
                                           demo_dir / "scp_statements.csv", extra_files={"notes.txt": "hi"})
    assert atomic.is_complete(tmp_path / "syn") and (tmp_path / "syn" / "notes.txt").read_text() == "hi"
    assert table["synthetic"].all() and set(table["strat_fold"]) <= set(range(1, 9))
    meta = data.load_metadata(tmp_path / "syn")
    assert meta.has_codes("AFIB").all() and set(meta.database["split"]) == {"train"}
    loaded = data.load_signals(meta, use_cache=False, progress=False)
    assert loaded.report.loaded == 5 and np.abs(loaded.mv - ecgs).max() <= 0.0005 + 1e-6  # 1 µV quantisation
    header = wfdb.rdheader(str(tmp_path / "syn" / data.record_name(1)))
    assert header.sig_name == list(LEAD_NAMES) and header.fs == 100 and header.units == ["mV"] * 12
    comments = "\n".join(header.comments)
    assert "SYNTHETIC" in comments and "checkpoint_sha256: abc123" in comments and "generation_seed: 7" in comments
    csv = pd.read_csv(tmp_path / "syn" / "ptbxl_database.csv")
    assert {"gen_checkpoint_sha256", "gen_generation_seed", "classifier_prob"} <= set(csv.columns)
    ecgs_back, _ = export.read_synthetic_dataset(tmp_path / "syn")
    assert ecgs_back.shape == (5, 1000, 12)


def test_failed_write_leaves_the_old_folder_untouched(tmp_path, monkeypatch):
    ecgs = np.zeros((4, 1000, 12), np.float32)
    export.write_synthetic_dataset(ecgs[:2], tmp_path / "syn", ["AFIB"], PROVENANCE)
    calls = {"n": 0}
    original = export.write_record

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return original(*args, **kwargs)

    monkeypatch.setattr(export, "write_record", failing)
    with pytest.raises(OSError, match="No space left"):
        export.write_synthetic_dataset(ecgs, tmp_path / "syn", ["AFIB"], PROVENANCE)
    assert len(pd.read_csv(tmp_path / "syn" / "ptbxl_database.csv")) == 2 and atomic.is_complete(tmp_path / "syn")


def test_vetting_rejects_copies_and_implausible_ecgs(afib_task, tmp_path):
    train_pos = afib_task.positives_mv("train")
    copy = np.roll(train_pos[0], 7, axis=0) * 1.2
    flat = np.zeros_like(copy)
    unseen = afib_task.positives_mv("test")[0]
    ecgs = np.stack([copy, flat, unseen]).astype(np.float32)
    scores = candidates.vet(ecgs, afib_task, threshold=0.0)
    assert list(scores["near_copy"]) == [True, False, False]
    assert list(scores["plausible"]) == [True, False, True]
    assert list(scores["accepted"]) == [False, False, True]
    assert scores.attrs["threshold"] == 0.0
    assert candidates.summary(scores).loc["accepted", "ECGs"] == 1


def test_vetting_classifier_is_fitted_once_per_task_and_seed(afib_task, monkeypatch):
    """Every generation of a code reuses the cached classifier and threshold; another seed or other labels refit."""
    from rare_gan import utility

    ecgs = afib_task.positives_mv("test")[:2]
    first = candidates.vet(ecgs, afib_task)
    model, threshold = candidates.vetting_classifier(afib_task)
    assert first.attrs["threshold"] == threshold and 0 < threshold < 1

    def must_not_fit(*args, **kwargs):
        raise AssertionError("fitted again")

    monkeypatch.setattr(utility, "oof_scores", must_not_fit)
    again = candidates.vet(ecgs, afib_task)
    pd.testing.assert_frame_equal(again, first)
    with pytest.raises(AssertionError, match="fitted again"):
        candidates.vetting_classifier(afib_task, seed=1)
    afib_task.y["train"] = 1 - afib_task.y["train"]
    try:
        with pytest.raises(AssertionError, match="fitted again"):
            candidates.vetting_classifier(afib_task)
    finally:
        afib_task.y["train"] = 1 - afib_task.y["train"]


def test_oversampling_and_ratios(afib_task):
    from rare_gan import utility

    family = utility.feature_family()
    rows = utility.real_rows(family, afib_task)
    x, y, balanced = utility.variant_rows(family, rows, "oversample@0.25", seed=0)
    assert abs(y.mean() - 0.25) < 0.01 and len(x) == len(y) and not balanced
    assert evaluate.n_to_add(100, 10, 0.5) == 80
    assert evaluate.n_to_add(100, 60, 0.5) == 0
    synthetic = afib_task.positives_mv("train")[:3]
    x, y, _ = utility.variant_rows(family, rows, "tstr", seed=0, synthetic_mv=synthetic)
    assert y.sum() == 3 and len(y) == (afib_task.y["train"] == 0).sum() + 3
    assert utility.variant_rows(family, rows, "real_weighted", seed=0)[2]
    with pytest.raises(ValueError, match="needs synthetic"):
        utility.variant_rows(family, rows, "gan@0.25", seed=0)
