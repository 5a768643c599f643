"""The benchmark's accounting and its GPU command, checked on the CPU."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest

from rare_gan import bench, models
from tests.conftest import REPO

pytestmark = pytest.mark.graph  # the benchmark times traced steps, as users run them


def _forward_flops(model) -> float:
    return models.flops_per_sample(model.generator) + models.flops_per_sample(model.discriminator)


def test_step_flops_count_both_networks_forward_and_backward(capfd):
    model, _ = bench._gan("research", "float32", 8)
    capfd.readouterr()
    per_sample = bench.step_flops("research", batch_size=8)
    assert 3 * _forward_flops(model) < per_sample < 25 * _forward_flops(model), per_sample / _forward_flops(model)
    assert "deprecated" not in capfd.readouterr().err  # the v1 profiler's warning is not shown to users


def test_lazy_r1_is_counted_at_its_rate(monkeypatch):
    """The default recipe's step (R1 every 4th step): counted with and without R1, once each."""
    counted = []

    def graph_flops(model, batch):
        counted.append((model.r1_every, model.r1_weight, real_graph_flops(model, batch)))
        return counted[-1][2]

    real_graph_flops = bench.graph_flops
    monkeypatch.setattr(bench, "graph_flops", graph_flops)
    per_sample = bench.step_flops("beat", batch_size=8)
    (every, weight, every_step), (_, no_weight, without) = counted
    model, _ = bench._gan("beat", "float32", 8)
    assert every == 1 and weight > 0 and no_weight == 0.0 and model.r1_every == 4
    assert every_step > 1.2 * without  # R1's second-order pass is real arithmetic
    assert per_sample == (without + (every_step - without) / 4)
    assert 3 * _forward_flops(model) < per_sample < 25 * _forward_flops(model), per_sample / _forward_flops(model)


def test_training_rate_under_the_mirrored_strategy_on_cpu():
    rate, generator, _ = bench.training_rate("research", "float32", 8, repeats=1, min_seconds=0.1,
                                             strategy="mirrored")
    assert rate > 0 and generator.output.shape[1:] == (1000, 12)


def test_bf16_hardware_report():
    assert bench.cpu_model().strip()  # named in every benchmark JSON
    info = bench.bf16_hardware()
    assert set(info) == {"cpu_amx_bf16", "cpu_avx512_bf16", "gpu_compute_capabilities", "bf16_matrix_units"}
    assert info["bf16_matrix_units"] == (info["cpu_amx_bf16"] or info["cpu_avx512_bf16"]
                                         or any(c and c[0] >= 8 for c in info["gpu_compute_capabilities"]))


def test_gpu_command_without_a_gpu_says_what_to_do(tmp_path):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return  # on a GPU machine the command benchmarks instead
    out = subprocess.run([sys.executable, "-m", "rare_gan.bench", "--gpu", "--out", str(tmp_path / "b.json")],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 3 and "no CUDA GPU visible" in out.stderr and "--allow-cpu" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "b.json").exists()


def test_step_ablations_change_one_thing_each(monkeypatch):
    calls = []

    def fake_rate(recipe, precision, batch_size, repeats, min_seconds, strategy="default", **overrides):
        calls.append((batch_size, overrides))
        return 100.0 + len(calls), None, None

    monkeypatch.setattr(bench, "training_rate", fake_rate)
    rates = bench.step_ablations("beat", 1, 0.1)
    assert list(rates) == ["as is", *bench.STEP_ABLATIONS]
    assert calls == [(64, {}), (64, {"r1_weight": 0.0}), (64, {"diff_augment": False}),
                     (64, {"discriminator_scales": (1,)}), (128, {})]
    assert bench.STEP_ABLATIONS["batch 128"] == {"batch_size": 128}  # not consumed by the call


def test_matmul_rate_is_measured_before_and_after_the_timings(monkeypatch):
    """Shares of the matmul rate use the higher of two measurements; a >15% drift is flagged, and rendered."""
    from rare_gan import generate, readme

    rates = {"float32": iter([300e9, 200e9]), "bfloat16": iter([900e9, 880e9])}
    monkeypatch.setattr(bench, "matmul_flops", lambda dtype: next(rates[dtype]))
    network = types.SimpleNamespace(count_params=lambda: 10)
    monkeypatch.setattr(bench, "training_rate", lambda recipe, precision, *a, **k: (
        {"float32": 100.0, "mixed_bfloat16": 150.0}[precision], network, network))
    monkeypatch.setattr(models, "flops_per_sample", lambda model: 1e6)
    monkeypatch.setattr(bench, "step_flops", lambda recipe: 1e9)
    monkeypatch.setattr(generate, "generation_rate", lambda generator, n: 1000.0)
    monkeypatch.setattr(bench, "neurokit_rate", lambda n: 2.0)
    monkeypatch.setattr(bench, "deepfake_rate", lambda n: "not installed")
    result = bench.run(quick=True, recipes_to_time=("research",))
    assert result["matmul_gflops"] == {"float32": 300.0, "bfloat16": 900.0}
    assert result["matmul_gflops_first_last"] == {"float32": [300.0, 200.0], "bfloat16": [900.0, 880.0]}
    assert result["matmul_rate_stable"] is False  # fp32 fell by a third
    shares = result["recipes"]["research"]["training_fraction_of_matmul_rate"]
    assert shares == {"float32": 100 * 1e9 / 300e9, "mixed_bfloat16": 150 * 1e9 / 900e9}
    text = readme.performance_markdown(result)
    assert "fp32 300 / 200, bf16 900 / 880)" in text and "changed by more than 15%" in text
    result["matmul_rate_stable"] = True
    assert "changed by more than 15%" not in readme.performance_markdown(result)


def test_evaluation_timing_runs_notebook_05s_sections_on_stand_in_runs(demo_dir, tmp_path, monkeypatch):
    """The sections themselves run in nbval (05_evaluate); here: what they are given and what is timed."""
    from rare_gan import pipeline, report, utility

    calls = {}
    monkeypatch.setattr(utility, "pretrained_cnn", lambda task, seed, cache_root, epochs: calls.setdefault("epochs", epochs))
    monkeypatch.setattr(report, "realism_section", lambda task, runs, seed, profile: calls.setdefault("runs", runs))

    def utility_section(task, runs, **settings):
        calls["utility"] = settings
        return types.SimpleNamespace(families=["features", "cnn"])

    monkeypatch.setattr(report, "utility_section", utility_section)
    for plot in ("plot_rhythm", "plot_examples", "plot_augmentation_curve"):
        monkeypatch.setattr(report, plot, lambda *args, **kwargs: None)
    out = bench.evaluation_seconds("demo", "AFIB", n_runs=3, n_generated=24, cnn_root=tmp_path, trunk_epochs=2)
    full = pipeline.PROFILES["full"]
    assert calls["epochs"] == 2 and calls["utility"]["cnn_epochs"] == 2 and calls["utility"]["ratios"] == [0.25]
    assert calls["utility"]["seeds"] == full["eval_seeds"] and calls["utility"]["n_boot"] == full["n_bootstrap"]
    runs = calls["runs"]
    assert list(runs) == ["stand-in 0 Initial", "stand-in 1 Modified", "stand-in 2 Initial"]
    assert all(r.generated_mv.shape == (24, 1000, 12) and 0 < len(r.candidates_mv) < 24 for r in runs.values())
    assert not np.array_equal(runs["stand-in 0 Initial"].generated_mv, runs["stand-in 1 Modified"].generated_mv)
    assert out["code"] == "AFIB" and out["n_runs"] == 3 and out["ratios"] == [0.25] and out["trunk_epochs"] == 2
    assert out["total_s"] == pytest.approx(out["realism_s"] + out["utility_s"] + out["plots_s"])


def test_evaluation_timing_json_names_its_command_and_renders_into_the_readme(tmp_path, monkeypatch):
    """``--evaluation`` writes the command that made it beside the times; the README block reads both."""
    import json

    from rare_gan import readme

    times = {"code": "PAC", "profile": "full", "n_runs": 4, "n_generated": 1000, "ratios": [0.25],
             "classifier_seeds": [0, 1, 2], "trunk_epochs": 5, "cpu_model": "AMD EPYC", "cpu_count": 2,
             "setup_s": 40.0, "realism_s": 181.3, "utility_s": 101.4, "plots_s": 6.2, "total_s": 288.9}
    monkeypatch.setattr(bench, "evaluation_seconds", lambda data, code, trunk_epochs: dict(times, code=code))
    out = tmp_path / "bench_evaluation.json"
    assert bench.main(["--evaluation", "PAC", "--data", "x", "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["command"] == f"python -m rare_gan.bench --evaluation PAC --data x --out {out}"
    results = tmp_path / "results.json"
    results.write_text("{}")
    page = tmp_path / "README.md"
    page.write_text("<!-- results:evaluation_timing -->\n<!-- /results:evaluation_timing -->\n")
    readme.update_readme(page, results, evaluation=out)
    text = page.read_text()
    assert f"(command: `{written['command']}`)" in text and out.as_posix() in text
    assert ("On AMD EPYC (2 cores), with 4 stand-in runs of 1,000 ECGs each and warm feature and control caches, "
            "notebook 05 (full profile, positive fraction 0.25, 3 classifier seeds) took **289 s** for PAC: realism "
            "181 s, utility 101 s, plots 6 s — within the 5 minutes aimed at.") in text
    assert "over the 5 minutes" in readme.evaluation_timing_markdown(dict(times, total_s=301.0))
