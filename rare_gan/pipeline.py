"""``./run_all.sh``: regenerate every result by running the numbered notebooks with papermill.

Layout written under ``outputs/``::

    01_explore_ptbxl.ipynb, 02_build_gan.ipynb, 05_evaluate.ipynb   executed notebooks
    pretrained/<recipe>-seed<k>-<digest>/  the default recipe's pretraining on every training record (cached)
    Rare_GAN/                  default recipe, Initial learning rates (D 2e-4, G 2e-4)
        arrhythmia_gan_outputs/      trainer run folder (config, history, checkpoints, models, samples)
        generated_ecgs/              every generated ECG (WFDB, SYNTHETIC) + metadata CSV
        fake_arrhythmia_candidates/  the vetted ones + candidates.csv
        03_train.ipynb, 04_generate_candidates.ipynb, Rare_GAN.ipynb (both, merged), metrics.json
    Rare_GAN_Improved/         Modified learning rates (D 1e-4, G 4e-4); trainer folder arrhythmia_gan_outputs_tuned/
    research/Rare_GAN/, research/Rare_GAN_Improved/   the research recipe, same layout (full profile)
    comparison.md, comparison/  every run against real ECGs and each other
    RUN_INFO.json              profile, data, target, wall time per step

A folder counts as finished only once its ``_COMPLETE`` marker exists; executed notebooks are
written to a temporary name and renamed when the step succeeds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rare_gan import atomic
from rare_gan.recipes import DEFAULT_RECIPE, EXPERIMENTS, Experiment

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("01_explore_ptbxl", "02_build_gan", "03_train", "04_generate_candidates", "05_evaluate")
LOW_DATA_NOTEBOOK = "06_low_data"
"""Run by ``--low-data CODES`` only (about 20 minutes per code in the full profile, plus one pretraining)."""

PROFILES: dict[str, dict] = {
    # nbval in the test suite: seconds per notebook, checks the mechanics only (the low-data notebook runs k = all;
    # tests/test_utility.py runs a subsampled k)
    "test": {"recipes": ["beat", "research"], "n_generate": 24, "eval_seeds": [0],
             "n_bootstrap": 100, "ratios": [0.25], "n_examples": 1, "sample_every": 1, "checkpoint_every": 1,
             "low_data_ks": [None], "low_data_draws": 1, "low_data_generate": 16},
    # ~5 minutes on 2 CPU cores: the default recipe end to end, numbers not yet meaningful
    "quick": {"recipes": ["beat"], "n_generate": 200, "eval_seeds": [0], "n_bootstrap": 500,
              "ratios": [0.25], "n_examples": 2, "sample_every": 5, "checkpoint_every": 5,
              "low_data_ks": [5, 20, None], "low_data_draws": 2, "low_data_generate": 100},
    # the real experiment: the default recipe and the research's, both learning-rate configurations; the
    # utility section at the pre-specified positive fraction 0.25 only (the study's primary comparison)
    "full": {"recipes": ["beat", "research"], "n_generate": 1000, "eval_seeds": [0, 1, 2],
             "n_bootstrap": 1000, "ratios": [0.25], "n_examples": 3, "sample_every": 10,
             "checkpoint_every": 10, "low_data_ks": [5, 10, 20, None], "low_data_draws": 3, "low_data_generate": 300},
}


@dataclass(frozen=True)
class Run:
    """One trained configuration of the pipeline: a recipe with one of the research's learning-rate pairs."""

    recipe: str
    experiment: Experiment

    @property
    def label(self) -> str:
        """How reports name it: "Initial" / "Modified" for the default recipe, "research Initial", ..."""
        return self.experiment.name if self.recipe == DEFAULT_RECIPE else f"{self.recipe} {self.experiment.name}"

    def folder(self, out_dir: Path) -> Path:
        """``Rare_GAN/`` or ``Rare_GAN_Improved/`` (under ``<recipe>/`` unless it is the default recipe)."""
        root = Path(out_dir) if self.recipe == DEFAULT_RECIPE else Path(out_dir) / self.recipe
        return root / self.experiment.folder

    def trainer_dir(self, out_dir: Path) -> Path:
        return self.folder(out_dir) / self.experiment.trainer_folder


def runs_of(profile: str) -> list[Run]:
    """Every run of a profile, default recipe first."""
    return [Run(recipe, experiment) for recipe in PROFILES[profile]["recipes"] for experiment in EXPERIMENTS]


# Rare rhythm codes of the research, in order of preference; the pipeline takes the first with
# enough records on disk (the DEMO dataset's rare class is AFIB).
TARGET_PREFERENCE = ("AFLT", "BIGU", "WPW", "PSVT", "SVTAC", "TRIGU", "PAC", "CLBBB", "AFIB")
MIN_TRAIN_RECORDS, MIN_TEST_RECORDS = 20, 2


def notebook_parameters(name: str, profile: str, data_dir: str | None, out_dir: Path, target: str | None = None,
                        run: Run | None = None, seed: int = 0, resume: bool = False) -> dict:
    """The papermill parameters of notebook ``name`` for one profile (and run, for 03/04)."""
    p = PROFILES[profile]
    out_dir = Path(out_dir)
    run = run or runs_of(profile)[0]
    common = {"data_dir": data_dir, "seed": seed}
    if target is not None:
        common["target"] = target
    if name == "01_explore_ptbxl":
        return {**common, "out_dir": str(out_dir), "n_examples": p["n_examples"]}
    if name == "02_build_gan":
        return {"seed": seed, "out_dir": str(out_dir)}
    if name == "03_train":
        return {**common, "recipe": run.recipe, "profile": profile, "lr_g": run.experiment.lr_generator,
                "lr_d": run.experiment.lr_discriminator, "precision": "float32", "sample_every": p["sample_every"],
                "checkpoint_every": p["checkpoint_every"], "name": run.label, "out_dir": str(run.trainer_dir(out_dir)),
                "outputs": str(out_dir), "resume": resume}
    if name == "04_generate_candidates":
        return {**common, "run_dir": str(run.trainer_dir(out_dir)), "out_dir": str(run.folder(out_dir)),
                "n_generate": p["n_generate"]}
    if name == "05_evaluate":
        runs = {r.label: str(r.folder(out_dir)) for r in runs_of(profile)}
        return {**common, "out_dir": str(out_dir), "run_folders": runs, "eval_seeds": p["eval_seeds"],
                "n_bootstrap": p["n_bootstrap"], "ratios": p["ratios"], "classifier_dir": str(out_dir / "classifiers"),
                "profile": profile}
    if name == LOW_DATA_NOTEBOOK:
        return {"codes": target, "data_dir": data_dir, "out_dir": str(out_dir / "low_data"), "profile": profile,
                "ks": p["low_data_ks"], "draws": p["low_data_draws"], "n_generate": p["low_data_generate"],
                "n_bootstrap": p["n_bootstrap"], "seed": seed}
    raise ValueError(f"unknown notebook {name!r}; expected one of {NOTEBOOKS + (LOW_DATA_NOTEBOOK,)}")


def trained_folder(train_params: dict) -> Path:
    """The folder that notebook 03 run with ``train_params`` (:func:`notebook_parameters`) trained into:
    the requested one, or ``<folder>-<config digest>`` when that held a run with another config (e.g.
    a rerun after a new pretraining), so that 04 generates from the run just trained, not the old one.
    Asked after 03 ran (its pretraining is cached by then; asked before, it would train it)."""
    from rare_gan import train

    p = train_params
    config = train.recipe_config(p["recipe"], p["target"], p["profile"], p["outputs"], lr_generator=p["lr_g"],
                                 lr_discriminator=p["lr_d"], seed=p["seed"], data_dir=p["data_dir"],
                                 precision=p["precision"])
    return train.recipe_folder(config, p["out_dir"], p["outputs"])


def prepare_notebook(source: Path, dest: Path, parameters: dict) -> Path:
    """Copy ``source`` to ``dest`` with ``parameters`` injected after its ``parameters`` cell (not executed)."""
    import papermill as pm

    dest.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(source), str(dest), parameters=parameters, prepare_only=True, progress_bar=False)
    return dest


class StepFailed(RuntimeError):
    """A notebook failed; the message holds the notebook's error."""


def run_notebook(name: str, dest: Path, parameters: dict) -> float:
    """Execute ``notebooks/<name>.ipynb`` into ``dest`` (atomically); return its wall time in s. The
    kernel's own messages (start-up, shut-down; not the cells' output), if any, go to ``<dest stem>.kernel.log``."""
    import papermill as pm

    start = time.perf_counter()
    kernel_log = dest.with_name(dest.stem + ".kernel.log")
    kernel_log.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(dest) as tmp, open(kernel_log, "wb") as log_file, \
            tempfile.TemporaryDirectory(prefix="rare_gan-kernel-") as sockets:
        try:
            pm.execute_notebook(str(REPO_ROOT / "notebooks" / f"{name}.ipynb"), str(tmp), parameters=parameters,
                                cwd=str(REPO_ROOT), kernel_name="python3", progress_bar=True, log_output=False,
                                **_quiet_kernel(log_file, Path(sockets)))
        except pm.PapermillExecutionError as exc:
            failed = dest.with_name(dest.stem + ".FAILED.ipynb")
            os.replace(tmp, failed)
            raise StepFailed(f"{name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
                             f"executed notebook with the traceback: {failed}") from None
        finally:
            log_file.flush()
            if kernel_log.stat().st_size == 0:
                kernel_log.unlink()
    return time.perf_counter() - start


def _quiet_kernel(stderr, socket_dir: Path) -> dict:
    """papermill arguments for a kernel that keeps the console to the pipeline's progress: its stderr
    into the file ``stderr`` (ipykernel's shut-down race otherwise prints a "Logging error" traceback
    now and then), and local IPC sockets in ``socket_dir`` (a folder of its own: their default names
    are relative to the working directory, shared by concurrent runs) where the OS has them (over TCP
    every kernel warns "running over TCP without encryption")."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets.config import Config

    class KernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            return await super().start_kernel(**{"stderr": stderr, **kw})

    ipc = os.name == "posix" and len(str(socket_dir)) < 80  # socket paths are limited to ~100 bytes
    config = Config({"KernelManager": {"transport": "ipc", "ip": str(socket_dir / "kernel")}}) if ipc else Config()
    return {"kernel_manager_class": KernelManager, "config": config}


def merge_notebooks(parts: Sequence[Path], dest: Path, title: str) -> Path:
    """One notebook holding the executed cells of ``parts`` in order (the original ``Rare_GAN.ipynb``)."""
    import nbformat

    books = [nbformat.read(str(p), as_version=4) for p in parts]
    merged = nbformat.v4.new_notebook(metadata=books[0].metadata)
    merged.cells.append(nbformat.v4.new_markdown_cell(title))
    for path, book in zip(parts, books):
        merged.cells.append(nbformat.v4.new_markdown_cell(f"---\n*From `{path.name}`*"))
        merged.cells.extend(book.cells)
    with atomic.atomic_path(dest) as tmp:
        nbformat.write(merged, str(tmp))
    return dest


def choose_target(meta) -> str:
    """The first code of :data:`TARGET_PREFERENCE` with enough training and test records on disk in ``meta``."""
    table = meta.prevalence(on_disk=True)
    for code in TARGET_PREFERENCE:
        if code in table.index and table.at[code, "train"] >= MIN_TRAIN_RECORDS and \
                table.at[code, "test"] >= MIN_TEST_RECORDS:
            return code
    raise SystemExit(f"no code of {TARGET_PREFERENCE} has >= {MIN_TRAIN_RECORDS} training and >= "
                     f"{MIN_TEST_RECORDS} test records in {meta.root}; pass --target CODE")


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Pipeline:
    """Runs the steps in order, skipping (with ``resume``) those already done with the same parameters."""

    def __init__(self, out_dir: Path, resume: bool):
        self.out_dir = out_dir
        self.resume = resume
        self.state_path = out_dir / ".pipeline_state.json"
        self.state = json.loads(self.state_path.read_text()) if resume and self.state_path.is_file() else {}
        self.timings: dict[str, float] = {}

    def step(self, key: str, name: str, dest: Path, parameters: dict) -> bool:
        """Run notebook ``name`` into ``dest`` unless done earlier with the same parameters (``resume``, how
        03 continues a run, is not one of them); True if it ran."""
        digest = _digest({k: v for k, v in parameters.items() if k != "resume"})
        if self.resume and self.state.get(key) == digest and dest.is_file():
            print(f"[run_all] {key}: done earlier with the same parameters, skipped", file=sys.stderr)
            return False
        print(f"[run_all] {key}: running notebooks/{name}.ipynb -> {dest}", file=sys.stderr, flush=True)
        self.state.pop(key, None)
        self.timings[key] = run_notebook(name, dest, parameters)
        self.state[key] = digest
        atomic.write_json(self.state_path, self.state)
        print(f"[run_all] {key}: {self.timings[key]:.0f} s", file=sys.stderr, flush=True)
        return True

    def train(self, key: str, dest: Path, parameters: dict) -> Path:
        """Step 03; the folder it trained into (:func:`trained_folder`, recorded so that a skipped step
        names the folder of its earlier run; the requested one for a state file without it)."""
        folder_key = f"{key}:run_dir"
        if self.step(key, "03_train", dest, parameters):
            self.state[folder_key] = str(trained_folder(parameters))
            atomic.write_json(self.state_path, self.state)
        return Path(self.state.get(folder_key, parameters["out_dir"]))


def run(profile: str = "quick", data_dir: str | None = None, target: str | None = None, resume: bool = False,
        out_dir: Path | None = None, seed: int = 0, low_data_codes: str | None = None) -> Path:
    """Run the whole pipeline; return the outputs folder."""
    from rare_gan.data import load_metadata

    out_dir = Path(out_dir or REPO_ROOT / "outputs").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = load_metadata(data_dir, demo_fallback=True)
    data_arg = "demo" if meta.demo else str(meta.root)
    target = target or choose_target(meta)
    meta.validate_codes(target)
    print(f"[run_all] profile={profile} data={meta.root}{' (DEMO)' if meta.demo else ''} target={target} "
          f"recipes={','.join(PROFILES[profile]['recipes'])} out={out_dir}", file=sys.stderr)
    atomic.mark_incomplete(out_dir)
    pipe = Pipeline(out_dir, resume)
    start = time.perf_counter()
    kw = {"profile": profile, "data_dir": data_arg, "out_dir": out_dir, "target": target, "seed": seed}
    for name in NOTEBOOKS[:2]:
        pipe.step(name, name, out_dir / f"{name}.ipynb", notebook_parameters(name, **kw))
    for r in runs_of(profile):
        folder = r.folder(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        atomic.mark_incomplete(folder)
        key = folder.relative_to(out_dir).as_posix()
        train_params = notebook_parameters("03_train", run=r, resume=resume, **kw)
        run_dir = pipe.train(f"{key}/03_train", folder / "03_train.ipynb", train_params)
        generate_params = {**notebook_parameters("04_generate_candidates", run=r, **kw), "run_dir": str(run_dir)}
        pipe.step(f"{key}/04_generate_candidates", "04_generate_candidates", folder / "04_generate_candidates.ipynb",
                  generate_params)
        merge_notebooks([folder / f"{n}.ipynb" for n in NOTEBOOKS[2:4]], folder / "Rare_GAN.ipynb",
                        f"# Rare_GAN — {r.recipe} recipe, {r.experiment.name} configuration (D lr "
                        f"{r.experiment.lr_discriminator:g}, G lr {r.experiment.lr_generator:g})\n\nExecuted by "
                        f"`./run_all.sh --profile {profile}`; target {target}; data {meta.root}"
                        f"{' (DEMO)' if meta.demo else ''}.")
    pipe.step("05_evaluate", "05_evaluate", out_dir / "05_evaluate.ipynb", notebook_parameters("05_evaluate", **kw))
    if low_data_codes:
        meta.validate_codes(low_data_codes)
        params = notebook_parameters(LOW_DATA_NOTEBOOK, **{**kw, "target": low_data_codes})
        pipe.step(LOW_DATA_NOTEBOOK, LOW_DATA_NOTEBOOK, out_dir / f"{LOW_DATA_NOTEBOOK}.ipynb", params)
    for r in runs_of(profile):
        atomic.mark_complete(r.folder(out_dir), {"profile": profile, "target": target, "recipe": r.recipe})
    info = {"profile": profile, "data_dir": str(meta.root), "demo": meta.demo, "target": target, "seed": seed,
            "recipes": PROFILES[profile]["recipes"], "step_seconds": pipe.timings,
            "total_seconds": time.perf_counter() - start}
    atomic.write_json(out_dir / "RUN_INFO.json", info)
    atomic.mark_complete(out_dir, info)
    return out_dir


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./run_all.sh", description="Regenerate every result of rare_gan.")
    parser.add_argument("--profile", choices=["quick", "full", "test"], default="quick",
                        help="quick: a few minutes on 2 cores; full: the real experiment (default: quick)")
    parser.add_argument("--data", help="PTB-XL folder (default: $PTBXL_DIR, else data/ptbxl, else the DEMO data); "
                                       "'demo' forces the DEMO dataset")
    parser.add_argument("--target", help=f"SCP code(s), comma-separated (default: first of {TARGET_PREFERENCE} "
                                          f"with >= {MIN_TRAIN_RECORDS} training records on disk)")
    parser.add_argument("--resume", action="store_true",
                        help="skip steps already done with the same parameters; resume interrupted training")
    parser.add_argument("--out", help="outputs folder (default: outputs/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--low-data", metavar="CODES",
                        help="also run notebooks/06_low_data for these codes (e.g. PAC,PVC): k = 5, 10, 20, all real "
                             "positives, GAN fine-tuned on those k only (about 20 min per code on 2 cores, full profile, "
                             "plus one pretraining that never sees the codes)")
    args = parser.parse_args(argv)
    from rare_gan.data import DataError

    try:
        out = run(args.profile, args.data, args.target, args.resume, Path(args.out) if args.out else None, args.seed,
                  args.low_data)
    except (StepFailed, DataError) as exc:
        print(f"[run_all] error: {exc}", file=sys.stderr)
        return 1
    print(f"[run_all] done. Results: {out}/comparison.md, {out}/Rare_GAN/, {out}/Rare_GAN_Improved/"
          + (f", {out}/research/" if "research" in PROFILES[args.profile]["recipes"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
