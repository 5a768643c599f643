"""Beyond one GAN per code: training variants compared per rare code on the same evaluation.

Variants (all non-saturating loss, kernel-4 generator, R1 γ = 0.1; same steps and batch):

* ``uncond_initial`` / ``uncond_modified`` — the research's approach: one unconditional GAN per code,
  Initial (D 2e-4, G 2e-4) or Modified (D 1e-4, G 4e-4) learning rates, no augmentation;
* ``conditional`` — one GAN for all codes plus a common class (NORM), label embedding in G,
  projection head in D, no augmentation;
* ``conditional_aug`` — the same with differentiable augmentation (DiffAugment) before D;
* ``pretrain_finetune`` — one unconditional GAN pretrained on every training-fold record, then
  fine-tuned per code (both with DiffAugment).

Per code and variant: vetted candidates (:func:`rare_gan.candidates.vet`), augmentation of the
real training set to a positive fraction ``ratio`` and the test AUROC/AUPRC with bootstrap CIs
against real-only and oversampling (paired, Holm-corrected), C2ST, RR-SD/HR Wasserstein distances
and memorisation. Command line: ``python -m rare_gan.variants --codes PAC,CLBBB,PVC --data DIR``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from rare_gan import atomic, candidates, evaluate, generate, metrics, physiology, plots, train

VARIANTS = ("uncond_initial", "uncond_modified", "conditional", "conditional_aug", "pretrain_finetune")


@dataclass
class Plan:
    """What to train and how to evaluate it."""

    codes: list[str]
    data_dir: str | None = None
    out_dir: str = "outputs/variants"
    epochs: int = 40
    steps_per_epoch: int = 25
    batch_size: int = 32
    finetune_epochs: int = 20
    common_class: str = "NORM"
    seed: int = 0
    eval_seeds: list[int] = field(default_factory=lambda: [0, 1])
    classifier_epochs: int = 10
    n_generate: int = 300
    ratio: float = 0.25
    n_boot: int = 1000

    def config(self, variant: str, target, **overrides) -> train.TrainConfig:
        """The :class:`rare_gan.train.TrainConfig` of one variant's run."""
        lrs = train.MODIFIED if variant == "uncond_modified" else train.INITIAL
        values = dict(target=target, data_dir=self.data_dir, epochs=self.epochs, steps_per_epoch=self.steps_per_epoch,
                      batch_size=self.batch_size, seed=self.seed, name=variant, sample_every=10,
                      checkpoint_every=10, diff_augment=variant in ("conditional_aug", "pretrain_finetune"), **lrs)
        if variant.startswith("conditional"):
            values |= {"conditional": True, "common_class": self.common_class}
        return train.TrainConfig(**(values | overrides))


def train_variants(plan: Plan, variants: Sequence[str] = VARIANTS) -> dict[tuple[str, str], Path]:
    """Train (or resume) every run of ``variants``; return the run folder serving each (variant, code)."""
    root = Path(plan.out_dir) / "runs"
    runs: dict[tuple[str, str], Path] = {}
    for variant in variants:
        if variant.startswith("conditional"):
            folder = root / variant
            train.train(plan.config(variant, plan.codes), folder)
            runs |= {(variant, code): folder for code in plan.codes}
        elif variant == "pretrain_finetune":
            pretrained = root / "pretrain_all"
            train.train(plan.config(variant, train.ALL_RECORDS), pretrained)
            for code in plan.codes:
                folder = root / variant / code
                train.train(plan.config(variant, code, epochs=plan.finetune_epochs, init_from=str(pretrained)), folder)
                runs[(variant, code)] = folder
        elif variant in VARIANTS:
            for code in plan.codes:
                folder = root / variant / code
                train.train(plan.config(variant, code), folder)
                runs[(variant, code)] = folder
        else:
            raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
    return runs


def _row(plan: Plan, task: evaluate.Task, code: str, variant: str, run_dir: Path, baselines: dict,
         real_features: pd.DataFrame) -> tuple[dict, list]:
    run = generate.load_run(run_dir)
    ecgs = generate.generate(run, plan.n_generate, seed=plan.seed, code=code)
    scores = candidates.vet(ecgs, task, plan.classifier_epochs, Path(plan.out_dir) / "classifiers" / code)
    accepted = ecgs[scores["accepted"].to_numpy(bool)]
    real_train = task.positives_mv("train")
    features = physiology.ecg_features(ecgs[:200], delineate=False)
    distances = physiology.wasserstein_table(real_features, features, ["rr_sd_ms", "heart_rate_bpm"])
    memorisation = scores.attrs["memorisation"]
    row = {"code": code, "variant": variant, "n_candidates": len(accepted),
           "c2st_auroc": metrics.c2st_auroc(real_train, ecgs, seed=plan.seed)["auroc"],
           "w1_rr_sd_ms": distances.loc["rr_sd_ms", "wasserstein"],
           "w1_hr_bpm": distances.loc["heart_rate_bpm", "wasserstein"],
           "near_copy_%": 100 * memorisation["fraction_near_copy"],
           "nn_similarity_median": memorisation["median_synth_to_train"]}
    comparisons = []
    if len(accepted):
        result = evaluate.run_variant(task, f"gan@{plan.ratio:g}", plan.eval_seeds, plan.classifier_epochs,
                                      Path(plan.out_dir) / "classifiers" / code, task.scaler.transform(accepted),
                                      evaluate.synthetic_tag(accepted), label=variant)
        table = evaluate.utility_table(task, [result], plan.n_boot).set_index("metric")
        for metric in ("auroc", "auprc"):
            row |= {metric: table.at[metric, "mean"], f"{metric}_ci": (table.at[metric, "ci_low"],
                                                                        table.at[metric, "ci_high"])}
        for name, base in baselines.items():
            comparisons.append({"code": code, **evaluate.compare_variants(task, result, base, plan.n_boot)})
    return row, comparisons


def evaluate_variants(plan: Plan, runs: dict[tuple[str, str], Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per (code, variant) plus the baselines; paired AUROC comparisons with Holm correction."""
    rows, comparisons = [], []
    for code in plan.codes:
        task = evaluate.load_task(plan.data_dir, code)
        cache = Path(plan.out_dir) / "classifiers" / code
        baselines = {name: evaluate.run_variant(task, name, plan.eval_seeds, plan.classifier_epochs, cache)
                     for name in ("real", f"oversample@{plan.ratio:g}")}
        for name, base in baselines.items():
            table = evaluate.utility_table(task, [base], plan.n_boot).set_index("metric")
            rows.append({"code": code, "variant": name, **{m: table.at[m, "mean"] for m in ("auroc", "auprc")},
                         **{f"{m}_ci": (table.at[m, "ci_low"], table.at[m, "ci_high"]) for m in ("auroc", "auprc")},
                         "n_test_positives": int(task.y["test"].sum())})
        real_features = physiology.ecg_features(task.positives_mv("train"), delineate=False)
        for variant in [v for v in VARIANTS if (v, code) in runs]:
            row, comps = _row(plan, task, code, variant, runs[(variant, code)], baselines, real_features)
            rows.append(row)
            comparisons += comps
    comparisons = pd.DataFrame(comparisons)
    if len(comparisons):
        comparisons["p_holm"] = metrics.holm_adjust(comparisons["p_value"])
        comparisons["significant_holm"] = comparisons["p_holm"] < 0.05
    return pd.DataFrame(rows), comparisons


def verdicts(table: pd.DataFrame, comparisons: pd.DataFrame) -> list[str]:
    """Per code: which variant has the highest AUROC, and whether any beats oversampling (Holm)."""
    lines = []
    for code, rows in table.groupby("code", sort=False):
        gan = rows[rows["variant"].isin(VARIANTS) & rows["auroc"].notna()] if "auroc" in rows else rows.iloc[:0]
        if gan.empty:
            lines.append(f"{code}: no variant produced vetted candidates, so none could augment the training set.")
            continue
        best = gan.loc[gan["auroc"].idxmax()]
        c = comparisons[(comparisons["code"] == code) & comparisons["b"].str.startswith("oversample")]
        winners = c[c["significant_holm"] & (c["difference"] > 0)]["a"].tolist()
        vs = c[c["a"] == best["variant"]].iloc[0]
        lines.append(f"{code}: highest AUROC {best['variant']} {best['auroc']:.3f} "
                     f"[{best['auroc_ci'][0]:.3f}, {best['auroc_ci'][1]:.3f}]; vs oversampling ΔAUROC "
                     f"{vs['difference']:+.3f} [{vs['ci_low']:+.3f}, {vs['ci_high']:+.3f}], Holm p={vs['p_holm']:.3f}. "
                     + (f"Significantly better than oversampling: {winners}." if winners else
                        "No variant beats oversampling significantly."))
    return lines


def plot_comparison(table: pd.DataFrame, path=None):
    """Test AUROC with 95% CI per code and variant (baselines included)."""
    plt = plots.pyplot()
    rows = table[table["auroc"].notna()]
    codes = list(dict.fromkeys(rows["code"]))
    names = list(dict.fromkeys(rows["variant"]))
    fig, ax = plt.subplots(figsize=(2.2 + 1.6 * len(codes), 4))
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        sub = rows[rows["variant"] == name].set_index("code").reindex(codes)
        x = np.arange(len(codes)) + (j - (len(names) - 1) / 2) * width
        low = sub["auroc"] - sub["auroc_ci"].map(lambda c: c[0] if isinstance(c, tuple) else np.nan)
        high = sub["auroc_ci"].map(lambda c: c[1] if isinstance(c, tuple) else np.nan) - sub["auroc"]
        ax.errorbar(x, sub["auroc"], yerr=[low, high], fmt="o", capsize=2, label=name)
    ax.set_xticks(range(len(codes)), codes)
    ax.set_ylabel("test AUROC (fold 10)")
    ax.axhline(0.5, color="grey", lw=0.5)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Augmentation by variant (bootstrap 95% CI)", fontsize=10)
    fig.tight_layout()
    return plots.save_figure(fig, path, 120)


def write_report(plan: Plan, table: pd.DataFrame, comparisons: pd.DataFrame) -> Path:
    """``<out_dir>/comparison.md`` with the table, the paired tests and the figure."""
    out = Path(plan.out_dir)
    plot_comparison(table, path=out / "auroc_by_variant.png")
    shown = table.copy()
    for metric in ("auroc", "auprc"):
        if f"{metric}_ci" in shown:
            shown[metric] = [f"{m:.3f} [{c[0]:.3f}, {c[1]:.3f}]" if isinstance(c, tuple) else "—"
                             for m, c in zip(shown[metric], shown[f"{metric}_ci"])]
            shown = shown.drop(columns=f"{metric}_ci")
    lines = ["# Beyond one GAN per code: variants compared", "",
             f"Task per code: code vs rest on real ECGs, folds 1–8 train / 9 val / 10 test; augmentation to "
             f"{plan.ratio:.0%} positives with vetted candidates; {len(plan.eval_seeds)} classifier seeds; "
             f"{plan.epochs}×{plan.steps_per_epoch} GAN steps at batch {plan.batch_size}; `n_test_positives` says how "
             "few real test positives each CI rests on.", "",
             "## Verdicts", "", *[f"- {v}" for v in verdicts(table, comparisons)], "",
             "## Per code and variant", "", shown.round(3).to_markdown(index=False), "",
             "## Paired comparisons (variant − baseline, test AUROC)", "",
             comparisons.round(4).to_markdown(index=False) if len(comparisons) else "(none)", "",
             "![AUROC by variant](auroc_by_variant.png)", ""]
    path = out / "comparison.md"
    atomic.write_text(path, "\n".join(lines))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rare_gan.variants", description=__doc__.split("\n\n")[0])
    parser.add_argument("--codes", required=True, help="comma-separated SCP codes, e.g. PAC,CLBBB,PVC")
    parser.add_argument("--data", help="PTB-XL folder (default: $PTBXL_DIR, data/ptbxl, else DEMO)")
    parser.add_argument("--out", default="outputs/variants")
    parser.add_argument("--epochs", type=int, default=Plan.epochs)
    parser.add_argument("--steps-per-epoch", type=int, default=Plan.steps_per_epoch)
    parser.add_argument("--finetune-epochs", type=int, default=Plan.finetune_epochs)
    parser.add_argument("--classifier-epochs", type=int, default=Plan.classifier_epochs)
    parser.add_argument("--eval-seeds", default="0,1", help="classifier seeds, comma-separated")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args(argv)
    plan = Plan(codes=[c.strip().upper() for c in args.codes.split(",")], data_dir=args.data, out_dir=args.out,
                epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, finetune_epochs=args.finetune_epochs,
                classifier_epochs=args.classifier_epochs, eval_seeds=[int(s) for s in args.eval_seeds.split(",")])
    runs = train_variants(plan, args.variants.split(","))
    table, comparisons = evaluate_variants(plan, runs)
    path = write_report(plan, table, comparisons)
    print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
