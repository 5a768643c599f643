"""Train an ECG GAN on the training-fold records of a rare condition (or on every record, to pretrain).

A run folder holds everything needed to trace and resume it::

    config.json          TrainConfig + scaler + data provenance + library versions
    history.csv          one row per epoch: d_loss, g_loss, d_real, d_fake, seconds, samples_per_s, rr_sd_ms, ...
    loss_curves.png      updated every ``sample_every`` epochs
    samples/epoch_NNNN.png  fixed-noise sample grid (SYNTHETIC), every ``sample_every`` epochs
    checkpoints/epoch_NNNN/ weights + optimiser states, written atomically every ``checkpoint_every`` epochs
    generator.keras, discriminator.keras  final models; ``_COMPLETE`` marks a finished run

:func:`train` runs one :class:`~rare_gan.recipes.TrainConfig` in one folder; :func:`train_recipe`
runs a named recipe for a code: it pretrains (or reuses the cached pretrained run) when the recipe
has a pretraining stage, then trains / fine-tunes in :func:`run_folder`'s folder.

Command line: ``python -m rare_gan.train --target PAC --recipe beat --config modified`` (``--help``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from rare_gan import atomic, matching
from rare_gan.checkpoints import latest_checkpoint, load_checkpoint, save_checkpoint
from rare_gan.data import DataError, PTBXL, SignalScaler, load_metadata, load_signals
from rare_gan.gan import build_models, freeze_discriminator, make_gan
from rare_gan.recipes import (ALL_RECORDS, DEFAULT_RECIPE, EXPERIMENTS, INITIAL, MODIFIED, RECIPES, STRATEGIES,
                              TrainConfig, get_recipe)

log = logging.getLogger(__name__)

FIXED_NOISE_SIZE = 64


class TrainingDivergedError(RuntimeError):
    """A loss became NaN/inf or exploded; the last good checkpoint is kept."""


def get_strategy(name: str):
    """The ``tf.distribute`` strategy: 'default' (one device), 'mirrored' (all local GPUs, or all
    logical devices), 'multiworker' (several machines described by ``TF_CONFIG``)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("strategy 'multiworker' needs TF_CONFIG describing the cluster (see README)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")


def seed_everything(seed: int, deterministic_ops: bool = True) -> None:
    """Seed Python, NumPy and TensorFlow; make TF ops deterministic (cheap on CPU)."""
    keras.utils.set_random_seed(seed)
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()


# ----------------------------------------------------------------------------------------------
# Input pipeline
# ----------------------------------------------------------------------------------------------
def steps_per_epoch(config: TrainConfig, n_records: int) -> int:
    """Batches per epoch: the configured number, else one pass over the records (at least one batch)."""
    return int(config.steps_per_epoch or max(1, n_records // config.batch_size))


def make_dataset(x_scaled: np.ndarray, config: TrainConfig, start_epoch: int = 0, labels: np.ndarray | None = None,
                 rr_stats: np.ndarray | None = None):
    """``tf.data`` stream of batches (batch, 1000, 12) from epoch ``start_epoch`` to ``config.epochs``.

    Each epoch takes its batches from reshuffled passes over the records, with a stateless shuffle
    keyed on (seed, epoch): the order of epoch *e* is the same whether or not the run was resumed.
    With ``labels`` (conditional models) the batches are ``(ecgs, labels)``; with ``rr_stats``
    (statistic matching) each record's RR statistics come last: ``(ecgs, [labels,] rr_stats)``.
    """
    n = len(x_scaled)
    if n == 0:
        raise DataError("no training ECGs for this target: nothing to train on")
    steps = steps_per_epoch(config, n)
    per_epoch = steps * config.batch_size
    passes = math.ceil(per_epoch / n)
    signals = tf.constant(np.asarray(x_scaled, dtype=np.float32))
    seed = tf.constant(config.seed, tf.int64)

    def epoch_indices(epoch):
        order = [tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64),
                                                          seed=tf.stack([seed, epoch * 1024 + p]))
                 for p in range(passes)]
        return tf.data.Dataset.from_tensor_slices(tf.concat(order, 0)[:per_epoch])

    return (tf.data.Dataset.range(start_epoch, config.epochs)
            .flat_map(epoch_indices)
            .batch(config.batch_size, drop_remainder=True)
            .map(_gatherer(signals, labels, rr_stats), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))


def _gatherer(signals, *per_record):
    """Batch of ``signals`` and of every per-record array that is not None, gathered at the same indices."""
    arrays = [tf.constant(np.asarray(a, dtype=np.float32)) for a in per_record if a is not None]
    if not arrays:
        return lambda idx: tf.gather(signals, idx)
    return lambda idx: (tf.gather(signals, idx), *(tf.gather(a, idx) for a in arrays))


def fixed_noise(config: TrainConfig, labels: np.ndarray | None = None, n: int = FIXED_NOISE_SIZE):
    """The fixed generator input used for per-epoch samples and RR-SD: latent batch (float32,
    (n, latent_dim)), plus, for a conditional model, the multi-hot labels of ``n`` training records
    drawn with the run's seed."""
    rng = np.random.default_rng([config.seed, 2**31 - 1])
    noise = rng.standard_normal((n, config.latent_dim)).astype(np.float32)
    if not config.conditional:
        return noise
    return [noise, np.asarray(labels, np.float32)[rng.choice(len(labels), n, replace=len(labels) < n)]]


# ----------------------------------------------------------------------------------------------
# Per-epoch bookkeeping
# ----------------------------------------------------------------------------------------------
def _make_epoch_callback(run_dir: Path, config: TrainConfig, data: "TrainingData", history: list[dict],
                         samples_per_epoch: int, start_epoch: int):
    from tqdm.auto import tqdm

    from rare_gan import physiology, plots

    noise = fixed_noise(config, data.labels)
    scaler = data.scaler

    class EpochBookkeeping(keras.callbacks.Callback):
        """History row, NaN guard, samples, loss curves, checkpoints and the progress bar."""

        def on_train_begin(self, logs=None):
            total = (config.epochs - start_epoch) * samples_per_epoch
            self.bar = tqdm(total=total, unit="sample", unit_scale=True, desc=f"train {config.name}",
                            dynamic_ncols=True, mininterval=1.0)
            self.diverged = None

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.bar.update(config.batch_size)
            bad = {k: float(v) for k, v in (logs or {}).items()
                   if k in ("d_loss", "g_loss") and not (abs(float(v)) <= config.max_abs_loss)}
            if bad:
                self.diverged = (self.params.get("epoch", 0), batch, bad)
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            if self.diverged is not None:
                return
            seconds = time.perf_counter() - self.t0
            samples_mv = scaler.inverse(self.model.generator(noise, training=False).numpy())
            rr = physiology.rr_sd_ms_batch(samples_mv)
            row = {"epoch": epoch + 1, **{k: float(logs[k]) for k in ("d_loss", "g_loss", "d_real", "d_fake", "stats_gap") if k in logs},
                   "seconds": seconds, "samples_per_s": samples_per_epoch / seconds,
                   "rr_sd_ms": float(np.nanmedian(rr)) if np.isfinite(rr).any() else float("nan"),
                   "rr_detected": float(np.isfinite(rr).mean())}
            history.append(row)
            self.bar.set_postfix(d_loss=f"{row['d_loss']:.3f}", g_loss=f"{row['g_loss']:.3f}",
                                 rr_sd=f"{row['rr_sd_ms']:.0f}ms", refresh=False)
            _write_history(run_dir, history)
            last = epoch + 1 == config.epochs
            if (epoch + 1) % config.sample_every == 0 or last:
                plots.plot_loss_curves(pd.DataFrame(history), path=run_dir / "loss_curves.png")
                titles = [",".join(codes_of(row, data.label_codes)) for row in noise[1][:16]] \
                    if config.conditional else None
                plots.plot_12lead_grid(samples_mv[:16], titles=titles, title=f"SYNTHETIC — {config.name}, epoch "
                                       f"{epoch + 1} (fixed noise)", path=run_dir / "samples" / f"epoch_{epoch + 1:04d}.png")
                _close_figures()
            if (epoch + 1) % config.checkpoint_every == 0 or last:
                save_checkpoint(run_dir, self.model, epoch + 1, config.keep_checkpoints)

        def on_train_end(self, logs=None):
            self.bar.close()

    return EpochBookkeeping()


def _close_figures() -> None:
    import matplotlib.pyplot as plt

    plt.close("all")


def _write_history(run_dir: Path, history: list[dict]) -> None:
    with atomic.atomic_path(run_dir / "history.csv") as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)


def _versions() -> dict[str, str]:
    import rare_gan

    return {"rare_gan": rare_gan.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "python": sys.version.split()[0]}


# ----------------------------------------------------------------------------------------------
# Training data and labels
# ----------------------------------------------------------------------------------------------
@dataclass
class TrainingData:
    """Scaled training ECGs of the target plus where they came from."""

    x_scaled: np.ndarray
    ecg_ids: np.ndarray
    scaler: SignalScaler
    data_root: str
    demo: bool
    codes: list[str] = field(default_factory=list)
    labels: np.ndarray | None = None
    """Conditional runs: multi-hot SCP codes per record (n, len(label_codes)), float32."""
    label_codes: list[str] | None = None
    rr_stats: np.ndarray | None = None
    """Statistic matching: each record's RR statistics (:func:`rare_gan.matching.real_rr_statistics`)."""
    fingerprint: str = ""
    """Digest of the training data's content (record ids, decoded signals, labels): the same data
    wherever and whenever it was unpacked gives the same digest (see :func:`data_fingerprint`)."""

    def label_combinations(self) -> dict[str, int]:
        """How many training records carry each combination of label codes ("NORM,SR": 712, ...)."""
        if self.labels is None:
            return {}
        combos = [",".join(codes_of(row, self.label_codes)) for row in self.labels]
        return dict(sorted(pd.Series(combos).value_counts().items()))


def codes_of(multi_hot: np.ndarray, label_codes: Sequence[str]) -> list[str]:
    """The codes set in one multi-hot row."""
    return [c for c, v in zip(label_codes, multi_hot) if v > 0.5]


def multi_hot(code_lists: Sequence[Sequence[str]], label_codes: Sequence[str]) -> np.ndarray:
    """(n, len(label_codes)) float32 multi-hot matrix; codes outside ``label_codes`` are ignored."""
    column = {c: j for j, c in enumerate(label_codes)}
    out = np.zeros((len(code_lists), len(label_codes)), np.float32)
    for i, codes in enumerate(code_lists):
        for c in codes:
            if c in column:
                out[i, column[c]] = 1.0
    return out


def record_codes(meta: PTBXL, ecg_ids, min_likelihood: float = 0.0) -> list[list[str]]:
    """The SCP codes each record carries (likelihood ≥ ``min_likelihood``)."""
    return [[c for c, v in d.items() if v >= min_likelihood] for d in meta.database.loc[list(ecg_ids), "scp_codes"]]


def label_vocabulary(meta: PTBXL, min_records: int, min_likelihood: float = 0.0, ecg_ids=None) -> list[str]:
    """Codes carried by at least ``min_records`` of ``ecg_ids`` (default: every training-fold record with a waveform)."""
    ids = meta.select(split="train") if ecg_ids is None else ecg_ids
    counts = pd.Series([c for codes in record_codes(meta, ids, min_likelihood) for c in codes]).value_counts()
    return sorted(counts[counts >= min_records].index)


def _saved(run_dir: str | os.PathLike) -> dict:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a trained run folder")
    return json.loads(path.read_text())


def prepare_training_data(config: TrainConfig, meta: PTBXL | None = None) -> TrainingData:
    """Load the training-fold ECGs (folds 1–8 only) of the target and fit the scaler on them.

    ``target=["ALL"]`` takes every training-fold record (pretraining). A conditional config gets
    each record's multi-hot SCP codes over ``label_codes`` (by default every code with at least
    ``min_label_records`` training records). With ``init_from`` the pretrained run's scaler and
    label codes are kept, so the fine-tuned networks work in the same spaces.
    """
    meta = meta or load_metadata(config.data_dir, demo_fallback=True)
    if config.target == [ALL_RECORDS]:
        codes, ids = [ALL_RECORDS], meta.select(split="train")
    else:
        codes = meta.validate_codes(config.target)
        ids = meta.select(codes, split="train", min_likelihood=config.min_likelihood)
    if config.exclude_codes:
        ids = ids[~meta.has_codes(meta.validate_codes(config.exclude_codes), config.min_likelihood).loc[ids].to_numpy()]
    if config.records is not None:
        outside = sorted(set(config.records) - set(int(i) for i in ids))
        if outside:
            raise DataError(f"records {outside[:10]} are not training-fold records of {codes} with waveforms "
                            f"(folds 1-8 only); they cannot be trained on")
        ids = pd.Index(config.records)
    if len(ids) == 0:
        raise DataError(
            f"no training-fold records with waveforms carry {codes} in {meta.root}; "
            f"pick a code with records (see `python -m rare_gan.data info --on-disk --data {meta.root}`)")
    signals = load_signals(meta, ids, progress=False)
    mv = np.asarray(signals.mv)
    source = _saved(config.init_from) if config.init_from else None
    scaler = SignalScaler.from_dict(source["scaler"]) if source else SignalScaler.fit(mv)
    labels = label_codes = None
    if config.conditional:
        label_codes = (config.label_codes or (source["train"].get("label_codes") if source else None)
                       or label_vocabulary(meta, config.min_label_records, config.min_likelihood, ids))
        labels = multi_hot(record_codes(meta, signals.ecg_ids, config.min_likelihood), label_codes)
    rr_names = matching.rr_names(config.matched_statistics)
    rr_stats = matching.real_rr_statistics(mv, rr_names) if config.stats_weight and rr_names else None
    return TrainingData(x_scaled=scaler.transform(mv), ecg_ids=signals.ecg_ids, scaler=scaler,
                        data_root=str(meta.root), demo=meta.demo, codes=codes, labels=labels,
                        label_codes=label_codes, rr_stats=rr_stats, fingerprint=data_fingerprint(signals.ecg_ids, mv, labels))


def data_fingerprint(ecg_ids, mv: np.ndarray, labels: np.ndarray | None = None) -> str:
    """Digest of training data by content (ids, signals in mV, labels), independent of the folder and file times."""
    digest = hashlib.sha256(np.asarray(ecg_ids, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(mv, dtype=np.float32).tobytes())
    if labels is not None:
        digest.update(np.ascontiguousarray(labels, dtype=np.float32).tobytes())
    return digest.hexdigest()[:24]


# ----------------------------------------------------------------------------------------------
# Training entry points
# ----------------------------------------------------------------------------------------------
def train(config: TrainConfig, out_dir: str | os.PathLike, resume: bool = True, data: TrainingData | None = None,
          callbacks: Sequence | None = None) -> pd.DataFrame:
    """Train (or resume) a run in ``out_dir``; return the per-epoch history.

    With ``resume`` and a checkpoint in ``out_dir`` made with the same config, training continues
    after the last checkpoint, and the history ends as an uninterrupted run's would. A finished
    run is returned as it is. Raises :class:`TrainingDivergedError` on NaN/exploding losses.
    """
    run_dir = Path(out_dir)
    data = data or prepare_training_data(config)  # bad codes, records or data fail here, before any folder is made
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
    if config.conditional and config.label_codes is None:
        config = dataclasses.replace(config, label_codes=data.label_codes)
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if checkpoint is not None:
        saved = TrainConfig.from_dict(json.loads(config_path.read_text())["train"])
        if _resume_key(saved) != _resume_key(config):
            raise ValueError(f"{run_dir} holds a run with a different config; use another out_dir or resume=False")
        if atomic.is_complete(run_dir) and saved.epochs == config.epochs:
            return pd.read_csv(run_dir / "history.csv")
    elif any(run_dir.iterdir()):
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    atomic.mark_incomplete(run_dir)

    seed_everything(config.seed)
    atomic.write_json(config_path, {"train": config.to_dict(), "scaler": data.scaler.to_dict(),
                                    "data": {"root": data.data_root, "demo": data.demo, "codes": data.codes,
                                             "fingerprint": data.fingerprint,
                                             "n_train_records": int(len(data.ecg_ids)),
                                             "train_ecg_ids": data.ecg_ids.tolist(),
                                             "label_combinations": data.label_combinations()},
                                    "versions": _versions()})
    strategy = get_strategy(config.strategy)
    with strategy.scope():
        generator, discriminator = build_models(config, n_labels=len(config.label_codes or []))
        if config.init_from and checkpoint is None:
            init_weights(generator, discriminator, Path(config.init_from))
        frozen = freeze_discriminator(discriminator, config.freeze_discriminator)
        stats = None
        if config.stats_weight:  # the real records' R peaks only where the beat morphology is matched
            r_times = (matching.real_r_times(data.scaler.inverse(data.x_scaled))
                       if "morphology" in config.matched_statistics else None)
            stats = matching.standardisation(data.x_scaled, data.rr_stats, r_times=r_times)
        gan = make_gan(generator, discriminator, config, matching=stats)
    if frozen:
        log.info("FreezeD: %d discriminator layers kept fixed (%s)", len(frozen), ", ".join(frozen))
    start_epoch, history = 0, []
    if checkpoint is not None:
        start_epoch = load_checkpoint(checkpoint, gan)
        history = pd.read_csv(run_dir / "history.csv").query("epoch <= @start_epoch").to_dict("records")
        log.info("resuming %s from %s (epoch %d of %d)", run_dir, checkpoint.name, start_epoch, config.epochs)
    if start_epoch < config.epochs:
        steps = steps_per_epoch(config, len(data.x_scaled))
        dataset = make_dataset(data.x_scaled, config, start_epoch, data.labels, data.rr_stats)
        bookkeeping = _make_epoch_callback(run_dir, config, data, history, steps * config.batch_size, start_epoch)
        gan.fit(dataset, epochs=config.epochs, initial_epoch=start_epoch, steps_per_epoch=steps, shuffle=False,
                verbose=0, callbacks=[bookkeeping, *(callbacks or [])])
        if bookkeeping.diverged is not None:
            _, batch, bad = bookkeeping.diverged
            good = latest_checkpoint(run_dir)
            raise TrainingDivergedError(
                f"training diverged at epoch {len(history) + 1}, batch {batch + 1}: "
                + ", ".join(f"{k}={v}" for k, v in bad.items())
                + f". Last good checkpoint: {good or 'none'} (history.csv stops there). Try lower learning rates, "
                  "--loss wgan-gp, or a different seed.")
    _save_final(run_dir, gan, config, history)
    return pd.read_csv(run_dir / "history.csv")


def init_weights(generator, discriminator, run_dir: Path) -> None:
    """Start fine-tuning from the generator and discriminator of the finished run in ``run_dir``, layer by layer."""
    from rare_gan import ecgnets, models  # noqa: F401  (ecgnets registers its custom layers for deserialisation)

    for model, name in ((generator, "generator"), (discriminator, "discriminator")):
        source = keras.saving.load_model(run_dir / f"{name}.keras", compile=False)
        try:
            models.copy_weights(source, model)
        except ValueError as exc:
            raise ValueError(f"init_from {run_dir}: its {name} does not match this one at {exc} (different recipe, "
                             "label codes or settings); fine-tune a run made with the same architecture") from exc
    log.info("initialised generator and discriminator from %s", run_dir)


def _resume_key(config: TrainConfig) -> dict:
    """Fields that must match for a checkpoint to be resumed (``epochs`` may grow)."""
    d = config.to_dict()
    for name in ("epochs", "checkpoint_every", "sample_every", "keep_checkpoints", "data_dir", "name"):
        d.pop(name)
    return d


def _digest_fields(config: TrainConfig) -> dict:
    """The resume key without the fields at their default, so that adding a setting whose default
    keeps the old behaviour leaves every existing digest (run folders, pretraining cache) valid."""
    defaults = TrainConfig(target=config.target).to_dict()
    return {k: v for k, v in _resume_key(config).items() if k == "target" or v != defaults[k]}


def config_digest(config: TrainConfig, length: int = 8) -> str:
    """Short digest of what makes a run this run (the resume key, defaults left out)."""
    return hashlib.sha256(json.dumps(_digest_fields(config), sort_keys=True, default=str).encode()).hexdigest()[:length]


def _save_final(run_dir: Path, gan, config: TrainConfig, history: list[dict]) -> None:
    for model, name in ((gan.generator, "generator"), (gan.discriminator, "discriminator")):
        with atomic.atomic_path(run_dir / f"{name}.keras") as tmp:
            model.save(tmp)
    _write_history(run_dir, history)
    atomic.mark_complete(run_dir, {"epochs": config.epochs, "name": config.name})


# ----------------------------------------------------------------------------------------------
# Recipes: pretraining cache and run folders
# ----------------------------------------------------------------------------------------------
def pretraining_folder(recipe: str, data_dir: str | None, seed: int = 0, profile: str = "full",
                       cache_root: str | os.PathLike = "outputs/pretrained", **overrides
                       ) -> tuple[Path, TrainConfig, TrainingData]:
    """Where the pretraining of ``recipe`` for this data set and seed is cached, with its config and data
    (nothing is trained).

    The folder ``<cache_root>/<recipe>-seed<seed>-<digest>`` is keyed by the pretraining config
    (recipe settings, profile budget, seed, ``overrides``), the networks' layer configurations
    and the data's content fingerprint (:func:`data_fingerprint`), so it is shared by
    every code and learning-rate configuration, and a change to any input gives a new one.
    """
    spec = get_recipe(recipe)
    config = spec.config(None, stage="pretrain", profile=profile, seed=seed, data_dir=data_dir,
                         name=f"pretrain-{spec.pretraining_of or spec.name}", **overrides)
    data = prepare_training_data(config)
    if config.conditional and config.label_codes is None:
        config = dataclasses.replace(config, label_codes=data.label_codes)
    networks = [model.get_config() for model in build_models(config, n_labels=len(config.label_codes or []))]
    key = hashlib.sha256(json.dumps([_digest_fields(config), config.epochs, data.fingerprint, networks], sort_keys=True,
                                    default=str).encode()).hexdigest()[:10]
    return Path(cache_root) / f"{config.recipe}-seed{seed}-{key}", config, data


def pretrained_run(recipe: str, data_dir: str | None, seed: int = 0, profile: str = "full",
                   cache_root: str | os.PathLike = "outputs/pretrained", **overrides) -> Path:
    """The finished pretraining run of ``recipe`` for this data set and seed (:func:`pretraining_folder`):
    reused when cached, trained otherwise (an old folder of other inputs is left alone)."""
    folder, config, data = pretraining_folder(recipe, data_dir, seed, profile, cache_root, **overrides)
    if atomic.is_complete(folder):
        log.info("pretrained %s (seed %d) reused from %s", config.recipe, seed, folder)
        return folder
    log.info("pretraining %s (seed %d) on %d training-fold records into %s", config.recipe, seed, len(data.ecg_ids),
             folder)
    train(config, folder, data=data)
    return folder


def experiment_of(config: TrainConfig):
    """The research's learning-rate configuration (Initial / Modified) that ``config`` uses, or None."""
    for experiment in EXPERIMENTS:
        if (config.lr_generator, config.lr_discriminator) == (experiment.lr_generator, experiment.lr_discriminator):
            return experiment
    return None


def run_folder(config: TrainConfig, outputs: str | os.PathLike = "outputs") -> Path:
    """Where a run of ``config`` goes, derived from its parameters; never a folder holding another run.

    Initial / Modified learning rates: the research's folders (``Rare_GAN/arrhythmia_gan_outputs``,
    ``Rare_GAN_Improved/arrhythmia_gan_outputs_tuned``; under ``<recipe>/`` for a named recipe other
    than the default, e.g. ``research/``). Other learning rates: ``runs/<recipe>-<codes>-g<lr>-d<lr>``. When that folder already
    holds a run with a different config, the run gets ``<folder>-<config digest>`` instead
    (:func:`unclaimed_folder`).
    """
    outputs = Path(outputs)
    experiment = experiment_of(config)
    target = "+".join(config.target)
    if experiment is not None:
        prefix = outputs / config.recipe if config.recipe in RECIPES and config.recipe != DEFAULT_RECIPE else outputs
        folder = prefix / experiment.folder / experiment.trainer_folder
    else:
        folder = outputs / "runs" / f"{config.recipe}-{target}-g{config.lr_generator:g}-d{config.lr_discriminator:g}"
    return unclaimed_folder(folder, config)


def unclaimed_folder(folder: str | os.PathLike, config: TrainConfig) -> Path:
    """``folder``, or ``<folder>-<config digest>`` when ``folder`` holds a run with a different config."""
    folder = Path(folder)
    saved = folder / "config.json"
    if saved.is_file():
        other = TrainConfig.from_dict(json.loads(saved.read_text())["train"])
        if _resume_key(other) != _resume_key(config):
            folder = folder.with_name(f"{folder.name}-{config_digest(config)}")
    return folder


def recipe_config(recipe: str, target, profile: str = "full", outputs: str | os.PathLike = "outputs",
                  pretrained_root: str | os.PathLike | None = None, pretrain_seed: int | None = None,
                  **overrides) -> TrainConfig:
    """The :class:`TrainConfig` of a run of ``recipe`` for ``target``, after its pretraining (cached; seed
    ``pretrain_seed``, default the run's seed; trained here when missing) if the recipe has that stage
    and no ``init_from`` is given. ``overrides`` are TrainConfig fields (``lr_generator``, ``seed``,
    ``data_dir``, ``init_from``, ...)."""
    spec = get_recipe(recipe)
    if spec.pretrained and not overrides.get("init_from"):
        load_metadata(overrides.get("data_dir"), demo_fallback=True).validate_codes(target)  # before a pretraining
        seed = overrides.get("seed", 0) if pretrain_seed is None else pretrain_seed
        init = pretrained_run(spec.name, overrides.get("data_dir"), seed, profile,
                              pretrained_root or Path(outputs) / "pretrained")
        overrides = {**overrides, "init_from": str(init)}
    config = spec.config(target, profile=profile, **overrides)
    if config.conditional and config.label_codes is None and config.init_from:
        config = dataclasses.replace(config, label_codes=_saved(config.init_from)["train"]["label_codes"])
    return config


def recipe_folder(config: TrainConfig, out_dir: str | os.PathLike | None = None,
                  outputs: str | os.PathLike = "outputs") -> Path:
    """Where :func:`train_recipe` puts a run of ``config``: ``out_dir`` (``<out_dir>-<config digest>``
    when it holds a run with another config), or :func:`run_folder` without ``out_dir``. Asked again
    after the run, it names the run's folder."""
    return unclaimed_folder(out_dir, config) if out_dir is not None else run_folder(config, outputs)


def train_recipe(recipe: str, target, out_dir: str | os.PathLike | None = None, profile: str = "full",
                 outputs: str | os.PathLike = "outputs", pretrained_root: str | os.PathLike | None = None,
                 resume: bool = True, pretrain_seed: int | None = None, **overrides) -> tuple[Path, pd.DataFrame]:
    """Train ``recipe`` for ``target`` (:func:`recipe_config`: pretraining first where the recipe has
    it) into :func:`recipe_folder` (an ``out_dir`` holding a run with another config is left alone).
    Returns (run folder, history); the folder is printed.
    """
    config = recipe_config(recipe, target, profile, outputs, pretrained_root, pretrain_seed, **overrides)
    folder = recipe_folder(config, out_dir, outputs)
    print(f"training {config.recipe} for {'+'.join(config.target)} (G lr {config.lr_generator:g}, D lr "
          f"{config.lr_discriminator:g}, seed {config.seed}) -> {folder}", file=sys.stderr, flush=True)
    history = train(config, folder, resume=resume)
    return folder, history


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------
_RUN_FIELDS = ("lr_generator", "lr_discriminator", "seed", "precision", "strategy", "epochs", "steps_per_epoch",
               "batch_size", "checkpoint_every", "sample_every")


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rare_gan.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="SCP code(s), comma-separated (e.g. PAC or BIGU,TRIGU)")
    parser.add_argument("--recipe", default=DEFAULT_RECIPE, help=f"named recipe (default {DEFAULT_RECIPE}; "
                        f"see rare_gan.recipes): {', '.join(RECIPES)}")
    parser.add_argument("--profile", default="full", choices=["test", "quick", "full"],
                        help="training budget of the recipe (default full)")
    parser.add_argument("--out", help="run folder (default: derived from the parameters, see run_folder; one "
                                      "holding another config's run is left alone: the run goes to <out>-<digest>)")
    parser.add_argument("--outputs", default="outputs", help="outputs folder for derived run folders and the "
                                                             "pretraining cache (default outputs/)")
    parser.add_argument("--data", dest="data_dir", help="PTB-XL folder (default: $PTBXL_DIR, data/ptbxl, else DEMO)")
    parser.add_argument("--config", choices=["initial", "modified"], help="the research's learning rates")
    defaults = TrainConfig(target=["X"])
    for name in _RUN_FIELDS:
        default = getattr(defaults, name)
        kind = float if isinstance(default, float) else int if isinstance(default, int) else str
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None,
                            help="default: the recipe's" if name in ("epochs", "steps_per_epoch", "batch_size")
                            else f"default {default}")
    parser.add_argument("--lr-g", dest="lr_generator", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--lr-d", dest="lr_discriminator", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (2 for bad input, 3 for divergence)."""
    args = vars(build_arg_parser().parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out, preset, no_resume = args.pop("out"), args.pop("config"), args.pop("no_resume")
    recipe, profile, outputs, target = args.pop("recipe"), args.pop("profile"), args.pop("outputs"), args.pop("target")
    values = {**(INITIAL if preset == "initial" else MODIFIED if preset == "modified" else {}),
              **{k: v for k, v in args.items() if v is not None}}
    try:
        folder, history = train_recipe(recipe, target, out, profile=profile, outputs=outputs, resume=not no_resume,
                                       **values)
    except (DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingDivergedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is in the run folder printed above. Run the same command again "
              "to resume.", file=sys.stderr)
        return 130
    print(history.tail(3).to_string(index=False))
    print(f"run folder: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
