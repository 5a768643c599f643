"""Generate synthetic ECGs (mV) from a trained run, batched and reproducible.

The latent vectors come from ``numpy.random.default_rng(seed)`` and every batch is padded to the
same ``batch_size`` (CPU kernels may round differently for other batch shapes), so on one machine
the i-th ECG of a seed is bit-identical whether 10 or 10,000 are asked for. A generator loaded
with ``precision="mixed_bfloat16"`` (or ``"auto"`` on bf16 hardware) is faster and draws every ECG
slightly differently from the float32 one; the precision is part of each ECG's provenance.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import dataclasses

import numpy as np

from rare_gan.data import SignalScaler
from rare_gan.train import TrainConfig


@dataclass
class GeneratorRun:
    """A trained generator with the config and scaler of its run."""

    generator: object
    config: TrainConfig
    scaler: SignalScaler
    run_dir: Path
    checkpoint_sha256: str
    label_combinations: dict[str, int] | None = None
    """Conditional runs: the label-code combinations of its training records and their counts."""
    precision: str = "float32"
    """Precision policy the generator computes in ('float32' or 'mixed_bfloat16'; see :func:`load_run`)."""

    @property
    def provenance(self) -> dict:
        """What identifies the model that made an ECG (written into every synthetic record)."""
        return {"run_dir": str(self.run_dir), "run_name": self.config.name, "recipe": self.config.recipe,
                "target": ",".join(self.config.target), "init_from": self.config.init_from,
                "lr_generator": self.config.lr_generator, "lr_discriminator": self.config.lr_discriminator,
                "epochs": self.config.epochs, "train_seed": self.config.seed, "loss": self.config.loss,
                "lead_consistent": self.config.lead_consistent,
                "checkpoint": "generator.keras", "checkpoint_sha256": self.checkpoint_sha256,
                "generation_precision": self.precision}


PRECISIONS = ("float32", "mixed_bfloat16", "auto")


def resolve_precision(precision: str) -> str:
    """``precision`` of :data:`PRECISIONS`, with 'auto' made 'mixed_bfloat16' where this machine has
    bf16 matrix units (:func:`rare_gan.bench.bf16_hardware`) and 'float32' elsewhere."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        from rare_gan.bench import bf16_hardware

        return "mixed_bfloat16" if bf16_hardware()["bf16_matrix_units"] else "float32"
    return precision


def load_run(run_dir: str | Path, precision: str = "float32") -> GeneratorRun:
    """Load ``generator.keras``, ``config.json`` and the scaler of a finished training run.

    ``precision`` (:data:`PRECISIONS`): the generator is rebuilt in that policy with the trained
    weights. On the 2-core development CPU (AMX) bf16 generation is 1.5–1.8× faster (README
    *Performance*), and its strong C2ST on the 12 reference runs is within the test's null SD of
    float32's (README *Limitations*).
    """
    import keras

    from rare_gan import ecgnets, models  # noqa: F401  (register the custom layers for deserialisation)

    run_dir = Path(run_dir)
    model_path = run_dir / "generator.keras"
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path} not found: train first (notebooks/03_train.ipynb or rare_gan.train)")
    precision = resolve_precision(precision)
    saved = json.loads((run_dir / "config.json").read_text())
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    config = TrainConfig.from_dict(saved["train"])
    generator = keras.saving.load_model(model_path, compile=False)
    if precision != config.precision:
        generator = _in_precision(generator, config, precision)
    return GeneratorRun(generator=generator, config=config, scaler=SignalScaler.from_dict(saved["scaler"]),
                        run_dir=run_dir, checkpoint_sha256=digest,
                        label_combinations=saved["data"].get("label_combinations"), precision=precision)


def _in_precision(generator, config: TrainConfig, precision: str):
    """The same generator (architecture and weights) computing in ``precision``."""
    from rare_gan import models
    from rare_gan.gan import build_models

    n_labels = generator.inputs[1].shape[-1] if len(generator.inputs) > 1 else 0
    rebuilt, _ = build_models(dataclasses.replace(config, precision=precision), n_labels=n_labels, discriminator=False)
    try:
        models.copy_weights(generator, rebuilt)
    except ValueError as exc:
        raise ValueError(f"this run's generator does not match the {config.recipe!r} recipe's current layers, so it "
                         f"cannot be rebuilt in {precision}; load it with precision='float32'") from exc
    return rebuilt


def latent_vectors(n: int, latent_dim: int, seed: int) -> np.ndarray:
    """Standard-normal latent vectors (n, latent_dim), float32, a pure function of ``seed``."""
    return np.random.default_rng(seed).standard_normal((n, latent_dim)).astype(np.float32)


def _inference_fn(generator):
    """A compiled inference function, built once per generator and kept on it.

    Not XLA as a whole: on the 2-core development CPU ``jit_compile=True`` makes the beat generator
    1.2× faster but the research generator 2.2× slower and the bf16 beat generator 1.6× slower
    (measured); only the beat renderer's overlap-add is compiled (:class:`rare_gan.ecgnets.BeatRenderer`).
    """
    import tensorflow as tf

    if getattr(generator, "_rare_gan_infer", None) is None:
        generator._rare_gan_infer = tf.function(lambda inputs: tf.cast(generator(inputs, training=False), tf.float32),
                                                reduce_retracing=True, autograph=False)  # no control flow to convert
    return generator._rare_gan_infer


def generate_scaled(generator, latent: np.ndarray, batch_size: int = 256, labels: np.ndarray | None = None
                    ) -> np.ndarray:
    """Generator output in the scaled space (n, 1000, 12), inference mode, in batches of exactly ``batch_size``.

    ``labels`` (multi-hot rows, one per latent vector) are required by a conditional generator.
    """
    step = _inference_fn(generator)
    out = np.empty((len(latent), *generator.output_shape[1:]), np.float32)
    z = np.zeros((batch_size, latent.shape[1]), np.float32)
    y = None if labels is None else np.zeros((batch_size, labels.shape[1]), np.float32)
    for start in range(0, len(latent), batch_size):
        n = min(batch_size, len(latent) - start)
        z[:n], z[n:] = latent[start:start + n], 0.0
        if y is not None:
            y[:n], y[n:] = labels[start:start + n], 0.0
        out[start:start + n] = step(z if y is None else [z, y]).numpy()[:n]
    return out


def condition_labels(run: GeneratorRun, code: str | None, n: int, seed: int) -> np.ndarray:
    """Multi-hot labels for ``n`` ECGs from a conditional run, drawn (seeded) from the label-code
    combinations of the run's training records in proportion to their counts, so co-occurring
    statements (rhythm, other diagnoses) keep their real frequencies.

    ``code`` (one code or a comma list: any of them) keeps only the combinations that contain it —
    needed for a run trained on every record; None takes them all (a run fine-tuned on one code's
    records, whose combinations all belong to that code even when it is not a label code).
    """
    from rare_gan.train import multi_hot

    combos = dict(run.label_combinations or {})
    if code is not None:
        wanted = {c.strip().upper() for c in code.split(",") if c.strip()}
        label_codes = run.config.label_codes or []
        if not wanted <= set(label_codes):
            raise ValueError(f"this conditional run knows codes {label_codes}; {sorted(wanted - set(label_codes))} "
                             "are not among them")
        combos = {k: v for k, v in combos.items() if wanted & set(k.split(","))}
    if not combos:
        raise ValueError(f"none of this run's training records carries {code!r}: nothing to condition on")
    names = sorted(combos)
    weights = np.asarray([combos[k] for k in names], np.float64)
    picks = np.random.default_rng([seed, 7]).choice(len(names), n, p=weights / weights.sum())
    return multi_hot([names[i].split(",") if names[i] else [] for i in picks], run.config.label_codes or [])


def generate(run: GeneratorRun, n: int, seed: int = 0, batch_size: int = 256, code: str | None = None) -> np.ndarray:
    """``n`` synthetic ECGs (n, 1000, 12) in mV from ``run``; reproducible for a given ``seed``.

    A conditional run trained on one code's records generates that code; a run trained on every
    record (pretraining) needs ``code``; labels come from :func:`condition_labels`.
    """
    latent = latent_vectors(n, run.config.latent_dim, seed)
    labels = None
    target = set(run.config.target)
    asked = {c.strip().upper() for c in code.split(",")} if code else set()
    if run.config.conditional:
        if target == {"ALL"} and not asked:
            raise ValueError("this run was trained on every record; pass code= the SCP code to generate")
        labels = condition_labels(run, None if (not asked or asked <= target) else code, n, seed)
    elif asked and not asked <= target:
        raise ValueError(f"this run generates {run.config.target} only (got code={code!r})")
    return run.scaler.inverse(generate_scaled(run.generator, latent, batch_size, labels))


def generation_rate(generator, n: int = 4096, batch_size: int = 256, repeats: int = 3) -> float:
    """Measured generation throughput in ECGs/s of :func:`generate_scaled` (median of ``repeats``
    passes over ``n`` ECGs, after one warm-up batch)."""
    latent = latent_vectors(n, generator.inputs[0].shape[-1], 0)
    labels = np.zeros((n, generator.inputs[1].shape[-1]), np.float32) if len(generator.inputs) > 1 else None
    generate_scaled(generator, latent[:batch_size], batch_size, None if labels is None else labels[:batch_size])
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        generate_scaled(generator, latent, batch_size, labels)
        rates.append(n / (time.perf_counter() - start))
    return float(np.median(rates))
