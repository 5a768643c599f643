"""Throughput benchmark: ``python -m rare_gan.bench [--quick] [--gpu] [--out bench.json]``.

Measures, in one run on one machine: the machine's matmul FLOP/s (fp32, bf16) and whether it has
bf16 matrix units; per recipe (the default ``beat`` and ``research``) training samples/s (fp32 and
mixed_bfloat16, batch 64, random data, the recipe's own step with its penalties and augmentation),
FLOPs per training sample counted by TensorFlow's graph profiler on that step (so training reads
as a fraction of the measured matmul rate), generation ECGs/s and parameter counts; peak RSS; and
two reference generators: neurokit2's ``ecg_simulate(method="multileads")`` and, when installed
(``pip install torch==2.13.0 deepfake-ecg==1.1.2``), DeepFake-ECG (8 leads at 500 Hz; the other 4
leads derived and everything resampled to 100 Hz, so all produce the same (1000, 12) ECG).
Timings are medians of repeated windows; ratios are taken within this one run.

``python -m rare_gan.bench --evaluation CODE --data DIR`` instead times notebook 05 for one code in the
full profile (:func:`evaluation_seconds`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _median_rate(work: Callable[[], int], repeats: int, min_seconds: float) -> float:
    """Median items/s over ``repeats`` windows of at least ``min_seconds`` each (after one warm-up)."""
    work()
    rates = []
    for _ in range(repeats):
        done, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < min_seconds or done == 0:
            done += work()
        rates.append(done / elapsed)
    return statistics.median(rates)


def matmul_flops(dtype: str, n: int = 2048, repeats: int = 5) -> float:
    """Measured dense matmul FLOP/s of this machine for ``dtype`` ('float32' or 'bfloat16')."""
    import tensorflow as tf

    a = tf.cast(tf.random.normal((n, n)), dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)
    step = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    return 2 * n ** 3 * _median_rate(lambda: (step().numpy(), 1)[1], repeats, 0.5)


def _gan(recipe: str, precision: str, batch_size: int, n_labels: int = 57, distribution=None, **overrides):
    """A compiled ECGGAN of ``recipe`` (built under the ``distribution`` strategy, default: none; ``overrides``
    are TrainConfig fields) and one batch of random data for it (labels for a conditional recipe)."""
    import tensorflow as tf

    from rare_gan import gan, recipes

    spec = recipes.get_recipe(recipe)
    config = spec.config("BENCH", precision=precision, batch_size=batch_size, **overrides,
                         label_codes=[f"C{i}" for i in range(n_labels)] if spec.settings.get("conditional") else None)
    with (distribution or tf.distribute.get_strategy()).scope():
        generator, discriminator = gan.build_models(config, n_labels=n_labels if config.conditional else 0)
        model = gan.make_gan(generator, discriminator, config)
    rng = np.random.default_rng(0)
    real = tf.constant(rng.uniform(-0.3, 0.3, (batch_size, 1000, 12)).astype(np.float32))
    labels = tf.constant((rng.random((batch_size, n_labels)) < 0.05).astype(np.float32))
    return model, (real, labels) if config.conditional else real


def graph_flops(model, batch) -> float:
    """FLOPs per sample of one traced ``model.train_step(batch)``, counted by TensorFlow's graph profiler
    (MatMul, convolutions and their gradients; an R1 penalty behind ``tf.cond`` is counted only when
    ``r1_every`` is 1, because the profiler does not look into conditional branches)."""
    import tensorflow as tf

    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    graph = tf.function(model.train_step).get_concrete_function(batch).graph
    size = int((batch[0] if isinstance(batch, tuple) else batch).shape[0])
    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")  # the v1 profiler logs a deprecation warning per call; the count is what matters
    try:
        return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops / size
    finally:
        logger.setLevel(level)


def step_flops(recipe: str, batch_size: int = 64) -> float:
    """FLOPs per training sample of one ``train_step`` of ``recipe`` (D step, G step, every penalty,
    every discriminator scale): :func:`graph_flops`, with a lazily applied R1 counted at its rate
    (no-R1 count + (every-step-R1 count − no-R1 count) / r1_every)."""
    model, batch = _gan(recipe, "float32", batch_size)
    lazy, weight = model.r1_every, model.r1_weight
    model.r1_every = 1
    every_step = graph_flops(model, batch)
    if not weight or lazy == 1:
        return every_step
    model.r1_weight = 0.0
    without = graph_flops(model, batch)
    return without + (every_step - without) / lazy


def training_rate(recipe: str, precision: str, batch_size: int, repeats: int, min_seconds: float,
                  strategy: str = "default", **overrides) -> tuple[float, object, object]:
    """Training samples/s of ``recipe`` (its own loss, penalties and augmentation; random data), one
    ``train_step`` per batch under ``strategy`` (the batch is split across its replicas)."""
    import tensorflow as tf

    from rare_gan import train

    distribution = train.get_strategy(strategy)
    model, batch = _gan(recipe, precision, batch_size, distribution=distribution, **overrides)
    batches = iter(distribution.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch).repeat()))
    step = tf.function(lambda data: distribution.run(model.train_step, args=(data,)))

    def work() -> int:
        out = step(next(batches))["d_loss"]
        distribution.experimental_local_results(out)[0].numpy()
        return batch_size

    return _median_rate(work, repeats, min_seconds), model.generator, model.discriminator


def neurokit_rate(n: int) -> float:
    """ECGs/s of ``neurokit2.ecg_simulate(method="multileads")`` for 10 s, 12 leads at 100 Hz."""
    import neurokit2 as nk

    counter = iter(range(10 ** 9))

    def work() -> int:
        for _ in range(n):
            nk.ecg_simulate(duration=10, sampling_rate=100, method="multileads", random_state=next(counter))
        return n

    return _median_rate(work, 2, 1.0)


def deepfake_rate(n: int) -> float | str:
    """ECGs/s of DeepFake-ECG (batched), incl. deriving 4 leads and resampling 500 → 100 Hz; or why not."""
    try:
        import deepfakeecg
        import torch
        from scipy.signal import resample_poly
    except ImportError as exc:
        return f"not installed ({exc.name}); pip install torch==2.13.0 deepfake-ecg==1.1.2"
    from rare_gan.leads import assemble_12_leads

    torch.set_num_threads(os.cpu_count() or 1)
    net = deepfakeecg.Generator()
    state = torch.load(Path(deepfakeecg.__file__).parent / "checkpoints" / "g_stat.pt", map_location="cpu")
    net.load_state_dict(state["stat_dict"])
    net.eval()

    def work() -> int:
        with torch.no_grad():
            out = net(torch.empty(n, 8, 5000).uniform_(-1, 1)).numpy()  # (n, 8, 5000): I, II, V1–V6 at 500 Hz
        ecg_500 = np.transpose(out * 6.0, (0, 2, 1))  # ×6000 µV = ×6 mV, as DeepFake-ECG's own export
        assemble_12_leads(resample_poly(ecg_500, 1, 5, axis=1))
        return n

    return _median_rate(work, 2, 1.0)


STEP_ABLATIONS = {"no R1": {"r1_weight": 0.0}, "no DiffAugment": {"diff_augment": False},
                  "100 Hz discriminator only": {"discriminator_scales": (1,)}, "batch 128": {"batch_size": 128}}
"""One change each to the default recipe's training step: what each part costs (``--ablations``)."""


def step_ablations(recipe: str = "beat", repeats: int = 3, min_seconds: float = 3.0) -> dict[str, float]:
    """Training samples/s (fp32) of ``recipe`` as it is and with each change of :data:`STEP_ABLATIONS`."""
    rates = {"as is": training_rate(recipe, "float32", 64, repeats, min_seconds)[0]}
    for name, change in STEP_ABLATIONS.items():
        change = dict(change)
        rates[name] = training_rate(recipe, "float32", change.pop("batch_size", 64), repeats, min_seconds, **change)[0]
    return rates


def _cpuinfo_field(name: str) -> str:
    """The first ``name`` line of ``/proc/cpuinfo`` (Linux), stripped; "" where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(name)), "")


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, else the platform's processor string: the
    timings depend on it (AMX or not, cache sizes), so every benchmark JSON names it."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def bf16_hardware() -> dict:
    """Whether this machine has bf16 matrix units: AMX / AVX-512-BF16 CPU flags, or a GPU of compute capability ≥ 8."""
    import tensorflow as tf

    flags = set(_cpuinfo_field("flags").split())
    gpus = [tf.config.experimental.get_device_details(g).get("compute_capability") for g in
            tf.config.list_physical_devices("GPU")]
    return {"cpu_amx_bf16": "amx_bf16" in flags, "cpu_avx512_bf16": "avx512_bf16" in flags,
            "gpu_compute_capabilities": [list(c) if c else None for c in gpus],
            "bf16_matrix_units": bool({"amx_bf16", "avx512_bf16"} & flags) or any(c and c[0] >= 8 for c in gpus)}


def run(quick: bool = False, recipes_to_time=("beat", "research"), strategy: str = "default",
        batch_size: int = 64, ablations: bool = False) -> dict:
    """Run every measurement; return the results as a dict."""
    import keras
    import tensorflow as tf

    from rare_gan import generate, models

    repeats, window = (2, 2.0) if quick else (5, 4.0)
    result = {"machine": {"cpu_count": os.cpu_count(), "cpu_model": cpu_model(),
                          "processor": platform.processor() or platform.machine(),
                          "tensorflow": tf.__version__, "keras": keras.__version__,
                          "tensorflow_built_with_cuda": tf.test.is_built_with_cuda(),
                          "gpus": [d.name for d in tf.config.list_physical_devices("GPU")], **bf16_hardware()},
              "quick": quick, "strategy": strategy, "batch_size": batch_size}
    first_matmul = {d: matmul_flops(d) / 1e9 for d in ("float32", "bfloat16")}
    result["recipes"] = {}
    generators = {}
    timings = {}
    for recipe in recipes_to_time:
        rates = {}
        for precision in ("float32", "mixed_bfloat16"):
            rates[precision], generator, discriminator = training_rate(recipe, precision, batch_size, repeats, window,
                                                                       strategy)
            generators[recipe, precision] = generator
            if precision == "float32":
                g_flops, d_flops = models.flops_per_sample(generator), models.flops_per_sample(discriminator)
                params = (generator.count_params(), discriminator.count_params())
        timings[recipe] = rates, g_flops, d_flops, params
    # the matmul rate again after the training timings: on a shared (virtual) machine it was measured to
    # halve within minutes, so the peak is the higher of the two and their ratio is kept as a warning
    last_matmul = {d: matmul_flops(d) / 1e9 for d in ("float32", "bfloat16")}
    peak = result["matmul_gflops"] = {d: max(first_matmul[d], last_matmul[d]) for d in first_matmul}
    result["matmul_gflops_first_last"] = {d: [first_matmul[d], last_matmul[d]] for d in first_matmul}
    result["matmul_rate_stable"] = all(min(v) >= 0.85 * max(v) for v in result["matmul_gflops_first_last"].values())
    for recipe, (rates, g_flops, d_flops, params) in timings.items():
        per_sample = step_flops(recipe)
        result["recipes"][recipe] = {
            "generator_params": params[0], "discriminator_params": params[1],
            "generator_mflop_forward": g_flops / 1e6, "discriminator_mflop_forward": d_flops / 1e6,
            "mflop_per_training_sample": per_sample / 1e6, "training_samples_per_s": rates,
            "training_fraction_of_matmul_rate": {"float32": rates["float32"] * per_sample / (peak["float32"] * 1e9),
                                                 "mixed_bfloat16": rates["mixed_bfloat16"] * per_sample
                                                 / (peak["bfloat16"] * 1e9)},
            "bf16_speedup": rates["mixed_bfloat16"] / rates["float32"],
            "generation_ecgs_per_s": generate.generation_rate(generators[recipe, "float32"], 1024 if quick else 4096),
            "generation_ecgs_per_s_bf16": generate.generation_rate(generators[recipe, "mixed_bfloat16"],
                                                                   1024 if quick else 4096)}
    gen = result["recipes"][recipes_to_time[0]]["generation_ecgs_per_s"]
    nk_rate = neurokit_rate(2 if quick else 5)
    df_rate = deepfake_rate(16 if quick else 64)
    result["reference_generators_ecgs_per_s"] = {"neurokit2_multileads": nk_rate, "deepfake_ecg": df_rate}
    result["generation_speedup_vs"] = {"neurokit2_multileads": gen / nk_rate,
                                       "deepfake_ecg": gen / df_rate if isinstance(df_rate, float) else None}
    if ablations:
        result["step_ablations_samples_per_s"] = step_ablations(recipes_to_time[0], repeats, window)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def evaluation_seconds(data_dir: str | None, code: str, n_runs: int = 4, n_generated: int = 1000,
                       profile: str = "full", cnn_root: str | Path = "outputs/classifiers", seed: int = 0,
                       trunk_epochs: int | None = None) -> dict:
    """Wall seconds of notebook 05's sections for one code with ``profile``'s settings (:mod:`rare_gan.pipeline`)
    on ``n_runs`` stand-in runs: ``n_generated`` jittered real training ECGs each, 60 % of them accepted
    by vetting. The evaluation's cost does not depend on how the ECGs were made, so no GAN is trained.
    The CNN trunk and the real features are made first when not cached (``setup_s``, not in ``total_s``);
    ``trunk_epochs`` (default: the profile's) only changes that pretraining, not what the section costs."""
    import pandas as pd

    from rare_gan import evaluate, report, utility
    from rare_gan.pipeline import PROFILES
    from rare_gan.recipes import get_recipe

    settings = PROFILES[profile]
    start = time.perf_counter()
    task = evaluate.load_task(data_dir, code)
    epochs = trunk_epochs or utility.CNN_EPOCHS[profile]
    utility.pretrained_cnn(task, seed, cache_root=cnn_root, epochs=epochs)
    train_mv = task.scaler.inverse(task.x["train"])
    rng = np.random.default_rng(seed)
    runs = {}
    for i in range(n_runs):
        picks = rng.choice(len(train_mv), n_generated, replace=n_generated > len(train_mv))
        stand_in = evaluate.jitter(train_mv[picks], rng, noise=0.01, clip=False)
        name = f"stand-in {i} {('Initial', 'Modified')[i % 2]}"
        runs[name] = report.RunArtifacts(name, Path("."), Path("."), get_recipe("research").config(code, data_dir=data_dir),
                                         pd.DataFrame(), stand_in, pd.DataFrame({"accepted": rng.random(n_generated) < 0.6}))
    times = {"setup_s": time.perf_counter() - start}
    start = time.perf_counter()
    realism = report.realism_section(task, runs, seed=seed, profile=profile)
    times["realism_s"] = time.perf_counter() - start
    start = time.perf_counter()
    result = report.utility_section(task, runs, seeds=settings["eval_seeds"], ratios=settings["ratios"],
                                    n_boot=settings["n_bootstrap"], cnn_root=cnn_root, seed=seed, profile=profile,
                                    cnn_epochs=epochs)
    times["utility_s"] = time.perf_counter() - start
    start = time.perf_counter()
    report.plot_rhythm(realism, runs)
    report.plot_examples(task, runs, seed=seed)
    for family in result.families:
        report.plot_augmentation_curve(result, family)
    times["plots_s"] = time.perf_counter() - start
    times["total_s"] = times["realism_s"] + times["utility_s"] + times["plots_s"]
    return {"code": code, "profile": profile, "n_runs": n_runs, "n_generated": n_generated,
            "ratios": settings["ratios"], "classifier_seeds": settings["eval_seeds"], "trunk_epochs": epochs,
            "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), **times}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rare_gan.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter timing windows (a few minutes in all)")
    parser.add_argument("--out", default=None, help="where to write the JSON (default outputs/bench.json; with "
                                                     "--evaluation outputs/bench_evaluation.json)")
    parser.add_argument("--gpu", action="store_true",
                        help="check and benchmark the CUDA path: GPU found, mirrored training over every GPU "
                             "(batch 256), samples/s, generation rate; exit 3 when no GPU is visible")
    parser.add_argument("--ablations", action="store_true",
                        help="also time the default recipe's step without each of its parts (R1, DiffAugment, ...)")
    parser.add_argument("--allow-cpu", action="store_true", help="with --gpu: run the same checks on CPU devices")
    parser.add_argument("--evaluation", metavar="CODE",
                        help="instead: time notebook 05 for CODE in the full profile on 4 stand-in runs "
                             "(evaluation_seconds; with --data)")
    parser.add_argument("--data", default=None, help="with --evaluation: PTB-XL folder (default: the DEMO data)")
    parser.add_argument("--trunk-epochs", type=int, default=None,
                        help="with --evaluation: pretrain the CNN trunk for this many epochs if it is not cached "
                             "(default: the full profile's; the section's cost does not depend on it)")
    args = parser.parse_args(argv)
    if args.evaluation:
        result = evaluation_seconds(args.data, args.evaluation, trunk_epochs=args.trunk_epochs)
        result["command"] = "python -m rare_gan.bench " + " ".join(sys.argv[1:] if argv is None else argv)
    elif args.gpu:
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        print(f"TensorFlow {tf.__version__}, built with CUDA: {tf.test.is_built_with_cuda()}; GPUs: "
              f"{[g.name for g in gpus] or 'none'}", file=sys.stderr)
        if not gpus and not args.allow_cpu:
            print("no CUDA GPU visible: install the CUDA build (pip install 'tensorflow[and-cuda]==2.21.0') on a "
                  "machine with an NVIDIA driver, or pass --allow-cpu to run the same checks on the CPU",
                  file=sys.stderr)
            return 3
        result = run(args.quick, strategy="mirrored", batch_size=256 if gpus else 64)
    else:
        result = run(args.quick, ablations=args.ablations)
    from rare_gan import atomic

    out = args.out or ("outputs/bench_evaluation.json" if args.evaluation else "outputs/bench.json")
    atomic.write_json(out, result)
    print(json.dumps(result, indent=2))
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
