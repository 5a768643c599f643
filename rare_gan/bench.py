"""Throughput benchmark: ``python -m rare_gan.bench [--quick] [--out bench.json]``.

Measures, in one run on one machine: the machine's matmul FLOP/s (fp32, bf16), GAN training
samples/s (fp32 and mixed_bfloat16, batch 64, random data), generation ECGs/s, parameter counts,
FLOPs per training sample (so training reads as a fraction of the hardware limit), peak RSS, and
two reference generators: neurokit2's ``ecg_simulate(method="multileads")`` and, when installed
(``pip install torch==2.13.0 deepfake-ecg==1.1.2``), DeepFake-ECG (8 leads at 500 Hz; the other 4
leads derived and everything resampled to 100 Hz, so all produce the same (1000, 12) ECG).
Timings are medians of repeated windows; ratios are taken within this one run.
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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


def training_rate(precision: str, batch_size: int, repeats: int, min_seconds: float) -> tuple[float, object, object]:
    """Training samples/s of the default GAN (non-saturating loss, one D and one G step per batch)."""
    import tensorflow as tf

    from rare_gan import train

    config = train.TrainConfig(target="BENCH", precision=precision, batch_size=batch_size)
    generator, discriminator = train.build_models(config)
    gan = train.make_gan(generator, discriminator, config)
    real = tf.constant(np.random.default_rng(0).uniform(-0.3, 0.3, (batch_size, 1000, 12)).astype(np.float32))
    step = tf.function(gan.train_step)

    def work() -> int:
        step(real)["d_loss"].numpy()
        return batch_size

    return _median_rate(work, repeats, min_seconds), generator, discriminator


def generation_rate(generator, n: int = 2048) -> float:
    """Generated ECGs/s in inference mode (batched, :func:`rare_gan.generate.generate_scaled`)."""
    from rare_gan import generate

    latent = generate.latent_vectors(n, generator.input_shape[-1], 0)
    return _median_rate(lambda: len(generate.generate_scaled(generator, latent)), 3, 1.0)


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


def run(quick: bool = False) -> dict:
    """Run every measurement; return the results as a dict."""
    import keras
    import tensorflow as tf

    from rare_gan import models

    repeats, window = (2, 2.0) if quick else (5, 4.0)
    result = {"machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "tensorflow": tf.__version__, "keras": keras.__version__,
                          "gpus": [d.name for d in tf.config.list_physical_devices("GPU")]},
              "quick": quick}
    result["matmul_gflops"] = {d: matmul_flops(d) / 1e9 for d in ("float32", "bfloat16")}
    train_rates = {}
    for precision in ("float32", "mixed_bfloat16"):
        train_rates[precision], generator, discriminator = training_rate(precision, 64, repeats, window)
        if precision == "float32":
            fp32_models = (generator, discriminator)
    generator, discriminator = fp32_models
    g_flops, d_flops = models.flops_per_sample(generator), models.flops_per_sample(discriminator)
    # per training sample: G forward twice + G backward (≈2×) = 4G; D forward on real, fake, fake
    # and the matching backward passes ≈ 9D (see README, Performance)
    flops_per_train_sample = 4 * g_flops + 9 * d_flops
    result["models"] = {"generator_params": generator.count_params(), "discriminator_params": discriminator.count_params(),
                        "generator_mflop_forward": g_flops / 1e6, "discriminator_mflop_forward": d_flops / 1e6,
                        "mflop_per_training_sample": flops_per_train_sample / 1e6}
    result["training_samples_per_s"] = train_rates
    result["training_fraction_of_matmul_peak"] = {
        "float32": train_rates["float32"] * flops_per_train_sample / (result["matmul_gflops"]["float32"] * 1e9),
        "mixed_bfloat16": train_rates["mixed_bfloat16"] * flops_per_train_sample
        / (result["matmul_gflops"]["bfloat16"] * 1e9)}
    result["bf16_speedup"] = train_rates["mixed_bfloat16"] / train_rates["float32"]
    gen = generation_rate(generator)
    nk_rate = neurokit_rate(2 if quick else 5)
    df_rate = deepfake_rate(16 if quick else 64)
    result["generation_ecgs_per_s"] = {"rare_gan": gen, "neurokit2_multileads": nk_rate, "deepfake_ecg": df_rate}
    result["generation_speedup_vs"] = {"neurokit2_multileads": gen / nk_rate,
                                       "deepfake_ecg": gen / df_rate if isinstance(df_rate, float) else None}
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rare_gan.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter timing windows (about a minute in all)")
    parser.add_argument("--out", default="outputs/bench.json", help="where to write the JSON (default outputs/bench.json)")
    args = parser.parse_args(argv)
    result = run(args.quick)
    from rare_gan import atomic

    atomic.write_json(args.out, result)
    print(json.dumps(result, indent=2))
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
