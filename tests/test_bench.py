"""The benchmark's accounting and its GPU command, checked on the CPU."""

from __future__ import annotations

import subprocess
import sys

from rare_gan import bench, models
from tests.conftest import REPO


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
