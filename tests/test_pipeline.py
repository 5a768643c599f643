"""run_all.sh plumbing: notebook parameters, failing steps, merged notebooks, the test command."""

from __future__ import annotations

import subprocess

import nbformat
import papermill as pm
import pytest

from rare_gan import pipeline, testing
from rare_gan.recipes import EXPERIMENTS
from tests.conftest import REPO


ALL_NOTEBOOKS = [*pipeline.NOTEBOOKS, pipeline.LOW_DATA_NOTEBOOK]


@pytest.mark.parametrize("name", ALL_NOTEBOOKS)
def test_every_parameter_the_pipeline_passes_exists_in_the_notebook(name, tmp_path):
    declared = set(pm.inspect_notebook(str(REPO / "notebooks" / f"{name}.ipynb")))
    for profile in pipeline.PROFILES:
        for run in pipeline.runs_of(profile):
            params = pipeline.notebook_parameters(name, profile, "demo", tmp_path, target="AFIB", run=run)
            assert set(params) <= declared, set(params) - declared


def test_notebooks_are_thin_and_stored_without_outputs():
    for name in ALL_NOTEBOOKS:
        book = nbformat.read(str(REPO / "notebooks" / f"{name}.ipynb"), as_version=4)
        code = [c for c in book.cells if c.cell_type == "code"]
        assert any("parameters" in c.metadata.get("tags", []) for c in code), name
        assert sum(c.cell_type == "markdown" for c in book.cells) >= 3, name
        assert all(not c.outputs for c in code), f"{name} has stored outputs"
        assert all(len(c.source.splitlines()) <= 25 for c in code), f"{name} has a long code cell"
        assert not any(line.startswith(("def ", "class ")) for c in code for line in c.source.splitlines()), name


def test_experiments_match_the_research():
    initial, modified = EXPERIMENTS
    assert (initial.folder, initial.trainer_folder) == ("Rare_GAN", "arrhythmia_gan_outputs")
    assert (initial.lr_discriminator, initial.lr_generator) == (2e-4, 2e-4)
    assert (modified.folder, modified.trainer_folder) == ("Rare_GAN_Improved", "arrhythmia_gan_outputs_tuned")
    assert (modified.lr_discriminator, modified.lr_generator) == (1e-4, 4e-4)


def test_failing_notebook_stops_with_its_error_and_no_output(tmp_path, monkeypatch):
    book = nbformat.v4.new_notebook()
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("x = 1")
    params.metadata["tags"] = ["parameters"]
    book.cells = [params, nbformat.v4.new_code_cell("raise RuntimeError(f'broken step {x}')")]
    (tmp_path / "notebooks").mkdir()
    nbformat.write(book, str(tmp_path / "notebooks" / "99_broken.ipynb"))
    monkeypatch.setattr(pipeline, "REPO_ROOT", tmp_path)
    with pytest.raises(pipeline.StepFailed, match="RuntimeError: broken step 2"):
        pipeline.run_notebook("99_broken", tmp_path / "out" / "99_broken.ipynb", {"x": 2})
    assert not (tmp_path / "out" / "99_broken.ipynb").exists()
    assert (tmp_path / "out" / "99_broken.FAILED.ipynb").is_file()


def test_notebook_kernels_keep_the_console_clean(tmp_path, monkeypatch, capfd):
    """A notebook step prints its progress only: the kernel's own messages (e.g. ipykernel's warning about
    TCP without encryption, or its shut-down noise) go to a log beside the executed notebook."""
    book = nbformat.v4.new_notebook()
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    book.cells = [nbformat.v4.new_code_cell("import logging\nlogging.getLogger().warning('to the notebook')")]
    (tmp_path / "notebooks").mkdir()
    nbformat.write(book, str(tmp_path / "notebooks" / "98_quiet.ipynb"))
    monkeypatch.setattr(pipeline, "REPO_ROOT", tmp_path)
    pipeline.run_notebook("98_quiet", tmp_path / "out" / "98_quiet.ipynb", {})
    err = capfd.readouterr().err
    assert "TCP" not in err and "Logging error" not in err and "WARNING" not in err
    assert "to the notebook" in (tmp_path / "out" / "98_quiet.ipynb").read_text()
    log = tmp_path / "out" / "98_quiet.kernel.log"  # absent when the kernel said nothing: no empty log left
    assert not log.exists() or log.read_text().strip(), "an empty kernel log was left"
    config = pipeline._quiet_kernel(None, tmp_path)["config"]  # sockets in a folder of the run's own, not the cwd
    assert config.KernelManager.transport == "ipc" and config.KernelManager.ip == str(tmp_path / "kernel")
    with open(tmp_path / "tcp.log", "wb") as log:  # a socket folder too long for IPC: TCP, whose warning is logged
        pm.execute_notebook(str(tmp_path / "notebooks" / "98_quiet.ipynb"), str(tmp_path / "tcp.ipynb"),
                            kernel_name="python3", progress_bar=False,
                            **pipeline._quiet_kernel(log, tmp_path / ("x" * 90)))
    assert "without encryption" in (tmp_path / "tcp.log").read_text() and "TCP" not in capfd.readouterr().err


def test_merge_notebooks(tmp_path):
    parts = []
    for i in range(2):
        book = nbformat.v4.new_notebook()
        book.cells = [nbformat.v4.new_markdown_cell(f"part {i}")]
        parts.append(tmp_path / f"{i}.ipynb")
        nbformat.write(book, str(parts[-1]))
    merged = nbformat.read(str(pipeline.merge_notebooks(parts, tmp_path / "Rare_GAN.ipynb", "# title")), 4)
    assert [c.source for c in merged.cells][0] == "# title"
    assert "part 1" in merged.cells[-1].source


def test_choose_target(demo_dir, ptbxl_dir):
    from rare_gan.data import load_metadata

    assert pipeline.choose_target(load_metadata(demo_dir)) == "AFIB"
    assert pipeline.choose_target(load_metadata(ptbxl_dir)) == "PAC"


def test_nbval_copies_get_tiny_parameters(tmp_path):
    books = testing.prepare_nbval_notebooks(tmp_path)
    assert [b.stem for b in books] == ["01_explore_ptbxl", "02_build_gan", *[f"03_train_{i}" for i in range(4)],
                                       *[f"04_generate_candidates_{i}" for i in range(4)], "05_evaluate",
                                       "06_low_data"]
    train = pm.inspect_notebook(str(tmp_path / "03_train_3.ipynb"))
    injected = nbformat.read(str(tmp_path / "03_train_3.ipynb"), 4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in injected.cells)
    assert "recipe" in train and 'recipe = "research"' in injected.cells[2].source
    assert 'profile = "test"' in injected.cells[2].source


def test_nbval_copies_start_from_fresh_outputs(tmp_path):
    """Runs left by an earlier test run (of other code) are not resumed or kept beside the new ones."""
    stale = tmp_path / "outputs" / "Rare_GAN" / "arrhythmia_gan_outputs"
    stale.mkdir(parents=True)
    (stale / "config.json").write_text("{}")
    testing.prepare_nbval_notebooks(tmp_path)
    assert not (tmp_path / "outputs").exists() and (tmp_path / "05_evaluate.ipynb").is_file()


def test_generation_follows_the_folder_that_training_went_to(tmp_path):
    """A rerun of run_all.sh whose config differs from the run already in Rare_GAN/... (new code, a new
    pretraining) trains into ``<folder>-<digest>``; 04 must generate from that run, not the old one."""
    import json

    from rare_gan import train

    run = pipeline.runs_of("full")[2]  # research Initial: no pretraining stage
    params = pipeline.notebook_parameters("03_train", "test", "demo", tmp_path, target="AFIB", run=run)
    requested = run.trainer_dir(tmp_path)
    assert pipeline.trained_folder(params) == requested  # nothing there yet
    other = train.recipe_config("research", "AFIB", "test", lr_generator=1e-3, data_dir="demo")
    requested.mkdir(parents=True)
    (requested / "config.json").write_text(json.dumps({"train": other.to_dict()}))
    mine = train.recipe_config("research", "AFIB", "test", lr_generator=params["lr_g"],
                               lr_discriminator=params["lr_d"], data_dir="demo")
    moved = pipeline.trained_folder(params)
    assert moved == requested.with_name(f"{requested.name}-{train.config_digest(mine)}")
    (requested / "config.json").write_text(json.dumps({"train": mine.to_dict()}))
    assert pipeline.trained_folder(params) == requested  # the run itself is found again


def test_runs_of_each_profile():
    assert [r.label for r in pipeline.runs_of("quick")] == ["Initial", "Modified"]
    full = pipeline.runs_of("full")
    assert [r.label for r in full] == ["Initial", "Modified", "research Initial", "research Modified"]
    assert full[2].trainer_dir(REPO / "outputs") == REPO / "outputs" / "research" / "Rare_GAN" / "arrhythmia_gan_outputs"


def test_every_profile_evaluates_at_the_pre_specified_ratio_only():
    """The primary comparison is fixed at positive fraction 0.25 (the study's); no profile adds ratios to its
    Holm family, and the notebook's own default is the same."""
    for profile in pipeline.PROFILES:
        params = pipeline.notebook_parameters("05_evaluate", profile=profile, data_dir="demo", out_dir=REPO / "o")
        assert params["ratios"] == [0.25]
    notebook = nbformat.read(str(REPO / "notebooks" / "05_evaluate.ipynb"), 4)
    assert "ratios = [0.25]" in next(c.source for c in notebook.cells if "parameters" in c.metadata.get("tags", []))


def test_run_all_bad_data_dir_fails_cleanly(tmp_path):
    out = subprocess.run(["./run_all.sh", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode != 0
    assert "PTB-XL folder not found" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "o" / "_COMPLETE").exists()


def test_run_all_unknown_target_fails_cleanly(tmp_path):
    out = subprocess.run(["./run_all.sh", "--data", "demo", "--target", "AFLUTTER", "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode != 0 and "unknown SCP code 'AFLUTTER'" in out.stderr and "Traceback" not in out.stderr


def test_unmarked_tests_and_their_subprocesses_run_tensorflow_eagerly():
    import os

    import tensorflow as tf

    assert tf.config.functions_run_eagerly() and os.environ["RARE_GAN_EAGER"] == "1"


def test_papermill_lr_g_after_run_all_gets_its_own_folder(tmp_path):
    """The design's example, as a user types it from the repository root after ./run_all.sh:
    ``papermill notebooks/03_train.ipynb out.ipynb -p lr_g 4e-4``. The Initial run that run_all left
    is not touched; the new run goes to a folder named after its parameters, which is printed (that
    Modified's learning rates go to the Modified folder is tested on :func:`rare_gan.train.run_folder`)."""
    import json
    import os
    import sys

    (tmp_path / "notebooks").symlink_to(REPO / "notebooks")
    left = tmp_path / "outputs" / "Rare_GAN" / "arrhythmia_gan_outputs"
    left.mkdir(parents=True)
    (left / "config.json").write_text(json.dumps({"train": {"target": ["AFIB"], "recipe": "beat", "epochs": 20}}))
    (left / "history.csv").write_text("epoch\n1\n")
    before = {p.name: p.read_bytes() for p in left.iterdir()}
    env = {**os.environ, "RARE_GAN_PROFILE": "test", "PTBXL_DIR": "demo"}
    env.pop("RARE_GAN_CACHE_DIR", None)

    def papermill(*params):
        out = subprocess.run([sys.executable, "-m", "papermill", "notebooks/03_train.ipynb", "out.ipynb", *params],
                             cwd=tmp_path, env={**env, "RARE_GAN_CACHE_DIR": str(tmp_path / "cache")},
                             capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout + out.stderr + (tmp_path / "out.ipynb").read_text()

    text = papermill("-p", "lr_g", "4e-4")
    new = tmp_path / "outputs" / "runs" / "beat-AFIB-g0.0004-d0.0002"
    assert f"run folder: {new.relative_to(tmp_path)}" in text or f"run folder: {new}" in text
    assert json.loads((new / "config.json").read_text())["train"]["lr_generator"] == 4e-4
    assert {p.name: p.read_bytes() for p in left.iterdir()} == before  # nothing lost, nothing touched


def test_test_command_runs_one_more_worker_than_cores_up_to_3(monkeypatch):
    from rare_gan import testing

    monkeypatch.delenv("RARE_GAN_TEST_WORKERS", raising=False)
    for cores, workers in ((1, "2"), (2, "3"), (16, "3")):
        monkeypatch.setattr(testing.os, "cpu_count", lambda cores=cores: cores)
        assert testing._parallel([]) == ["-n", workers, "--dist", "loadfile"]
    assert testing._parallel(["-n", "0"]) == [] and testing._parallel(["-p", "no:xdist"]) == []
    monkeypatch.setenv("RARE_GAN_TEST_WORKERS", "1")
    assert testing._parallel([]) == []
