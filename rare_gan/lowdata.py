"""The low-data study: does synthetic data help when there are very few real positives?

For each code and k in (5, 10, 20, all) real training positives (``draws`` random draws per k, from
folds 1–8 only; :func:`rare_gan.utility.subsample_positives`):

* the default recipe's GAN is fine-tuned on **those k ECGs only**, from a pretraining that left out
  every record carrying any studied code (:func:`held_out_pretraining`), so no generator ever saw
  another positive; its generated ECGs are kept when plausible and not near-copies (a classifier
  trained on 5 positives is no judge of confidence);
* both classifier families (:mod:`rare_gan.utility`; the CNN trunk is likewise pretrained without
  the studied codes, and its head has the strength chosen for codes a trunk never learnt,
  :data:`rare_gan.utility.CNN_HEAD_C_UNSEEN`) are trained on the k positives + every real negative
  as: real only, class weighting, oversampling to ``ratio`` positives, GAN augmentation to
  ``ratio`` positives;
* AUROC and AUPRC on the fixed test set (folds 9–10) with stratified-bootstrap CIs.

``python -m rare_gan.lowdata --codes PAC,PVC --data ../shared/ptbxl`` or ``./run_all.sh --low-data PAC,PVC``;
``... --realism`` then measures how realistic the study's GANs are (:func:`gan_realism`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from rare_gan import atomic, evaluate, features, generate, metrics, physiology, plots, train, utility
from rare_gan.data import DataError
from rare_gan.recipes import INITIAL

log = logging.getLogger(__name__)

KS = (5, 10, 20, None)
VARIANTS = ("real", "real_weighted", "oversample", "gan")
CNN_TRUNK = "leads+rhythm, held-out codes' records left out"
"""What the study's CNN trunk reads and never saw (the rows' ``cnn_inputs``): the 12 leads and the rhythm
channels, pretrained without any record that carries a held-out code, whose labels would leak the
positives that the subsampling to k leaves out."""
PRIMARY_CSV = "primary.csv"
"""The primary comparisons of every code studied in ``out_dir`` (:func:`primary_comparison`), Holm-adjusted."""
FEW_EPOCHS = 4
"""Fine-tuning epochs (of the recipe's steps per epoch) for k ≤ 20 positives, fixed in advance: a
full fine-tuning budget on 5 ECGs would be thousands of passes over them."""


def held_out_pretraining(data_dir: str | None, codes: Sequence[str], seed: int, profile: str,
                         cache_root: str | Path, epochs: int | None = None) -> Path:
    """The default recipe's pretraining on every training-fold record that carries none of ``codes``
    (cached); ``epochs`` shortens the profile's pretraining budget."""
    return train.pretrained_run("beat", data_dir, seed=seed, profile=profile, cache_root=cache_root,
                                exclude_codes=list(codes), **({"epochs": epochs} if epochs else {}))


def _usable(ecgs_mv: np.ndarray, task, positives_mv: np.ndarray) -> np.ndarray:
    """The generated ECGs that are plausible and not near-copies of the k training positives."""
    plausible = physiology.ecg_features(ecgs_mv, delineate=False)["plausible"].to_numpy()
    table, _ = metrics.memorisation_report(ecgs_mv, positives_mv, task.unseen_positives_mv())
    return ecgs_mv[plausible & ~table["near_copy"].to_numpy()]


def study_code(code: str, data_dir: str | None, pretrained: Path, trunk_root: Path, out_dir: Path,
               all_codes: Sequence[str], ks=KS, draws: int = 3, seed: int = 0, profile: str = "full",
               ratio: float = 0.25, n_generate: int = 300, n_boot: int = 1000) -> tuple[list[dict], list[dict]]:
    """Every (k, draw, family, variant) row of one code, and its primary comparisons (:func:`primary_comparison`)."""
    task = evaluate.load_task(data_dir, code)
    trunk = utility.pretrained_cnn(task, seed, exclude=all_codes, cache_root=trunk_root,
                                   epochs=utility.CNN_EPOCHS[profile])
    families = [utility.feature_family(), utility.cnn_family(trunk, task.scaler.scale_mv, utility.CNN_HEAD_C_UNSEEN)]
    rows, comparisons = [], []
    for k in ks:
        fits, test_y = {}, {}  # (family, variant) -> the draws' fits; family -> its test labels (folds 9-10)
        for draw in range(draws if k is not None else 1):
            start = time.perf_counter()
            picks = utility.subsample_positives(task, k, draw)
            ids = [int(i) for i in task.ecg_ids["train"][picks]]
            run_dir, _ = train.train_recipe("beat", code, out_dir / code / f"k{k or 'all'}-draw{draw}",
                                            profile=profile, data_dir=data_dir, seed=seed, records=ids,
                                            init_from=str(pretrained), **INITIAL,
                                            **({"epochs": FEW_EPOCHS} if k is not None and profile == "full" else {}))
            positives_mv = task.scaler.inverse(task.x["train"][picks])
            synthetic = _usable(generate.generate(generate.load_run(run_dir), n_generate, seed=seed), task, positives_mv)
            for family in families:
                real = utility.real_rows(family, task, positives=picks)
                test_y[family.name] = real.test_y
                plan = ["real", "real_weighted", f"oversample@{ratio:g}"] + ([f"gan@{ratio:g}"] if len(synthetic) else [])
                for variant in plan:
                    fit = utility.fit_variant(family, real, variant, [seed], synthetic if "gan" in variant else None,
                                              thresholds=False)
                    fits.setdefault((family.name, variant.split("@")[0]), []).append(fit)
                    table = metrics.bootstrap_metrics(real.test_y, fit.test_scores, fit.thresholds, n_boot=n_boot)
                    rows.append({"code": code, "family": family.name, "variant": variant.split("@")[0],
                                 "k": k or int(len(picks)), "k_label": str(k) if k else "all", "draw": draw,
                                 "n_synthetic": int(len(synthetic)),
                                 "n_test_positives": int(real.test_y.sum()), "cnn_inputs": CNN_TRUNK,
                                 "head_c": family.head_c,
                                 **{f"{m}{suffix}": float(table.at[m, col]) for m in ("auroc", "auprc")
                                    for suffix, col in (("", "mean"), ("_ci_low", "ci_low"), ("_ci_high", "ci_high"))}})
            log.info("%s k=%s draw %d: %d usable synthetic ECGs (%.0f s)", code, k or "all", draw, len(synthetic),
                     time.perf_counter() - start)
        if k is not None:
            comparisons += [primary_comparison(code, family.name, k, test_y[family.name], fits, ratio, n_boot, seed)
                            for family in families]
    return rows, [c for c in comparisons if c is not None]


def primary_comparison(code: str, family: str, k: int, test_y: np.ndarray, fits: dict, ratio: float,
                       n_boot: int, seed: int) -> dict | None:
    """The study's primary comparison for one code, family and k ≤ 20, fixed before the run with the full held-out
    pretraining: test AUROC of GAN augmentation minus oversampling at the same positive fraction, each averaged
    over the draws, with a paired stratified bootstrap of the test set (:func:`rare_gan.metrics.
    paired_bootstrap_difference`); Holm over codes × k within a family in :func:`holm_within_family`. None when a
    draw had no usable synthetic ECG (no GAN fit to compare)."""
    gan, over = fits.get((family, "gan"), []), fits.get((family, "oversample"), [])
    if not gan or len(gan) != len(over):
        return None
    stack = lambda fs, field: np.concatenate([getattr(f, field) for f in fs])  # noqa: E731
    d = metrics.paired_bootstrap_difference(test_y, stack(gan, "test_scores"), stack(over, "test_scores"),
                                            stack(gan, "thresholds"), stack(over, "thresholds"), n_boot=n_boot,
                                            seed=seed)
    return {"code": code, "family": family, "k_label": str(k), "draws": len(gan), "ratio": ratio,
            "comparison": f"gan@{ratio:g} - oversample@{ratio:g}", "difference": d["difference"],
            "diff_ci_low": d["ci_low"], "diff_ci_high": d["ci_high"], "p_value": d["p_value"]}


def holm_within_family(comparisons: pd.DataFrame) -> pd.DataFrame:
    """``comparisons`` with ``p_holm``: Holm over every code × k of the same classifier family (codes run one at a
    time are merged first, so the correction always covers all of them)."""
    out = comparisons.copy()
    out["p_holm"] = np.nan
    for _, index in out.groupby("family", sort=False).groups.items():
        out.loc[index, "p_holm"] = metrics.holm_adjust(out.loc[index, "p_value"].to_numpy())
    return out


def gan_realism(code: str, data_dir: str | None, out_dir: str | Path, seed: int = 0, n_generate: int = 300,
                effort: str = "full") -> list[dict]:
    """The realism table's strong C2ST of each GAN the study fine-tuned for ``code`` (``out_dir/<code>/k*-draw*``):
    the ECGs the study drew from it (same seed and number) against every real training-fold positive of the code,
    whatever k the GAN saw. ``n_usable`` counts those ECGs that the study's filter keeps, so a row can be checked
    against the study's own ``n_synthetic``."""
    from rare_gan import realism

    runs = sorted((d for d in (Path(out_dir) / code).glob("k*-draw*") if (d / "_COMPLETE").is_file()), key=_k_and_draw)
    if not runs:
        return []
    task = evaluate.load_task(data_dir, code)
    ref = realism.load_reference(task, controls=False, seed=seed, effort=realism.EFFORT[effort])
    rows = []
    for run_dir in runs:
        run = generate.load_run(run_dir)
        ecgs = generate.generate(run, n_generate, seed=seed)
        positives_mv = task.scaler.inverse(task.x["train"][np.isin(task.ecg_ids["train"], run.config.records)])
        strong = ref.c2st(ref.train_features, features.extract(ecgs), seed)
        k, draw = _k_and_draw(run_dir)
        rows.append({"code": code, "k_label": "all" if k == float("inf") else str(int(k)), "draw": draw,
                     "k": len(run.config.records), "n_real_positives": len(ref.train_features),
                     "c2st_auroc": strong.auroc, "c2st_null_sd": strong.null_sd, "c2st_n_per_class": strong.n_per_class,
                     "c2st_top_feature": strong.top_features[0]["feature"] if strong.top_features else None,
                     "n_usable": int(len(_usable(ecgs, task, positives_mv))), "run_dir": str(run_dir)})
        log.info("%s %s: strong C2ST %.3f", code, run_dir.name, strong.auroc)
    return rows


def k_order(k_label: str) -> float:
    """``"5"`` → 5, ``"all"`` → inf: the study's order of k."""
    return float("inf") if k_label == "all" else float(k_label)


def _k_and_draw(run_dir: Path) -> tuple[float, int]:
    """``k5-draw2`` → (5, 2), ``kall-draw0`` → (inf, 0): the study's order."""
    k, draw = run_dir.name[1:].split("-draw")
    return k_order(k), int(draw)


def merged_rows(path: str | Path, table: pd.DataFrame) -> pd.DataFrame:
    """``table`` after the rows of other codes already in the CSV at ``path`` (``rows.csv``, :data:`PRIMARY_CSV`):
    codes run one at a time."""
    if not Path(path).is_file():
        return table
    earlier = pd.read_csv(path, dtype={"k_label": str})
    return pd.concat([earlier[~earlier["code"].isin(set(table["code"]))], table], ignore_index=True)


def summary(rows: Sequence[dict] | pd.DataFrame) -> pd.DataFrame:
    """AUROC (mean over draws, with the draws' range) per code × family × k × variant."""
    t = pd.DataFrame(rows)
    g = t.groupby(["code", "family", "k_label", "variant"], sort=False)["auroc"]
    out = pd.DataFrame({"auroc_mean": g.mean(), "auroc_min": g.min(), "auroc_max": g.max(), "draws": g.size()})
    return out.round(3).reset_index()


def plot(rows: Sequence[dict] | pd.DataFrame, metric: str = "auroc", path=None):
    """``metric`` against k per code (rows) and family (columns), mean over draws with the mean CI."""
    plt = plots.pyplot()
    t = pd.DataFrame(rows)
    codes, families = list(dict.fromkeys(t["code"])), list(dict.fromkeys(t["family"]))
    fig, axes = plt.subplots(len(codes), len(families), figsize=(4.2 * len(families), 3.2 * len(codes)),
                             squeeze=False, sharey=True)
    labels = list(dict.fromkeys(t["k_label"]))
    for i, code in enumerate(codes):
        for j, family in enumerate(families):
            ax = axes[i, j]
            sub = t[(t["code"] == code) & (t["family"] == family)]
            for offset, variant in enumerate(VARIANTS):
                v = sub[sub["variant"] == variant].groupby("k_label", sort=False)[
                    [metric, f"{metric}_ci_low", f"{metric}_ci_high"]].mean().reindex(labels).to_numpy(float)
                x = np.arange(len(labels)) + 0.06 * (offset - 1.5)
                ax.errorbar(x, v[:, 0], yerr=[v[:, 0] - v[:, 1], v[:, 2] - v[:, 0]], marker="o", capsize=2,
                            label=variant)
            ax.set_xticks(range(len(labels)), [f"k={k}" for k in labels])
            ax.set_title(f"{code}, {family}", fontsize=10)
            ax.set_ylabel(f"test {metric.upper()} (folds 9–10)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Low-data study: real positives k, mean over draws (bars: mean bootstrap 95% CI)", fontsize=11)
    fig.tight_layout()
    return plots.save_figure(fig, path, 110)


def run(codes: Sequence[str], data_dir: str | None, out_dir: str | Path = "outputs/low_data", ks=KS, draws: int = 3,
        seed: int = 0, profile: str = "full", n_generate: int = 300, n_boot: int = 1000,
        pretrain_epochs: int | None = None, held_out: Sequence[str] | None = None) -> pd.DataFrame:
    """The whole study: the held-out pretraining (cached; leaving out ``held_out``, default ``codes``),
    every code, ``rows.csv`` and figures in ``out_dir`` (rows of earlier codes in ``rows.csv`` are kept)."""
    out_dir = Path(out_dir)
    codes = [c.upper() for c in codes]
    held_out = [c.upper() for c in (held_out or codes)]
    pretrained = held_out_pretraining(data_dir, held_out, seed, profile, out_dir / "pretrained", pretrain_epochs)
    rows, comparisons = [], []
    for code in codes:
        code_rows, code_comparisons = study_code(code, data_dir, pretrained, out_dir / "classifiers", out_dir, held_out,
                                                 ks, draws, seed, profile, n_generate=n_generate, n_boot=n_boot)
        rows, comparisons = rows + code_rows, comparisons + code_comparisons
    table = merged_rows(out_dir / "rows.csv", pd.DataFrame(rows))
    with atomic.atomic_path(out_dir / "rows.csv") as tmp:
        table.to_csv(tmp, index=False)
    if comparisons:
        primary = holm_within_family(merged_rows(out_dir / PRIMARY_CSV, pd.DataFrame(comparisons)))
        with atomic.atomic_path(out_dir / PRIMARY_CSV) as tmp:
            primary.to_csv(tmp, index=False)
    plot(table, path=out_dir / "low_data_auroc.png")
    plot(table, metric="auprc", path=out_dir / "low_data_auprc.png")
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rare_gan.lowdata", description=__doc__.split("\n\n")[0])
    parser.add_argument("--codes", default="PAC,PVC")
    parser.add_argument("--data", help="PTB-XL folder (default: $PTBXL_DIR, data/ptbxl, else DEMO)")
    parser.add_argument("--out", default="outputs/low_data")
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--profile", default="full", choices=["test", "quick", "full"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrain-epochs", type=int, help="shorter held-out pretraining (default: the profile's)")
    parser.add_argument("--held-out", help="codes the pretrainings never see (default: --codes); keep it the same "
                                           "when running the codes one at a time")
    parser.add_argument("--results", help="also put the rows under 'low_data' in this results JSON "
                                          "(e.g. outputs/study/results.json)")
    parser.add_argument("--realism", action="store_true",
                        help="instead: the strong C2ST of every GAN the study fine-tuned in --out (gan_realism; "
                             "trains nothing); with --results, its rows go under 'low_data_realism'")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.realism:
        return _realism_main(args, argv)
    try:
        table = run(args.codes.split(","), args.data, args.out, draws=args.draws, seed=args.seed, profile=args.profile,
                    pretrain_epochs=args.pretrain_epochs, held_out=args.held_out.split(",") if args.held_out else None)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary(table).to_string(index=False))
    primary_csv = Path(args.out) / PRIMARY_CSV
    primary = pd.read_csv(primary_csv, dtype={"k_label": str}) if primary_csv.is_file() else pd.DataFrame()
    if not primary.empty:
        print("primary comparisons (GAN - oversampling, AUROC, Holm within family):")
        print(primary.round(3).to_string(index=False))
    print(f"rows and figures: {args.out}")
    if args.results:
        from rare_gan import study

        command = "python -m rare_gan.lowdata " + " ".join(argv if argv is not None else sys.argv[1:])
        print("results:", study.write_results(args.results, "low_data", table.to_dict("records"), command))
        if not primary.empty:
            study.write_results(args.results, "low_data_primary", primary.to_dict("records"), command)
    return 0


def _realism_main(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    try:
        rows = [r for code in args.codes.split(",") for r in gan_realism(code.strip().upper(), args.data, args.out,
                                                                            args.seed)]
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not rows:
        print(f"error: no finished low-data GAN runs of {args.codes} in {args.out}", file=sys.stderr)
        return 2
    print(pd.DataFrame(rows).drop(columns="run_dir").to_string(index=False))
    if args.results:
        from rare_gan import study

        command = "python -m rare_gan.lowdata " + " ".join(argv if argv is not None else sys.argv[1:])
        print("results:", study.write_results(args.results, "low_data_realism", rows, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
