"""The README's results blocks and example figures, rendered from ``outputs/reference/results.json``.

``python -m rare_gan.study readme`` (:func:`update_readme`) replaces the text between each
``<!-- results:<section> -->`` and ``<!-- /results:<section> -->`` marker by the table its rows give, so no number in
the README is typed by hand; ``python -m rare_gan.study figures`` (:func:`example_figures`) draws the 12-lead grids of
randomly drawn real and synthetic ECGs that the README shows. The rows come from :mod:`rare_gan.study`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from rare_gan import atomic, evaluate, generate
from rare_gan.study import CNN_INPUTS, CNN_UNLABELLED, CNN_UNSEEN_HEAD, on_first_pretraining, pretraining_groups
from rare_gan.utility import BENCHMARK_ANCHORS

log = logging.getLogger(__name__)


def ablation_markdown(rows: Sequence[dict], realism_rows_: Sequence[dict]) -> str:
    """Strong C2ST per code: research, the default recipe's stages, and each one-change fine-tuning (seed 0)."""
    base = [r for r in realism_rows_ if r.get("gan_seed") == 0 and on_first_pretraining(r) and r["recipe"] != "real"
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
    reading = ablation_reading(rows, realism_rows_)
    return "\n".join(lines) + (f"\n\n{reading}" if reading else "")


def ablation_reading(rows: Sequence[dict], realism_rows_: Sequence[dict]) -> str:
    """Each one-change fine-tuning against the full fine-tuning of the same code, recipe and GAN seed on pretraining
    0 (differences of the rounded numbers the table shows), beside the C2ST's null SD in those runs and the spread of
    the full fine-tuning's GAN seeds there: the yardsticks a change must beat to mean anything."""
    ablations = pd.DataFrame([r for r in rows if r.get("change")])
    runs = pd.DataFrame([r for r in realism_rows_ if on_first_pretraining(r) and r["recipe"] != "real"])
    if ablations.empty or runs.empty:
        return ""
    ablations["base"] = ablations["configuration"].str.split(",").str[0]
    lines = []
    for (code, recipe, base), group in ablations.groupby(["code", "recipe", "base"], sort=False):
        seeds = runs[(runs["code"] == code) & (runs["recipe"] == recipe) & (runs["configuration"] == base)]
        full = seeds[seeds["gan_seed"].isin(group["gan_seed"])]
        if full.empty:
            continue
        reference = round(full["c2st_auroc"].iloc[0], 3)
        differences = [(c.split(", ", 1)[1], round(a, 3) - reference)
                       for c, a in zip(group["configuration"], group["c2st_auroc"])]
        null_sd = group["c2st_null_sd"]
        smaller = sum(abs(d) < null_sd.min() for _, d in differences)
        lines.append(
            f"Read from the table: against `{recipe}, {base}` ({code}, GAN seed {int(full['gan_seed'].iloc[0])}, "
            f"{reference:.3f}), " + ", ".join(f"{name} {d:+.3f} ({'worse' if d > 0 else 'better' if d < 0 else 'same'})"
                                            for name, d in sorted(differences, key=lambda x: -x[1]))
            + f"; {smaller} of the {len(differences)} are smaller than the test's null SD in these runs "
            f"({null_sd.min():.3f}–{null_sd.max():.3f}), and the full fine-tuning's {len(seeds)} GAN seeds on the same "
            f"pretraining span {seeds['c2st_auroc'].min():.3f}–{seeds['c2st_auroc'].max():.3f}.")
    return "\n\n".join(lines)


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


def _reading_order(groups) -> list:
    """Realism groups ``((code, recipe, configuration, pretraining), rows)`` in the order a reader wants them: the
    default recipe (Initial, Modified, then straight from the pretraining), the research's, then the candidates in
    the order they were run; within a recipe and configuration by pretraining seed, then code."""
    from rare_gan.recipes import DEFAULT_RECIPE

    groups = list(groups)
    recipes = list(dict.fromkeys(recipe.split("/")[0] for (_, recipe, _, _), _ in groups))  # in the order run
    codes = list(dict.fromkeys(code for (code, _, _, _), _ in groups))
    configurations = {"Initial": 0, "Modified": 1, "pretrained only": 2}

    def key(item):
        (code, recipe, configuration, pretraining), _ = item
        base = recipe.split("/")[0]
        rank = 0 if base == DEFAULT_RECIPE else 1 if base == "research" else 2
        return (rank, recipes.index(base), recipe != base, configurations.get(configuration, 3), pretraining,
                codes.index(code))

    return sorted(groups, key=key)


def realism_markdown(rows: Sequence[dict]) -> str:
    """The README's realism table: per code × recipe × configuration × pretraining seed, mean (range) over GAN seeds."""
    table = pd.DataFrame(rows)
    table["pretraining"] = pretraining_groups(table)
    runs = table[table["recipe"] != "real"]
    controls = table[table["recipe"] == "real"].set_index("code")
    controls = controls.loc[list(dict.fromkeys([c for c in runs["code"] if c in controls.index] + list(controls.index)))]
    header = ("| code | recipe | configuration | GAN seeds | strong C2ST | CNN C2ST | TSTR AUROC | real AUROC, same "
              "classifier | W1 HR (bpm) | W1 RR-SD (ms) | ΔQRS / ΔPR (ms) | near-copies | NN distance ratio | "
              "pretrain + fine-tune (s) |")
    lines = [header, "|" + "|".join(["---"] * 14) + "|"]
    for (code, recipe, configuration, pretraining), g in _reading_order(runs.groupby(
            ["code", "recipe", "configuration", "pretraining"], sort=False)):
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
        gans = [v for v in dict.fromkeys(calls["variant"]) if _shown_gan(v)]
        names = [_gan_name(v) for v in gans]
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
    return "\n\n".join(blocks + [utility_reading(table)])


def _shown_gan(variant: str) -> bool:
    """Whether the utility tables show ``variant``: an Initial run's GAN augmentation at the primary fraction."""
    return variant.endswith(":gan@0.25") and "Initial" in variant


def _gan_name(variant: str) -> str:
    """The recipe of a GAN variant as the utility tables name it (``Initial:gan@0.25`` is ``beat``'s)."""
    return variant.split(":")[0].replace("Initial", "").replace("Modified", "").strip() or "beat"


def utility_reading(table: pd.DataFrame) -> str:
    """The primary comparisons of the utility tables (Initial GANs), counted: how many favour which side at
    Holm p < 0.05, each such difference, and every family's span of differences."""
    shown = table["variant"].map(_shown_gan)
    primary = table[shown & table.get("p_holm", pd.Series(np.nan, index=table.index)).notna()]
    if primary.empty:
        return "(no primary comparisons to read)"
    trunk = lambda r: "current trunk" if r.get("cnn_inputs") == CNN_INPUTS else "earlier trunk"  # noqa: E731
    significant = primary[primary["p_holm"] < 0.05]
    listed = "; ".join(f"{r['code']} {r['family']}, {_gan_name(r['variant'])} ({trunk(r)}): {r['difference']:+.3f} "
                       f"[{r['diff_ci_low']:+.3f}, {r['diff_ci_high']:+.3f}], Holm p = {r['p_holm']:.2f}"
                       for _, r in significant.iterrows())
    spans = "; ".join(f"{family}: {_signed_span(g['difference'].round(3))}, negative in "
                      f"{int((g['difference'] < 0).sum())} of {len(g)}" for family, g in primary.groupby("family", sort=False))
    others = primary.loc[primary["p_holm"] >= 0.05, "p_holm"]
    return (f"Read from the tables: of the {len(primary)} primary comparisons above (GAN @0.25 − oversampling @0.25 "
            f"per code, family, GAN run and trunk), {int((significant['difference'] > 0).sum())} favour the GAN and "
            f"{int((significant['difference'] < 0).sum())} favour oversampling at Holm p < 0.05"
            + (f" ({listed})" if len(significant) else "") + f". Differences by family — {spans}"
            + (f"; the smallest other Holm p is {others.min():.2f}." if len(others) else "."))


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
    return "\n".join(lines) + "\n\n" + low_data_reading(table)


def _signed_span(values: pd.Series) -> str:
    """``+a to +b`` (signed, 3 decimals), or the one value when all are equal."""
    return f"{values.min():+.3f}" if values.min() == values.max() else f"{values.min():+.3f} to {values.max():+.3f}"


def low_data_reading(table: pd.DataFrame) -> str:
    """What the low-data table shows against real only, counted from its rows (descriptive: no test was fixed
    in advance for it, and its ranges are over draws, not CIs)."""
    cells = table.groupby(["code", "family", "k_label", "variant"], sort=False)["auroc"].agg(["mean", "min", "max"])
    cells = cells.round(3).unstack("variant")  # differences of the numbers the table shows
    if "gan" not in cells["mean"] or "real" not in cells["mean"]:
        return "(no GAN-augmented rows to read against real only)"
    both = cells[cells["mean"]["gan"].notna() & cells["mean"]["real"].notna()]
    gan = both["mean"]["gan"] - both["mean"]["real"]
    by_family = "; ".join(f"{family} {_signed_span(d)}" for family, d in gan.groupby(level="family", sort=False))
    small = both[both.index.get_level_values("k_label") != "all"]
    ks = ", ".join(dict.fromkeys(small.index.get_level_values("k_label")))
    below = int((small["max"]["gan"] < small["min"]["real"]).sum())
    above = int((small["min"]["gan"] > small["max"]["real"]).sum())
    text = (f"Read from the table (descriptively: no comparison was fixed in advance for it, and its ranges are over "
            f"draws, not CIs): the GAN-augmented set's mean AUROC minus real only's is negative in {int((gan < 0).sum())} "
            f"and positive in {int((gan > 0).sum())} of {len(gan)} code × family × k cells ({by_family}); at k = "
            f"{ks}, the GAN's range over draws lies wholly below real only's in {below} and wholly above it in "
            f"{above} of {len(small)} cells.")
    if "oversample" in cells["mean"]:
        over = (cells["mean"]["oversample"] - cells["mean"]["real"]).dropna()
        text += f" Oversampling the same k moves the mean by {_signed_span(over)}."
    return text


def low_data_primary_markdown(rows: Sequence[dict]) -> str:
    """The low-data study's pre-specified primary comparisons (:func:`rare_gan.lowdata.primary_comparison`), one
    line per family × code × k, and how many survive Holm's correction on which side."""
    table = pd.DataFrame(rows)
    if table.empty:
        return "(not run)"
    from rare_gan.lowdata import k_order

    first_seen = lambda column: table[column].map(list(dict.fromkeys(table[column])).index)  # noqa: E731
    table = table.assign(k_label=table["k_label"].astype(str), family_order=first_seen("family"),
                         code_order=first_seen("code"))
    table = table.assign(order=table["k_label"].map(k_order)).sort_values(["family_order", "code_order", "order"])
    lines = ["| family | code | k | draws | GAN − oversampling, test AUROC [95% CI] | p | Holm p |",
             "|" + "|".join(["---"] * 7) + "|"]
    for r in table.itertuples():
        lines.append(f"| {r.family} | {r.code} | {r.k_label} | {r.draws} | {r.difference:+.3f} "
                     f"[{r.diff_ci_low:+.3f}, {r.diff_ci_high:+.3f}] | {r.p_value:.3f} | {r.p_holm:.3f} |")
    parts = []
    for family, g in table.groupby("family", sort=False):
        significant = g[g["p_holm"] < 0.05]
        parts.append(f"{family}: {len(significant)} of {len(g)} below 0.05 after Holm (over its {len(g)} code × k) — "
                     f"{int((significant['difference'] > 0).sum())} for the GAN, "
                     f"{int((significant['difference'] < 0).sum())} for oversampling; the point difference favours "
                     f"the GAN in {int((g['difference'] > 0).sum())} of {len(g)}")
    return "\n".join(lines) + "\n\nRead from the table: " + "; ".join(parts) + "."


def low_data_realism_markdown(rows: Sequence[dict], data: dict, study: str = "low_data") -> str:
    """How realistic the low-data study's GANs are (strong C2ST against every real training positive of the code)
    per k, beside the realism table's default recipe, and whether the regenerated ECGs are those of the study's
    rows in section ``study`` of ``data``."""
    table = pd.DataFrame(rows)
    if table.empty:
        return "(not run)"
    from rare_gan.features import group_of

    lines = ["| code | k | GANs (draws) | strong C2ST, mean (range) | null SD | ECGs per class | group of the most "
             "separating feature (runs) |", "|" + "|".join(["---"] * 7) + "|"]
    from rare_gan.lowdata import k_order

    table["k_label"] = table["k_label"].astype(str)
    codes = list(dict.fromkeys(table["code"]))
    table = table.assign(code_order=table["code"].map(codes.index), k_order=table["k_label"].map(k_order))
    table = table.sort_values(["code_order", "k_order", "draw"])
    for (code, k), g in table.groupby(["code", "k_label"], sort=False):
        top = g["c2st_top_feature"].map(group_of).value_counts()
        lines.append(f"| {code} | {k} | {len(g)} | {_fmt(g['c2st_auroc'].mean(), g['c2st_auroc'].min(), g['c2st_auroc'].max())} "
                     f"| {g['c2st_null_sd'].mean():.3f} | {int(g['c2st_n_per_class'].min())} | "
                     f"`{top.index[0]}` ({top.iloc[0]} of {len(g)}) |")
    default = pd.DataFrame([r for r in data.get("realism", {}).get("rows", [])
                            if r["recipe"] == "beat" and r["configuration"] == "Initial" and on_first_pretraining(r)])
    text = "\n".join(lines)
    if not default.empty:
        shown = default[default["code"].isin(set(table["code"]))].groupby("code", sort=False)["c2st_auroc"]
        text += ("\n\nFor comparison, the realism table's `beat` Initial (the full pretraining, every training positive, "
                 f"{shown.size().iloc[0]} GAN seeds): " + "; ".join(f"{code} {_fmt(v.mean(), v.min(), v.max())}"
                                                                   for code, v in shown) + ".")
    study = pd.DataFrame(data.get(study, {}).get("rows", []))
    if not study.empty:
        made = study.drop_duplicates(["code", "k_label", "draw"]).set_index(["code", "k_label", "draw"])["n_synthetic"]
        keys = list(zip(table["code"], table["k_label"], table["draw"]))
        same = sum(made.get(key) == n for key, n in zip(keys, table["n_usable"]))
        text += (f" Regenerated with the study's seed, {same} of {len(table)} GANs give exactly as many usable ECGs as "
                 "the study's rows record (`n_synthetic`).")
    return text


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
    lines += _earlier_trunk_lines(all_rows, rows)
    lines += _unseen_head_lines(all_rows)
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


def _earlier_trunk_lines(rows: Sequence[dict], current: Sequence[dict]) -> list[str]:
    """The budget rows of the earlier trunk (12 leads alone, head C 0.1) beside the current trunk's with that head:
    what the rhythm channels did to the inner validation."""
    earlier = {r["epochs"]: r["macro_auroc_common"] for r in rows
               if not r.get("code") and not r.get("cnn_inputs") and r.get("macro_auroc_common") is not None}
    key = f"{FORMER_HEAD_C:g}"
    now = {r["epochs"]: r["macro_auroc_common_by_c"][key] for r in current
           if key in (r.get("macro_auroc_common_by_c") or {}) and r["epochs"] in earlier}
    if not now or current[0].get("cnn_inputs") != CNN_INPUTS:
        return []
    epochs = sorted(now)
    return [f"\nThe rhythm channels in the same inner validation: macro AUROC at {' / '.join(map(str, epochs))} epochs "
            f"with head C {key}, the 12 leads alone (the earlier trunk) "
            + " / ".join(_fmt(earlier[e]) for e in epochs) + ", with the rhythm channels "
            + " / ".join(_fmt(now[e]) for e in epochs) + "."]


def _unseen_head_lines(rows: Sequence[dict]) -> list[str]:
    """The head's strength for codes the trunk never learnt (``cnn_budget --cnn-unseen-head``), by C."""
    from rare_gan import utility

    unseen = [r for r in rows if r.get("cnn_inputs") == CNN_UNSEEN_HEAD]
    if not unseen:
        return []
    r = unseen[-1]
    cs = list(r["macro_auroc_common_by_c"])
    return [f"\nThe low-data study's trunk never saw the codes it is tested on, so its head's strength is chosen the "
            f"same way for that case: a trunk on folds 1–7 ({r['epochs']} epochs) for which every other common code "
            f"({', '.join(r['unseen_codes'])}) is not a target, and the fold-8 macro AUROC over those {r['n_common_codes']} "
            "codes by head C:\n", "| " + " | ".join(f"head C {c}" for c in cs) + " | chosen |",
            "|" + "---|" * (len(cs) + 1),
            "| " + " | ".join(f"**{_fmt(v)}**" if c == f"{r['head_c']:g}" else _fmt(v)
                              for c, v in r["macro_auroc_common_by_c"].items()) + f" | C {r['head_c']:g} |",
            f"\n(`rare_gan.utility.CNN_HEAD_C_UNSEEN`, which the low-data study uses, is {utility.CNN_HEAD_C_UNSEEN:g}.)"]


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


TARGET_CODES = ("PAC", "PVC", "CLBBB", "AFIB")
"""The codes the realism and utility targets are set for."""


def targets_markdown(data: dict) -> str:
    """The issues' targets beside what ``results.json`` (and the benchmark) measured, each with its verdict.

    Realism: the default recipe's Initial runs on pretraining 0, mean (range) over GAN seeds, as in the realism
    table; the lowest strong C2ST of any candidate with ≥ 3 GAN seeds on one pretraining is shown beside it, named,
    and was picked after seeing the results. Utility: real-only test AUROCs of the current CNN trunk's call."""
    from rare_gan.recipes import DEFAULT_RECIPE

    lines = ["| target | " + " | ".join(TARGET_CODES) + " | met |", "|" + "|".join(["---"] * (len(TARGET_CODES) + 2)) + "|"]

    def add(name, cells, passed, applies=TARGET_CODES):
        shown = [cells.get(c, "—") if c in applies else "" for c in TARGET_CODES]
        judged = [passed[c] for c in applies if c in passed]
        verdict = "—" if not judged else "yes" if all(judged) else f"no ({sum(judged)} of {len(judged)})"
        lines.append(f"| {name} | " + " | ".join(shown) + f" | {verdict} |")

    real = pd.DataFrame(data.get("realism", {}).get("rows", []))
    if not real.empty:
        real = real[real["recipe"] != "real"].assign(pretraining=lambda t: pretraining_groups(t))
        default = real[(real["recipe"] == DEFAULT_RECIPE) & (real["configuration"] == "Initial")
                       & (real["pretraining"] == "0")].groupby("code")
        seeds = default.size()

        def measured(key, ok, digits=3):
            """Per code: mean (range) over GAN seeds of ``key`` (absolute values of a difference) and ``ok(mean)``."""
            cells, passed = {}, {}
            for code, g in default:
                values = g[key].abs() if key.endswith("diff_ms") else g[key]
                cells[code] = _fmt(values.mean(), values.min(), values.max(), digits)
                passed[code] = bool(ok(values.mean()))
            return cells, passed

        at_most = lambda bound: (lambda v: v <= bound)  # noqa: E731
        add(f"strong C2ST ≤ 0.80, `{DEFAULT_RECIPE}` Initial ({'/'.join(map(str, sorted(set(seeds))))} GAN seeds)",
            *measured("c2st_auroc", at_most(0.80)))
        groups = real.groupby(["code", "recipe", "configuration", "pretraining"])["c2st_auroc"].agg(["mean", "min", "max",
                                                                                                      "size"])
        best = groups[groups["size"] >= 3].reset_index().sort_values("mean").groupby("code").head(1).set_index("code")
        add("strong C2ST ≤ 0.80, lowest candidate (≥ 3 GAN seeds; picked after the fact)",
            {c: f"{_fmt(r['mean'], r['min'], r['max'])} `{r['recipe']}`" for c, r in best.iterrows()},
            {c: bool(r["mean"] <= 0.80) for c, r in best.iterrows()})
        add("TSTR AUROC ≥ 0.90 (PAC, PVC)", *measured("tstr_auroc", lambda v: v >= 0.90), applies=("PAC", "PVC"))
        add("W1 heart rate ≤ 5 bpm", *measured("w1_hr_bpm", at_most(5.0), 1))
        add("W1 RR-SD ≤ 40 ms", *measured("w1_rr_sd_ms", at_most(40.0), 0))
        add("\\|median QRS difference\\| ≤ 20 ms", *measured("qrs_median_diff_ms", at_most(20.0), 0))
        add("\\|median PR difference\\| ≤ 20 ms", *measured("pr_median_diff_ms", at_most(20.0), 0))
    budget = pd.DataFrame([r for r in data.get("cnn_budget", {}).get("rows", []) if "code" in r])
    if not budget.empty and "cnn_inputs" in budget:
        tests = budget[budget["cnn_inputs"] == CNN_INPUTS].set_index(["code", "family"])["auroc"]
        features = {c: tests[c, "features"] for c in TARGET_CODES if (c, "features") in tests}
        add("real-only feature model AUROC ≥ 0.95", {c: f"{v:.3f}" for c, v in features.items()},
            {c: bool(v >= 0.95) for c, v in features.items()})
        one_trunk = budget["trunk_seeds"].map(lambda s: isinstance(s, list) and len(s) == 1) \
            if "trunk_seeds" in budget else pd.Series(False, index=budget.index)  # as _trunk_seed_lines tells them
        trunks = budget[one_trunk & (budget["family"] == "cnn")]
        worst = {c: (trunks[trunks["code"] == c]["auroc"] - features[c]).min() for c in features
                 if (trunks["code"] == c).any()}
        add("CNN within 0.05 of it (worst trunk seed, CNN − features)", {c: f"{v:+.3f}" for c, v in worst.items()},
            {c: bool(v >= -0.05) for c, v in worst.items()})
    util = pd.DataFrame(data.get("utility", {}).get("rows", []))
    if not util.empty and "p_holm" in util:  # the primary comparison of the current trunk's call, default recipe
        primary = _utility_calls(util)[0][1]
        primary = primary[(primary["variant"] == "Initial:gan@0.25") & primary["p_holm"].notna()]
        cells, passed = {}, {}
        for code, g in primary.groupby("code", sort=False):
            by = {r["family"]: r for _, r in g.iterrows()}
            cells[code] = " / ".join(f"{by[f]['difference']:+.3f}{'*' if by[f]['p_holm'] < 0.05 else ''}"
                                     if f in by else "—" for f in ("features", "cnn"))
            passed[code] = any(r["difference"] > 0 and r["p_holm"] < 0.05 for r in by.values())
        cnn = primary[primary["family"] == "cnn"]
        add(f"GAN augmentation (`{DEFAULT_RECIPE}` Initial) better than oversampling at 0.25: AUROC difference, "
            f"features / CNN{f' (head C {head_c_of(cnn)})' if len(cnn) else ''}; * Holm p < 0.05", cells, passed)
    bench = data.get("performance", {}).get("rows")
    if bench and DEFAULT_RECIPE in bench.get("recipes", {}):
        b = bench["recipes"][DEFAULT_RECIPE]
        deepfake = bench.get("generation_speedup_vs", {}).get("deepfake_ecg")
        lines += ["", f"Speed ({bench['machine']['cpu_model']}, {bench['machine']['cpu_count']} cores, "
                      f"`{DEFAULT_RECIPE}` recipe, one benchmark run):", "", "| target | measured | met |",
                  "|---|---|---|"]
        for name, value, passed in (
                ("training ≥ 0.6 × the fp32 matmul rate", f"{b['training_fraction_of_matmul_rate']['float32']:.2f}",
                 b["training_fraction_of_matmul_rate"]["float32"] >= 0.6),
                ("bf16 training ≥ 1.6 × fp32", f"{b['bf16_speedup']:.2f}×", b["bf16_speedup"] >= 1.6),
                ("generation ≥ 5,000 ECGs/s", f"{b['generation_ecgs_per_s']:,.0f} fp32, "
                 f"{b['generation_ecgs_per_s_bf16']:,.0f} bf16", max(b["generation_ecgs_per_s"],
                                                                      b["generation_ecgs_per_s_bf16"]) >= 5000),
                ("generation ≥ 20 × DeepFake-ECG", f"{deepfake:.1f}×" if deepfake else "not timed",
                 bool(deepfake and deepfake >= 20))):
            lines.append(f"| {name} | {value} | {'yes' if passed else 'no'} |")
    return "\n".join(lines)


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


def evaluation_timing_markdown(timing: dict) -> str:
    """Notebook 05's wall time for one code (``python -m rare_gan.bench --evaluation``), by section."""
    ratios = ", ".join(f"{r:g}" for r in timing["ratios"])
    return (f"On {timing['cpu_model']} ({timing['cpu_count']} cores), with {timing['n_runs']} stand-in runs of "
            f"{timing['n_generated']:,} ECGs each and warm feature and control caches, notebook 05 ({timing['profile']} "
            f"profile, positive fraction {ratios}, {len(timing['classifier_seeds'])} classifier seeds) took "
            f"**{timing['total_s']:.0f} s** for {timing['code']}: realism {timing['realism_s']:.0f} s, utility "
            f"{timing['utility_s']:.0f} s, plots {timing['plots_s']:.0f} s — "
            + ("within" if timing["total_s"] <= 300 else "over") + " the 5 minutes aimed at.")


def figures_markdown(folder: str | Path, readme: Path) -> str:
    """Image links to the example grids written by ``python -m rare_gan.study figures``."""
    import os

    paths = sorted(Path(folder).glob("examples_*.png"))
    return "\n\n".join(f"![{p.stem.split('_', 1)[1]}: 4 real vs 4 synthetic ECGs]"
                         f"({Path(os.path.relpath(p, readme.parent)).as_posix()})" for p in paths) or "(not run)"


def _rows_only(render):
    """A section renderer that reads its own rows only, called as every renderer is: ``render(rows, data)``."""
    return lambda rows, data: render(rows)


SECTIONS = {"realism": _rows_only(realism_markdown), "utility": _rows_only(utility_markdown),
            "low_data": _rows_only(low_data_markdown), "cnn_budget": _rows_only(cnn_budget_markdown),
            "ablation": lambda rows, data: ablation_markdown(rows, data.get("realism", {}).get("rows", [])),
            "claims": lambda rows, data: claims_markdown(data), "performance": _rows_only(performance_markdown),
            "timing": _rows_only(timing_markdown), "targets": lambda rows, data: targets_markdown(data),
            "evaluation_timing": _rows_only(evaluation_timing_markdown),
            "low_data_realism": low_data_realism_markdown,
            "low_data_full": _rows_only(low_data_markdown),
            "low_data_full_primary": _rows_only(low_data_primary_markdown),
            "low_data_full_realism": lambda rows, data: low_data_realism_markdown(rows, data, study="low_data_full")}
"""README block name -> renderer ``(rows, data) -> markdown``; ``low_data_full*`` are the low-data study with the
full held-out pretraining, whose sections are copied from the study's own results JSON."""


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
                  figures: str | Path | None = None, evaluation: str | Path | None = None) -> Path:
    """Replace the text between ``<!-- results:<section> -->`` and ``<!-- /results:<section> -->`` in the README
    by the section rendered from ``results`` (and ``bench``, a benchmark JSON; ``evaluation``, notebook 05's timing
    from ``python -m rare_gan.bench --evaluation``): numbers are never typed by hand."""
    import re

    readme, data = Path(readme), json.loads(Path(results).read_text())
    sources = {}
    if bench is not None and Path(bench).is_file():
        rows = json.loads(Path(bench).read_text())
        flags = (" --quick" if rows.get("quick") else "") + (" --ablations" if "step_ablations_samples_per_s" in rows else "")
        data["performance"] = {"command": f"python -m rare_gan.bench{flags}", "rows": rows}
        sources["performance"] = bench
    if evaluation is not None and Path(evaluation).is_file():
        timing = json.loads(Path(evaluation).read_text())
        data["evaluation_timing"] = {"command": timing["command"], "rows": timing}
        sources["evaluation_timing"] = evaluation
    text = readme.read_text()
    data.setdefault("claims", {"command": "python -m rare_gan.study readme (from the realism and utility rows)",
                               "rows": []})
    data["targets"] = {"command": "python -m rare_gan.study readme (from the sections below and the benchmark)",
                       "rows": []}
    if "realism" in data:
        data["timing"] = {"command": "the realism section's commands", "rows": data["realism"]["rows"]}
    for section, render in SECTIONS.items():
        if section not in data:
            continue
        rows = data[section]["rows"]
        table = render(rows, data)
        source = sources.get(section, results)
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
