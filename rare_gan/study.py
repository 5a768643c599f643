"""The reference study behind ``outputs/reference/results.json``: every code × recipe × configuration × GAN seed.

``python -m rare_gan.study realism --data ../shared/ptbxl --codes PAC,PVC,CLBBB,AFIB --seeds 0,1,2``
trains (or reuses) the runs and writes one realism row per run (:func:`rare_gan.realism.evaluate_synthetic`)
plus the real-data controls of each code; ``... utility`` adds the utility rows
(:mod:`rare_gan.utility`). Each row is cached in its run folder (``realism.json``), so an
interrupted study resumes where it stopped and the JSON can be rebuilt without retraining.

Recipes and what each row means:

* ``beat`` — the default recipe: pretrained on every training-fold record once per seed, fine-tuned
  on the code's records with Initial or Modified learning rates;
* ``beat/conditional`` — the same pretrained model generating the code straight from its labels,
  without fine-tuning (the variant the realism issue asks to compare);
* ``research`` — the research's GAN, trained from scratch on the code's records (``research_seeds``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from rare_gan import atomic, evaluate, generate, realism, train
from rare_gan.recipes import EXPERIMENTS

log = logging.getLogger(__name__)

ROW_KEYS = ("c2st_auroc", "c2st_cnn_auroc", "c2st_real_control", "tstr_auroc", "real_auroc_same_classifier",
            "w1_hr_bpm", "w1_rr_sd_ms", "near_copy_fraction", "nn_distance_ratio")
"""The columns the realism issue asks for in every row (plus timing and the rest of evaluate_synthetic)."""


def _train_seconds(run_dir: Path) -> float:
    return float(pd.read_csv(Path(run_dir) / "history.csv")["seconds"].sum())


def _row_cached(run_dir: Path, key: str, compute) -> dict:
    """The evaluation ``key`` of a run, computed once and kept in ``<run_dir>/realism.json``."""
    path = Path(run_dir) / "realism.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    if key not in saved:
        saved[key] = compute()
        atomic.write_json(path, saved)
    return saved[key]


def realism_rows(data_dir: str | None, codes: Sequence[str], seeds: Sequence[int] = (0, 1, 2),
                 research_seeds: Sequence[int] = (0,), profile: str = "full", outputs: str | Path = "outputs/study",
                 n_generate: int = 500, recipes: Sequence[str] = ("beat", "research")) -> list[dict]:
    """Train/reuse every run of the study and evaluate it; one dict per row (controls first per code)."""
    outputs = Path(outputs)
    rows = []
    for code in codes:
        task = evaluate.load_task(data_dir, code)
        ref = realism.load_reference(task)
        base = {"code": code, "n_train_positives": int(task.y["train"].sum()),
                "n_test_positives": int(task.y["val"].sum() + task.y["test"].sum())}
        rows.append({**base, "recipe": "real", "configuration": "control", **ref.controls})
        log.info("%s controls: %s", code, ref.controls)
        for recipe in recipes:
            for seed in (research_seeds if recipe == "research" else seeds):
                pretrained = None
                for experiment in EXPERIMENTS:
                    start = time.perf_counter()
                    run_dir, _ = train.train_recipe(recipe, code, profile=profile, outputs=outputs / code / f"seed{seed}",
                                                    pretrained_root=outputs / "pretrained", data_dir=data_dir,
                                                    seed=seed, lr_generator=experiment.lr_generator,
                                                    lr_discriminator=experiment.lr_discriminator)
                    config = generate.load_run(run_dir).config
                    pretrained = Path(config.init_from) if config.init_from else None
                    row = _row_cached(run_dir, f"{code}-n{n_generate}", lambda: realism.evaluate_synthetic(
                        ref, generate.generate(generate.load_run(run_dir), n_generate, seed=seed), seed))
                    rows.append({**base, "recipe": recipe, "configuration": experiment.name, "gan_seed": seed,
                                 "run_dir": str(run_dir), "c2st_real_control": ref.controls["c2st_real_control"],
                                 "pretrain_seconds": _train_seconds(pretrained) if pretrained else 0.0,
                                 "train_seconds": _train_seconds(run_dir), **row})
                    log.info("%s %s %s seed %d: C2ST %.3f (%.0f s)", code, recipe, experiment.name, seed,
                             row["c2st_auroc"], time.perf_counter() - start)
                if pretrained is not None:
                    row = _row_cached(pretrained, f"{code}-n{n_generate}", lambda: realism.evaluate_synthetic(
                        ref, generate.generate(generate.load_run(pretrained), n_generate, seed=seed, code=code), seed))
                    rows.append({**base, "recipe": f"{recipe}/conditional", "configuration": "pretrained only",
                                 "gan_seed": seed, "run_dir": str(pretrained),
                                 "c2st_real_control": ref.controls["c2st_real_control"],
                                 "pretrain_seconds": _train_seconds(pretrained), "train_seconds": 0.0, **row})
    return rows


def summarise(rows: Sequence[dict]) -> pd.DataFrame:
    """Mean and range over GAN seeds per code × recipe × configuration, for the issue's columns."""
    table = pd.DataFrame([r for r in rows if r["recipe"] != "real"])
    if table.empty:
        return table
    keys = [k for k in ROW_KEYS if k in table] + ["qrs_median_diff_ms", "pr_median_diff_ms", "train_seconds",
                                                  "pretrain_seconds"]
    grouped = table.groupby(["code", "recipe", "configuration"], sort=False)
    out = grouped[keys].mean().round(3)
    out.insert(0, "n_seeds", grouped.size())
    for k in ("c2st_auroc", "tstr_auroc"):
        out[f"{k}_range"] = [f"{lo:.3f}–{hi:.3f}" for lo, hi in zip(grouped[k].min(), grouped[k].max())]
    return out.reset_index()


def write_results(path: str | Path, section: str, rows: Sequence[dict], command: str) -> Path:
    """Put ``rows`` under ``section`` of the results JSON at ``path`` (other sections are kept)."""
    path = Path(path)
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[section] = {"command": command, "rows": list(rows)}
    atomic.write_json(path, results)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rare_gan.study", description=__doc__.split("\n\n")[0])
    parser.add_argument("section", choices=["realism"])
    parser.add_argument("--data", help="PTB-XL folder (default: $PTBXL_DIR, data/ptbxl, else DEMO)")
    parser.add_argument("--codes", default="PAC,PVC,CLBBB,AFIB")
    parser.add_argument("--seeds", default="0,1,2", help="GAN seeds of the default recipe")
    parser.add_argument("--research-seeds", default="0", help="GAN seeds of the research recipe")
    parser.add_argument("--profile", default="full", choices=["test", "quick", "full"])
    parser.add_argument("--outputs", default="outputs/study", help="run folders and the pretraining cache")
    parser.add_argument("--results", default="outputs/study/results.json")
    parser.add_argument("--n-generate", type=int, default=500)
    parser.add_argument("--recipes", default="beat,research")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ints = lambda text: [int(s) for s in text.split(",") if s.strip()]  # noqa: E731
    rows = realism_rows(args.data, [c.strip().upper() for c in args.codes.split(",")], ints(args.seeds),
                        ints(args.research_seeds), args.profile, args.outputs, args.n_generate,
                        [r.strip() for r in args.recipes.split(",")])
    command = "python -m rare_gan.study " + " ".join(argv if argv is not None else sys.argv[1:])
    path = write_results(args.results, args.section, rows, command)
    print(summarise(rows).to_string(index=False))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
