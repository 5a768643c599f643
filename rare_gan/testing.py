"""The project's test command (``./run_all.sh --tests``): unit tests plus every notebook under nbval.

Notebooks run with the tiny ``test`` profile of :mod:`rare_gan.pipeline` (papermill injects the
parameters into copies under ``build/nbval``), on the DEMO dataset, in order 01 → 06. Exit code 5
from pytest (nothing collected) is turned into a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from rare_gan.pipeline import LOW_DATA_NOTEBOOK, NOTEBOOKS, REPO_ROOT, notebook_parameters, prepare_notebook, runs_of

NBVAL_DIR = REPO_ROOT / "build" / "nbval"


def prepare_nbval_notebooks(dest: Path = NBVAL_DIR) -> list[Path]:
    """Copies of the notebooks with the ``test`` profile's parameters injected, in execution order,
    writing into a fresh ``dest/outputs``.

    03 and 04 are prepared once per run of the profile (``03_train_0.ipynb`` for the default
    recipe's Initial run, ``03_train_1.ipynb`` for its Modified run, ...) so that 05 compares
    trained runs; the names sort in the order pytest runs them.
    """
    out_dir = dest / "outputs"
    shutil.rmtree(out_dir, ignore_errors=True)  # runs of an earlier test run (other code) would be resumed or kept beside
    prepared = []
    for name in NOTEBOOKS:
        runs = list(enumerate(runs_of("test"))) if name in ("03_train", "04_generate_candidates") else [(None, None)]
        for index, run in runs:
            suffix = "" if index is None else f"_{index}"
            params = notebook_parameters(name, profile="test", data_dir="demo", out_dir=out_dir, run=run)
            prepared.append(prepare_notebook(REPO_ROOT / "notebooks" / f"{name}.ipynb",
                                             dest / f"{name}{suffix}.ipynb", params))
    params = notebook_parameters(LOW_DATA_NOTEBOOK, profile="test", data_dir="demo", out_dir=out_dir, target="AFIB")
    prepared.append(prepare_notebook(REPO_ROOT / "notebooks" / f"{LOW_DATA_NOTEBOOK}.ipynb",
                                     dest / f"{LOW_DATA_NOTEBOOK}.ipynb", params))
    return sorted(prepared)


def _parallel(argv: Sequence[str]) -> list[str]:
    """pytest-xdist arguments: ``RARE_GAN_TEST_WORKERS`` workers (default: one more than the cores, at
    most 3; 0 or 1 runs serially), each test file and all the notebooks as one unit (see ``tests/conftest.py``).

    Much of the suite's time is single-threaded Python, graph tracing and waiting on subprocesses, which
    the workers overlap: on 2 cores, 3 workers ran the suite in 8 min 55 s against 10 min 28 s for 2
    (clean clone, one run each). The explicit ``-n``/``-p no:xdist`` of a caller wins."""
    if any(a == "-n" or a.startswith(("-n=", "--numprocesses")) or a == "no:xdist" for a in argv):
        return []
    try:
        import xdist  # noqa: F401
    except ImportError:
        return []
    workers = int(os.environ.get("RARE_GAN_TEST_WORKERS", min(3, (os.cpu_count() or 1) + 1)))
    return ["-n", str(workers), "--dist", "loadfile"] if workers > 1 else []


def main(argv: Sequence[str] | None = None) -> int:
    """Run unit tests and nbval; return pytest's exit code (5 → 1)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    explicit_paths = any(Path(a.split("::")[0]).exists() for a in argv if not a.startswith("-"))
    targets = [] if explicit_paths else ["tests", *map(str, prepare_nbval_notebooks())]
    command = [sys.executable, "-m", "pytest", *targets, "--nbval-lax", "-p", "no:cacheprovider",
               "--durations=15", *_parallel(argv), *argv]
    print("+", " ".join(command), flush=True)
    code = subprocess.call(command, cwd=REPO_ROOT)
    if code == 5:
        print("error: pytest collected no tests", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
