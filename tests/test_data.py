"""The PTB-XL data layer: locating, metadata, splits, loading with cache, scaling, bad input."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from rare_gan import data
from rare_gan.leads import LEAD_NAMES, limb_lead_residuals
from tests.conftest import REPO, rewrite_record


# ---------------------------------------------------------------------------------------------- locating
def test_missing_directory_says_how_to_get_ptbxl(tmp_path):
    with pytest.raises(data.PTBXLNotFoundError) as err:
        data.locate_ptbxl(tmp_path / "nowhere")
    message = str(err.value)
    assert "nowhere" in message and "PTBXL_DIR" in message and "physionet.org" in message
    assert "rare_gan.data download" in message


def test_empty_directory_lists_missing_files(tmp_path):
    with pytest.raises(data.PTBXLNotFoundError, match="missing ptbxl_database.csv, scp_statements.csv, records100/"):
        data.locate_ptbxl(tmp_path)


def test_lookup_order_argument_then_env_then_default(tmp_path, monkeypatch, demo_dir):
    monkeypatch.setenv("PTBXL_DIR", str(demo_dir))
    assert data.locate_ptbxl() == demo_dir.resolve()
    assert data.candidate_data_dir(tmp_path) == tmp_path
    monkeypatch.delenv("PTBXL_DIR")
    assert data.candidate_data_dir() == data.DEFAULT_DATA_DIR


def test_explicit_bad_folder_never_falls_back_to_demo(tmp_path):
    with pytest.raises(data.PTBXLNotFoundError):
        data.resolve_dataset(tmp_path, demo_fallback=True)


def test_demo_keyword_and_fallback(monkeypatch, tmp_path, demo_dir, capsys):
    assert data.resolve_dataset("demo") == demo_dir.resolve()
    monkeypatch.delenv("PTBXL_DIR", raising=False)
    monkeypatch.setattr(data, "DEFAULT_DATA_DIR", tmp_path / "absent")
    capsys.readouterr()
    data._demo_banner.cache_clear()  # printed once per process: another test on this worker may have printed it
    assert data.resolve_dataset() == demo_dir.resolve()
    assert "DEMO" in capsys.readouterr().err
    assert data.load_metadata("demo").demo is True
    monkeypatch.setenv("PTBXL_DIR", "DEMO")
    assert data.resolve_dataset() == demo_dir.resolve()


# ---------------------------------------------------------------------------------------------- metadata
def test_parse_scp_codes_literal_only():
    assert data.parse_scp_codes("{'NORM': 100.0, 'SR': 0}") == {"NORM": 100.0, "SR": 0.0}
    for bad in ("{'NORM': 100.0", "__import__('os').system('true')", "[1, 2]", "{'NORM': 'high'}", None):
        with pytest.raises(data.MetadataError, match="ecg_id 7"):
            data.parse_scp_codes(bad, ecg_id=7)


def test_malformed_scp_codes_row_names_the_record(mini_dataset):
    db = pd.read_csv(mini_dataset / "ptbxl_database.csv")
    db.loc[3, "scp_codes"] = "{'NORM': 100.0,"
    db.to_csv(mini_dataset / "ptbxl_database.csv", index=False)
    with pytest.raises(data.MetadataError, match=f"ecg_id {db.loc[3, 'ecg_id']}: malformed scp_codes"):
        data.load_metadata(mini_dataset)


def test_bad_fold_and_missing_columns(mini_dataset):
    db = pd.read_csv(mini_dataset / "ptbxl_database.csv")
    db.loc[0, "strat_fold"] = 11
    db.to_csv(mini_dataset / "ptbxl_database.csv", index=False)
    with pytest.raises(data.MetadataError, match="strat_fold must be an integer 1-10"):
        data.load_metadata(mini_dataset)
    db.drop(columns=["scp_codes"]).to_csv(mini_dataset / "ptbxl_database.csv", index=False)
    with pytest.raises(data.MetadataError, match="lacks columns \\['scp_codes'\\]"):
        data.load_metadata(mini_dataset)


def test_unknown_code_suggests_close_matches(ptbxl_dir):
    meta = data.load_metadata(ptbxl_dir)
    with pytest.raises(data.UnknownSCPCodeError, match="did you mean AFLT") as err:
        meta.validate_codes("AFLTT")
    assert "atrial flutter" in str(err.value)
    with pytest.raises(data.UnknownSCPCodeError, match="AFLT"):
        meta.validate_codes(["flutter"])
    assert meta.validate_codes("bigu, trigu") == ["BIGU", "TRIGU"]


def test_splits_follow_strat_fold(ptbxl_dir):
    meta = data.load_metadata(ptbxl_dir)
    db = meta.database
    assert len(db) == 21837 and int(db["on_disk"].sum()) == 1999
    assert set(db.loc[db["strat_fold"] <= 8, "split"]) == {"train"}
    assert set(db.loc[db["strat_fold"] == 9, "split"]) == {"val"}
    assert set(db.loc[db["strat_fold"] == 10, "split"]) == {"test"}
    train, val, test = (set(meta.select(split=s)) for s in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert (len(val), len(test)) == (245, 255)  # PROVENANCE.md of the subset
    raw = pd.read_csv(ptbxl_dir / "ptbxl_database.csv")
    assert len(meta.select(split="train", on_disk=False)) == int((raw["strat_fold"] <= 8).sum())


def test_code_counts_and_prevalence_match_the_csv(ptbxl_dir):
    meta = data.load_metadata(ptbxl_dir)
    raw = pd.read_csv(ptbxl_dir / "ptbxl_database.csv")
    for code in ("AFLT", "BIGU", "PAC", "CLBBB"):
        expected = int(raw["scp_codes"].str.contains(f"'{code}'", regex=False).sum())
        assert int(meta.has_codes(code).sum()) == expected
    table = meta.prevalence(on_disk=True)
    assert table.loc["AFLT", "total"] == 12 and table.loc["AFLT", "test"] == 3  # PROVENANCE.md
    assert table.loc["PAC", "total"] == 55 and table.loc["CLBBB", "total"] == 34
    assert table["total"].is_monotonic_increasing
    assert (table[["train", "val", "test"]].sum(axis=1) == table["total"]).all()
    assert table.loc["AFLT", "kind"] == "rhythm"


def test_any_likelihood_counts_by_default(ptbxl_dir):
    meta = data.load_metadata(ptbxl_dir)
    # most rhythm statements carry likelihood 0 in PTB-XL: a positive threshold drops them
    assert meta.has_codes("AFLT").sum() == 73
    assert meta.has_codes("SR").sum() == 16782 and meta.has_codes("SR", min_likelihood=1).sum() == 0
    assert meta.has_codes("AFIB").sum() == 1514 and meta.has_codes("AFIB", min_likelihood=1).sum() == 48


def test_diagnostic_superclasses(ptbxl_dir):
    meta = data.load_metadata(ptbxl_dir)
    sup = meta.diagnostic_superclasses()
    assert sup.loc[1] == ["NORM"]
    assert set().union(*sup) == {"NORM", "MI", "STTC", "CD", "HYP"}


# ---------------------------------------------------------------------------------------------- signals
def test_known_record_round_trips_through_cache_and_scaling(ptbxl_dir):
    meta = data.load_metadata(ptbxl_dir)
    raw, fields = wfdb.rdsamp(str(ptbxl_dir / "records100/00000/00001_lr"))
    assert fields["sig_name"] == list(LEAD_NAMES)
    first = data.load_signals(meta, [1, 2, 3], progress=False)
    again = data.load_signals(meta, [1, 2, 3], progress=False)
    assert again.report.from_cache and not first.report.from_cache
    cached = again.take([1])[0]
    assert cached.dtype == np.float32 and cached.shape == (1000, 12)
    assert np.abs(cached - raw).max() < 1e-6
    scaler = data.SignalScaler.fit(np.asarray(first.mv))
    inside = np.abs(raw) <= scaler.scale_mv
    assert np.abs(scaler.inverse(scaler.transform(cached)) - raw)[inside].max() < 1e-6


def test_cached_load_is_20x_faster(ptbxl_dir):
    meta = data.load_metadata(ptbxl_dir)
    ids = meta.select(split="test")
    start = time.perf_counter()
    cold = data.load_signals(meta, ids, progress=False)
    cold_s = time.perf_counter() - start
    warm_s = float("inf")
    for _ in range(3):  # the fastest of 3 cached loads: a busy machine must not make a 50 ms load look slow
        start = time.perf_counter()
        warm = data.load_signals(meta, ids, progress=False)
        warm_s = min(warm_s, time.perf_counter() - start)
    assert warm.report.from_cache and np.array_equal(np.asarray(warm.mv), cold.mv)
    assert cold.mv.shape == (255, 1000, 12)
    assert cold_s / warm_s >= 20, (cold_s, warm_s)


def test_subset_reports_missing_records(ptbxl_dir):
    meta = data.load_metadata(ptbxl_dir)
    signals = data.load_signals(meta, [1, 2, 5000], progress=False)
    assert signals.report.missing == [5000] and signals.report.loaded == 2
    assert "1 not on disk" in signals.report.summary()
    with pytest.raises(data.DataError, match="not in"):
        data.load_signals(meta, [999999], progress=False)


def test_bad_records_are_skipped_with_reasons(mini_dataset):
    meta = data.load_metadata(mini_dataset)
    ids = list(meta.database.index)
    paths = {e: mini_dataset / meta.database.at[e, "filename_lr"] for e in ids}
    good = wfdb.rdsamp(str(paths[ids[0]]))[0]
    # truncated .dat
    dat = Path(str(paths[ids[1]]) + ".dat")
    dat.write_bytes(dat.read_bytes()[:5000])
    # header claiming 500 Hz
    hea = Path(str(paths[ids[2]]) + ".hea")
    lines = hea.read_text().splitlines()
    first = lines[0].split()
    first[2] = "500"
    hea.write_text("\n".join([" ".join(first)] + lines[1:]) + "\n")
    # 11 leads
    rewrite_record(paths[ids[3]], good[:, :11], LEAD_NAMES[:11])
    # NaN samples (WFDB stores them as the invalid value)
    with_nan = good.copy()
    with_nan[100:110, 4] = np.nan
    rewrite_record(paths[ids[4]], with_nan)
    # wrong lead names
    rewrite_record(paths[ids[5]], good, ["L" + n for n in LEAD_NAMES])
    # garbage header
    Path(str(paths[ids[6]]) + ".hea").write_text("this is not a header\n")
    meta = data.load_metadata(mini_dataset)
    signals = data.load_signals(meta, ids, progress=False, use_cache=False)
    skipped = signals.report.skipped
    assert signals.report.loaded == len(ids) - 6
    assert "samples, expected 1000" in skipped[ids[1]] or "unreadable" in skipped[ids[1]]
    assert "sampling rate 500 Hz" in skipped[ids[2]]
    assert "expected the 12 PTB-XL leads" in skipped[ids[3]]
    assert "NaN" in skipped[ids[4]]
    assert "expected the 12 PTB-XL leads" in skipped[ids[5]]
    assert "unreadable WFDB record" in skipped[ids[6]]
    assert "6 skipped" in signals.report.summary()
    with pytest.raises(data.RecordError, match="sampling rate 500 Hz"):
        data.read_record(paths[ids[2]])


def test_cache_invalidates_when_a_file_changes(mini_dataset):
    meta = data.load_metadata(mini_dataset)
    ids = list(meta.database.index)[:3]
    first = data.load_signals(meta, ids, progress=False)
    path = mini_dataset / meta.database.at[ids[0], "filename_lr"]
    signal = wfdb.rdsamp(str(path))[0] * 2
    rewrite_record(path, signal)
    second = data.load_signals(data.load_metadata(mini_dataset), ids, progress=False)
    assert not second.report.from_cache
    assert np.allclose(second.mv[0], first.mv[0] * 2, atol=2e-3)


# ---------------------------------------------------------------------------------------------- scaling
def test_scaler_is_global_linear_and_invertible():
    rng = np.random.default_rng(0)
    independent = rng.normal(0, 0.4, size=(8, 1000, 8)).astype(np.float32)
    from rare_gan.leads import assemble_12_leads

    ecgs = assemble_12_leads(independent)
    scaler = data.SignalScaler.fit(ecgs)
    scaled = scaler.transform(ecgs)
    assert scaled.min() >= -1 and scaled.max() <= 1
    inside = np.abs(ecgs) <= scaler.scale_mv
    assert np.abs(scaler.inverse(scaled) - ecgs)[inside].max() < 1e-6
    assert 0 < scaler.clipped_fraction < 0.001
    unclipped = np.abs(ecgs).max(axis=(1, 2)) <= scaler.scale_mv
    assert np.abs(limb_lead_residuals(scaled[unclipped])).max() < 1e-6  # Einthoven holds in scaled space
    assert data.SignalScaler.from_dict(scaler.to_dict()) == scaler
    with pytest.raises(data.DataError):
        data.SignalScaler.fit(np.zeros((0, 1000, 12)))


# ---------------------------------------------------------------------------------------------- command line
def test_info_command(demo_dir):
    out = subprocess.run([sys.executable, "-m", "rare_gan.data", "info", "--data", str(demo_dir), "--rarest", "5"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "DEMO" in out.stdout and "rarest SCP codes" in out.stdout


def test_info_command_missing_folder_exits_2(tmp_path):
    out = subprocess.run([sys.executable, "-m", "rare_gan.data", "info", "--data", str(tmp_path / "x")],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 2 and "PTBXL_DIR" in out.stderr and "Traceback" not in out.stderr
