"""The reference study behind ``outputs/reference/results.json``: every code × recipe × configuration × GAN seed.

``python -m rare_gan.study realism --data ../shared/ptbxl --codes PAC,PVC,CLBBB,AFIB --seeds 0,1,2``
trains (or reuses) the runs and writes one realism row per run (:func:`rare_gan.realism.evaluate_synthetic`)
plus the real-data controls of each code; ``... utility`` adds the utility rows of both classifier
families (:func:`utility_rows`); ``... memorisation`` spells out the near-copy check of chosen
recipes' runs (:func:`memorisation_rows`); the low-data study (:mod:`rare_gan.lowdata`) adds its own
section; ``... figures`` draws the README's example grids and ``... readme`` rewrites the README's
results blocks from the JSON (both in :mod:`rare_gan.readme`). Each realism row is cached in its run
folder (``realism.json``), so an interrupted study resumes where it stopped and the JSON can be
rebuilt without retraining.

Recipes and what each row means:

* ``beat`` — the default recipe: pretrained on every training-fold record once per seed, fine-tuned
  on the code's records with Initial or Modified learning rates;
* ``beat/conditional`` — the same pretrained model generating the code straight from its labels,
  without fine-tuning (the variant the realism issue asks to compare);
* ``research`` — the research's GAN, trained from scratch on the code's records (``research_seeds``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from rare_gan import atomic, evaluate, generate, realism, train
from rare_gan.data import DataError
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
                 n_generate: int = 500, recipes: Sequence[str] = ("beat", "research"),
                 configurations: Sequence[str] = ("Initial", "Modified"),
                 pretrain_seeds: Sequence[int] | None = None, conditional: bool = True) -> list[dict]:
    """Train/reuse every run of the study and evaluate it; one dict per row (controls first per code).

    GAN seed ``s`` of the default recipe fine-tunes the pretraining of seed ``s`` when ``s`` is in
    ``pretrain_seeds`` (default: every seed), else the pretraining of ``pretrain_seeds[0]``: then only
    the fine-tuning seed varies, and the row's ``pretrain_seed`` says so. ``conditional`` also evaluates
    conditional generation straight from each pretraining."""
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
                pretrain_seed = seed if pretrain_seeds is None or seed in pretrain_seeds else pretrain_seeds[0]
                pretrained = None
                for experiment in [e for e in EXPERIMENTS if e.name in configurations]:
                    start = time.perf_counter()
                    run_dir, _ = train.train_recipe(recipe, code, profile=profile, outputs=outputs / code / f"seed{seed}",
                                                    pretrained_root=outputs / "pretrained", data_dir=data_dir,
                                                    pretrain_seed=pretrain_seed, seed=seed,
                                                    lr_generator=experiment.lr_generator,
                                                    lr_discriminator=experiment.lr_discriminator)
                    config = generate.load_run(run_dir).config
                    pretrained = Path(config.init_from) if config.init_from else None
                    row = _row_cached(run_dir, f"{code}-n{n_generate}", lambda: realism.evaluate_synthetic(
                        ref, generate.generate(generate.load_run(run_dir), n_generate, seed=seed), seed))
                    rows.append({**base, "recipe": recipe, "configuration": experiment.name, "gan_seed": seed,
                                 "pretrain_seed": pretrain_seed if pretrained else None, "run_dir": str(run_dir),
                                 "c2st_real_control": ref.controls["c2st_real_control"],
                                 "pretrain_seconds": _train_seconds(pretrained) if pretrained else 0.0,
                                 "train_seconds": _train_seconds(run_dir), **row})
                    log.info("%s %s %s seed %d: C2ST %.3f (%.0f s)", code, recipe, experiment.name, seed,
                             row["c2st_auroc"], time.perf_counter() - start)
                if pretrained is not None and conditional:
                    key = f"{code}-n{n_generate}" + ("" if seed == pretrain_seed else f"-seed{seed}")
                    row = _row_cached(pretrained, key, lambda: realism.evaluate_synthetic(
                        ref, generate.generate(generate.load_run(pretrained), n_generate, seed=seed, code=code), seed))
                    rows.append({**base, "recipe": f"{recipe}/conditional", "configuration": "pretrained only",
                                 "gan_seed": seed, "pretrain_seed": pretrain_seed, "run_dir": str(pretrained),
                                 "c2st_real_control": ref.controls["c2st_real_control"],
                                 "pretrain_seconds": _train_seconds(pretrained), "train_seconds": 0.0, **row})
    return rows


def utility_rows(data_dir: str | None, codes: Sequence[str], realism: Sequence[dict], seeds: Sequence[int] = (0, 1, 2),
                 ratio: float = 0.25, n_generate: int = 500, n_boot: int = 1000, gan_seed: int = 0,
                 outputs: str | Path = "outputs/study", recipes: Sequence[str] = ("beat", "research"),
                 configurations: Sequence[str] = ("Initial", "Modified")) -> list[dict]:
    """Both classifier families on real only, class weighting, oversampling and each GAN run's vetted ECGs.

    The GAN runs are the realism study's runs of GAN seed ``gan_seed`` (on pretraining 0) of ``recipes`` ×
    ``configurations`` (``realism`` rows); each one's ``n_generate`` ECGs are vetted
    (:func:`rare_gan.candidates.vet`) and the accepted ones augment the training set to ``ratio``
    positives (``<run>:gan@r``) or replace the real positives (``<run>:tstr``). Primary comparisons:
    every ``gan@r`` vs ``oversample@r``, Holm over the whole family (every code and run) of this call.
    Every row records what the CNN trunk read (``cnn_inputs``), so calls with different trunks keep
    their own rows.
    """
    from rare_gan import candidates, metrics, utility

    rows, primary = [], {}
    for code in codes:
        task = evaluate.load_task(data_dir, code)
        runs = {f"{r['recipe']} {r['configuration']}".replace("beat ", ""): r["run_dir"] for r in realism
                if r["code"] == code and r.get("gan_seed") == gan_seed and on_first_pretraining(r)
                and r["recipe"] in recipes and r["configuration"] in configurations}
        vetted = {}
        for name, run_dir in runs.items():
            ecgs = generate.generate(generate.load_run(run_dir), n_generate, seed=gan_seed)
            scores = candidates.vet(ecgs, task)
            vetted[name] = ecgs[scores["accepted"].to_numpy(bool)]
        trunk = utility.pretrained_cnn(task, 0, cache_root=Path(outputs) / "classifiers")
        for family in (utility.feature_family(), utility.cnn_family(trunk, task.scaler.scale_mv)):
            real = utility.real_rows(family, task)
            plan = [("real", None), ("real_weighted", None), (f"oversample@{ratio:g}", None)]
            plan += [(f"{name}:{kind}", ecgs) for name, ecgs in vetted.items() if len(ecgs)
                     for kind in (f"gan@{ratio:g}", "tstr")]
            fits = {label: utility.fit_variant(family, real, label.split(":")[-1], seeds, synthetic, label=label)
                    for label, synthetic in plan}
            table = utility.utility_table(real, list(fits.values()), n_boot).set_index(["variant", "metric"])
            for label, fit in fits.items():
                row = {"code": code, "family": family.name, "variant": label, "k": "all", "draw": 0,
                       "n_test_positives": int(real.test_y.sum()), "n_test": len(real.test_y),
                       "n_synthetic": int(len(vetted[label.split(":")[0]])) if ":" in label else 0,
                       "seconds_per_fit": fit.seconds_per_fit, "classifier_seeds": list(seeds),
                       "cnn_inputs": CNN_INPUTS, "head_c": family.head_c}
                row |= _with_ci(table.loc[label], ("auroc", "auprc", "accuracy"))
                if ":gan@" in label:
                    d = utility.compare(real, fit, fits[f"oversample@{ratio:g}"], n_boot)
                    row |= {"difference": d["difference"], "diff_ci_low": d["ci_low"], "diff_ci_high": d["ci_high"],
                            "p_value": d["p_value"]}
                    primary.setdefault(family.name, []).append(row)
                rows.append(row)
            log.info("%s %s: real-only AUROC %.3f", code, family.name, table.loc[("real", "auroc"), "mean"])
    for family_rows in primary.values():
        for row, p in zip(family_rows, metrics.holm_adjust([r["p_value"] for r in family_rows])):
            row["p_holm"] = float(p)
    return rows


def on_first_pretraining(row: dict) -> bool:
    """A realism row of a run without pretraining or on pretraining 0 (GAN seed 0 also fine-tunes other
    pretrainings: ``--seeds 0 --pretrain-seeds 1``)."""
    return row.get("pretrain_seed") in (None, 0)


def _with_ci(table: pd.DataFrame, metrics: Sequence[str]) -> dict:
    """``{m, m_ci_low, m_ci_high}`` for each metric of one variant's :func:`rare_gan.utility.utility_table` rows
    (indexed by metric)."""
    return {f"{m}{suffix}": float(table.at[m, column]) for m in metrics
            for suffix, column in (("", "mean"), ("_ci_low", "ci_low"), ("_ci_high", "ci_high"))}


CNN_INPUTS = "leads+rhythm"
"""What the CNN trunk reads (:func:`rare_gan.utility.cnn_inputs`); rows from before the rhythm channels have no
``cnn_inputs`` and are the 12 leads alone."""
CNN_UNLABELLED = "leads+rhythm, code unlabelled"
"""The comparison trunk of ``cnn_budget --cnn-unlabelled``: the same inputs, one trunk per code that never learnt
that code's label (``pretrained_cnn(unlabelled=...)``), so the head alone learns it from the code's positives."""


def cnn_budget_study(data_dir: str | None, codes: Sequence[str], epochs: Sequence[int],
                     outputs: str | Path = "outputs/study", seeds: Sequence[int] = (0, 1, 2), n_boot: int = 1000,
                     unlabelled: bool = False) -> list[dict]:
    """The CNN trunk's budget chosen by inner validation (:func:`rare_gan.utility.cnn_budget_rows`, no
    ``code``), then the real-only test AUROC (folds 9–10) of both families with that budget, one row per
    code and family: how far the CNN is from the feature model, measured after the choice. Every row
    names the trunk's inputs (``cnn_inputs``: the 12 leads and the rhythm channels). With ``unlabelled``:
    only the CNN rows of one trunk per code that never learnt that code's label (:data:`CNN_UNLABELLED`), with the
    head chosen for such codes (:data:`rare_gan.utility.CNN_HEAD_C_UNSEEN`)."""
    from rare_gan import utility

    cache = Path(outputs) / "classifiers"
    tasks = {code: evaluate.load_task(data_dir, code) for code in codes}
    rows = [r | {"cnn_inputs": CNN_INPUTS} for r in utility.cnn_budget_rows(tasks[codes[0]], epochs, cache_root=cache)]
    chosen, head_c = utility.choose_cnn_epochs(rows), utility.choose_cnn_head_c(rows)
    inputs = CNN_UNLABELLED if unlabelled else CNN_INPUTS
    rows = [] if unlabelled else rows
    for code, task in tasks.items():
        trunk = utility.pretrained_cnn(task, 0, cache_root=cache, epochs=chosen,
                                       unlabelled=task.codes if unlabelled else ())
        cnn = utility.cnn_family(trunk, task.scaler.scale_mv, utility.CNN_HEAD_C_UNSEEN if unlabelled else head_c)
        for family in (cnn,) if unlabelled else (utility.feature_family(), cnn):
            real = utility.real_rows(family, task)
            table = utility.utility_table(real, [utility.fit_variant(family, real, "real", seeds)], n_boot)
            rows.append({"code": code, "family": family.name, "variant": "real",
                         "epochs": chosen if family.name == "cnn" else None,
                         "head_c": family.head_c,
                         **_with_ci(table.set_index("metric"), ("auroc",)),
                         "n_test_positives": int(real.test_y.sum()), "classifier_seeds": list(seeds),
                         "cnn_inputs": inputs})
    return rows


CNN_UNSEEN_HEAD = "leads+rhythm, every other common code unlabelled"
"""``cnn_inputs`` of the selection rows of ``cnn_budget --cnn-unseen-head``: the head's strength for codes the trunk
never learnt (:func:`rare_gan.utility.cnn_budget_rows` with ``unseen``), which the low-data study's trunk is."""
CNN_TRUNK_SEED = "leads+rhythm, trunk seed {seed}"
CNN_TRUNK_ENSEMBLE = "leads+rhythm, mean of trunk seeds {seeds}"
"""``cnn_inputs`` of the rows of :func:`cnn_trunk_seed_rows`: one trunk seed, or the trunks' ensemble."""


def cnn_trunk_seed_rows(data_dir: str | None, codes: Sequence[str], epochs: int, head_c: float,
                        trunk_seeds: Sequence[int] = (0, 1, 2), outputs: str | Path = "outputs/study",
                        n_boot: int = 1000) -> list[dict]:
    """Real-only test AUROC (folds 9–10) of the CNN family with each trunk seed at the budget ``epochs``
    and head strength ``head_c`` (the ones :func:`cnn_budget_study` chose), and of the trunks' ensemble
    (their heads' scores averaged):
    how much of the CNN's distance to the feature model is one trunk's draw. One trunk per seed serves
    every code (it learns every label of the training folds)."""
    from rare_gan import bench, utility

    cache = Path(outputs) / "classifiers"
    rows = []
    for code in codes:
        task = evaluate.load_task(data_dir, code)
        fits, trunk_seconds = [], {}
        for seed in trunk_seeds:
            trunk = utility.pretrained_cnn(task, seed, cache_root=cache, epochs=epochs)
            trunk_seconds[seed] = json.loads((trunk / atomic.COMPLETE_MARKER).read_text())["seconds"]
            family = utility.cnn_family(trunk, task.scaler.scale_mv, head_c)
            real = utility.real_rows(family, task)
            fits.append(utility.fit_variant(family, real, "real", [seed]))
        members = [[s] for s in trunk_seeds]
        if len(fits) > 1:
            fits.append(dataclasses.replace(fits[0], test_scores=np.mean([f.test_scores for f in fits], axis=0),
                                            thresholds=np.mean([f.thresholds for f in fits], axis=0)))
            members.append(list(trunk_seeds))
        for fit, seeds in zip(fits, members):
            label = (CNN_TRUNK_SEED.format(seed=seeds[0]) if len(seeds) == 1
                     else CNN_TRUNK_ENSEMBLE.format(seeds=",".join(map(str, seeds))))
            table = utility.utility_table(real, [fit], n_boot).set_index("metric")
            rows.append({"code": code, "family": "cnn", "variant": "real", "epochs": epochs, "head_c": head_c,
                         **_with_ci(table, ("auroc",)), "n_test_positives": int(real.test_y.sum()),
                         "trunk_seeds": seeds, "trunk_seconds": sum(trunk_seconds[s] for s in seeds),
                         "machine": bench.cpu_model(), "cnn_inputs": label})
        log.info("%s: CNN real-only AUROC %s", code,
                 ", ".join(f"{r['cnn_inputs']} {r['auroc']:.3f}" for r in rows[-len(fits):]))
    return rows


ABLATIONS = {
    "fine-tuned without FreezeD": {"freeze_discriminator": 0},
    "fine-tuned without DiffAugment": {"diff_augment": False},
    "fine-tuned without R1": {"r1_weight": 0.0},
}
"""Fine-tuning variants of the default recipe (Initial learning rates, GAN seed 0), each one change."""


def ablation_rows(data_dir: str | None, codes: Sequence[str], seed: int = 0, profile: str = "full",
                  outputs: str | Path = "outputs/study", n_generate: int = 500) -> list[dict]:
    """The default recipe's fine-tuning with one change each (:data:`ABLATIONS`), evaluated like every realism row."""
    outputs = Path(outputs)
    rows = []
    for code in codes:
        task = evaluate.load_task(data_dir, code)
        ref = realism.load_reference(task, controls=False)
        for name, overrides in ABLATIONS.items():
            folder = outputs / code / f"seed{seed}" / "ablation" / name.replace(" ", "_")
            run_dir, _ = train.train_recipe("beat", code, folder, profile=profile, data_dir=data_dir, seed=seed,
                                            pretrained_root=outputs / "pretrained", lr_generator=2e-4,
                                            lr_discriminator=2e-4, **overrides)
            row = _row_cached(run_dir, f"{code}-n{n_generate}", lambda: realism.evaluate_synthetic(
                ref, generate.generate(generate.load_run(run_dir), n_generate, seed=seed), seed))
            rows.append({"code": code, "recipe": "beat", "configuration": f"Initial, {name}", "gan_seed": seed,
                         "run_dir": str(run_dir), "change": overrides, "train_seconds": _train_seconds(run_dir),
                         **row})
            log.info("%s ablation %s: C2ST %.3f", code, name, row["c2st_auroc"])
    return rows


def memorisation_rows(data_dir: str | None, codes: Sequence[str], realism_rows_: Sequence[dict],
                      recipes: Sequence[str], n_generate: int = 500) -> list[dict]:
    """The near-copy check of each realism run of ``recipes`` spelled out (:func:`rare_gan.metrics.memorisation_report`
    on the same ``n_generate`` ECGs as its realism row): the fraction flagged next to the rule's false-flag rate
    on the code's unseen real positives (leave-one-out) and the Mann–Whitney p of "closer to the training
    ECGs than unseen real ECGs are". With m unseen positives the rule flags about 1/(m + 1) of ECGs drawn
    like the real ones, so a near-copy fraction is evidence of memorisation only well above that rate."""
    from rare_gan import metrics

    rows = []
    for code in codes:
        task = evaluate.load_task(data_dir, code)
        train_mv = task.positives_mv("train")
        unseen_mv = task.unseen_positives_mv()
        for r in realism_rows_:
            if r["code"] != code or r["recipe"] not in recipes or not Path(str(r.get("run_dir"))).is_dir():
                continue
            synthetic = generate.generate(generate.load_run(r["run_dir"]), n_generate, seed=int(r["gan_seed"]))
            _, memo = metrics.memorisation_report(synthetic, train_mv, unseen_mv)
            rows.append({k: r.get(k) for k in ("code", "recipe", "configuration", "gan_seed", "pretrain_seed")}
                        | {k: memo[k] for k in ("n_synth", "n_test", "fraction_near_copy", "test_false_flag_rate",
                                                "fraction_above_absolute", "median_synth_to_train",
                                                "median_test_to_train", "mannwhitney_p")}
                        | {"n_train": len(train_mv)})
            log.info("%s %s seed %s: near-copies %.3f (false-flag rate %.3f, p %.2f)", code, r["recipe"],
                     r["gan_seed"], memo["fraction_near_copy"], memo["test_false_flag_rate"], memo["mannwhitney_p"])
    return rows


def pretraining_groups(table: pd.DataFrame) -> pd.Series:
    """Each realism row's pretraining seed as a group label ('' for a run without pretraining)."""
    seeds = table["pretrain_seed"] if "pretrain_seed" in table else pd.Series(None, index=table.index)
    return seeds.map(lambda s: "" if s is None or pd.isna(s) else str(int(s)))


def summarise(rows: Sequence[dict]) -> pd.DataFrame:
    """Mean and range over GAN seeds per code × recipe × configuration × pretraining seed, for the issue's columns."""
    table = pd.DataFrame([r for r in rows if r["recipe"] != "real"])
    if table.empty:
        return table
    table["pretraining"] = pretraining_groups(table)
    keys = [k for k in ROW_KEYS if k in table] + ["qrs_median_diff_ms", "pr_median_diff_ms", "train_seconds",
                                                  "pretrain_seconds"]
    grouped = table.groupby(["code", "recipe", "configuration", "pretraining"], sort=False)
    out = grouped[keys].mean().round(3)
    out.insert(0, "n_seeds", grouped.size())
    for k in ("c2st_auroc", "tstr_auroc"):
        out[f"{k}_range"] = [f"{lo:.3f}–{hi:.3f}" for lo, hi in zip(grouped[k].min(), grouped[k].max())]
    return out.reset_index()


ROW_KEY = ("code", "recipe", "configuration", "gan_seed", "pretrain_seed", "family", "variant", "k_label", "draw",
           "epochs", "cnn_inputs")
"""Fields that identify a row: a later invocation replaces the rows it computes again and keeps the others."""


def write_results(path: str | Path, section: str, rows: Sequence[dict], command: str) -> Path:
    """Merge ``rows`` into ``section`` of the results JSON at ``path`` (other sections are kept).

    Rows are matched on :data:`ROW_KEY`; the section keeps every command that wrote to it.
    """
    path = Path(path)
    results = json.loads(path.read_text()) if path.is_file() else {}
    old = results.get(section, {"commands": [], "rows": []})
    key = lambda r: tuple(str(r.get(k)) for k in ROW_KEY)  # noqa: E731
    fresh = {key(r) for r in rows}
    merged = [r for r in old["rows"] if key(r) not in fresh] + list(rows)
    commands = [c for c in old.get("commands", [old.get("command")]) if c and c != command] + [command]
    results[section] = {"command": "; ".join(commands), "commands": commands, "rows": merged}
    atomic.write_json(path, results)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rare_gan.study", description=__doc__.split("\n\n")[0])
    parser.add_argument("section", choices=["realism", "ablation", "utility", "cnn_budget", "memorisation", "figures",
                                            "readme"],
                        help="realism: train/reuse and evaluate every run; utility: both classifier families on "
                             "the realism runs of GAN seed 0; cnn_budget: the CNN trunk's pretraining budget by "
                             "inner validation (folds 1-7 -> fold 8); memorisation: the near-copy check of the realism runs of "
                             "--recipes against its false-flag rate; figures: README example grids; readme: "
                             "rewrite the README's results blocks from --results (rare_gan.readme)")
    parser.add_argument("--data", help="PTB-XL folder (default: $PTBXL_DIR, data/ptbxl, else DEMO)")
    parser.add_argument("--codes", default="PAC,PVC,CLBBB,AFIB")
    parser.add_argument("--seeds", default="0,1,2", help="GAN seeds of the default recipe")
    parser.add_argument("--pretrain-seeds", help="pretraining seeds of the default recipe (default: the GAN "
                        "seeds; other GAN seeds fine-tune the first one's pretraining)")
    parser.add_argument("--no-conditional", action="store_true",
                        help="skip the conditional-generation rows straight from the pretraining")
    parser.add_argument("--research-seeds", default="0", help="GAN seeds of the research recipe")
    parser.add_argument("--profile", default="full", choices=["test", "quick", "full"])
    parser.add_argument("--outputs", default="outputs/study", help="run folders and the pretraining cache")
    parser.add_argument("--results", default="outputs/study/results.json")
    parser.add_argument("--n-generate", type=int, default=500)
    parser.add_argument("--recipes", default="beat,research")
    parser.add_argument("--configurations", default="Initial,Modified")
    parser.add_argument("--cnn-epochs", default="30,100,200", help="cnn_budget: the budgets compared")
    parser.add_argument("--cnn-unlabelled", action="store_true", help="cnn_budget: only the real-only CNN rows of "
                        "one trunk per code that never learnt that code's label (for comparison)")
    parser.add_argument("--cnn-trunk-seeds", help="cnn_budget: instead of the budget study, the real-only CNN rows "
                        "of these trunk seeds (e.g. 0,1,2) and of their ensemble, at the budget chosen earlier "
                        "(the cnn_budget rows of --results)")
    parser.add_argument("--cnn-unseen-head", action="store_true", help="cnn_budget: instead of the budget study, "
                        "the head's strength for codes the trunk never learnt (the low-data study's trunk), chosen "
                        "by inner validation at the budget chosen earlier")
    parser.add_argument("--readme", default="README.md")
    parser.add_argument("--figures", default="outputs/reference/figures")
    parser.add_argument("--bench", default="outputs/reference/bench.json", help="benchmark JSON for the README")
    parser.add_argument("--evaluation", default="outputs/reference/bench_evaluation.json",
                        help="notebook 05's timing for the README (python -m rare_gan.bench --evaluation)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return _run_section(parser, args, argv)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run_section(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    ints = lambda text: [int(s) for s in text.split(",") if s.strip()]  # noqa: E731
    codes = [c.strip().upper() for c in args.codes.split(",")]
    command = "python -m rare_gan.study " + " ".join(argv if argv is not None else sys.argv[1:])
    from rare_gan import readme

    if args.section == "readme":
        written = readme.update_readme(args.readme, args.results, args.bench, args.figures, args.evaluation)
        print(f"README updated: {written}")
        return 0
    results = json.loads(Path(args.results).read_text()) if Path(args.results).is_file() else {}
    if args.section == "figures":
        print("figures:", readme.example_figures(results["realism"]["rows"], args.data, args.figures))
        return 0
    if args.section == "ablation":
        rows = ablation_rows(args.data, codes, 0, args.profile, args.outputs, args.n_generate)
    elif args.section == "cnn_budget" and (args.cnn_trunk_seeds or args.cnn_unseen_head):
        chosen = [r for r in results.get("cnn_budget", {}).get("rows", []) if "code" not in r
                  and r.get("cnn_inputs") == CNN_INPUTS and "head_c" in r]
        flag = "--cnn-trunk-seeds" if args.cnn_trunk_seeds else "--cnn-unseen-head"
        if not chosen:
            parser.error(f"{flag} needs the budget study's rows (with the head's choice) in {args.results}: "
                         "run cnn_budget first")
        from rare_gan import utility

        if args.cnn_unseen_head:
            task = evaluate.load_task(args.data, codes[0])
            rows = [r | {"cnn_inputs": CNN_UNSEEN_HEAD} for r in utility.cnn_budget_rows(
                task, [utility.choose_cnn_epochs(chosen)], cache_root=Path(args.outputs) / "classifiers", unseen=True)]
            print(pd.DataFrame([r["macro_auroc_common_by_c"] | {"head_c": r["head_c"]} for r in rows]).round(3)
                  .to_string(index=False))
        else:
            rows = cnn_trunk_seed_rows(args.data, codes, utility.choose_cnn_epochs(chosen),
                                       utility.choose_cnn_head_c(chosen), ints(args.cnn_trunk_seeds), args.outputs)
            print(pd.DataFrame(rows)[["code", "cnn_inputs", "auroc", "auroc_ci_low", "auroc_ci_high"]].round(3)
                  .to_string(index=False))
    elif args.section == "cnn_budget":
        rows = cnn_budget_study(args.data, codes, ints(args.cnn_epochs), args.outputs, unlabelled=args.cnn_unlabelled)
        print(readme.cnn_budget_markdown(rows) if not args.cnn_unlabelled else
              pd.DataFrame(rows)[["code", "auroc", "auroc_ci_low", "auroc_ci_high"]].round(3).to_string(index=False))
    elif args.section == "memorisation":
        rows = memorisation_rows(args.data, codes, results["realism"]["rows"], [r.strip() for r in args.recipes.split(",")],
                                 args.n_generate)
        print(pd.DataFrame(rows).round(3).to_string(index=False))
    elif args.section == "utility":
        rows = utility_rows(args.data, codes, results["realism"]["rows"], outputs=args.outputs,
                            recipes=[r.strip() for r in args.recipes.split(",")],
                            configurations=[c.strip() for c in args.configurations.split(",")])
        print(pd.DataFrame(rows)[["code", "family", "variant", "auroc", "auroc_ci_low", "auroc_ci_high"]].round(3)
              .to_string(index=False))
    else:
        rows = realism_rows(args.data, codes, ints(args.seeds), ints(args.research_seeds), args.profile, args.outputs,
                            args.n_generate, [r.strip() for r in args.recipes.split(",")],
                            [c.strip() for c in args.configurations.split(",")],
                            ints(args.pretrain_seeds) if args.pretrain_seeds else None, not args.no_conditional)
        print(summarise(rows).to_string(index=False))
    path = write_results(args.results, args.section, rows, command)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
