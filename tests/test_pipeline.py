"""run_all.sh plumbing: notebook parameters, failing steps, merged notebooks, the test command."""

from __future__ import annotations

import subprocess

import nbformat
import papermill as pm
import pytest

from rare_gan import pipeline, testing
from tests.conftest import REPO


@pytest.mark.parametrize("name", [*pipeline.NOTEBOOKS, pipeline.VARIANTS_NOTEBOOK])
def test_every_parameter_the_pipeline_passes_exists_in_the_notebook(name, tmp_path):
    declared = set(pm.inspect_notebook(str(REPO / "notebooks" / f"{name}.ipynb")))
    for profile in pipeline.PROFILES:
        for experiment in pipeline.EXPERIMENTS:
            params = pipeline.notebook_parameters(name, profile, "demo", tmp_path, target="AFIB",
                                                  experiment=experiment)
            assert set(params) <= declared, set(params) - declared


def test_notebooks_are_thin_and_stored_without_outputs():
    for name in [*pipeline.NOTEBOOKS, pipeline.VARIANTS_NOTEBOOK]:
        book = nbformat.read(str(REPO / "notebooks" / f"{name}.ipynb"), as_version=4)
        code = [c for c in book.cells if c.cell_type == "code"]
        assert any("parameters" in c.metadata.get("tags", []) for c in code), name
        assert sum(c.cell_type == "markdown" for c in book.cells) >= 3, name
        assert all(not c.outputs for c in code), f"{name} has stored outputs"
        assert all(len(c.source.splitlines()) <= 25 for c in code), f"{name} has a long code cell"
        assert not any(line.startswith(("def ", "class ")) for c in code for line in c.source.splitlines()), name


def test_experiments_match_the_research():
    initial, modified = pipeline.EXPERIMENTS
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
    assert [b.stem for b in books] == ["01_explore_ptbxl", "02_build_gan", "03_train", "03_train_modified",
                                       "04_generate_candidates", "04_generate_candidates_modified", "05_evaluate",
                                       "06_beyond_one_gan"]
    train = pm.inspect_notebook(str(tmp_path / "03_train.ipynb"))
    injected = nbformat.read(str(tmp_path / "03_train.ipynb"), 4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in injected.cells)
    assert "epochs" in train


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
