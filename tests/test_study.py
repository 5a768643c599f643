"""The reference study's bookkeeping: results.json merging and the README blocks rendered from it."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from rare_gan import evaluate, lowdata, readme, study


def _run_row(code="PAC", recipe="beat", configuration="Initial", seed=0, c2st=0.9, **extra):
    return {"code": code, "recipe": recipe, "configuration": configuration, "gan_seed": seed, "pretrain_seed": 0,
            "c2st_auroc": c2st, "c2st_null_sd": 0.01, "c2st_cnn_auroc": 0.6, "tstr_auroc": 0.91,
            "real_auroc_same_classifier": 0.97, "w1_hr_bpm": 2.0, "w1_rr_sd_ms": 11.0, "qrs_median_diff_ms": 0.0,
            "pr_median_diff_ms": 5.0, "near_copy_fraction": 0.02, "nn_distance_ratio": 0.99, "hf_ratio_median": 0.1,
            "hf_ratio_median_real": 0.1, "pretrain_seconds": 1800.0, "train_seconds": 150.0 + seed, **extra}


def _rows():
    control = {"code": "PAC", "recipe": "real", "configuration": "control", "c2st_real_control": 0.61,
               "c2st_common_control": 0.54, "c2st_jitter_control": 0.55, "jitter_near_copy_fraction": 1.0}
    return [control, *(_run_row(seed=s, c2st=0.88 + 0.01 * s) for s in range(3)),
            _run_row(configuration="Modified", c2st=0.95), _run_row(recipe="research", c2st=1.0, pretrain_seconds=0.0,
                                                                    train_seconds=400.0, pretrain_seed=None)]


def test_write_results_replaces_recomputed_rows_and_keeps_the_rest(tmp_path):
    path = tmp_path / "results.json"
    study.write_results(path, "realism", _rows(), "python -m rare_gan.study realism --seeds 0")
    study.write_results(path, "utility", [{"code": "PAC", "family": "features", "variant": "real", "auroc": 0.96}],
                        "python -m rare_gan.study utility")
    study.write_results(path, "realism", [_run_row(seed=1, c2st=0.5)], "python -m rare_gan.study realism --seeds 1")
    data = json.loads(path.read_text())
    rows = data["realism"]["rows"]
    assert len(rows) == len(_rows())  # seed 1 replaced, nothing duplicated
    assert [r["c2st_auroc"] for r in rows if r.get("gan_seed") == 1 and r["configuration"] == "Initial"] == [0.5]
    assert data["realism"]["commands"] == ["python -m rare_gan.study realism --seeds 0",
                                           "python -m rare_gan.study realism --seeds 1"]
    assert data["utility"]["rows"][0]["auroc"] == 0.96
    study.write_results(path, "realism", [_run_row(seed=1, c2st=0.7, pretrain_seed=1)], "python -m rare_gan.study "
                        "realism --seeds 1 --pretrain-seeds 1")
    rows = json.loads(path.read_text())["realism"]["rows"]
    assert sorted((r["pretrain_seed"], r["c2st_auroc"]) for r in rows if r.get("gan_seed") == 1) == [(0, 0.5), (1, 0.7)]


def test_realism_table_gives_mean_and_range_over_seeds_per_pretraining():
    text = readme.realism_markdown(_rows() + [_run_row(seed=1, c2st=0.7, pretrain_seed=1)])
    lines = [l for l in text.splitlines() if l.startswith("| PAC | beat | Initial |")]
    assert "| 3 on pretraining 0 | 0.890 (0.880–0.900) |" in lines[0]
    assert "| 1 on pretraining 1 | 0.700 |" in lines[1]
    assert "| PAC | research | Initial | 1 | 1.000 |" in text
    assert "| PAC | 0.610 | 0.540 | 0.550 | 100% |" in text


def test_realism_table_puts_the_default_recipe_first_then_research_then_candidates():
    rows = [_run_row(recipe="cand", c2st=0.8), _run_row(code="PVC", recipe="cand", c2st=0.8),
            _run_row(recipe="beat/conditional", configuration="pretrained only")] + _rows()
    runs = readme.realism_markdown(rows).split("Controls on real data")[0]
    order = [tuple(c.strip() for c in line.split("|")[1:4]) for line in runs.splitlines()
             if line.startswith("| PAC |") or line.startswith("| PVC |")]
    assert order == [("PAC", "beat", "Initial"), ("PAC", "beat", "Modified"), ("PAC", "beat/conditional",
                     "pretrained only"), ("PAC", "research", "Initial"), ("PAC", "cand", "Initial"),
                     ("PVC", "cand", "Initial")]


def test_readme_blocks_are_rendered_from_the_results(tmp_path):
    results = tmp_path / "results.json"
    study.write_results(results, "realism", _rows() + [_run_row(seed=1, c2st=0.7, pretrain_seed=1)],
                        "python -m rare_gan.study realism")
    figures = tmp_path / "figures"
    figures.mkdir()
    (figures / "examples_PAC.png").write_bytes(b"png")
    readme_md = tmp_path / "README.md"
    readme_md.write_text("intro\n<!-- results:realism -->\nold\n<!-- /results:realism -->\n"
                      "<!-- figures -->\n<!-- /figures -->\n<!-- results:timing -->\n<!-- /results:timing -->\n"
                      "<!-- results:claims -->\n<!-- /results:claims -->\nend\n")
    readme.update_readme(readme_md, results, figures=figures)
    text = readme_md.read_text()
    assert "\nold\n" not in text and text.startswith("intro") and text.endswith("end\n")
    assert "0.890 (0.880–0.900)" in text and "command: `python -m rare_gan.study realism`" in text
    assert "![PAC: 4 real vs 4 synthetic ECGs](figures/examples_PAC.png)" in text
    assert "per data set and seed, 30 min (seed 0) / 30 min (seed 1) (cached)" in text and "(median of 5 runs" in text
    assert "Initial 3 / Modified 1 GAN seed(s)): strong C2ST Initial 0.890 vs Modified 0.950 — Initial closer" in text
    assert "Modified is not smoother than Initial (by more than 10%)" in text  # equal power above 15 Hz
    assert "command: `the realism section's commands`" in text  # the timing block points there
    readme.update_readme(readme_md, results, figures=figures)
    assert readme_md.read_text() == text  # idempotent
    study.write_results(results, "realism", _rows(), "python -m rare_gan.study realism --seeds 2")
    readme.update_readme(readme_md, results, figures=figures)
    text = readme_md.read_text()  # several commands: counted, then listed one per line in a folded block
    assert "written by the 2 commands below._" in text and "command: `python -m rare_gan.study realism`" not in text
    assert "```bash\npython -m rare_gan.study realism\npython -m rare_gan.study realism --seeds 2\n```" in text


def test_the_committed_readme_is_what_the_reference_results_render(tmp_path, monkeypatch):
    """No number in the README's results blocks drifts from outputs/reference: rendering them again changes nothing
    (after a study: ``python -m rare_gan.study readme --results outputs/reference/results.json``, whose
    ``--bench`` and ``--evaluation`` default to the benchmark JSONs in outputs/reference)."""
    root = Path(__file__).resolve().parents[1]
    copy = tmp_path / "README.md"
    copy.write_text((root / "README.md").read_text())
    monkeypatch.chdir(root)  # the blocks name their sources relative to the repository
    readme.update_readme(copy, "outputs/reference/results.json", "outputs/reference/bench.json",
                         evaluation="outputs/reference/bench_evaluation.json")
    assert copy.read_text() == (root / "README.md").read_text()


def test_targets_table_judges_each_target_from_the_rows():
    """Mean over the default recipe's GAN seeds against each bound; the lowest 3-seed candidate named beside it;
    the CNN judged on its worst trunk seed; the speed targets from the benchmark."""
    rows = _rows() + [_run_row(recipe="cand", seed=s, c2st=0.75, w1_hr_bpm=6.0) for s in range(3)]
    rows += [_run_row(recipe="lucky", seed=0, c2st=0.55)]  # one seed: not a candidate's result
    rows += [_run_row(code="PVC", seed=s, c2st=0.79 + 0.02 * s, tstr_auroc=0.89, pr_median_diff_ms=-30.0) for s in range(3)]
    budget = [{"code": c, "family": f, "cnn_inputs": study.CNN_INPUTS, "auroc": a}
              for c, f, a in (("PAC", "features", 0.96), ("PVC", "features", 0.94))]
    budget += [{"code": "PAC", "family": "cnn", "cnn_inputs": study.CNN_TRUNK_SEED.format(seed=s), "auroc": a,
                "trunk_seeds": [s]}
               for s, a in enumerate((0.95, 0.90))]
    bench = {"machine": {"cpu_model": "X", "cpu_count": 2}, "generation_speedup_vs": {"deepfake_ecg": 25.0},
             "recipes": {"beat": {"training_fraction_of_matmul_rate": {"float32": 0.61}, "bf16_speedup": 1.2,
                                  "generation_ecgs_per_s": 2000.0, "generation_ecgs_per_s_bf16": 5100.0}}}
    primary = [{"code": "PAC", "family": f, "variant": "Initial:gan@0.25", "difference": d, "p_holm": p,
                "cnn_inputs": study.CNN_INPUTS} for f, d, p in (("features", -0.02, 0.01), ("cnn", 0.03, 0.2))]
    primary += [{"code": "PVC", "family": "features", "variant": "Initial:gan@0.25", "difference": 0.01, "p_holm": 0.04,
                 "cnn_inputs": study.CNN_INPUTS}]
    text = readme.targets_markdown({"realism": {"rows": rows}, "cnn_budget": {"rows": budget},
                                    "performance": {"rows": bench}, "utility": {"rows": primary}})
    line = {l.split(" | ")[0].lstrip("| "): l for l in text.splitlines() if l.startswith("| ")}
    assert line["strong C2ST ≤ 0.80, `beat` Initial (3 GAN seeds)"] == \
        "| strong C2ST ≤ 0.80, `beat` Initial (3 GAN seeds) | 0.890 (0.880–0.900) | 0.810 (0.790–0.830) | — | — | no (0 of 2) |"
    lowest = line["strong C2ST ≤ 0.80, lowest candidate (≥ 3 GAN seeds; picked after the fact)"]
    assert "0.750 `cand`" in lowest and "lucky" not in lowest and lowest.endswith("| no (1 of 2) |")
    assert line["TSTR AUROC ≥ 0.90 (PAC, PVC)"].endswith("| 0.910 | 0.890 |  |  | no (1 of 2) |")
    assert line["\\|median PR difference\\| ≤ 20 ms"].endswith("| 5 | 30 | — | — | no (1 of 2) |")  # |−30| > 20
    assert line["real-only feature model AUROC ≥ 0.95"].endswith("| 0.960 | 0.940 | — | — | no (1 of 2) |")
    assert line["CNN within 0.05 of it (worst trunk seed, CNN − features)"].endswith("| -0.060 | — | — | — | no (0 of 1) |")
    gan = next(v for k, v in line.items() if k.startswith("GAN augmentation"))  # better only where significant
    assert "features / CNN (head C 0.1); * Holm p < 0.05" in gan  # rows without head_c: the former head
    assert gan.endswith("| -0.020* / +0.030 | +0.010* / — | — | — | no (1 of 2) |")
    assert line["training ≥ 0.6 × the fp32 matmul rate"].endswith("| 0.61 | yes |")
    assert line["bf16 training ≥ 1.6 × fp32"].endswith("| no |")
    assert line["generation ≥ 5,000 ECGs/s"].endswith("| 2,000 fp32, 5,100 bf16 | yes |")
    assert line["generation ≥ 20 × DeepFake-ECG"].endswith("| 25.0× | yes |")


def test_performance_table_is_rendered_from_the_benchmark():
    bench = json.loads((Path(__file__).resolve().parents[1] / "outputs" / "reference" / "bench.json").read_text())
    beat = bench["recipes"]["beat"]
    beat.pop("generation_ecgs_per_s_bf16", None)
    row = next(line for line in readme.performance_markdown(bench).splitlines() if line.startswith("| beat |"))
    assert row.endswith(f"| {beat['generation_ecgs_per_s']:.0f} | not measured |")
    beat["generation_ecgs_per_s_bf16"] = 3890.4
    row = next(line for line in readme.performance_markdown(bench).splitlines() if line.startswith("| beat |"))
    assert row.endswith(f"| {beat['generation_ecgs_per_s']:.0f} | 3890 |") and row.count("|") == 10
    bench["machine"].update(cpu_model="AMD EPYC", cpu_amx_bf16=False, cpu_avx512_bf16=True, bf16_matrix_units=True)
    assert "in one run (AMD EPYC, 2 cores, TensorFlow" in readme.performance_markdown(bench)
    assert "bf16 matrix units: True (AVX-512-BF16), GPUs: none" in readme.performance_markdown(bench)


def test_cnn_budget_table_names_the_budget_the_rule_chooses(tmp_path):
    rows = [{"epochs": e, "trunk_seconds": 10.0 * e, "macro_auroc_common": a, "n_common_codes": 22, "min_positives": 5,
             "codes": {"PAC": {"auroc": p, "n_check_positives": 6}}}
            for e, a, p in ((30, 0.822, 0.558), (200, 0.848, None), (100, 0.844, 0.608))]
    rows += [{"code": "PAC", "family": family, "variant": "real", "epochs": epochs, "auroc": auroc,
              "auroc_ci_low": auroc - 0.05, "auroc_ci_high": auroc + 0.02, "n_test_positives": 10,
              "classifier_seeds": [0, 1, 2]} for family, epochs, auroc in (("features", None, 0.964), ("cnn", 100, 0.75))]
    results = tmp_path / "results.json"
    study.write_results(results, "cnn_budget", rows, "python -m rare_gan.study cnn_budget")
    assert len(json.loads(results.read_text())["cnn_budget"]["rows"]) == 5  # one row per budget, none merged away
    readme_md = tmp_path / "README.md"
    readme_md.write_text("<!-- results:cnn_budget -->\n<!-- /results:cnn_budget -->\n")
    readme.update_readme(readme_md, results)
    lines = readme_md.read_text().splitlines()
    assert "| 30 | 300 | 0.822 | 0.558 |" in lines and "| 200 | 2000 | 0.848 | — |" in lines
    assert lines.index("| 30 | 300 | 0.822 | 0.558 |") < lines.index("| 100 | 1000 | 0.844 | 0.608 |")
    assert "**100 epochs**" in readme_md.read_text() and "PAC (6 pos.)" in readme_md.read_text()
    assert "| PAC | 10 | 0.964 [0.914, 0.984] | 0.750 [0.700, 0.770] | -0.214 | 0.956 |" in lines
    assert "| features | cnn (head C 0.1) |" in readme_md.read_text()  # rows from before the head's rule: its old C
    by_c = {"0.003": 0.85, "0.1": 0.844}  # rows of the study that also chose the head: one column per C
    headed = [r | {"head_c": 0.003, "macro_auroc_common_by_c": by_c} if "code" not in r else
              r | {"head_c": 0.003 if r["family"] == "cnn" else None} for r in rows]
    table = readme.cnn_budget_markdown(headed).splitlines()
    assert "| 100 | 1000 | 0.850 | 0.844 | **0.844** (C 0.003) | 0.608 |" in table
    assert "| pretraining epochs | trunk seconds | head C 0.003 | head C 0.1 | macro AUROC" in table[0]
    assert any("**C 0.003** (`rare_gan.utility.CNN_HEAD_C` is" in line for line in table)
    assert "| features | cnn (head C 0.003) |" in "\n".join(table)


def test_cnn_budget_table_sets_the_earlier_trunk_beside_the_current_one_at_the_same_head():
    """The line under the budget table: the leads-alone trunk's macro AUROC per budget beside the current trunk's
    with the head C those rows had (0.1); budgets only one trunk has are left out."""
    def budget(epochs, auroc, **extra):
        return {"epochs": epochs, "trunk_seconds": 1.0, "macro_auroc_common": auroc, "n_common_codes": 22,
                "min_positives": 5, "codes": {"PAC": {"auroc": 0.9, "n_check_positives": 6}}, **extra}
    earlier = [budget(30, 0.822), budget(100, 0.844), budget(300, 0.85)]
    current = [budget(e, a, cnn_inputs=study.CNN_INPUTS, head_c=0.003,
                      macro_auroc_common_by_c={"0.003": a, "0.1": a - 0.02}) for e, a in ((30, 0.89), (100, 0.9))]
    text = readme.cnn_budget_markdown(earlier + current)
    assert ("The rhythm channels in the same inner validation: macro AUROC at 30 / 100 epochs with head C 0.1, the 12 "
            "leads alone (the earlier trunk) 0.822 / 0.844, with the rhythm channels 0.870 / 0.880.") in text
    assert "rhythm channels in the same" not in readme.cnn_budget_markdown(earlier)


def test_cnn_budget_study_runs_on_demo_and_tests_only_the_chosen_budget(demo_dir, tmp_path, monkeypatch, capsys):
    """Each budget's trunk sees folds 1–7 only and its heads are scored on fold 8; only the chosen budget
    is trained on folds 1–8 and tested; that trunk reads the 12 leads and the rhythm channels."""
    import functools

    import keras
    import numpy as np

    from rare_gan import data, utility

    seen = []
    original = utility.pretrained_cnn
    monkeypatch.setattr(utility, "pretrained_cnn", lambda task, *a, **k: seen.append(task.ecg_ids["train"]) or
                        original(task, *a, **k))
    monkeypatch.setattr(utility, "cnn_budget_rows", functools.partial(utility.cnn_budget_rows, min_positives=1,
                                                                      report=("AFIB", "NOPE")))
    rows = study.cnn_budget_study("demo", ["AFIB"], [1], tmp_path, seeds=(0,), n_boot=50)
    afib = evaluate.load_task("demo", "AFIB")
    selection = [r for r in rows if "code" not in r]
    tests = {r["family"]: r for r in rows if r.get("code") == "AFIB"}
    assert [r["epochs"] for r in selection] == [1] and set(tests) == {"features", "cnn"}
    folds = data.load_metadata(demo_dir).database["strat_fold"]
    assert len(seen) == 2 and folds.loc[seen[0]].between(1, 7).all() and folds.loc[seen[1]].between(1, 8).all()
    (row,) = selection
    assert row["n_fit_records"] == len(seen[0]) and row["n_fit_records"] + row["n_check_records"] == len(afib.y["train"])
    assert row["n_check_records"] == int((folds.loc[afib.ecg_ids["train"]] == 8).sum()) > 0
    assert 0 <= row["macro_auroc_common"] <= 1 and row["n_common_codes"] >= 1
    assert 0 <= row["codes"]["AFIB"]["auroc"] <= 1 and row["codes"]["NOPE"] == {"auroc": None, "n_check_positives": 0}
    by_c = row["macro_auroc_common_by_c"]  # the head's strength: every C of the grid scored, the best one taken
    assert list(by_c) == [f"{c:g}" for c in utility.CNN_HEAD_C_GRID]
    assert row["macro_auroc_common"] == max(by_c.values()) == by_c[f"{row['head_c']:g}"]
    assert row["head_c"] == min(c for c in utility.CNN_HEAD_C_GRID if by_c[f"{c:g}"] == max(by_c.values()))
    assert tests["cnn"]["head_c"] == row["head_c"] and tests["features"]["head_c"] is None
    assert tests["cnn"]["epochs"] == utility.choose_cnn_epochs(selection) and tests["features"]["epochs"] is None
    assert all(0 <= r["auroc_ci_low"] <= r["auroc"] <= r["auroc_ci_high"] <= 1 for r in tests.values())
    assert len(list((tmp_path / "classifiers").glob("cnn_trunk-*"))) == 2  # one on folds 1-7, the chosen on 1-8
    assert "CNN trunk: 100%" in capsys.readouterr().err  # a trunk's pretraining shows its progress
    # the trunk's seed: seed 0 is the trunk above (cached), seed 1 a new one; then their ensemble
    seeded = study.cnn_trunk_seed_rows("demo", ["AFIB"], 1, row["head_c"], (0, 1), tmp_path, n_boot=50)
    assert [r["cnn_inputs"] for r in seeded] == [study.CNN_TRUNK_SEED.format(seed=0),
                                                 study.CNN_TRUNK_SEED.format(seed=1),
                                                 study.CNN_TRUNK_ENSEMBLE.format(seeds="0,1")]
    assert [r["trunk_seeds"] for r in seeded] == [[0], [1], [0, 1]]
    assert seeded[0]["auroc"] == pytest.approx(tests["cnn"]["auroc"], abs=1e-12)
    assert len(list((tmp_path / "classifiers").glob("cnn_trunk-*"))) == 3
    table = readme.cnn_budget_markdown(rows + seeded)
    assert "| trunk seed 0 | trunk seed 1 | mean (range) | ensemble |" in table
    assert f"| AFIB | {seeded[0]['auroc']:.3f} | {seeded[1]['auroc']:.3f} |" in table

    chosen = original(afib, 0, cache_root=tmp_path / "classifiers", epochs=1)
    assert chosen in set((tmp_path / "classifiers").glob("cnn_trunk-*"))  # the trunk just tested, not a new one
    assert keras.saving.load_model(chosen / "trunk.keras", compile=False).input.shape[-1] == 12 + len(
        utility.RHYTHM_CHANNELS)
    mv = afib.positives_mv("train")[:3]
    embedded = utility.cnn_embedder(chosen, afib.scaler.scale_mv)(mv)
    assert embedded.shape == (3, 2 * utility.CNN_BLOCKS[-1]) and np.isfinite(embedded).all()
    np.testing.assert_allclose(utility.cnn_inputs(mv, afib.scaler.scale_mv, rhythm=False), mv / afib.scaler.scale_mv,
                               rtol=1e-6)
    np.testing.assert_array_equal(utility.cnn_inputs(mv, afib.scaler.scale_mv)[..., 12:], utility.rhythm_channels(mv))

    (other,) = study.cnn_budget_study("demo", ["AFIB"], [1], tmp_path, seeds=(0,), n_boot=50, unlabelled=True)
    assert other["family"] == "cnn" and other["cnn_inputs"] == study.CNN_UNLABELLED and other["epochs"] == 1
    assert other["head_c"] == utility.CNN_HEAD_C_UNSEEN  # the head chosen for codes a trunk never learnt
    trunks = [json.loads((t / "_COMPLETE").read_text()) for t in (tmp_path / "classifiers").glob("cnn_trunk-*")]
    (unlabelled,) = [t for t in trunks if t.get("unlabelled")]
    assert unlabelled["unlabelled"] == ["AFIB"] and "AFIB" not in unlabelled["codes"] and not unlabelled["excluded"]
    assert unlabelled["n_records"] == len(afib.y["train"])  # its records all stay
    table = readme.cnn_budget_markdown(rows + [other])
    assert "cnn, trunk without the code's label" in table and f"{other['auroc']:.3f} [" in table

    # the head for codes the trunk never learnt: every other common code is not a target of the folds-1-7 trunk,
    # and only those codes judge the head (the trunk asked for is swapped for the cached one: no training here)
    asked = []
    monkeypatch.setattr(utility, "pretrained_cnn", lambda task, *a, **k: asked.append(k["unlabelled"]) or
                        original(task, *a, **{**k, "unlabelled": ()}))
    (unseen,) = utility.cnn_budget_rows(afib, [1], cache_root=tmp_path / "classifiers", unseen=True)
    assert asked == [unseen["unseen_codes"]] and unseen["n_common_codes"] == row["n_common_codes"] // 2 >= 1
    assert unseen["macro_auroc_common"] == max(unseen["macro_auroc_common_by_c"].values())
    assert len(list((tmp_path / "classifiers").glob("cnn_trunk-*"))) == 4  # nothing trained
    text = readme.cnn_budget_markdown(rows + [unseen | {"cnn_inputs": study.CNN_UNSEEN_HEAD}])
    assert f"({', '.join(unseen['unseen_codes'])}) is not a target" in text and f"| C {unseen['head_c']:g} |" in text
    assert utility.unseen_codes(["PVC", "AFIB", "NORM", "CLBBB"]) == ["CLBBB", "PVC"]


def test_memorisation_rows_spell_out_the_near_copy_check_of_each_run(demo_dir, tmp_path):
    from rare_gan import evaluate, generate, metrics, train

    run_dir, _ = train.train_recipe("research", "AFIB", tmp_path / "run", profile="test", data_dir="demo", seed=1)
    realism = [{"code": "AFIB", "recipe": "research", "configuration": "Initial", "gan_seed": 1, "run_dir": str(run_dir)},
               {"code": "AFIB", "recipe": "research", "configuration": "Modified", "gan_seed": 0,
                "run_dir": str(tmp_path / "gone")},  # no run folder on this machine: skipped
               {"code": "AFIB", "recipe": "beat", "configuration": "Initial", "gan_seed": 0, "run_dir": str(run_dir)}]
    rows = study.memorisation_rows("demo", ["AFIB"], realism, ["research"], n_generate=16)
    assert len(rows) == 1 and rows[0]["gan_seed"] == 1 and rows[0]["n_synth"] == 16
    task = evaluate.load_task("demo", "AFIB")
    train_mv = task.positives_mv("train")
    _, want = metrics.memorisation_report(generate.generate(generate.load_run(run_dir), 16, seed=1), train_mv,
                                          task.unseen_positives_mv())
    assert rows[0]["n_train"] == len(train_mv) and rows[0]["n_test"] == len(task.unseen_positives_mv())
    for key in ("fraction_near_copy", "test_false_flag_rate", "mannwhitney_p"):
        assert rows[0][key] == want[key]
    assert 0 <= rows[0]["test_false_flag_rate"] <= 1


def _utility_row(family, variant, auroc, cnn_inputs=None, **extra):
    row = {"code": "PAC", "family": family, "variant": variant, "k": "all", "draw": 0, "n_test_positives": 10,
           "auroc": auroc, "auroc_ci_low": auroc - 0.05, "auroc_ci_high": auroc + 0.02, "accuracy": 0.97,
           "accuracy_ci_low": 0.96, "accuracy_ci_high": 0.98, **extra}
    return row | ({"cnn_inputs": cnn_inputs} if cnn_inputs else {})


def test_utility_rows_of_two_cnn_trunks_get_a_table_each_and_claims_use_the_research_runs(tmp_path):
    gan = {"difference": 0.01, "diff_ci_low": -0.02, "diff_ci_high": 0.03, "p_holm": 0.8}
    earlier = [_utility_row("cnn", "real", 0.75), _utility_row("cnn", "oversample@0.25", 0.70),
               _utility_row("cnn", "Initial:gan@0.25", 0.77, **gan),
               _utility_row("cnn", "research Initial:gan@0.25", 0.78, **gan)]
    current = [_utility_row("cnn", v, a, study.CNN_INPUTS) for v, a in (("real", 0.93), ("oversample@0.25", 0.92))]
    current.append(_utility_row("cnn", "agree Initial:gan@0.25", 0.99, study.CNN_INPUTS, **gan))
    results = tmp_path / "results.json"
    study.write_results(results, "utility", earlier, "python -m rare_gan.study utility")
    study.write_results(results, "utility", current, "python -m rare_gan.study utility --recipes agree")
    assert len(json.loads(results.read_text())["utility"]["rows"]) == 7  # the second call replaced nothing
    text = readme.utility_markdown(json.loads(results.read_text())["utility"]["rows"])
    first, second = text.split("\n\nWith ")
    assert first.startswith(f"With {readme.TRUNKS[study.CNN_INPUTS]}") and "GAN @0.25 (agree, Initial)" in first
    assert "| PAC | 10 | cnn | 0.930 [0.880, 0.950] | — | 0.920 [0.870, 0.940] | 0.990" in first
    assert "12 leads alone" in second and "(beat, Initial)" in second and "(research, Initial)" in second
    assert "+0.010 [-0.020, +0.030] (p=0.80)" in second
    claims = readme.claims_markdown(json.loads(results.read_text()))
    assert "research Initial:gan@0.25" in claims and "agree" not in claims and "Real only: 0.750" in claims


def test_seed_0_runs_on_another_pretraining_stay_out_of_the_seed_0_tables():
    """GAN seed 0 also fine-tunes pretraining 1 (``--seeds 0 --pretrain-seeds 1``): the ablation table (GAN seed 0)
    and the utility study's run choice take pretraining 0's run only, never a mean of both."""
    def run(pretrain_seed, auroc):
        return {"code": "PAC", "recipe": "bounded", "configuration": "Initial", "gan_seed": 0,
                "pretrain_seed": pretrain_seed, "c2st_auroc": auroc, "c2st_cnn_auroc": 0.5, "run_dir": f"p{pretrain_seed}"}
    realism = [run(0, 0.9), run(1, 0.5), {**run(None, 0.99), "recipe": "research"}]
    table = readme.ablation_markdown([{"code": "PAC", "recipe": "bounded", "configuration": "fine-tuned without R1",
                                      "c2st_auroc": 0.8, "c2st_cnn_auroc": 0.6}], realism)
    assert "| bounded, Initial | 0.900 / 0.500 |" in table and "0.700" not in table
    assert "| research, Initial | 0.990 / 0.500 |" in table and "| bounded, fine-tuned without R1 | 0.800 / 0.600 |" in table
    assert [r["run_dir"] for r in realism if study.on_first_pretraining(r)] == ["p0", "pNone"]


def test_ablation_reading_compares_each_change_with_the_full_fine_tuning_of_its_seed():
    """The sentence under the ablation table: differences of the rounded table numbers against the same GAN seed's
    full fine-tuning on pretraining 0, beside the null SD and that recipe's seed spread there (known answers)."""
    def run(seed, auroc, pretrain_seed=0):
        return {"code": "PAC", "recipe": "beat", "configuration": "Initial", "gan_seed": seed,
                "pretrain_seed": pretrain_seed, "c2st_auroc": auroc, "c2st_cnn_auroc": 0.5}
    realism = [run(0, 0.9004), run(1, 0.88), run(2, 0.95), run(0, 0.5, pretrain_seed=1)]
    ablations = [{"code": "PAC", "recipe": "beat", "configuration": f"Initial, fine-tuned without {name}", "gan_seed": 0,
                  "change": {name: 0}, "c2st_auroc": auroc, "c2st_cnn_auroc": 0.5, "c2st_null_sd": sd}
                 for name, auroc, sd in (("R1", 0.8504, 0.04), ("FreezeD", 0.9301, 0.05))]
    text = readme.ablation_reading(ablations, realism)
    assert text == ("Read from the table: against `beat, Initial` (PAC, GAN seed 0, 0.900), fine-tuned without "
                    "FreezeD +0.030 (worse), fine-tuned without R1 -0.050 (better); 1 of the 2 are smaller than the "
                    "test's null SD in these runs (0.040–0.050), and the full fine-tuning's 3 GAN seeds on the same "
                    "pretraining span 0.880–0.950.")
    assert text in readme.ablation_markdown(ablations, realism)
    assert readme.ablation_reading([{**a, "change": None} for a in ablations], realism) == ""


def test_low_data_realism_table_orders_k_and_checks_the_regenerated_ecgs_against_the_study():
    def row(k, draw, auroc, top, usable):
        return {"code": "PAC", "k_label": k, "draw": draw, "c2st_auroc": auroc, "c2st_null_sd": 0.05,
                "c2st_n_per_class": 45, "c2st_top_feature": top, "n_usable": usable}
    rows = [row("all", 0, 0.9, "rr:pnn50", 300), row("10", 0, 0.98, "amp:II:sd", 299),
            row("10", 1, 0.96, "amp:V1:sd", 290), row("5", 0, 0.99, "rr:pnn50", 298)]
    realism = [{"code": "PAC", "recipe": "beat", "configuration": "Initial", "gan_seed": s, "pretrain_seed": p,
                "c2st_auroc": a} for s, p, a in ((0, 0, 0.92), (1, 0, 0.94), (0, 1, 0.5))]
    study_rows = [{"code": "PAC", "k_label": k, "draw": d, "n_synthetic": n, "family": f}
                  for k, d, n in (("all", 0, 300), ("10", 0, 299), ("10", 1, 291), ("5", 0, 298))
                  for f in ("features", "cnn")]
    text = readme.low_data_realism_markdown(rows, {"realism": {"rows": realism}, "low_data": {"rows": study_rows}})
    lines = text.splitlines()
    assert lines[2:5] == ["| PAC | 5 | 1 | 0.990 | 0.050 | 45 | `rr` (1 of 1) |",
                          "| PAC | 10 | 2 | 0.970 (0.960–0.980) | 0.050 | 45 | `amp` (2 of 2) |",
                          "| PAC | all | 1 | 0.900 | 0.050 | 45 | `rr` (1 of 1) |"]
    assert "`beat` Initial (the full pretraining, every training positive, 2 GAN seeds): PAC 0.930 (0.920–0.940)." in text
    assert "3 of 4 GANs give exactly as many usable ECGs as the study's rows record" in text
    # the full held-out pretraining's GANs are checked against that study's rows, not the shorter one's
    full = readme.SECTIONS["low_data_full_realism"](rows, {"realism": {"rows": realism}, "low_data": {"rows": study_rows},
                                                           "low_data_full": {"rows": [r | {"n_synthetic": 1} for r in study_rows]}})
    assert "0 of 4 GANs give exactly as many usable ECGs" in full


def test_low_data_primary_table_orders_k_and_counts_what_survives_holm_on_each_side():
    rows = [{"code": c, "family": f, "k_label": k, "draws": 3, "difference": d, "diff_ci_low": d - 0.02,
             "diff_ci_high": d + 0.02, "p_value": p, "p_holm": h}
            for f, c, k, d, p, h in (("features", "PAC", "20", -0.030, 0.004, 0.012), ("features", "PAC", "5", 0.010, 0.3, 0.6),
                                     ("features", "PAC", "10", 0.020, 0.01, 0.02), ("cnn", "PAC", "5", -0.001, 0.9, 0.9))]
    text = readme.low_data_primary_markdown(rows)
    lines = text.splitlines()
    assert lines[2:6] == ["| features | PAC | 5 | 3 | +0.010 [-0.010, +0.030] | 0.300 | 0.600 |",
                          "| features | PAC | 10 | 3 | +0.020 [+0.000, +0.040] | 0.010 | 0.020 |",
                          "| features | PAC | 20 | 3 | -0.030 [-0.050, -0.010] | 0.004 | 0.012 |",
                          "| cnn | PAC | 5 | 3 | -0.001 [-0.021, +0.019] | 0.900 | 0.900 |"]
    assert text.endswith("Read from the table: features: 2 of 3 below 0.05 after Holm (over its 3 code × k) — 1 for "
                         "the GAN, 1 for oversampling; the point difference favours the GAN in 2 of 3; cnn: 0 of 1 "
                         "below 0.05 after Holm (over its 1 code × k) — 0 for the GAN, 0 for oversampling; the point "
                         "difference favours the GAN in 0 of 1.")
    assert readme.low_data_primary_markdown([]) == "(not run)"


def test_low_data_table_gives_mean_and_range_over_draws_and_names_the_cnn_trunk():
    rows = [{"code": "PAC", "family": "cnn", "k_label": "5", "variant": v, "auroc": a, "draw": d,
             "cnn_inputs": lowdata.CNN_TRUNK}
            for v, a, d in (("real", 0.6, 0), ("real", 0.8, 1), ("gan", 0.7, 0), ("gan", 0.7, 1))]
    table = readme.low_data_markdown(rows)
    assert table.startswith(f"CNN trunk: {lowdata.CNN_TRUNK}; head C 0.1.")  # rows without head_c: the old head
    assert "| PAC | cnn | 5 | 2 | 0.700 (0.600–0.800) | — | — | 0.700 |" in table
    earlier = readme.low_data_markdown([{k: v for k, v in r.items() if k != "cnn_inputs"} for r in rows])
    assert earlier.startswith("CNN trunk: 12 leads alone (the earlier trunk)")


def test_low_data_reading_counts_cells_against_real_only_from_the_table():
    """The sentence under the low-data table is computed from its rows: signs, spans per family, ranges over draws."""
    rows = [{"code": "PAC", "family": f, "k_label": k, "variant": v, "auroc": a, "draw": d}
            for f, k, v, a, d in (("features", "5", "real", 0.80, 0), ("features", "5", "real", 0.90, 1),
                                  ("features", "5", "gan", 0.70, 0), ("features", "5", "gan", 0.75, 1),  # -0.125, below
                                  ("features", "5", "oversample", 0.86, 0), ("features", "5", "oversample", 0.86, 1),
                                  ("features", "all", "real", 0.95, 0), ("features", "all", "gan", 0.96, 0),  # +0.010
                                  ("cnn", "5", "real", 0.70, 0), ("cnn", "5", "real", 0.80, 1),
                                  ("cnn", "5", "gan", 0.72, 0), ("cnn", "5", "gan", 0.74, 1))]  # -0.020, overlapping
    text = readme.low_data_reading(pd.DataFrame(rows))
    assert "negative in 2 and positive in 1 of 3 code × family × k cells (features -0.125 to +0.010; cnn -0.020)" in text
    assert "at k = 5, the GAN's range over draws lies wholly below real only's in 1 and wholly above it in 0 of 2" in text
    assert text.endswith("Oversampling the same k moves the mean by +0.010.")
    assert text in readme.low_data_markdown(rows)
    assert "no GAN-augmented rows" in readme.low_data_reading(pd.DataFrame([r for r in rows if r["variant"] != "gan"]))


def test_utility_reading_counts_the_primary_comparisons_of_the_tables():
    """The sentence under the utility tables: Initial GANs' primary comparisons only, significant ones listed."""
    def row(code, family, variant, difference, p_holm, inputs=study.CNN_INPUTS):
        return {"code": code, "family": family, "variant": variant, "difference": difference, "p_holm": p_holm,
                "diff_ci_low": difference - 0.01, "diff_ci_high": difference + 0.01, "cnn_inputs": inputs,
                "n_test_positives": 10, "auroc": 0.9, "auroc_ci_low": 0.8, "auroc_ci_high": 0.95}
    rows = [row("PAC", "features", "Initial:gan@0.25", -0.02, 0.01),
            row("PAC", "cnn", "research Initial:gan@0.25", 0.05, 0.30, None),
            row("PVC", "features", "Initial:gan@0.25", 0.004, 0.70),
            row("PVC", "features", "Modified:gan@0.25", 0.5, 0.001),  # not in the tables: not read
            row("PVC", "features", "oversample@0.25", 0.0, None)]
    text = readme.utility_reading(pd.DataFrame(rows))
    assert text.startswith("Read from the tables: of the 3 primary comparisons above")
    assert "0 favour the GAN and 1 favour oversampling at Holm p < 0.05 (PAC features, beat (current trunk): " \
           "-0.020 [-0.030, -0.010], Holm p = 0.01)" in text
    assert "features: -0.020 to +0.004, negative in 1 of 2; cnn: +0.050, negative in 0 of 1" in text
    assert text.endswith("the smallest other Holm p is 0.30.")
    assert text in readme.utility_markdown(rows)
    assert readme.utility_reading(pd.DataFrame(rows[:1])).endswith("negative in 1 of 1.")


def test_trunk_seed_study_needs_budget_rows_that_chose_the_head(tmp_path, capsys):
    """Budget rows from before the head's choice (no ``head_c``) cannot say which head to test: a clear error."""
    results = tmp_path / "results.json"
    study.write_results(results, "cnn_budget", [{"epochs": 100, "macro_auroc_common": 0.88,
                                                 "cnn_inputs": study.CNN_INPUTS}], "python -m rare_gan.study cnn_budget")
    with pytest.raises(SystemExit) as exit_:
        study.main(["cnn_budget", "--cnn-trunk-seeds", "0,1", "--data", "demo", "--results", str(results)])
    assert exit_.value.code == 2 and "with the head's choice" in capsys.readouterr().err
