"""Bad input and faults through the public entry points: clear messages, non-zero exits, nothing half-written."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from rare_gan import atomic, pipeline
from rare_gan.leads import LEAD_NAMES
from tests.conftest import REPO, rewrite_record

TRAIN = [sys.executable, "-m", "rare_gan.train", "--recipe", "research"]
TINY = ["--epochs", "2", "--steps-per-epoch", "1", "--batch-size", "8"]


def _run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=600, **kwargs)


def _clean_failure(out, *needles):
    assert out.returncode != 0, out.stdout[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    for needle in needles:
        assert needle in out.stderr, (needle, out.stderr[-3000:])


def test_missing_and_empty_data_dir(tmp_path):
    _clean_failure(_run(TRAIN + ["--target", "AFIB", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]),
                   "PTB-XL folder not found", "PTBXL_DIR")
    (tmp_path / "empty").mkdir()
    _clean_failure(_run([sys.executable, "-m", "rare_gan.data", "info", "--data", str(tmp_path / "empty")]),
                   "missing ptbxl_database.csv")
    assert not (tmp_path / "r" / atomic.COMPLETE_MARKER).exists()


def test_malformed_scp_codes_via_cli(mini_dataset, tmp_path):
    db = pd.read_csv(mini_dataset / "ptbxl_database.csv")
    db.loc[2, "scp_codes"] = "{'AFIB': 100.0"
    db.to_csv(mini_dataset / "ptbxl_database.csv", index=False)
    _clean_failure(_run(TRAIN + ["--target", "AFIB", "--data", str(mini_dataset), "--out", str(tmp_path / "r")]),
                   f"ecg_id {db.loc[2, 'ecg_id']}: malformed scp_codes")


def test_unknown_target_suggests_codes(tmp_path):
    _clean_failure(_run(TRAIN + ["--target", "AFIBB", "--data", "demo", "--out", str(tmp_path / "r")]),
                   "unknown SCP code 'AFIBB'", "did you mean AFIB")


def test_unknown_target_fails_before_the_pretraining_and_leaves_no_folder(tmp_path):
    """A typo in the target costs seconds, not a pretraining, and leaves nothing behind."""
    from rare_gan import data, train

    with pytest.raises(data.UnknownSCPCodeError, match="did you mean AFIB"):
        train.train_recipe("beat", "AFIBB", tmp_path / "run", profile="test", outputs=tmp_path, data_dir="demo")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(data.UnknownSCPCodeError):  # a recipe without pretraining: no run folder either
        train.train_recipe("research", "AFIBB", tmp_path / "run", profile="test", data_dir="demo")
    assert list(tmp_path.iterdir()) == []


def test_study_commands_report_unknown_codes_without_a_traceback(tmp_path, capsys):
    from rare_gan import lowdata, study

    assert lowdata.main(["--codes", "AFIBB", "--data", "demo", "--out", str(tmp_path / "ld")]) == 2
    assert study.main(["realism", "--codes", "AFIBB", "--data", "demo", "--outputs", str(tmp_path / "st"),
                       "--results", str(tmp_path / "st" / "results.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("error: unknown SCP code 'AFIBB'; did you mean AFIB") == 2 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_target_with_zero_training_records(mini_dataset, tmp_path):
    db = pd.read_csv(mini_dataset / "ptbxl_database.csv")
    db.loc[db["scp_codes"].str.contains("AFIB"), "strat_fold"] = 10  # no AFIB left in folds 1-8
    db.to_csv(mini_dataset / "ptbxl_database.csv", index=False)
    out = _run(TRAIN + ["--target", "AFIB", "--data", str(mini_dataset), "--out", str(tmp_path / "r")])
    _clean_failure(out, "no training-fold records")
    assert out.returncode == 2 and not atomic.is_complete(tmp_path / "r")


def test_corrupt_records_are_skipped_and_training_goes_on(demo_dir, tmp_path):
    from tests.conftest import copy_dataset

    db = pd.read_csv(demo_dir / "ptbxl_database.csv")
    afib = db[db["scp_codes"].str.contains("AFIB") & (db["strat_fold"] <= 8)]["ecg_id"].tolist()
    folder = copy_dataset(demo_dir, tmp_path / "data", afib + db["ecg_id"].head(5).tolist())
    truncated = folder / (db.set_index("ecg_id").at[afib[0], "filename_lr"] + ".dat")
    truncated.write_bytes(truncated.read_bytes()[:1000])
    hea = folder / (db.set_index("ecg_id").at[afib[1], "filename_lr"] + ".hea")
    hea.write_text(hea.read_text().replace(" 12 100 1000", " 12 500 1000", 1))
    record = folder / db.set_index("ecg_id").at[afib[2], "filename_lr"]
    good = wfdb.rdsamp(str(record))[0]
    rewrite_record(record, good[:, :11], LEAD_NAMES[:11])  # 11 leads
    with_nan = good.copy()
    with_nan[100:110, 4] = np.nan
    rewrite_record(folder / db.set_index("ecg_id").at[afib[3], "filename_lr"], with_nan)
    out = _run(TRAIN + ["--target", "AFIB", "--data", str(folder), "--out", str(tmp_path / "r")] + TINY)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"skipped ecg_id {afib[0]}" in out.stderr
    assert f"skipped ecg_id {afib[1]}" in out.stderr and "sampling rate 500 Hz" in out.stderr
    assert f"skipped ecg_id {afib[2]}" in out.stderr and "expected the 12 PTB-XL leads" in out.stderr
    assert f"skipped ecg_id {afib[3]}" in out.stderr and "NaN" in out.stderr
    assert atomic.is_complete(tmp_path / "r")


def test_interrupt_then_resume_from_the_command_line(tmp_path):
    out_dir = tmp_path / "run"
    args = TRAIN + ["--target", "AFIB", "--data", "demo", "--out", str(out_dir), "--epochs", "8",
                    "--steps-per-epoch", "2", "--batch-size", "8", "--checkpoint-every", "2", "--sample-every", "8"]
    # a shell without job control starts background jobs with SIGINT ignored, which the child would inherit
    process = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while not (out_dir / "checkpoints" / "epoch_0002" / "state.json").exists():
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not atomic.is_complete(out_dir)
    resumed = _run(args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stderr
    history = pd.read_csv(out_dir / "history.csv")
    assert history["epoch"].tolist() == list(range(1, 9)) and atomic.is_complete(out_dir)


def test_disk_full_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "history.csv"
    atomic.write_text(target, "old\n")
    real_replace = os.replace

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space left"):
        atomic.write_text(target, "new\n")
    monkeypatch.setattr(os, "replace", real_replace)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["history.csv"]  # no temporary file left behind


def test_run_all_resume_skips_finished_steps(tmp_path, monkeypatch):
    calls = []

    def fake_run(name, dest, parameters):
        calls.append(name)
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        Path(dest).write_text("{}")
        return 0.0

    monkeypatch.setattr(pipeline, "run_notebook", fake_run)
    first = pipeline.Pipeline(tmp_path, resume=False)
    first.step("01", "01_explore_ptbxl", tmp_path / "01.ipynb", {"a": 1})
    again = pipeline.Pipeline(tmp_path, resume=True)
    again.step("01", "01_explore_ptbxl", tmp_path / "01.ipynb", {"a": 1})
    again.step("01", "01_explore_ptbxl", tmp_path / "01.ipynb", {"a": 2})  # parameters changed: runs again
    assert calls == ["01_explore_ptbxl", "01_explore_ptbxl"]
    fresh = pipeline.Pipeline(tmp_path, resume=False)
    fresh.step("01", "01_explore_ptbxl", tmp_path / "01.ipynb", {"a": 2})  # without --resume: always runs
    assert len(calls) == 3
    fresh.step("03", "03_train", tmp_path / "03.ipynb", {"a": 1, "resume": False})
    pipeline.Pipeline(tmp_path, resume=True).step("03", "03_train", tmp_path / "03.ipynb", {"a": 1, "resume": True})
    assert len(calls) == 4  # 03's own resume flag does not make a finished step run again


def test_run_all_resume_generates_from_the_folder_the_skipped_training_went_to(tmp_path, monkeypatch):
    """04 follows the folder 03 trained into; when --resume skips 03, the recorded folder of its earlier run
    (not one resolved afresh, which after a code change could start a new pretraining)."""
    monkeypatch.setattr(pipeline, "run_notebook", lambda name, dest, parameters: Path(dest).write_text("{}") and 0.0)
    resolved = [tmp_path / "Rare_GAN" / "arrhythmia_gan_outputs-1a2b3c4d"]
    monkeypatch.setattr(pipeline, "trained_folder", lambda parameters: resolved[0])
    params = {"out_dir": str(tmp_path / "Rare_GAN" / "arrhythmia_gan_outputs")}
    assert pipeline.Pipeline(tmp_path, resume=False).train("Rare_GAN/03", tmp_path / "03.ipynb", params) == resolved[0]
    earlier = resolved.pop()
    resolved.append(None)  # must not be asked again
    assert pipeline.Pipeline(tmp_path, resume=True).train("Rare_GAN/03", tmp_path / "03.ipynb", params) == earlier
    (tmp_path / ".pipeline_state.json").write_text(json.dumps({"Rare_GAN/03": pipeline._digest(params)}))
    assert pipeline.Pipeline(tmp_path, resume=True).train("Rare_GAN/03", tmp_path / "03.ipynb", params) == \
        Path(params["out_dir"])  # a state file from before the folder was recorded


def test_nan_in_generator_output_is_never_a_candidate(tmp_path):
    from rare_gan import physiology

    ecgs = np.zeros((2, 1000, 12), np.float32)
    ecgs[0, 100:200] = np.nan
    features = physiology.ecg_features(ecgs, delineate=False)
    assert not features["plausible"].any()


def test_disk_full_during_checkpoint_keeps_the_last_good_one(tmp_path, monkeypatch, demo_dir):
    from rare_gan import train

    config = train.TrainConfig(target="AFIB", data_dir="demo", epochs=3, steps_per_epoch=1, batch_size=8,
                               checkpoint_every=1, sample_every=3)
    real_savez = np.savez
    calls = {"n": 0}

    def savez(path, **arrays):
        calls["n"] += 1
        if calls["n"] == 5:  # the third checkpoint's first optimiser file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_savez(path, **arrays)

    monkeypatch.setattr(np, "savez", savez)
    with pytest.raises(OSError, match="No space left"):
        train.train(config, tmp_path / "run")
    assert train.latest_checkpoint(tmp_path / "run").name == "epoch_0002"
    assert not list((tmp_path / "run" / "checkpoints").glob(".tmp*"))
    assert not atomic.is_complete(tmp_path / "run")
    monkeypatch.setattr(np, "savez", real_savez)
    history = train.train(config, tmp_path / "run")  # space is back: resumes from epoch 2
    assert history["epoch"].tolist() == [1, 2, 3] and atomic.is_complete(tmp_path / "run")


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras's own note on the mismatch
def test_a_checkpoint_of_other_layers_is_refused_with_a_clear_error(tmp_path):
    """A checkpoint written by another layout of the networks (another rare_gan version) is not half-loaded."""
    from types import SimpleNamespace

    import keras

    from rare_gan import checkpoints
    from rare_gan.models import UpsampleConv1D

    def gan(up):
        x = keras.Input((10, 2))
        net = keras.Model(x, up(x))
        return SimpleNamespace(generator=net, discriminator=net, g_optimizer=keras.optimizers.Adam(),
                               d_optimizer=keras.optimizers.Adam())

    old = gan(lambda x: keras.layers.Conv1D(3, 5, padding="same")(keras.layers.UpSampling1D(2)(x)))
    saved = checkpoints.save_checkpoint(tmp_path, old, epoch=1, keep=2)
    with pytest.raises(ValueError, match="another version of rare_gan"):
        checkpoints.load_checkpoint(saved, gan(lambda x: UpsampleConv1D(3, 5, 2)(x)))
    assert checkpoints.load_checkpoint(saved, old) == 1
