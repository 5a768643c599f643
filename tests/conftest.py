"""Shared fixtures: the DEMO dataset (always), the PTB-XL subset (when present), small broken copies."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]


def shared_ptbxl() -> Path | None:
    """The PTB-XL folder for the real-data tests: $PTBXL_DIR, else ../shared/ptbxl beside the repo."""
    candidate = Path(os.environ.get("PTBXL_DIR") or REPO.parent / "shared" / "ptbxl")
    return candidate if (candidate / "ptbxl_database.csv").is_file() else None


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Tests never read or write the user's signal cache."""
    old = os.environ.get("RARE_GAN_CACHE_DIR")
    os.environ["RARE_GAN_CACHE_DIR"] = str(tmp_path_factory.mktemp("signal_cache"))
    yield
    if old is None:
        os.environ.pop("RARE_GAN_CACHE_DIR", None)
    else:
        os.environ["RARE_GAN_CACHE_DIR"] = old


@pytest.fixture(autouse=True)
def _eager_unless_marked_graph(request, monkeypatch):
    """TensorFlow functions run eagerly (``RARE_GAN_EAGER=1``, inherited by the subprocesses a test starts):
    a test's GAN runs a few steps, and tracing a training step takes longer than running them eagerly.
    Tests marked ``graph`` (the trainer's, the benchmark's, the matched statistics') and the notebooks
    run traced, as users' runs do."""
    import tensorflow as tf

    eager = request.node.get_closest_marker("graph") is None
    monkeypatch.setenv("RARE_GAN_EAGER", "1" if eager else "0")
    tf.config.run_functions_eagerly(eager)
    yield
    tf.config.run_functions_eagerly(False)


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    """The embedded DEMO dataset (written once, reused by the notebooks' tests too)."""
    from rare_gan import demo

    return demo.ensure_demo_dataset()


@pytest.fixture(scope="session")
def ptbxl_dir() -> Path:
    """The genuine PTB-XL subset; the test is skipped where it is absent."""
    path = shared_ptbxl()
    if path is None:
        pytest.skip("PTB-XL subset not found (set PTBXL_DIR or put it in ../shared/ptbxl)")
    return path


def rewrite_record(path: Path, signal: np.ndarray, names=None, fs: int = 100) -> None:
    """Overwrite the WFDB record ``path`` (no extension) with ``signal`` (mV), e.g. to break it for a test."""
    import wfdb

    from rare_gan.leads import LEAD_NAMES

    names = list(LEAD_NAMES if names is None else names)
    wfdb.wrsamp(path.name, fs=fs, units=["mV"] * len(names), sig_name=names, p_signal=signal,
                fmt=["16"] * len(names), adc_gain=[1000.0] * len(names), baseline=[0] * len(names),
                write_dir=str(path.parent))


def copy_dataset(source: Path, dest: Path, ecg_ids: list[int]) -> Path:
    """A small PTB-XL-layout copy of ``source`` holding only ``ecg_ids`` (metadata rows and records)."""
    db = pd.read_csv(source / "ptbxl_database.csv", index_col="ecg_id").loc[ecg_ids]
    dest.mkdir(parents=True, exist_ok=True)
    db.to_csv(dest / "ptbxl_database.csv")
    shutil.copyfile(source / "scp_statements.csv", dest / "scp_statements.csv")
    for name in db["filename_lr"]:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        for ext in (".hea", ".dat"):
            shutil.copyfile(source / (name + ext), dest / (name + ext))
    return dest


@pytest.fixture
def mini_dataset(demo_dir, tmp_path) -> Path:
    """Twelve DEMO records in a private folder that a test may break."""
    ids = pd.read_csv(demo_dir / "ptbxl_database.csv")["ecg_id"].head(12).tolist()
    return copy_dataset(demo_dir, tmp_path / "mini", ids)


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist the notebooks, the longest work unit (:func:`pytest_xdist_make_scheduler`),
    are scheduled first so that they never finish last."""
    if hasattr(config, "workerinput"):  # an xdist worker: its collection order is the one scheduled
        items.sort(key=lambda item: item.path.suffix != ".ipynb")  # stable: each file keeps its order


def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile`` with notebooks 01–05 in one work unit: each test file runs on one worker
    (its module fixtures, e.g. a pretraining, are built once) and 01–05 run on one worker in
    collection order (03 trains the runs that 04 and 05 read); 06 (the low-data study, which trains
    its own) is a unit of its own, so the other worker starts on it. xdist's own ``loadgroup`` cannot
    do this with pytest 9 (it marks groups through a node attribute pytest no longer reads)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    from rare_gan.pipeline import LOW_DATA_NOTEBOOK

    class NotebooksTogether(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "notebooks" if path.endswith(".ipynb") and LOW_DATA_NOTEBOOK not in path else path

    return NotebooksTogether(config, log)
