"""The evaluation report of 05_evaluate: every trained run against real ECGs it never saw, and against each other.

Sections (each returns tables the notebook shows; :func:`write_report` writes ``comparison.md`` with
figures in ``comparison/`` and ``metrics.json`` into every run folder):

* **realism** — :func:`rare_gan.realism.evaluate_synthetic` per run (strong feature C2ST with its
  null SD and the features that separate most, CNN C2ST, TSTR, physiology distances,
  memorisation), beside the real-data controls (:func:`rare_gan.realism.control_tests`) and the
  smoothness measure behind the research's "overly smooth";
* **utility** — both classifier families of :mod:`rare_gan.utility` on every training-set variant,
  test folds 9–10, bootstrap CIs, the pre-specified primary comparison with Holm correction, and
  the PTB-XL benchmark's per-label anchors;
* **verdicts** — plain sentences, each backed by a number of the tables, including one per claim of
  the research (best AUROC 0.9899, accuracy 0.948, "Initial more realistic", "Modified overly smooth").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rare_gan import atomic, evaluate, export, metrics, physiology as physio, plots, realism, utility
from rare_gan.recipes import TrainConfig

RESEARCH_AUROC, RESEARCH_ACCURACY = 0.9899, 0.948
REALISM_COLUMNS = ("c2st_auroc", "c2st_null_sd", "c2st_cnn_auroc", "tstr_auroc", "real_auroc_same_classifier",
                   "w1_hr_bpm", "w1_rr_sd_ms", "qrs_median_diff_ms", "pr_median_diff_ms", "plausible_fraction",
                   "near_copy_fraction", "nn_distance_ratio", "hf_ratio_median")


@dataclass
class RunArtifacts:
    """What 03/04 left in one run's folder."""

    name: str
    folder: Path
    trainer_dir: Path
    config: TrainConfig
    history: pd.DataFrame
    generated_mv: np.ndarray
    scores: pd.DataFrame

    @property
    def candidates_mv(self) -> np.ndarray:
        """The vetted candidates (mV)."""
        return self.generated_mv[self.scores["accepted"].to_numpy(bool)]


def load_runs(run_folders: dict[str, str | Path]) -> dict[str, RunArtifacts]:
    """Read each run's trainer folder, generated ECGs and candidate scores."""
    runs = {}
    for name, folder in run_folders.items():
        folder = Path(folder)
        generated, table = export.read_synthetic_dataset(folder / "generated_ecgs")
        trainer = _trainer_of(folder, table)
        saved = json.loads((trainer / "config.json").read_text())
        runs[name] = RunArtifacts(name=name, folder=folder, trainer_dir=trainer,
                                  config=TrainConfig.from_dict(saved["train"]),
                                  history=pd.read_csv(trainer / "history.csv"), generated_mv=generated,
                                  scores=pd.read_csv(folder / "fake_arrhythmia_candidates" / "candidates.csv"))
    return runs


def _trainer_of(folder: Path, generated: pd.DataFrame) -> Path:
    """The trainer folder in ``folder`` whose generator made the generated ECGs: the one their table
    names (``gen_run_dir``, matched by folder name so that a moved outputs folder still resolves), else
    the only one. FileNotFoundError when neither decides."""
    trainers = sorted(p.parent for p in folder.glob("*/generator.keras"))
    recorded = set(generated["gen_run_dir"].dropna()) if "gen_run_dir" in generated else set()
    names = {Path(r).name for r in recorded}
    named = [t for t in trainers if names == {t.name}]
    if len(named) == 1:
        return named[0]
    if len(trainers) == 1 and not recorded:
        return trainers[0]
    raise FileNotFoundError(f"{folder}: cannot tell which trainer folder made generated_ecgs/ (they name "
                            f"{sorted(recorded) or 'none'}; found {[t.name for t in trainers]})")


def _ci(row) -> str:
    return f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


# ----------------------------------------------------------------------------------------------
# Realism
# ----------------------------------------------------------------------------------------------
@dataclass
class Realism:
    """Per-run realism rows, the real-data reference with its controls, and the smoothness test."""

    reference: realism.Reference
    rows: dict[str, dict]
    hf_real_median: float
    hf_pairs: dict[str, float] = field(default_factory=dict)
    """Mann–Whitney p of the high-frequency ratio, Initial vs Modified, per recipe."""
    physiology: dict[str, pd.DataFrame] = field(default_factory=dict)
    """neurokit2 features of each run's first 300 generated ECGs (what the W1 distances rest on)."""

    @property
    def table(self) -> pd.DataFrame:
        """Run × realism column; the first row holds the real-data controls."""
        controls = self.reference.controls
        rows = {"real (controls)": {"c2st_auroc": controls.get("c2st_real_control"),
                                    "hf_ratio_median": self.hf_real_median}}
        rows |= {name: {c: r.get(c) for c in REALISM_COLUMNS} for name, r in self.rows.items()}
        return pd.DataFrame(rows).T.astype(float)

    @property
    def top_features(self) -> pd.DataFrame:
        """The single features that separate each run's ECGs from the real ones most."""
        return pd.DataFrame([{"run": name, **f} for name, r in self.rows.items() for f in r["c2st_top_features"]])


def realism_section(task: evaluate.Task, runs: dict[str, RunArtifacts], seed: int = 0, n_max: int = 500,
                    cnn: bool = True, profile: str = "full") -> Realism:
    """Every run's generated ECGs (not only the vetted ones) against the code's real ECGs; ``profile``
    sets the tests' effort (:data:`rare_gan.realism.EFFORT`)."""
    from scipy.stats import mannwhitneyu

    reference = realism.load_reference(task, seed=seed, effort=realism.EFFORT[profile])
    rows, hf, phys = {}, {}, {}
    for name, run in runs.items():
        synth = run.generated_mv[:n_max]
        phys[name] = physio.ecg_features(synth[:300])
        rows[name] = realism.evaluate_synthetic(reference, synth, seed, cnn=cnn, physiology_frame=phys[name])
        hf[name] = metrics.high_frequency_ratio(synth)
    pairs = {}
    for name in runs:
        if name.endswith("Initial") and name.replace("Initial", "Modified") in hf:
            recipe = name[:-len("Initial")].strip() or runs[name].config.recipe
            pairs[recipe] = float(mannwhitneyu(hf[name], hf[name.replace("Initial", "Modified")]).pvalue)
    return Realism(reference, rows, float(np.median(metrics.high_frequency_ratio(reference.train_mv))), pairs, phys)


def plot_examples(task: evaluate.Task, runs: dict[str, RunArtifacts], folder: Path | None = None, n: int = 4,
                  seed: int = 0):
    """Per run: ``n`` randomly drawn real ECGs of the code beside ``n`` randomly drawn generated ones."""
    rng = np.random.default_rng(seed)
    real = np.concatenate([task.positives_mv("train"), task.unseen_positives_mv()])
    picks = rng.choice(len(real), min(n, len(real)), replace=False)
    figures = []
    for name, run in runs.items():
        synth = run.generated_mv[rng.choice(len(run.generated_mv), len(picks), replace=False)]
        path = folder / f"examples_{name.replace(' ', '_')}.png" if folder else None
        figures.append(plots.plot_real_and_synthetic_grid(real[picks], synth, path=path,
                                                          title=f"{'+'.join(task.codes)}: real vs {name} "
                                                                f"(randomly drawn)"))
    return figures


def plot_rhythm(realism_result: Realism, runs: dict[str, RunArtifacts], path=None):
    """Heart-rate and RR-SD distributions: real ECGs of the code vs each run's."""
    frames = {"real": realism_result.reference.physiology}
    for name, run in runs.items():  # measured by the realism section; runs it did not see are measured here
        known = realism_result.physiology.get(name)
        frames[name] = physio.ecg_features(run.generated_mv[:300], delineate=False) if known is None else known
    return plots.plot_distributions(frames, ["rr_sd_ms", "heart_rate_bpm"], path=path,
                                    title="Rhythm: real ECGs of the code vs SYNTHETIC")


def plot_losses(runs: dict[str, RunArtifacts], folder: Path | None = None):
    """Each run's loss curves."""
    return [plots.plot_loss_curves(run.history, title=f"{name}: {run.config.recipe}, D lr "
                                   f"{run.config.lr_discriminator:g}, G lr {run.config.lr_generator:g}",
                                   path=folder / f"loss_{name.replace(' ', '_')}.png" if folder else None)
            for name, run in runs.items()]


# ----------------------------------------------------------------------------------------------
# Utility
# ----------------------------------------------------------------------------------------------
@dataclass
class Utility:
    """Both families on every variant: long table, fits, primary comparisons."""

    task: str
    n_test_positives: int
    n_test: int
    table: pd.DataFrame
    primary: pd.DataFrame
    fits: list
    n_synthetic: dict[str, int]
    n_seeds: int
    families: dict[str, str]

    def summary(self, family: str) -> pd.DataFrame:
        """Variant × headline metric as 'mean [95% CI]' strings for one family."""
        t = self.table[(self.table["family"] == family) & self.table["metric"].isin(utility.HEADLINE)].copy()
        t["value"] = t.apply(_ci, axis=1)
        wide = t.pivot(index="variant", columns="metric", values="value")
        order = list(dict.fromkeys(t["variant"]))
        return wide.reindex(index=order, columns=list(utility.HEADLINE))

    def value(self, family: str, variant: str, metric: str = "auroc") -> pd.Series:
        t = self.table
        return t[(t["family"] == family) & (t["variant"] == variant) & (t["metric"] == metric)].iloc[0]


def utility_section(task: evaluate.Task, runs: dict[str, RunArtifacts], seeds, ratios, n_boot: int,
                    cnn_root: str | Path, seed: int = 0, profile: str = "full", cnn_epochs: int | None = None) -> Utility:
    """Real only, class weighting, oversampling and every run's vetted candidates, for both families
    (the CNN trunk pretrained for ``cnn_epochs``, default the profile's)."""
    trunk = utility.pretrained_cnn(task, seed, cache_root=cnn_root, epochs=cnn_epochs or utility.CNN_EPOCHS[profile])
    families = [utility.feature_family(), utility.cnn_family(trunk, task.scaler.scale_mv)]
    fits, rows_by_family = [], {}
    n_synthetic = {name: len(run.candidates_mv) for name, run in runs.items()}
    for family in families:
        rows = rows_by_family[family.name] = utility.real_rows(family, task)
        plan = [("real", None), ("real_weighted", None)] + [(f"oversample@{r:g}", None) for r in ratios]
        for name, run in runs.items():
            if n_synthetic[name]:
                plan += [(f"{name}:gan@{r:g}", run.candidates_mv) for r in ratios] + [(f"{name}:tstr", run.candidates_mv)]
        for label, synthetic in plan:
            variant = label.split(":")[-1]
            fits.append(utility.fit_variant(family, rows, variant, seeds, synthetic, label=label))
    table = pd.concat([utility.utility_table(rows_by_family[f.name], [x for x in fits if x.family == f.name], n_boot)
                       for f in families], ignore_index=True)
    primary = utility.primary_comparisons(rows_by_family, fits, n_boot)
    first = rows_by_family[families[0].name]
    return Utility(task.description, int(first.test_y.sum()), len(first.test_y), table, primary, fits, n_synthetic,
                   len(seeds), {f.name: f.description for f in families})


def plot_augmentation_curve(result: Utility, family: str, metric: str = "auroc", path=None):
    """``metric`` vs positive fraction after augmentation for one family: oversampling and each run's GAN."""
    plt = plots.pyplot()
    t = result.table[(result.table["metric"] == metric) & (result.table["family"] == family)]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    series = {"oversampling": "oversample@"} | {f"GAN {n}": f"{n}:gan@" for n in result.n_synthetic}
    for offset, (label, prefix) in enumerate(series.items()):
        rows = t[t["variant"].str.startswith(prefix)]
        if rows.empty:
            continue
        x = rows["variant"].str.split("@").str[1].astype(float).to_numpy() + 0.004 * offset
        mean, low, high = (rows[c].to_numpy(float) for c in ("mean", "ci_low", "ci_high"))
        ax.errorbar(x, mean, yerr=[mean - low, high - mean], marker="o", capsize=3, label=label)
    base = t[t["variant"] == "real"].iloc[0]
    ax.axhline(base["mean"], color="black", lw=1, label="real only")
    ax.axhspan(base["ci_low"], base["ci_high"], color="grey", alpha=0.2, label="real only 95% CI")
    ax.set_xlabel("positive fraction of the training set after augmentation")
    ax.set_ylabel(f"test {metric.upper()} (folds 9–10)")
    ax.set_title(f"Augmentation curve, {family} family (seed-averaged, bootstrap 95% CI)", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return plots.save_figure(fig, path, 120)


# ----------------------------------------------------------------------------------------------
# Verdicts and the written report
# ----------------------------------------------------------------------------------------------
def _research_claims(u: Utility, family: str) -> list[str]:
    t = u.table[(u.table["family"] == family) & (u.table["metric"] == "auroc")]
    gan = t[t["variant"].str.contains(":gan@")]
    if gan.empty:
        return [f"{family}: no run produced vetted candidates, so the research's best-AUROC claim cannot be tested."]
    best = gan.loc[gan["mean"].idxmax()]
    acc = u.value(family, best["variant"], "accuracy")
    where = ("inside its 95% CI, so not refuted (the CI is wide)" if best["ci_low"] <= RESEARCH_AUROC <= best["ci_high"]
             else "below its 95% CI: this task is easier here, which is no reproduction" if best["ci_low"] > RESEARCH_AUROC
             else "above its 95% CI: not reproduced")
    acc_where = ("inside" if acc["ci_low"] <= RESEARCH_ACCURACY <= acc["ci_high"] else "outside")
    return [f"{family}: best GAN-augmented variant (chosen on the test set, so optimistic) {best['variant']}: AUROC "
            f"{_ci(best)}, accuracy {_ci(acc)}. The research's best AUROC {RESEARCH_AUROC} is {where}; its accuracy "
            f"{RESEARCH_ACCURACY} is {acc_where} the accuracy CI (accuracy at ~{u.n_test_positives}/{u.n_test} "
            "positives is mostly the negatives' specificity)."]


def verdicts(u: Utility, r: Realism, code: str) -> list[str]:
    """Plain-language conclusions, each backed by a number in the tables."""
    lines = [f"Test set (fixed in advance): folds 9 and 10, {u.n_test_positives} positives of {u.n_test} records; "
             f"every choice was made inside folds 1–8. Primary comparison (fixed in advance): GAN augmentation vs "
             f"oversampling to the same positive fraction, test AUROC, paired bootstrap, Holm within each family."]
    anchor = utility.BENCHMARK_ANCHORS.get(code)
    for family in u.families:
        base = u.value(family, "real")
        lines.append(f"{family}: real-only AUROC {_ci(base)}" + (
            f" (PTB-XL benchmark anchor {anchor}, trained multi-label on ~17,000 records: a ceiling, not a like-for-like)"
            if anchor else "") + ".")
    for _, c in u.primary.iterrows():
        verdict = ("GAN significantly better" if c["significant_holm"] and c["difference"] > 0 else
                   "GAN significantly worse" if c["significant_holm"] else "no significant difference")
        lines.append(f"  {c['family']}: {c['a']} vs {c['b']}: ΔAUROC {c['difference']:+.3f} [{c['ci_low']:+.3f}, "
                     f"{c['ci_high']:+.3f}], Holm p={c['p_holm']:.3f} — {verdict}.")
    for family in u.families:
        lines += _research_claims(u, family)
    t, ref = r.table, r.reference
    control = ref.controls.get("c2st_common_control")
    for name in r.rows:
        row = t.loc[name]
        lines.append(f"Realism {name}: strong C2ST AUROC {row['c2st_auroc']:.3f} (null SD {row['c2st_null_sd']:.3f}; "
                     f"real vs real {ref.controls['c2st_real_control']:.3f}"
                     + (f", common class at the same n {control:.3f}" if control is not None else "")
                     + f"), CNN C2ST {row['c2st_cnn_auroc']:.3f}, TSTR {row['tstr_auroc']:.3f} vs real "
                       f"{row['real_auroc_same_classifier']:.3f}; told apart mostly by "
                     + ", ".join(f"{f['feature']} ({f['auroc']:.2f})" for f in r.rows[name]["c2st_top_features"][:3])
                     + ".")
    for recipe, p in r.hf_pairs.items():
        prefix = "" if recipe == "beat" else f"{recipe} "
        ini, mod = t.loc[f"{prefix}Initial"], t.loc[f"{prefix}Modified"]
        gap = abs(ini["c2st_auroc"] - 0.5) - abs(mod["c2st_auroc"] - 0.5)
        sd = max(ini["c2st_null_sd"], mod["c2st_null_sd"])
        realistic = ("Initial is closer to real" if gap < -sd else "Modified is closer to real" if gap > sd else
                     "the difference is within the C2ST's null SD, so neither is more realistic by this test")
        smoother = p < 0.05 and mod["hf_ratio_median"] < ini["hf_ratio_median"]
        over = smoother and mod["hf_ratio_median"] < r.hf_real_median
        lines.append(f"Research claims, {recipe} recipe: 'Initial more realistic': C2ST Initial {ini['c2st_auroc']:.3f} "
                     f"vs Modified {mod['c2st_auroc']:.3f} — {realistic}. 'Modified overly smooth' (median power "
                     f"above 15 Hz / total; real {r.hf_real_median:.4f}, Initial {ini['hf_ratio_median']:.4f}, Modified "
                     f"{mod['hf_ratio_median']:.4f}, Mann–Whitney p={p:.3g}): "
                     + ("consistent: Modified is smoother than Initial and than real ECGs." if over else
                        "not supported: Modified is smoother than Initial but not smoother than real ECGs." if smoother
                        else "not supported: Modified is not smoother than Initial."))
    for name in r.rows:
        row = t.loc[name]
        lines.append(f"Memorisation {name}: {100 * row['near_copy_fraction']:.1f}% near-copies, nearest-neighbour "
                     f"distance ratio {row['nn_distance_ratio']:.2f} (≥ 0.9: not closer to the training ECGs than new "
                     "real ECGs are).")
    few = {n: k for n, k in u.n_synthetic.items() if k < 20}
    if few:
        lines.append(f"Caution: few vetted synthetic ECGs {few}; augmentation repeats them (duplication, not new data).")
    return lines


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def write_report(out_dir: str | Path, task: evaluate.Task, runs: dict[str, RunArtifacts], u: Utility,
                 r: Realism) -> Path:
    """Write ``metrics.json`` per run folder, ``comparison/`` figures and ``comparison.md``; return its path."""
    out_dir = Path(out_dir)
    figures = out_dir / "comparison"
    figures.mkdir(parents=True, exist_ok=True)
    for family in u.families:
        plot_augmentation_curve(u, family, path=figures / f"augmentation_auroc_{family}.png")
    plot_rhythm(r, runs, path=figures / "rhythm_distributions.png")
    plot_examples(task, runs, figures)
    plot_losses(runs, figures)
    plots.pyplot().close("all")
    code = "+".join(task.codes)
    conclusions = verdicts(u, r, code)
    for name, run in runs.items():
        mine = u.table[u.table["variant"].str.startswith(f"{name}:")]
        atomic.write_json(run.folder / "metrics.json", _jsonable({
            "task": task.description, "config": run.config.to_dict(), "realism": r.rows[name],
            "controls": r.reference.controls, "utility": mine.to_dict("records"),
            "n_candidates": int(run.scores["accepted"].sum()), "n_generated": len(run.scores)}))
    demo = "\n> **DEMO DATA — NOT PTB-XL.** These numbers come from synthetic neurokit2 ECGs.\n" if task.demo else ""
    slug = lambda name: name.replace(" ", "_")  # noqa: E731
    lines = [f"# Synthetic {code} ECGs against real ones", demo, f"**Task:** {task.description}.", "",
             "## Verdicts", "", *[f"  - {c.strip()}" if c.startswith("  ") else f"- {c}" for c in conclusions], "",
             "## Realism (generated ECGs vs the code's real training ECGs; controls on real data only)", "",
             r.table.round(3).to_markdown(), "",
             f"Controls: {', '.join(f'{k} {v:.3f}' for k, v in r.reference.controls.items())}.", "",
             "Features that separate each run most (univariate AUROC):", "",
             r.top_features.round(3).to_markdown(index=False) if len(r.top_features) else "(none)", "",
             "![rhythm](comparison/rhythm_distributions.png)", "",
             "## Downstream utility (test folds 9–10, seed-averaged, bootstrap 95% CI)", ""]
    for family, description in u.families.items():
        lines += [f"### {family}: {description}", "", u.summary(family).to_markdown(), "",
                  f"![augmentation {family}](comparison/augmentation_auroc_{family}.png)", ""]
    lines += ["Primary comparisons (GAN − oversampling, same positive fraction, Holm within family):", "",
              u.primary.round(4).to_markdown(index=False) if len(u.primary) else "(none: no vetted candidates)", "",
              f"Vetted synthetic ECGs used for augmentation: {u.n_synthetic}.", "",
              "## Examples (randomly drawn) and loss curves", "",
              *[f"![examples {n}](comparison/examples_{slug(n)}.png)\n![loss {n}](comparison/loss_{slug(n)}.png)\n"
                for n in runs]]
    path = out_dir / "comparison.md"
    atomic.write_text(path, "\n".join(lines) + "\n")
    return path


__all__ = ["RunArtifacts", "load_runs", "Realism", "realism_section", "plot_examples", "plot_rhythm", "plot_losses",
           "Utility", "utility_section", "plot_augmentation_curve", "verdicts", "write_report"]
