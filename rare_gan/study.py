"""The reference study behind ``outputs/reference/results.json``: every code × recipe × configuration × GAN seed.

``python -m rare_gan.study realism --data ../shared/ptbxl --codes PAC,PVC,CLBBB,AFIB --seeds 0,1,2``
trains (or reuses) the runs and writes one realism row per run (:func:`rare_gan.realism.evaluate_synthetic`)
plus the real-data controls of each code; ``... utility`` adds the utility rows of both classifier
families (:func:`utility_rows`); ``... memorisation`` spells out the near-copy check of chosen
recipes' runs (:func:`memorisation_rows`); the low-data study (:mod:`rare_gan.lowdata`) adds its own
section; ``... figures`` draws the README's example grids and ``... readme`` rewrites the README's
results blocks from the JSON. Each realism row is cached in its run folder (``realism.json``), so
an interrupted study resumes where it stopped and the JSON can be rebuilt without retraining.

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
from rare_gan.utility import BENCHMARK_ANCHORS

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
                if r["code"] == code and r.get("gan_seed") == gan_seed and _on_first_pretraining(r)
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


def _on_first_pretraining(row: dict) -> bool:
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
    only the CNN rows of one trunk per code that never learnt that code's label (:data:`CNN_UNLABELLED`)."""
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
        cnn = utility.cnn_family(trunk, task.scaler.scale_mv, head_c)
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


def ablation_markdown(rows: Sequence[dict], realism_rows_: Sequence[dict]) -> str:
    """Strong C2ST per code: research, the default recipe's stages, and each one-change fine-tuning (seed 0)."""
    base = [r for r in realism_rows_ if r.get("gan_seed") == 0 and _on_first_pretraining(r) and r["recipe"] != "real"
            and r["configuration"] in ("Initial", "pretrained only")]
    table = pd.DataFrame(base + list(rows))
    if table.empty:
        return "(not run)"
    table["variant"] = table["recipe"] + ", " + table["configuration"]
    pivot = table.pivot_table(index="variant", columns="code", values="c2st_auroc", sort=False)
    cnn = table.pivot_table(index="variant", columns="code", values="c2st_cnn_auroc", sort=False)
    codes = list(pivot.columns)
    lines = ["| variant (GAN seed 0) | " + " | ".join(f"{c} strong / CNN C2ST" for c in codes) + " |",
             "|" + "|".join(["---"] * (len(codes) + 1)) + "|"]
    for variant in pivot.index:
        cells = [f"{pivot.at[variant, c]:.3f} / {cnn.at[variant, c]:.3f}" if pd.notna(pivot.at[variant, c]) else "—"
                 for c in codes]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summarise(rows: Sequence[dict]) -> pd.DataFrame:
    """Mean and range over GAN seeds per code × recipe × configuration × pretraining seed, for the issue's columns."""
    table = pd.DataFrame([r for r in rows if r["recipe"] != "real"])
    if table.empty:
        return table
    table["pretraining"] = _pretraining(table)
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
                             "rewrite the README's results blocks from --results")
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
    parser.add_argument("--readme", default="README.md")
    parser.add_argument("--figures", default="outputs/reference/figures")
    parser.add_argument("--bench", default="outputs/reference/bench.json", help="benchmark JSON for the README")
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
    if args.section == "readme":
        print(f"README updated: {update_readme(args.readme, args.results, args.bench, args.figures)}")
        return 0
    results = json.loads(Path(args.results).read_text()) if Path(args.results).is_file() else {}
    if args.section == "figures":
        print("figures:", example_figures(results["realism"]["rows"], args.data, args.figures))
        return 0
    if args.section == "ablation":
        rows = ablation_rows(args.data, codes, 0, args.profile, args.outputs, args.n_generate)
    elif args.section == "cnn_budget" and args.cnn_trunk_seeds:
        chosen = [r for r in results.get("cnn_budget", {}).get("rows", []) if "code" not in r
                  and r.get("cnn_inputs") == CNN_INPUTS and "head_c" in r]
        if not chosen:
            parser.error(f"--cnn-trunk-seeds needs the budget study's rows (with the head's choice) in "
                         f"{args.results}: run cnn_budget first")
        from rare_gan import utility

        rows = cnn_trunk_seed_rows(args.data, codes, utility.choose_cnn_epochs(chosen),
                                   utility.choose_cnn_head_c(chosen), ints(args.cnn_trunk_seeds), args.outputs)
        print(pd.DataFrame(rows)[["code", "cnn_inputs", "auroc", "auroc_ci_low", "auroc_ci_high"]].round(3)
              .to_string(index=False))
    elif args.section == "cnn_budget":
        rows = cnn_budget_study(args.data, codes, ints(args.cnn_epochs), args.outputs, unlabelled=args.cnn_unlabelled)
        print(cnn_budget_markdown(rows) if not args.cnn_unlabelled else
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



# ---------------------------------------------------------------------------------------------
# Figures and the README's results section, rendered from results.json
# ---------------------------------------------------------------------------------------------
def example_figures(rows: Sequence[dict], data_dir: str | None, folder: str | Path, seed: int = 0) -> list[Path]:
    """Per code: 4 randomly drawn real ECGs beside 4 randomly drawn ones of the default recipe
    (Initial, first GAN seed), in the clinical layout."""
    from rare_gan import plots

    folder = Path(folder)
    paths = []
    for code in dict.fromkeys(r["code"] for r in rows):
        row = next((r for r in rows if r["code"] == code and r["recipe"] == "beat" and r["configuration"] == "Initial"),
                   None)
        if row is None:
            continue
        task = evaluate.load_task(data_dir, code)
        real = np.concatenate([task.positives_mv("train"), task.unseen_positives_mv()])
        rng = np.random.default_rng(seed)
        synth = generate.generate(generate.load_run(row["run_dir"]), 200, seed=row["gan_seed"])
        path = folder / f"examples_{code}.png"
        plots.plot_real_and_synthetic_grid(real[rng.choice(len(real), 4, replace=False)],
                                           synth[rng.choice(len(synth), 4, replace=False)], path=path,
                                           title=f"{code}: 4 real (randomly drawn) vs 4 SYNTHETIC (beat recipe, Initial, "
                                                 "randomly drawn)")
        plots.pyplot().close("all")
        paths.append(path)
    return paths


def _fmt(mean: float, lo: float | None = None, hi: float | None = None, digits: int = 3) -> str:
    if mean is None or not np.isfinite(mean):
        return "—"
    text = f"{mean:.{digits}f}"
    return text + (f" ({lo:.{digits}f}–{hi:.{digits}f})" if lo is not None and hi is not None and hi > lo else "")


def _pretraining(table: pd.DataFrame) -> pd.Series:
    """Each run's pretraining seed as a group label ('' for a run without pretraining)."""
    seeds = table["pretrain_seed"] if "pretrain_seed" in table else pd.Series(None, index=table.index)
    return seeds.map(lambda s: "" if s is None or pd.isna(s) else str(int(s)))


def realism_markdown(rows: Sequence[dict]) -> str:
    """The README's realism table: per code × recipe × configuration × pretraining seed, mean (range) over GAN seeds."""
    table = pd.DataFrame(rows)
    table["pretraining"] = _pretraining(table)
    runs = table[table["recipe"] != "real"]
    controls = table[table["recipe"] == "real"].set_index("code")
    controls = controls.loc[list(dict.fromkeys([c for c in runs["code"] if c in controls.index] + list(controls.index)))]
    header = ("| code | recipe | configuration | GAN seeds | strong C2ST | CNN C2ST | TSTR AUROC | real AUROC, same "
              "classifier | W1 HR (bpm) | W1 RR-SD (ms) | ΔQRS / ΔPR (ms) | near-copies | NN distance ratio | "
              "pretrain + fine-tune (s) |")
    lines = [header, "|" + "|".join(["---"] * 14) + "|"]
    for (code, recipe, configuration, pretraining), g in runs.groupby(
            ["code", "recipe", "configuration", "pretraining"], sort=False):
        cell = lambda k, d=3: _fmt(g[k].mean(), g[k].min(), g[k].max(), d)  # noqa: E731
        seeds = f"{len(g)}" + (f" on pretraining {pretraining}" if pretraining else "")
        lines.append(f"| {code} | {recipe} | {configuration} | {seeds} | {cell('c2st_auroc')} | "
                     f"{cell('c2st_cnn_auroc')} | {cell('tstr_auroc')} | {_fmt(g['real_auroc_same_classifier'].mean())} | "
                     f"{cell('w1_hr_bpm', 1)} | {cell('w1_rr_sd_ms', 0)} | {g['qrs_median_diff_ms'].mean():.0f} / "
                     f"{g['pr_median_diff_ms'].mean():.0f} | {100 * g['near_copy_fraction'].mean():.1f}% | "
                     f"{cell('nn_distance_ratio', 2)} | {g['pretrain_seconds'].mean():.0f} + "
                     f"{g['train_seconds'].mean():.0f} |")
    lines += ["", "Controls on real data only (strong C2ST; 0.5 = indistinguishable):", "",
              "| code | train vs unseen positives | common class (NORM) at the same n | jittered copies | "
              "copies flagged by the memorisation check |", "|---|---|---|---|---|"]
    for code, c in controls.iterrows():
        lines.append(f"| {code} | {_fmt(c.get('c2st_real_control'))} | {_fmt(c.get('c2st_common_control'))} | "
                     f"{_fmt(c.get('c2st_jitter_control'))} | {100 * c.get('jitter_near_copy_fraction', np.nan):.0f}% |")
    return "\n".join(lines)


TRUNKS = {None: "the earlier CNN trunk (12 leads alone, 30 epochs)", CNN_INPUTS: "the current CNN trunk (12 leads + "
          "rhythm channels, the budget chosen above)"}
"""How the README names each ``cnn_inputs`` of the utility rows."""


def _utility_calls(table: pd.DataFrame) -> list[tuple[object, pd.DataFrame]]:
    """The utility rows split by the CNN trunk of the call that made them (current trunk first)."""
    inputs = (table["cnn_inputs"] if "cnn_inputs" in table else pd.Series(None, index=table.index, dtype=object)
              ).map(lambda v: v if isinstance(v, str) else None)
    return sorted(((key, table[inputs == key] if key else table[inputs.isna()]) for key in dict.fromkeys(inputs)),
                  key=lambda kv: kv[0] != CNN_INPUTS)


def utility_markdown(rows: Sequence[dict]) -> str:
    """The README's utility tables, one per CNN trunk: per code and family, real only vs the baselines and each
    run's GAN-augmented set (Initial runs), with CIs and the primary comparison."""
    table = pd.DataFrame(rows)
    if table.empty:
        return "(not run)"
    cell = lambda r: f"{r['auroc']:.3f} [{r['auroc_ci_low']:.3f}, {r['auroc_ci_high']:.3f}]" if r is not None else "—"  # noqa: E731
    blocks = []
    for inputs, calls in _utility_calls(table):
        gans = [v for v in dict.fromkeys(calls["variant"]) if v.endswith(":gan@0.25") and "Initial" in v]
        names = [v.removesuffix(":gan@0.25").replace("Initial", "").strip() or "beat" for v in gans]
        lines = [f"With {TRUNKS.get(inputs, inputs)} and a CNN head of C {head_c_of(calls[calls['family'] == 'cnn'])}:",
                 "",
                 "| code | test positives | family | real only | class-weighted | oversampling @0.25 | "
                 + "".join(f"GAN @0.25 ({n}, Initial) | vs oversampling (Holm p) | " for n in names)
                 + "PTB-XL benchmark anchor* |", "|" + "|".join(["---"] * (7 + 2 * len(gans))) + "|"]
        for (code, family), g in calls.groupby(["code", "family"], sort=False):
            value = lambda v: g[g["variant"] == v].iloc[0] if (g["variant"] == v).any() else None  # noqa: E731
            cells = []
            for v in gans:
                gan = value(v)
                cells += [cell(gan), "—" if gan is None or pd.isna(gan.get("p_holm")) else
                          f"{gan['difference']:+.3f} [{gan['diff_ci_low']:+.3f}, {gan['diff_ci_high']:+.3f}] "
                          f"(p={gan['p_holm']:.2f})"]
            lines.append(f"| {code} | {int(g['n_test_positives'].iloc[0])} | {family} | {cell(value('real'))} | "
                         f"{cell(value('real_weighted'))} | {cell(value('oversample@0.25'))} | "
                         + "".join(f"{c} | " for c in cells) + f"{BENCHMARK_ANCHORS.get(code, '—')} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def low_data_markdown(rows: Sequence[dict]) -> str:
    """The README's low-data table: AUROC mean over draws (min–max) per code × family × k × variant."""
    table = pd.DataFrame(rows)
    if table.empty:
        return "(not run)"
    trunks = table.get("cnn_inputs", pd.Series([None] * len(table))).drop_duplicates()
    lines = ["CNN trunk: " + "; ".join("12 leads alone (the earlier trunk), held-out codes' records left out"
                                       if pd.isna(t) else str(t) for t in trunks)
             + f"; head C {head_c_of(table[table['family'] == 'cnn'])}.\n",
             "| code | family | k | draws | real only | class-weighted | oversampling | GAN (fine-tuned on the k) |",
             "|" + "|".join(["---"] * 8) + "|"]
    for (code, family, k), g in table.groupby(["code", "family", "k_label"], sort=False):
        cells = []
        for variant in ("real", "real_weighted", "oversample", "gan"):
            v = g[g["variant"] == variant]["auroc"]
            cells.append(_fmt(v.mean(), v.min(), v.max()) if len(v) else "—")
        lines.append(f"| {code} | {family} | {k} | {g['draw'].nunique()} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


OTHER_CNN_COLUMNS = {CNN_UNLABELLED: "cnn, trunk without the code's label", None: "cnn on the leads alone (earlier trunk)"}
"""Other trunks' real-only CNN AUROCs shown beside the current one (``cnn_inputs`` → column)."""
FORMER_HEAD_C = 0.1
"""The CNN head's inverse L2 strength before it was chosen by inner validation: rows without ``head_c``."""


def head_c_of(rows) -> str:
    """The head strengths that CNN rows (dicts or a DataFrame's records) were fitted with, e.g. ``"0.003"``."""
    records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else rows
    values = sorted({FORMER_HEAD_C if pd.isna(r.get("head_c", np.nan)) else r["head_c"] for r in records})
    return "/".join(f"{c:g}" for c in values)


def cnn_budget_markdown(rows: Sequence[dict]) -> str:
    """The README's table of the CNN trunk's budget selection (inner validation, fold 8) and the budget chosen."""
    from rare_gan import utility

    all_rows = rows
    current = [r for r in rows if r.get("cnn_inputs") == CNN_INPUTS] or [r for r in rows if not r.get("cnn_inputs")]
    others = {inputs: pd.DataFrame([r for r in rows if r.get("code") and r.get("family") == "cnn"
                                    and r.get("cnn_inputs") == inputs and r not in current])
              for inputs in OTHER_CNN_COLUMNS}
    others = {inputs: table for inputs, table in others.items() if not table.empty}
    rows, tests = [r for r in current if not r.get("code")], pd.DataFrame([r for r in current if r.get("code")])
    if not rows:
        return "(not run)"
    report = list(rows[0]["codes"])
    cs = list(rows[0].get("macro_auroc_common_by_c", {}))
    lines = [f"| pretraining epochs | trunk seconds | " + "".join(f"head C {c} | " for c in cs)
             + f"macro AUROC, {rows[0]['n_common_codes']} codes with ≥ {rows[0]['min_positives']} fold-8 positives"
             + (" (best head C)" if cs else "") + " | " + " | ".join(
                 f"{c} ({rows[0]['codes'][c]['n_check_positives']} pos.)" for c in report) + " |",
             "|" + "|".join(["---"] * (3 + len(cs) + len(report))) + "|"]
    for r in sorted(rows, key=lambda r: r["epochs"]):
        best = f" (C {r['head_c']:g})" if cs else ""
        lines.append(f"| {r['epochs']} | {r['trunk_seconds']:.0f} | "
                     + "".join(f"{_fmt(r['macro_auroc_common_by_c'][c])} | " for c in cs)
                     + (f"**{_fmt(r['macro_auroc_common'])}**{best} | " if cs else f"{_fmt(r['macro_auroc_common'])} | ")
                     + " | ".join(_fmt(r["codes"][c]["auroc"]) for c in report) + " |")
    chosen = utility.choose_cnn_epochs(rows)
    lines.append(f"\nRule, fixed in advance: the smallest budget within {utility.CNN_BUDGET_TOLERANCE} of the best "
                 f"macro AUROC: **{chosen} epochs** (`rare_gan.utility.CNN_EPOCHS['full']` is "
                 f"{utility.CNN_EPOCHS['full']})" + (
                     f", with that budget's best head: **C {utility.choose_cnn_head_c(rows):g}** "
                     f"(`rare_gan.utility.CNN_HEAD_C` is {utility.CNN_HEAD_C:g})." if cs else "."))
    if tests.empty:
        return "\n".join(lines)
    lines += [f"\nThen, with that budget (trunk on every training-fold record), real-only test AUROC on folds 9–10 "
              f"(mean of {len(tests['classifier_seeds'].iloc[0])} classifier seeds, 95% bootstrap CI; the CNN's seeds "
              f"share one trunk and refit a deterministic head, so its CI holds the test set's variance alone):\n",
              f"| code | test positives | features | cnn (head C {head_c_of(tests[tests['family'] == 'cnn'])}) | "
              "cnn − features | PTB-XL benchmark anchor* |"
              + "".join(f" {OTHER_CNN_COLUMNS[inputs]}, head C {head_c_of(others[inputs])} |" for inputs in others),
              "|---|---|---|---|---|---|" + "---|" * len(others)]
    cell = lambda r: f"{r['auroc']:.3f} [{r['auroc_ci_low']:.3f}, {r['auroc_ci_high']:.3f}]"  # noqa: E731
    for code, g in tests.groupby("code", sort=False):
        f, c = (g[g["family"] == name].iloc[0] for name in ("features", "cnn"))
        anchor = BENCHMARK_ANCHORS.get(code)
        line = (f"| {code} | {f['n_test_positives']} | {cell(f)} | {cell(c)} | {c['auroc'] - f['auroc']:+.3f} | "
                f"{anchor if anchor is not None else '—'} |")
        for table in others.values():
            other = table[table["code"] == code]
            line += f" {cell(other.iloc[0]) if len(other) else '—'} |"
        lines.append(line)
    return "\n".join(lines + _trunk_seed_lines(all_rows, tests))


def _trunk_seed_lines(rows: Sequence[dict], tests: pd.DataFrame) -> list[str]:
    """The table of :func:`cnn_trunk_seed_rows` (one trunk per seed, and their ensemble) beside the feature model."""
    seeds = pd.DataFrame([r for r in rows if r.get("trunk_seeds") is not None])
    if seeds.empty:
        return []
    single = seeds[seeds["trunk_seeds"].map(len) == 1]
    ensemble = seeds[seeds["trunk_seeds"].map(len) > 1]
    order = sorted({s for (s,) in single["trunk_seeds"]})
    machine = f", computed on {seeds['machine'].iloc[0]}" if "machine" in seeds else ""
    lines = [f"\nThe trunk's seed (same budget, {seeds['epochs'].iloc[0]} epochs, head C {head_c_of(seeds)}{machine}; "
             f"real-only CNN, test AUROC on "
             f"folds 9–10, 95% bootstrap CI for the ensemble, whose score is the mean of the {len(order)} trunks' "
             f"heads):\n",
             "| code | " + " | ".join(f"trunk seed {s}" for s in order) + " | mean (range) | ensemble | features | "
             "ensemble − features |", "|---|" + "---|" * (len(order) + 4)]
    for code, g in single.groupby("code", sort=False):
        by_seed = {r.trunk_seeds[0]: r.auroc for r in g.itertuples()}
        e = ensemble[ensemble["code"] == code]
        f = tests[(tests["code"] == code) & (tests["family"] == "features")] if not tests.empty else tests
        feature = f["auroc"].iloc[0] if len(f) else float("nan")
        ens = (f"{e['auroc'].iloc[0]:.3f} [{e['auroc_ci_low'].iloc[0]:.3f}, {e['auroc_ci_high'].iloc[0]:.3f}]"
               if len(e) else "—")
        values = list(by_seed.values())
        lines.append(f"| {code} | " + " | ".join(_fmt(by_seed.get(s)) for s in order)
                     + f" | {np.mean(values):.3f} ({min(values):.3f}–{max(values):.3f}) | {ens} | {_fmt(feature)} | "
                     + (f"{e['auroc'].iloc[0] - feature:+.3f} |" if len(e) and np.isfinite(feature) else "— |"))
    return lines


SMOOTHER_MARGIN = 0.10
"""'Smoother' needs at least this much less power above 15 Hz (relative), fixed in advance."""


def claims_markdown(data: dict) -> str:
    """One verdict per claim of the research, per code and classifier family, from the realism and utility rows."""
    from rare_gan.report import RESEARCH_ACCURACY, RESEARCH_AUROC

    lines = []
    util = pd.DataFrame(data.get("utility", {}).get("rows", []))
    if not util.empty:  # the rows of the call that holds the research's runs (the current trunk's if several)
        util = next((rows for _, rows in _utility_calls(util) if rows["variant"].str.startswith("research").any()),
                    util.iloc[:0])
    if not util.empty:
        for (code, family), g in util.groupby(["code", "family"], sort=False):
            gan = g[g["variant"].str.contains(":gan@")]
            if gan.empty:
                continue
            best = gan.loc[gan["auroc"].idxmax()]
            where = ("inside its 95% CI: not refuted" if best["auroc_ci_low"] <= RESEARCH_AUROC <= best["auroc_ci_high"]
                     else "below its CI" if RESEARCH_AUROC < best["auroc_ci_low"] else "above its CI: not reproduced")
            acc = ("inside" if best["accuracy_ci_low"] <= RESEARCH_ACCURACY <= best["accuracy_ci_high"] else "outside")
            lines.append(f"- **Best AUROC {RESEARCH_AUROC} / accuracy {RESEARCH_ACCURACY}** ({code}, {family}): best "
                         f"GAN-augmented variant {best['variant']} (chosen on the test set, so optimistic) AUROC "
                         f"{best['auroc']:.3f} [{best['auroc_ci_low']:.3f}, {best['auroc_ci_high']:.3f}] — "
                         f"{RESEARCH_AUROC} is {where}; accuracy {best['accuracy']:.3f} "
                         f"[{best['accuracy_ci_low']:.3f}, {best['accuracy_ci_high']:.3f}], {RESEARCH_ACCURACY} "
                         f"{acc} it. Real only: {g[g['variant'] == 'real']['auroc'].iloc[0]:.3f}.")
    real = pd.DataFrame(data.get("realism", {}).get("rows", []))
    runs = real[real["recipe"].isin(["beat", "research"])] if not real.empty else real
    if not runs.empty:  # like for like: Initial and Modified fine-tune the first pretraining (-1: none)
        seed = runs["pretrain_seed"].fillna(-1) if "pretrain_seed" in runs else pd.Series(-1, index=runs.index)
        runs = runs[seed == seed.groupby([runs["code"], runs["recipe"]]).transform("min")]
    for (code, recipe), g in (runs.groupby(["code", "recipe"], sort=False) if not runs.empty else []):
        by = {c: g[g["configuration"] == c] for c in ("Initial", "Modified")}
        if any(v.empty for v in by.values()):
            continue
        ini, mod = by["Initial"], by["Modified"]
        spread = max(np.ptp(ini["c2st_auroc"]), np.ptp(mod["c2st_auroc"]), ini["c2st_null_sd"].mean())
        gap = ini["c2st_auroc"].mean() - mod["c2st_auroc"].mean()
        realistic = ("Initial closer to real" if gap < -spread else "Modified closer to real" if gap > spread
                     else "no difference beyond the GAN seeds' range and the test's null SD")
        hf_i, hf_m, hf_r = ini["hf_ratio_median"].mean(), mod["hf_ratio_median"].mean(), ini["hf_ratio_median_real"].mean()
        less = lambda a, b: a < (1 - SMOOTHER_MARGIN) * b  # noqa: E731
        smooth = ("Modified is smoother than Initial and than real ECGs" if less(hf_m, hf_i) and less(hf_m, hf_r) else
                  "Modified is smoother than Initial but not than real ECGs" if less(hf_m, hf_i) else
                  f"Modified is not smoother than Initial (by more than {SMOOTHER_MARGIN:.0%})")
        lines.append(f"- **'Initial more realistic', 'Modified overly smooth'** ({code}, {recipe} recipe, "
                     f"Initial {len(ini)} / Modified {len(mod)} GAN seed(s)): strong C2ST Initial {ini['c2st_auroc'].mean():.3f} vs Modified "
                     f"{mod['c2st_auroc'].mean():.3f} — {realistic}; median power above 15 Hz: Initial {hf_i:.3f}, "
                     f"Modified {hf_m:.3f}, real {hf_r:.3f} — {smooth}.")
    return "\n".join(lines) or "(not run)"


def performance_markdown(bench: dict) -> str:
    """The README's performance table from a ``python -m rare_gan.bench`` JSON."""
    m, machine = bench["matmul_gflops"], bench["machine"]
    units = [name for name, key in (("AMX", "cpu_amx_bf16"), ("AVX-512-BF16", "cpu_avx512_bf16")) if machine.get(key)]
    cpu = f"{machine['cpu_model']}, " if machine.get("cpu_model") else ""
    lines = [f"Measured by `python -m rare_gan.bench` in one run ({cpu}{machine['cpu_count']} cores, TensorFlow "
             f"{machine['tensorflow']}, bf16 matrix units: {machine.get('bf16_matrix_units')}"
             + (f" ({' + '.join(units)})" if units else "") + ", "
             f"GPUs: {machine['gpus'] or 'none'}); matmul {m['float32']:.0f} GFLOP/s fp32, "
             f"{m['bfloat16']:.0f} GFLOP/s bf16{_matmul_spread(bench)}. FLOPs per training sample are counted by "
             "TensorFlow's graph profiler "
             "on the recipe's whole training step (both networks, forward and backward, the R1 penalty's second-order "
             "pass at its lazy rate, every discriminator scale).", "",
             "| recipe | G / D parameters | forward MFLOP G / D | MFLOP per training sample | training samples/s "
             "fp32 (share of fp32 matmul rate) | mixed_bfloat16 (share of bf16 rate) | bf16 speed-up | generation "
             "ECGs/s fp32 | generation ECGs/s bf16 |", "|" + "|".join(["---"] * 9) + "|"]
    for name, r in bench["recipes"].items():
        t, f = r["training_samples_per_s"], r["training_fraction_of_matmul_rate"]
        lines.append(f"| {name} | {r['generator_params']:,} / {r['discriminator_params']:,} | "
                     f"{r['generator_mflop_forward']:.1f} / {r['discriminator_mflop_forward']:.1f} | "
                     f"{r['mflop_per_training_sample']:.0f} | {t['float32']:.0f} ({100 * f['float32']:.0f}%) | "
                     f"{t['mixed_bfloat16']:.0f} ({100 * f['mixed_bfloat16']:.0f}%) | {r['bf16_speedup']:.2f}× | "
                     f"{r['generation_ecgs_per_s']:.0f} | {_rate(r.get('generation_ecgs_per_s_bf16'))} |")
    ref, speed = bench["reference_generators_ecgs_per_s"], bench["generation_speedup_vs"]
    bf16 = next(iter(bench["recipes"].values())).get("generation_ecgs_per_s_bf16")
    deepfake = (f"{ref['deepfake_ecg']:.0f} ECGs/s (the default recipe generates {speed['deepfake_ecg']:.1f}× faster"
                + (f", {bf16 / ref['deepfake_ecg']:.1f}× in bf16)" if bf16 else ")")
                if isinstance(ref["deepfake_ecg"], float) else ref["deepfake_ecg"])
    lines += ["", f"Reference generators timed in the same run: neurokit2 `ecg_simulate(method=\"multileads\")` "
                  f"{ref['neurokit2_multileads']:.2f} ECGs/s; DeepFake-ECG {deepfake}. Peak RSS "
                  f"{bench['peak_rss_mib']:.0f} MiB."]
    ablations = bench.get("step_ablations_samples_per_s")
    if ablations:
        base = ablations["as is"]
        lines += ["", "What the default recipe's training step spends its time on (`--ablations`: fp32 samples/s with "
                      f"one part removed or changed): as is {base:.0f}; " + "; ".join(
                          f"{name} {rate:.0f} ({100 * (rate / base - 1):+.0f}%)"
                          for name, rate in ablations.items() if name != "as is") + "."]
    return "\n".join(lines)


def _matmul_spread(bench: dict) -> str:
    """How the matmul rate measured before and after the training timings compares (shares use the higher)."""
    first_last = bench.get("matmul_gflops_first_last")
    if not first_last:
        return ""
    fp32, bf16 = first_last["float32"], first_last["bfloat16"]
    text = (f" (the higher of two measurements, before and after the training timings: fp32 {fp32[0]:.0f} / "
            f"{fp32[1]:.0f}, bf16 {bf16[0]:.0f} / {bf16[1]:.0f})")
    if not bench.get("matmul_rate_stable", True):
        text += (" — **the machine's speed changed by more than 15% during this run** (a shared virtual machine), "
                 "so the shares of the matmul rate below are uncertain")
    return text


def _rate(value) -> str:
    return "not measured" if value is None else f"{value:.0f}"


def timing_markdown(rows: Sequence[dict]) -> str:
    """Wall times of the study's runs on this machine (from the realism rows' run folders)."""
    t = pd.DataFrame(rows)
    t = t[t["recipe"].isin(["beat", "research"])] if not t.empty else t
    if t.empty:
        return "(not run)"
    lines = []
    beat, research = t[t["recipe"] == "beat"], t[t["recipe"] == "research"]
    if not beat.empty:
        pre = beat.drop_duplicates("pretrain_seed").sort_values("pretrain_seed")
        each = " / ".join(f"{r.pretrain_seconds / 60:.0f} min (seed {r.pretrain_seed:.0f})" for r in pre.itertuples())
        lines.append(f"- default recipe (`beat`, full profile): pretraining on every training-fold record, per data "
                     f"set and seed, {each} (cached), then fine-tuning one code × configuration "
                     f"{beat['train_seconds'].median():.0f} s "
                     f"(median of {len(beat)} runs, {beat['train_seconds'].min():.0f}–{beat['train_seconds'].max():.0f} s);")
    if not research.empty:
        lines.append(f"- `research` recipe (full profile, from scratch): {research['train_seconds'].median():.0f} s per "
                     f"code × configuration (median of {len(research)} runs).")
    return "\n".join(lines)


def figures_markdown(folder: str | Path, readme: Path) -> str:
    """Image links to the example grids written by ``python -m rare_gan.study figures``."""
    import os

    paths = sorted(Path(folder).glob("examples_*.png"))
    return "\n\n".join(f"![{p.stem.split('_', 1)[1]}: 4 real vs 4 synthetic ECGs]"
                         f"({Path(os.path.relpath(p, readme.parent)).as_posix()})" for p in paths) or "(not run)"


SECTIONS = {"realism": realism_markdown, "utility": utility_markdown, "low_data": low_data_markdown,
            "cnn_budget": cnn_budget_markdown,
            "ablation": lambda rows, data: ablation_markdown(rows, data.get("realism", {}).get("rows", [])),
            "claims": lambda rows, data: claims_markdown(data), "performance": performance_markdown,
            "timing": timing_markdown}


def _provenance(source: Path, section: dict) -> str:
    """The line naming where a README block's numbers come from: the one command inline, several in a
    folded list (one per line) so that the table, not forty commands, is what the reader meets first."""
    commands = [c for c in section.get("commands") or [section["command"]] if c]
    if len(commands) == 1:
        return f"_Generated from `{source.as_posix()}` (command: `{commands[0]}`)._"
    listing = "\n".join(commands)
    return (f"_Generated from `{source.as_posix()}`, written by the {len(commands)} commands below._\n\n"
            f"<details><summary>The {len(commands)} commands</summary>\n\n```bash\n{listing}\n```\n</details>")


def update_readme(readme: str | Path, results: str | Path, bench: str | Path | None = None,
                  figures: str | Path | None = None) -> Path:
    """Replace the text between ``<!-- results:<section> -->`` and ``<!-- /results:<section> -->`` in the README
    by the section rendered from ``results`` (and ``bench``, a benchmark JSON): numbers are never typed by hand."""
    import re

    readme, data = Path(readme), json.loads(Path(results).read_text())
    if bench is not None and Path(bench).is_file():
        rows = json.loads(Path(bench).read_text())
        flags = (" --quick" if rows.get("quick") else "") + (" --ablations" if "step_ablations_samples_per_s" in rows else "")
        data["performance"] = {"command": f"python -m rare_gan.bench{flags}", "rows": rows}
    text = readme.read_text()
    data.setdefault("claims", {"command": "python -m rare_gan.study readme (from the realism and utility rows)",
                               "rows": []})
    if "realism" in data:
        data["timing"] = {"command": "the realism section's commands", "rows": data["realism"]["rows"]}
    for section, render in SECTIONS.items():
        if section not in data:
            continue
        rows = data[section]["rows"]
        table = render(rows, data) if section in ("ablation", "claims") else render(rows)
        source = bench if section == "performance" else results
        body = f"<!-- results:{section} -->\n{_provenance(Path(source), data[section])}\n\n{table}\n<!-- /results:{section} -->"
        text, n = re.subn(rf"<!-- results:{section} -->.*?<!-- /results:{section} -->", lambda m: body, text,
                          flags=re.S)
        if not n:
            log.warning("README has no <!-- results:%s --> block; section not written", section)
    if figures is not None:
        text = re.sub(r"<!-- figures -->.*?<!-- /figures -->",
                      lambda m: f"<!-- figures -->\n{figures_markdown(figures, readme)}\n<!-- /figures -->", text,
                      flags=re.S)
    atomic.write_text(readme, text)
    return readme


if __name__ == "__main__":
    sys.exit(main())
