"""The GAN as a ``keras.Model`` with its own ``train_step`` (as in keras.io's DCGAN/WGAN-GP examples).

:func:`build_models` makes the generator and discriminator of a :class:`~rare_gan.recipes.TrainConfig`
(the research's networks or the beat-and-rhythm generator with the multi-scale discriminator),
:func:`make_gan` wraps them in an :class:`ECGGAN` compiled with its two Adam optimisers, and
:func:`diff_augment` is the differentiable, lead-consistent augmentation applied before every
discriminator call.
"""

from __future__ import annotations

import re

import keras
import numpy as np
import tensorflow as tf

from rare_gan import matching as mt
from rare_gan.recipes import TrainConfig


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
def make_gan(generator, discriminator, config: TrainConfig, matching: dict | None = None):
    """Wrap G and D in an :class:`ECGGAN` and compile it with the config's two Adam optimisers.

    ``matching``: the standardisation of the matched statistics (:func:`rare_gan.matching.standardisation`),
    needed when ``config.stats_weight`` > 0.
    """
    if config.stats_weight and not matching:
        raise ValueError("stats_weight > 0 needs the standardisation of the matched statistics (matching=...)")
    augment = None
    if config.diff_augment:
        augment = {"gain": float(config.augment_gain), "shift": int(round(config.augment_shift_s * 100)),
                   "noise": float(config.augment_noise), "wander": float(config.augment_wander)}
    gan = ECGGAN(generator, discriminator, latent_dim=config.latent_dim, loss=config.loss,
                 gp_weight=config.gp_weight, critic_steps=config.critic_steps, seed=config.seed,
                 r1_weight=config.r1_weight, r1_every=config.r1_every, augment=augment,
                 conditional=config.conditional,
                 matching={**matching, "weight": float(config.stats_weight),
                           "statistics": list(config.matched_statistics),
                           "agreement_floor": float(config.agreement_floor)} if config.stats_weight else None)
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
    uninterrupted run would have drawn. With ``conditional`` the batches are ``(ecgs, labels)``
    (multi-hot SCP codes) and fakes are generated for the batch's own labels, so label
    combinations keep their training frequency. A discriminator may return several logits per
    ECG (one per scale): every loss averages over them. With ``matching`` (a beat generator; when RR
    statistics are matched, the batches carry each real record's as their last element) the generator's loss
    gets ``matching["weight"]`` × the summary-statistic gap of :mod:`rare_gan.matching`.
    """

    def __init__(self, generator, discriminator, latent_dim=100, loss="nonsaturating", gp_weight=10.0,
                 critic_steps=1, seed=0, r1_weight=0.0, r1_every=1, augment=None, conditional=False, matching=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(latent_dim)
        self.adversarial_loss = loss
        self.gp_weight = float(gp_weight)
        self.critic_steps = int(critic_steps)
        self.seed = int(seed)
        self.r1_weight = float(r1_weight)
        self.r1_every = int(r1_every)
        self.augment = dict(augment) if augment else None  # kwargs of diff_augment, or None (off)
        self.conditional = bool(conditional)
        self.matching = dict(matching) if matching else None
        self._rr_names = mt.rr_names(self.matching["statistics"]) if self.matching else ()
        self._matches_rr = bool(self._rr_names)
        self._agreement = bool(self.matching) and "beats" in self.matching["statistics"]
        self._morphology = bool(self.matching) and "morphology" in self.matching["statistics"]
        self._needs_rhythm = self._matches_rr or self._agreement or self._morphology
        if self._needs_rhythm:  # statistics of its own R times: the generator also returns its rhythm
            self._with_rhythm = mt.with_rhythm(generator)
            self._renderer = generator.get_layer("render")
        self.built = True  # G and D are built functional models; fit must not build from ECG batches

    def compile(self, g_optimizer, d_optimizer):
        super().compile()
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        names = ("d_loss", "g_loss", "d_real", "d_fake") + (("stats_gap",) if self.matching else ())
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}

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

    def _generate(self, noise, labels, training=True, rhythm=False):
        """G(noise[, labels]); with ``rhythm`` (statistic matching) also its rhythm: ``[ECGs, rhythm]``."""
        model = self._with_rhythm if rhythm else self.generator
        return model([noise, labels] if self.conditional else noise, training=training)

    def _critic(self, ecgs, labels):
        return tf.cast(self.discriminator([ecgs, labels] if self.conditional else ecgs, training=True), tf.float32)

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

    def _lazy_r1(self, real, labels):
        """R1 on every ``r1_every``-th discriminator step, 0 otherwise (StyleGAN2's lazy regularisation)."""
        if self.r1_every == 1:
            return self.r1_penalty(real, labels)
        due = tf.equal(tf.math.floormod(self.d_optimizer.iterations, self.r1_every), 0)
        return tf.cond(due, lambda: self.r1_penalty(real, labels), lambda: tf.constant(0.0))

    def stats_gap(self, generated, rhythm, real, real_rr):
        """Summary-statistic gap (:func:`rare_gan.matching.moment_gap`) of the matched statistics
        (``matching["statistics"]``: RR, RR jumps, band (periodogram or Welch), roughness) between a
        generated batch (with its rhythm) and the real batch, plus the beat-agreement penalty with 'beats'
        and the mean beat's gap to the real records' with 'morphology'."""
        m = self.matching
        gap = tf.constant(0.0)
        r_times = self._renderer.r_times(rhythm) if self._needs_rhythm else None
        if self._matches_rr:
            gap += mt.moment_gap(mt.rr_statistics(r_times, self._rr_names), real_rr, m["rr_mean"], m["rr_sd"])
        if self._agreement:
            gap += mt.beat_agreement(generated, r_times, ref_floor=m.get("agreement_floor", 0.0))
        if self._morphology:
            gap += mt.population_moment_gap(mt.beat_morphology(generated, r_times), m["morph_mean"], m["morph_sd"])
        for name, statistic, key in (("band", mt.band_statistics, "band"), ("band_welch", mt.welch_band_statistics, "welch"),
                                     ("roughness", mt.roughness_statistics, "rough")):
            if name in m["statistics"]:
                gap += mt.moment_gap(statistic(generated), statistic(real), m[f"{key}_mean"], m[f"{key}_sd"])
        return gap

    @tf.autograph.experimental.do_not_convert
    def train_step(self, data):
        """One discriminator and one generator update. Its control flow is static Python (the lazy R1
        is an explicit ``tf.cond``), so AutoGraph is skipped: that saves ~2 s of every trace."""
        real_rr = None
        if self._matches_rr:
            data, real_rr = data[:-1], data[-1]
            data = data if self.conditional else data[0]
        real, labels = data if self.conditional else (data, None)
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
                    d_loss += 0.5 * self.r1_weight * self.r1_every * self._lazy_r1(real_aug, labels)
                scaled = d_loss / replicas
            grads = tape.gradient(scaled, self.discriminator.trainable_weights)
            self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))

        noise = self._noise(batch, 1)
        extra = {}
        with tf.GradientTape() as tape:
            if self.matching:
                generated, rhythm = self._generate(noise, labels, rhythm=True) if self._needs_rhythm else \
                    (self._generate(noise, labels), None)
                extra["stats_gap"] = self.stats_gap(generated, rhythm, real, real_rr)
            else:
                generated = self._generate(noise, labels)
            fake_g = self._augment(generated, 4)
            fake_logits_g = self._critic(fake_g, labels)
            g_loss = self.generator_loss(fake_logits_g)
            penalties = list(self.generator.losses)  # e.g. the beat generator's residual-energy penalty
            if self.matching:
                penalties.append(self.matching["weight"] * extra["stats_gap"])
            scaled = (g_loss + (tf.add_n(penalties) if penalties else 0.0)) / replicas
        grads = tape.gradient(scaled, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))

        score = (lambda x: x) if self.adversarial_loss == "wgan-gp" else tf.sigmoid
        for name, value in (("d_loss", d_loss), ("g_loss", g_loss), ("d_real", tf.reduce_mean(score(real_logits))),
                            ("d_fake", tf.reduce_mean(score(fake_logits))), *extra.items()):
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def get_config(self):
        return {"latent_dim": self.latent_dim, "loss": self.adversarial_loss, "gp_weight": self.gp_weight,
                "critic_steps": self.critic_steps, "seed": self.seed, "r1_weight": self.r1_weight,
                "r1_every": self.r1_every, "augment": self.augment, "conditional": self.conditional,
                "matching": self.matching, "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        generator = keras.saving.deserialize_keras_object(config.pop("generator"))
        discriminator = keras.saving.deserialize_keras_object(config.pop("discriminator"))
        return cls(generator, discriminator, **config)


def build_models(config: TrainConfig, n_labels: int = 0, discriminator: bool = True):
    """Generator and discriminator for ``config`` in its precision policy (the global policy is restored).

    ``n_labels``: length of the multi-hot label vector of a conditional config. ``discriminator=False``:
    the generator only (``(generator, None)``), e.g. to rebuild a trained one in another precision.
    """
    from rare_gan import ecgnets, models

    if config.conditional and not n_labels:
        raise ValueError("a conditional config needs n_labels > 0 (the number of label codes)")
    n_labels = n_labels if config.conditional else 0
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(config.precision)
    try:
        if config.architecture == "beat":
            generator = ecgnets.build_beat_generator(latent_dim=config.latent_dim, n_labels=n_labels,
                                                     rhythm=config.beat_rhythm,
                                                     visible_beats=config.beat_visible,
                                                     ectopic_start=config.ectopic_start,
                                                     ectopic_rate=config.ectopic_rate,
                                                     lead_rank=config.lead_rank)
            critic = ecgnets.build_multiscale_discriminator(n_labels=n_labels, scales=config.discriminator_scales) \
                if discriminator else None
        else:
            generator = models.build_generator(latent_dim=config.latent_dim, lead_consistent=config.lead_consistent,
                                               kernel_size=config.generator_kernel_size,
                                               upsample=config.generator_upsample, n_labels=n_labels)
            critic = models.build_discriminator(dropout=config.discriminator_dropout,
                                                pooling=config.discriminator_pooling, n_labels=n_labels) \
                if discriminator else None
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return generator, critic


def discriminator_stages(discriminator) -> list[list]:
    """The discriminator's trunk stages per scale, lowest first: each a list of layers (stem convs,
    inception/residual blocks) — what FreezeD freezes from the bottom up."""
    by_scale: dict[str, list] = {}
    for layer in discriminator.layers:
        if not layer.weights or "logit" in layer.name or "projection" in layer.name:
            continue
        scale = re.match(r"(d\d+_)?", layer.name).group(0)  # "d4_" in a multi-scale D, "" in the research's
        by_scale.setdefault(scale, []).append(layer)
    return list(by_scale.values())


def freeze_discriminator(discriminator, n_stages: int) -> list[str]:
    """Freeze the ``n_stages`` lowest trunk stages of every scale (FreezeD); return the frozen layers' names."""
    frozen = []
    for stages in discriminator_stages(discriminator):
        for layer in stages[:n_stages]:
            layer.trainable = False
            frozen.append(layer.name)
    return frozen
