"""Train the inception/residual ECG GAN on the training-fold records of a rare condition.

A run folder holds everything needed to trace and resume it::

    config.json          TrainConfig + scaler + data provenance + library versions
    history.csv          one row per epoch: d_loss, g_loss, d_real, d_fake, seconds, samples_per_s, rr_sd_ms, ...
    loss_curves.png      updated every ``sample_every`` epochs
    samples/epoch_NNNN.png  fixed-noise sample grid (SYNTHETIC), every ``sample_every`` epochs
    checkpoints/epoch_NNNN/ weights + optimiser states, written atomically every ``checkpoint_every`` epochs
    generator.keras, discriminator.keras  final models; ``_COMPLETE`` marks a finished run

Command line: ``python -m rare_gan.train --target PAC --epochs 50 --out outputs/my_run`` (``--help``).
"""

from __future__ import annotations

import argparse
import dataclasses
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

from rare_gan import atomic
from rare_gan.data import DataError, PTBXL, SignalScaler, load_metadata, load_signals

log = logging.getLogger(__name__)

INITIAL = {"lr_generator": 2e-4, "lr_discriminator": 2e-4}
"""The research's *Initial* configuration (reported as more realistic)."""
MODIFIED = {"lr_generator": 4e-4, "lr_discriminator": 1e-4}
"""The research's *Modified* configuration (reported as overly smooth)."""

LOSSES = ("nonsaturating", "wgan-gp")
PRECISIONS = ("float32", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multiworker")
FIXED_NOISE_SIZE = 64
ALL_RECORDS = "ALL"
"""``target`` value meaning every training-fold record (for pretraining before fine-tuning)."""


class TrainingDivergedError(RuntimeError):
    """A loss became NaN/inf or exploded; the last good checkpoint is kept."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json``).

    One ``seed`` fixes the data order, the noise and the initial weights. An *epoch* is
    ``steps_per_epoch`` batches drawn without replacement from reshuffled passes over the target's
    training records (default: one pass, at least one batch), so tiny rare classes still get
    meaningful epochs.

    Defaults beyond the research's spec (same architecture and NS-GAN loss), chosen because on
    45 PAC records the research's setup lets D win within ~500 steps (D(real) ≈ 0.95) and G makes
    spikes and noise bursts: generator transposed-conv kernel 4 (was 5), DiffAugment (gain +
    circular shift) and R1 γ = 0.1. ``--generator-kernel-size 5 --no-diff-augment --r1-weight 0``
    restores the research's setup exactly.
    """

    target: list[str]
    lr_generator: float = INITIAL["lr_generator"]
    lr_discriminator: float = INITIAL["lr_discriminator"]
    beta_1: float = 0.5
    epochs: int = 100
    batch_size: int = 64
    steps_per_epoch: int | None = None
    latent_dim: int = 100
    loss: str = "nonsaturating"
    gp_weight: float = 10.0
    critic_steps: int = 1
    lead_consistent: bool = True
    generator_kernel_size: int = 4
    """Kernel of the generator's stride-2 transposed convs; 4 (a multiple of the stride) avoids the
    checkerboard ripple that 5 gives (5 + no DiffAugment + r1_weight 0 is the research's exact setup)."""
    generator_upsample: str = "transpose"
    """'transpose' (Conv1DTranspose stages, the research's design) or 'nearest' (UpSampling1D + Conv1D)."""
    beta_2: float = 0.999
    """Adam β2 for both optimisers (WGAN-GP is usually run with 0.9)."""
    discriminator_dropout: float = 0.0
    """Dropout after each discriminator inception block (0 = none, the research's D)."""
    discriminator_pooling: str = "average"
    """How D pools its last feature map: 'average' (global, position-free) or 'flatten' (sees where
    beats fall over the 10 s, so it can judge the rhythm)."""
    r1_weight: float = 0.1
    """γ of the R1 penalty γ/2·E‖∇ₓD(x_real)‖² added to the NS-GAN discriminator loss (0 = off;
    ignored by WGAN-GP, which has its own penalty). With ``diff_augment`` it keeps D from winning
    on ~50 records; on its own (or with γ = 1) G drifts into bursts of high-frequency noise."""
    diff_augment: bool = True
    """Differentiable augmentation of real *and* fake ECGs before every discriminator call, G's
    step included (:func:`diff_augment`), so D cannot memorise a tiny rare-class set. Configs
    saved without this field ran without it."""
    augment_gain: float = 0.2
    """DiffAugment: one amplitude factor per ECG, uniform in [1 − gain, 1 + gain], same for all leads."""
    augment_shift_s: float = 0.3
    """DiffAugment: circular time shift per ECG, uniform in ±shift seconds (100 Hz)."""
    augment_noise: float = 0.0
    """DiffAugment: std of white noise in scaled units, drawn on the 8 independent leads and mapped
    to 12 so the limb-lead relations stay exact. Off by default: with a ~5 mV scale, 0.01 is
    0.05 mV, enough to hide G's own high-frequency noise (and P waves) from D."""
    augment_wander: float = 0.0
    """DiffAugment: maximum amplitude (scaled units) of a 0.05–0.5 Hz baseline wander on the 8
    independent leads, mapped to 12. Off by default (the reference runs were made without it)."""
    precision: str = "float32"
    strategy: str = "default"
    seed: int = 0
    checkpoint_every: int = 5
    sample_every: int = 5
    keep_checkpoints: int = 2
    max_abs_loss: float = 1e6
    min_likelihood: float = 0.0
    conditional: bool = False
    """One model for several codes: G gets a label embedding, D a projection head; ``target`` lists
    the codes (each a class) and ``common_class`` may add a common one."""
    common_class: str | None = None
    """Conditional only: an extra, common class (e.g. "NORM") trained alongside the rare codes;
    its records are subsampled to at most ``common_per_rare`` × the largest rare class."""
    common_per_rare: int = 4
    init_from: str | None = None
    """Fine-tuning: a finished run folder whose generator/discriminator weights (and scaler) start
    this run, e.g. one pretrained with ``target="ALL"`` on every training-fold record."""
    data_dir: str | None = None
    name: str = "run"

    def __post_init__(self) -> None:
        if isinstance(self.target, str):
            self.target = [c.strip() for c in self.target.replace(";", ",").split(",") if c.strip()]
        self.target = [c.upper() for c in self.target]
        if self.steps_per_epoch is not None:
            self.steps_per_epoch = int(self.steps_per_epoch)  # the CLI hands it over as a string
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        for name in ("epochs", "batch_size", "latent_dim", "checkpoint_every", "sample_every", "critic_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not (self.lr_generator > 0 and self.lr_discriminator > 0):
            raise ValueError("learning rates must be > 0")
        if self.common_class:
            self.common_class = self.common_class.upper()
        if self.conditional and len(self.class_names) < 2:
            raise ValueError("a conditional model needs at least two classes: several target codes or common_class")
        if self.target == [ALL_RECORDS] and self.conditional:
            raise ValueError(f"target {ALL_RECORDS!r} (pretraining on every record) is unconditional")

    @property
    def class_names(self) -> list[str]:
        """The classes of a conditional model: each target code, then ``common_class`` if set."""
        return self.target + ([self.common_class] if self.common_class else [])
        if self.generator_upsample not in ("transpose", "nearest"):
            raise ValueError(f"generator_upsample must be 'transpose' or 'nearest', got {self.generator_upsample!r}")
        if int(self.generator_kernel_size) < 1:
            raise ValueError(f"generator_kernel_size must be >= 1, got {self.generator_kernel_size!r}")
        if not 0.0 <= self.discriminator_dropout < 1.0:
            raise ValueError(f"discriminator_dropout must be in [0, 1), got {self.discriminator_dropout!r}")
        if self.r1_weight < 0 or self.augment_gain < 0 or self.augment_shift_s < 0 or self.augment_noise < 0 \
                or self.augment_wander < 0:
            raise ValueError("r1_weight and the augment_* settings must be >= 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def diff_augment(x, seed, gain: float = 0.2, shift: int = 30, noise: float = 0.0, wander: float = 0.0):
    """Differentiable, lead-consistent augmentation of an ECG batch ``(batch, T, 12)`` at 100 Hz (DiffAugment).

    Per ECG: one amplitude factor uniform in [1 − gain, 1 + gain] for all leads; a circular time
    shift uniform in [−shift, shift] samples; white noise of std ``noise`` and a baseline wander (a
    0.05–0.5 Hz sinusoid of random phase and amplitude uniform in [0, ``wander``], both in scaled
    units) on the 8 independent leads, mapped to 12 with :data:`rare_gan.leads.INDEPENDENT_TO_12`
    (so III = II − I etc. still hold exactly when they held before). ``seed`` is a stateless-RNG
    seed (2 int64s). Gradients flow to ``x``; apply it to real and fake alike before the discriminator.
    """
    from rare_gan.leads import INDEPENDENT_TO_12

    x = tf.convert_to_tensor(x)
    dtype = x.dtype
    batch, length = tf.shape(x)[0], tf.shape(x)[1]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    if gain:
        g = tf.random.stateless_uniform((batch, 1, 1), seeds[0], 1.0 - gain, 1.0 + gain)
        x = x * tf.cast(g, dtype)
    if shift:
        s = tf.random.stateless_uniform((batch, 1), seeds[1], -shift, shift + 1, dtype=tf.int32)
        idx = tf.math.floormod(tf.range(length)[None, :] - s, length)
        x = tf.gather(x, idx, batch_dims=1)
    mixing = tf.constant(INDEPENDENT_TO_12, tf.float32)
    n_independent = mixing.shape[0]
    if noise:
        n8 = tf.random.stateless_normal((batch, length, n_independent), seeds[2], stddev=noise)
        x = x + tf.cast(tf.matmul(n8, mixing), dtype)
    if wander:
        s_amp, s_freq, s_phase = tf.unstack(tf.random.experimental.stateless_split(seeds[2], 4)[1:])
        amplitude = tf.random.stateless_uniform((batch, 1, n_independent), s_amp, 0.0, wander)
        freq_hz = tf.random.stateless_uniform((batch, 1, n_independent), s_freq, 0.05, 0.5)
        phase = tf.random.stateless_uniform((batch, 1, n_independent), s_phase, 0.0, 2 * np.pi)
        t_s = tf.cast(tf.range(length), tf.float32)[None, :, None] / 100.0
        w8 = amplitude * tf.sin(2 * np.pi * freq_hz * t_s + phase)
        x = x + tf.cast(tf.matmul(w8, mixing), dtype)
    return x


# ----------------------------------------------------------------------------------------------
# The GAN as a keras.Model with its own train_step
# ----------------------------------------------------------------------------------------------
def make_gan(generator, discriminator, config: TrainConfig):
    """Wrap G and D in an :class:`ECGGAN` and compile it with the config's two Adam optimisers."""
    augment = None
    if config.diff_augment:
        augment = {"gain": float(config.augment_gain), "shift": int(round(config.augment_shift_s * 100)),
                   "noise": float(config.augment_noise), "wander": float(config.augment_wander)}
    gan = ECGGAN(generator, discriminator, latent_dim=config.latent_dim, loss=config.loss,
                 gp_weight=config.gp_weight, critic_steps=config.critic_steps, seed=config.seed,
                 r1_weight=config.r1_weight, augment=augment,
                 n_classes=len(config.class_names) if config.conditional else 0)
    gan.compile(
        g_optimizer=keras.optimizers.Adam(config.lr_generator, beta_1=config.beta_1, beta_2=config.beta_2),
        d_optimizer=keras.optimizers.Adam(config.lr_discriminator, beta_1=config.beta_1, beta_2=config.beta_2),
    )
    # create the optimiser slots now (under the caller's strategy scope), not lazily inside a replica step
    gan.g_optimizer.build(generator.trainable_weights)
    gan.d_optimizer.build(discriminator.trainable_weights)
    return gan


@keras.saving.register_keras_serializable(package="rare_gan")
class ECGGAN(keras.Model):
    """Generator + discriminator trained adversarially (as in keras.io's DCGAN/WGAN-GP examples).

    Noise is drawn with a *stateless* RNG keyed on (seed, replica, optimiser step), so it is a
    pure function of the checkpointed state: a resumed run draws exactly the noise the
    uninterrupted run would have drawn. With ``n_classes > 0`` the batches are ``(ecgs, labels)``
    and fakes are generated for the batch's own labels (so classes keep their training frequency).
    """

    def __init__(self, generator, discriminator, latent_dim=100, loss="nonsaturating", gp_weight=10.0,
                 critic_steps=1, seed=0, r1_weight=0.0, augment=None, n_classes=0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(latent_dim)
        self.adversarial_loss = loss
        self.gp_weight = float(gp_weight)
        self.critic_steps = int(critic_steps)
        self.seed = int(seed)
        self.r1_weight = float(r1_weight)
        self.augment = dict(augment) if augment else None  # kwargs of diff_augment, or None (off)
        self.n_classes = int(n_classes)
        self.built = True  # G and D are built functional models; fit must not build from ECG batches

    def compile(self, g_optimizer, d_optimizer):
        super().compile()
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("d_loss", "g_loss", "d_real", "d_fake")}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _step_seed(self, stream):
        """Stateless-RNG seed keyed on (seed, replica, discriminator step, stream): 0/1 noise for the
        D/G steps, 2–4 augmentation, 5 gradient-penalty mixing."""
        replica = tf.distribute.get_replica_context()
        replica_id = tf.cast(replica.replica_id_in_sync_group if replica else 0, tf.int64)
        step = tf.cast(self.d_optimizer.iterations, tf.int64)
        return tf.stack([tf.constant(self.seed, tf.int64) * 1009 + replica_id, step * 8 + stream])

    def _noise(self, batch, stream):
        return tf.random.stateless_normal((batch, self.latent_dim), seed=self._step_seed(stream))

    def _generate(self, noise, labels, training=True):
        return self.generator([noise, labels] if self.n_classes else noise, training=training)

    def _critic(self, ecgs, labels):
        return tf.cast(self.discriminator([ecgs, labels] if self.n_classes else ecgs, training=True), tf.float32)

    def discriminator_loss(self, real_logits, fake_logits):
        """NS-GAN: −log D(x) − log(1 − D(G(z))); WGAN: E[D(G(z))] − E[D(x)] (penalty added separately)."""
        if self.adversarial_loss == "wgan-gp":
            return tf.reduce_mean(fake_logits) - tf.reduce_mean(real_logits)
        return tf.reduce_mean(tf.nn.softplus(-real_logits)) + tf.reduce_mean(tf.nn.softplus(fake_logits))

    def generator_loss(self, fake_logits):
        """NS-GAN: −log D(G(z)); WGAN: −E[D(G(z))]."""
        if self.adversarial_loss == "wgan-gp":
            return -tf.reduce_mean(fake_logits)
        return tf.reduce_mean(tf.nn.softplus(-fake_logits))

    def gradient_penalty(self, real, fake, labels=None):
        """WGAN-GP: (‖∇D(x̂)‖₂ − 1)² on random interpolates x̂ between real and fake."""
        alpha = tf.random.stateless_uniform((tf.shape(real)[0], 1, 1), seed=self._step_seed(5))
        mixed = real + alpha * (fake - real)
        with tf.GradientTape() as tape:
            tape.watch(mixed)
            logits = self._critic(mixed, labels)
        grads = tape.gradient(logits, mixed)
        norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2]) + 1e-12)
        return tf.reduce_mean(tf.square(norm - 1.0))

    def _augment(self, x, stream):
        """DiffAugment ``x`` if augmentation is on."""
        return diff_augment(x, self._step_seed(stream), **self.augment) if self.augment else x

    def r1_penalty(self, real, labels=None):
        """R1: E‖∇ₓD(x)‖² on (augmented) real ECGs (Mescheder et al. 2018)."""
        with tf.GradientTape() as tape:
            tape.watch(real)
            logits = self._critic(real, labels)
        grads = tape.gradient(logits, real)  # = ∇ of the sum: one gradient per ECG
        return tf.reduce_mean(tf.reduce_sum(tf.square(grads), axis=[1, 2]))

    def train_step(self, data):
        real, labels = data if self.n_classes else (data, None)
        real = tf.cast(real, tf.float32)
        batch = tf.shape(real)[0]
        replicas = tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
        for _ in range(self.critic_steps):
            noise = self._noise(batch, 0)
            with tf.GradientTape() as tape:
                fake = tf.cast(self._augment(self._generate(noise, labels), 3), tf.float32)
                real_aug = self._augment(real, 2)
                real_logits = self._critic(real_aug, labels)
                fake_logits = self._critic(fake, labels)
                d_loss = self.discriminator_loss(real_logits, fake_logits)
                if self.adversarial_loss == "wgan-gp":
                    d_loss += self.gp_weight * self.gradient_penalty(real_aug, fake, labels)
                elif self.r1_weight:
                    d_loss += 0.5 * self.r1_weight * self.r1_penalty(real_aug, labels)
                scaled = d_loss / replicas
            grads = tape.gradient(scaled, self.discriminator.trainable_weights)
            self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))

        noise = self._noise(batch, 1)
        with tf.GradientTape() as tape:
            fake_g = self._augment(self._generate(noise, labels), 4)
            fake_logits_g = self._critic(fake_g, labels)
            g_loss = self.generator_loss(fake_logits_g)
            scaled = g_loss / replicas
        grads = tape.gradient(scaled, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))

        score = (lambda x: x) if self.adversarial_loss == "wgan-gp" else tf.sigmoid
        for name, value in (("d_loss", d_loss), ("g_loss", g_loss), ("d_real", tf.reduce_mean(score(real_logits))),
                            ("d_fake", tf.reduce_mean(score(fake_logits)))):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def get_config(self):
        return {"latent_dim": self.latent_dim, "loss": self.adversarial_loss, "gp_weight": self.gp_weight,
                "critic_steps": self.critic_steps, "seed": self.seed, "r1_weight": self.r1_weight,
                "augment": self.augment, "n_classes": self.n_classes,
                "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        generator = keras.saving.deserialize_keras_object(config.pop("generator"))
        discriminator = keras.saving.deserialize_keras_object(config.pop("discriminator"))
        return cls(generator, discriminator, **config)



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


def build_models(config: TrainConfig):
    """Generator and discriminator for ``config`` in its precision policy (the global policy is restored)."""
    from rare_gan import models

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(config.precision)
    try:
        n_classes = len(config.class_names) if config.conditional else 0
        generator = models.build_generator(latent_dim=config.latent_dim, lead_consistent=config.lead_consistent,
                                           kernel_size=config.generator_kernel_size,
                                           upsample=config.generator_upsample, n_classes=n_classes)
        discriminator = models.build_discriminator(dropout=config.discriminator_dropout,
                                                   pooling=config.discriminator_pooling, n_classes=n_classes)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return generator, discriminator


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


def make_dataset(x_scaled: np.ndarray, config: TrainConfig, start_epoch: int = 0, labels: np.ndarray | None = None):
    """``tf.data`` stream of batches (batch, 1000, 12) from epoch ``start_epoch`` to ``config.epochs``.

    Each epoch takes its batches from reshuffled passes over the records, with a stateless shuffle
    keyed on (seed, epoch): the order of epoch *e* is the same whether or not the run was resumed.
    With ``labels`` (conditional models) the batches are ``(ecgs, labels)``.
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
            .map(_gatherer(signals, labels), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))


def _gatherer(signals, labels):
    if labels is None:
        return lambda idx: tf.gather(signals, idx)
    classes = tf.constant(np.asarray(labels, dtype=np.int32))
    return lambda idx: (tf.gather(signals, idx), tf.gather(classes, idx))


def fixed_noise(config: TrainConfig, n: int = FIXED_NOISE_SIZE):
    """The fixed generator input used for per-epoch samples and RR-SD: latent batch (float32,
    (n, latent_dim)), plus labels cycling over the classes for a conditional model."""
    noise = np.random.default_rng([config.seed, 2**31 - 1]).standard_normal((n, config.latent_dim)).astype(np.float32)
    if not config.conditional:
        return noise
    return [noise, np.arange(n, dtype=np.int32) % len(config.class_names)]


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------
def _optimizer_state(optimizer) -> dict[str, np.ndarray]:
    return {f"v{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)}


def _restore_optimizer(optimizer, state) -> None:
    values = [state[f"v{i:04d}"] for i in range(len(optimizer.variables))]
    if len(state.files) != len(values):
        raise ValueError("checkpoint optimiser state does not match this model")
    for var, value in zip(optimizer.variables, values):
        var.assign(value)


def save_checkpoint(run_dir: Path, gan, epoch: int, keep: int) -> Path:
    """Write ``checkpoints/epoch_NNNN`` atomically (temporary folder renamed in place); keep the newest ``keep``."""
    root = run_dir / "checkpoints"
    final = root / f"epoch_{epoch:04d}"
    tmp = root / f".tmp_epoch_{epoch:04d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        gan.generator.save_weights(tmp / "generator.weights.h5")
        gan.discriminator.save_weights(tmp / "discriminator.weights.h5")
        np.savez(tmp / "g_optimizer.npz", **_optimizer_state(gan.g_optimizer))
        np.savez(tmp / "d_optimizer.npz", **_optimizer_state(gan.d_optimizer))
        atomic.write_json(tmp / "state.json", {"epoch": epoch})
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed save (disk full, interrupt) leaves the old ones
        raise
    for old in sorted(root.glob("epoch_*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    done = [p for p in sorted((Path(run_dir) / "checkpoints").glob("epoch_*")) if (p / "state.json").is_file()]
    return done[-1] if done else None


def load_checkpoint(checkpoint: Path, gan) -> int:
    """Restore weights and optimiser states into ``gan``; return the checkpoint's epoch (1-based, completed)."""
    gan.generator.load_weights(checkpoint / "generator.weights.h5")
    gan.discriminator.load_weights(checkpoint / "discriminator.weights.h5")
    with np.load(checkpoint / "g_optimizer.npz") as state:
        _restore_optimizer(gan.g_optimizer, state)
    with np.load(checkpoint / "d_optimizer.npz") as state:
        _restore_optimizer(gan.d_optimizer, state)
    return int(json.loads((checkpoint / "state.json").read_text())["epoch"])


# ----------------------------------------------------------------------------------------------
# Per-epoch bookkeeping
# ----------------------------------------------------------------------------------------------
def _make_epoch_callback(run_dir: Path, config: TrainConfig, scaler: SignalScaler, history: list[dict],
                         samples_per_epoch: int, start_epoch: int):
    from tqdm.auto import tqdm

    from rare_gan import physiology, plots

    noise = fixed_noise(config)

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
            row = {"epoch": epoch + 1, **{k: float(logs[k]) for k in ("d_loss", "g_loss", "d_real", "d_fake")},
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
                titles = [config.class_names[i] for i in noise[1][:16]] if config.conditional else None
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
# Training entry points
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
    """Class index per record (conditional models), into ``TrainConfig.class_names``."""


def _class_labels(meta: PTBXL, ids: pd.Index, config: TrainConfig) -> tuple[pd.Index, np.ndarray]:
    """Records and class index for a conditional model, rarest class first when a record has several.

    Records of ``common_class`` that carry no target code are subsampled (seeded) to at most
    ``common_per_rare`` × the largest rare class.
    """
    names = config.class_names
    carries = {c: meta.has_codes(c, config.min_likelihood).loc[ids] for c in names}
    rarest_first = sorted(config.target, key=lambda c: int(carries[c].sum()))
    label = pd.Series(-1, index=ids)
    for code in reversed(rarest_first):
        label[carries[code].to_numpy()] = names.index(code)
    if config.common_class:
        common = ids[(label < 0).to_numpy() & carries[config.common_class].to_numpy()]
        keep = config.common_per_rare * max(int((label == names.index(c)).sum()) for c in config.target)
        rng = np.random.default_rng([config.seed, 5])
        common = common[np.sort(rng.permutation(len(common))[:keep])]
        label[common] = names.index(config.common_class)
    label = label[label >= 0]
    empty = [c for i, c in enumerate(names) if not (label == i).any()]
    if empty:
        raise DataError(f"no training-fold records with waveforms for class(es) {empty} in {meta.root}")
    return label.index, label.to_numpy(np.int32)


def prepare_training_data(config: TrainConfig, meta: PTBXL | None = None) -> TrainingData:
    """Load the training-fold ECGs (folds 1–8 only) of the target and fit the scaler on them.

    ``target=["ALL"]`` takes every training-fold record (pretraining); a conditional config labels
    each record with its class; with ``init_from`` the pretrained run's scaler is kept, so the
    fine-tuned generator works in the same scaled space.
    """
    meta = meta or load_metadata(config.data_dir, demo_fallback=True)
    if config.target == [ALL_RECORDS]:
        codes, ids = [ALL_RECORDS], meta.select(split="train")
    else:
        codes = meta.validate_codes(config.target + ([config.common_class] if config.common_class else []))
        ids = meta.select(codes, split="train", min_likelihood=config.min_likelihood)
    if len(ids) == 0:
        raise DataError(
            f"no training-fold records with waveforms carry {codes} in {meta.root}; "
            f"pick a code with records (see `python -m rare_gan.data info --on-disk --data {meta.root}`)")
    labels = None
    if config.conditional:
        ids, labels = _class_labels(meta, ids, config)
    signals = load_signals(meta, ids, progress=False)
    if labels is not None:
        loaded = pd.Series(labels, index=ids)
        labels = loaded.loc[signals.ecg_ids].to_numpy(np.int32)
    mv = np.asarray(signals.mv)
    if config.init_from:
        scaler = SignalScaler.from_dict(json.loads((Path(config.init_from) / "config.json").read_text())["scaler"])
    else:
        scaler = SignalScaler.fit(mv)
    return TrainingData(x_scaled=scaler.transform(mv), ecg_ids=signals.ecg_ids, scaler=scaler,
                        data_root=str(meta.root), demo=meta.demo, codes=codes, labels=labels)


def train(config: TrainConfig, out_dir: str | os.PathLike, resume: bool = True, data: TrainingData | None = None,
          callbacks: Sequence | None = None) -> pd.DataFrame:
    """Train (or resume) a run in ``out_dir``; return the per-epoch history.

    With ``resume`` and a checkpoint in ``out_dir`` made with the same config, training continues
    after the last checkpoint, and the history ends as an uninterrupted run's would. A finished
    run is returned as it is. Raises :class:`TrainingDivergedError` on NaN/exploding losses.
    """
    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "config.json"
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
    data = data or prepare_training_data(config)
    atomic.write_json(config_path, {"train": config.to_dict(), "scaler": data.scaler.to_dict(),
                                    "data": {"root": data.data_root, "demo": data.demo, "codes": data.codes,
                                             "n_train_records": int(len(data.ecg_ids)),
                                             "train_ecg_ids": data.ecg_ids.tolist(),
                                             "class_names": config.class_names if config.conditional else None,
                                             "class_counts": None if data.labels is None else
                                             np.bincount(data.labels, minlength=len(config.class_names)).tolist()},
                                    "versions": _versions()})
    strategy = get_strategy(config.strategy)
    with strategy.scope():
        generator, discriminator = build_models(config)
        gan = make_gan(generator, discriminator, config)
    start_epoch, history = 0, []
    if config.init_from and checkpoint is None:
        init_weights(gan, Path(config.init_from))
    if checkpoint is not None:
        start_epoch = load_checkpoint(checkpoint, gan)
        history = pd.read_csv(run_dir / "history.csv").query("epoch <= @start_epoch").to_dict("records")
        log.info("resuming %s from %s (epoch %d of %d)", run_dir, checkpoint.name, start_epoch, config.epochs)
    if start_epoch < config.epochs:
        steps = steps_per_epoch(config, len(data.x_scaled))
        dataset = make_dataset(data.x_scaled, config, start_epoch, data.labels)
        bookkeeping = _make_epoch_callback(run_dir, config, data.scaler, history, steps * config.batch_size,
                                           start_epoch)
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


def init_weights(gan, run_dir: Path) -> None:
    """Start fine-tuning from the generator and discriminator of the finished run in ``run_dir``."""
    for model, name in ((gan.generator, "generator"), (gan.discriminator, "discriminator")):
        source = keras.saving.load_model(run_dir / f"{name}.keras", compile=False)
        shapes = [w.shape for w in source.weights], [w.shape for w in model.weights]
        if shapes[0] != shapes[1]:
            raise ValueError(f"init_from {run_dir}: its {name} has a different architecture (conditional vs "
                             "unconditional, lead mode or kernel size differ); fine-tune a run with the same settings")
        model.set_weights(source.get_weights())
    log.info("initialised generator and discriminator from %s", run_dir)


def _resume_key(config: TrainConfig) -> dict:
    """Fields that must match for a checkpoint to be resumed (``epochs`` may grow)."""
    d = config.to_dict()
    for name in ("epochs", "checkpoint_every", "sample_every", "keep_checkpoints", "data_dir", "name"):
        d.pop(name)
    return d


def _save_final(run_dir: Path, gan, config: TrainConfig, history: list[dict]) -> None:
    for model, name in ((gan.generator, "generator"), (gan.discriminator, "discriminator")):
        with atomic.atomic_path(run_dir / f"{name}.keras") as tmp:
            model.save(tmp)
    _write_history(run_dir, history)
    atomic.mark_complete(run_dir, {"epochs": config.epochs, "name": config.name})


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------
def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rare_gan.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="SCP code(s), comma-separated (e.g. PAC or BIGU,TRIGU)")
    parser.add_argument("--out", required=True, help="run folder")
    parser.add_argument("--data", dest="data_dir", help="PTB-XL folder (default: $PTBXL_DIR, data/ptbxl, else DEMO)")
    parser.add_argument("--config", choices=["initial", "modified"], help="preset learning rates from the research")
    defaults = TrainConfig(target=["X"])
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("target", "data_dir"):
            continue
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if isinstance(default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            kind = float if isinstance(default, float) else int if isinstance(default, int) else str
            parser.add_argument(flag, type=kind, default=None, help=f"default {default}")
    parser.add_argument("--lr-g", dest="lr_generator", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--lr-d", dest="lr_discriminator", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (2 for bad input, 3 for divergence)."""
    args = vars(build_arg_parser().parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out, preset, no_resume = args.pop("out"), args.pop("config"), args.pop("no_resume")
    values = {**(INITIAL if preset == "initial" else MODIFIED if preset == "modified" else {}),
              **{k: v for k, v in args.items() if v is not None}}
    try:
        history = train(TrainConfig(**values), out, resume=not no_resume)
    except (DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingDivergedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        last = latest_checkpoint(Path(out))
        print(f"interrupted; the last checkpoint is {last or 'none yet'}. Run the same command again to resume.",
              file=sys.stderr)
        return 130
    print(history.tail(3).to_string(index=False))
    print(f"run folder: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
