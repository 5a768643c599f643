"""Networks of the default recipe: a beat-and-rhythm generator and a multi-scale discriminator.

The research's generator maps noise straight to 1000 × 12 samples with a receptive field shorter
than one beat, so it must discover on its own that an ECG is one P–QRS–T complex repeated at
intervals, identically in every lead; trained for minutes on a CPU it makes spike trains. The
generator here builds that structure in and learns everything else:

* a **rhythm head** (MLP from the latent code) gives a mean heart rate, per-beat RR deviations, a
  phase, per-beat amplitudes and a soft choice among ``n_templates`` beat shapes (e.g. sinus and
  ectopic beats), so ectopic timing and morphology can be correlated beat by beat;
* a **template decoder** (Dense → nearest-neighbour upsampling + :class:`~rare_gan.models.ResidualInception1D`
  blocks) draws the ``n_templates`` beat shapes of this ECG on the 8 independent leads (``beat_length``
  samples around the R peak);
* :class:`BeatRenderer` places every beat at its (fractional, differentiable) R time and sums them
  (overlap-add), so all leads share one rhythm;
* a **residual decoder** adds what is not a repeated beat: baseline wander and atrial
  (fibrillation/flutter) waves, drawn at 25 Hz and upsampled smoothly so it cannot imitate a QRS,
  its energy above baseline-wander frequencies penalised; plus noise from a few sources shared
  between the leads, at a learnt and penalised level.

The 8 leads then go through :class:`~rare_gan.models.LeadConsistent12`, so Einthoven's and
Goldberger's laws hold exactly. Conditioning is on a multi-hot vector of SCP codes (one record may
carry several), embedded and concatenated to the noise in G and projected onto the pooled features
in D (Miyato & Koyama 2018).

:func:`build_multiscale_discriminator` judges the ECG at full rate (morphology) and average-pooled
by 4 (the whole 10 s rhythm at 25 Hz), each an inception/residual trunk with its own logit.
"""

from __future__ import annotations

import functools
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from rare_gan.leads import INDEPENDENT_LEADS, N_LEADS, N_SAMPLES, SAMPLING_RATE_HZ
from rare_gan.models import LeadConsistent12, ResidualInception1D, UpsampleConv1D, _PACKAGE, generator_inputs
from rare_gan.recipes import RHYTHMS

N_INDEPENDENT = len(INDEPENDENT_LEADS)
HR_RANGE_BPM = (35.0, 190.0)
"""Heart rates the rhythm head can produce (mean over the ECG)."""


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BeatRenderer(layers.Layer):
    """Sum of beat templates placed at R-peak times: ``(rhythm, weights, templates) -> (batch, T, leads)``.

    Inputs, per ECG:

    * ``rhythm`` ``(batch, 2 + n_beats)``: [mean RR logit, phase logit, per-beat RR deviation logits];
    * ``weights`` ``(batch, n_beats, n_templates)``: amplitude × template choice of each beat (≥ 0);
    * ``templates`` ``(batch, n_templates, beat_length, leads)``: beat shapes, R peak at ``r_offset``.

    Mean RR = 60 s / HR with HR mapped into :data:`HR_RANGE_BPM` by a sigmoid; beat *k*'s RR is the
    mean × exp(``max_rr_log_dev`` · tanh(deviation_k)); the first R falls at −phase · RR₀ … so the
    record may start anywhere in a cycle. Each R time t_k (fractional samples) is spread over its two
    neighbouring samples by linear interpolation (differentiable in t_k), and the beats are
    overlap-added (a scatter-add, whose gradient is a gather). The placement is compiled by XLA
    (``jit_compile``): its interpolation and scatter are memory-bound, and fused they run 2.4×
    faster on the 2-core development CPU, which makes bf16 generation 1.2–1.5× faster (paired timings
    in one process); training steps were not measurably faster with it (paired timings within the
    machine's ±15% noise, one bf16 reading 9% slower), so bf16 training stays uncompiled.
    """

    def __init__(self, length: int = N_SAMPLES, r_offset: int = 30, max_rr_log_dev: float = 0.6,
                 fs: float = SAMPLING_RATE_HZ, **kwargs):
        super().__init__(**kwargs)
        self.length = int(length)
        self.r_offset = int(r_offset)
        self.max_rr_log_dev = float(max_rr_log_dev)
        self.fs = float(fs)

    def rr_samples(self, rhythm):
        """RR interval of every beat (batch, n_beats) in samples, and the first R time (batch, 1)."""
        rhythm = tf.cast(rhythm, tf.float32)
        hr_lo, hr_hi = HR_RANGE_BPM
        hr = hr_lo + (hr_hi - hr_lo) * tf.sigmoid(rhythm[:, :1])
        mean_rr = 60.0 * self.fs / hr
        rr = mean_rr * tf.exp(self.max_rr_log_dev * tf.tanh(rhythm[:, 2:]))
        first = -tf.sigmoid(rhythm[:, 1:2]) * rr[:, :1]
        return rr, first

    def r_times(self, rhythm):
        """R-peak times (batch, n_beats) in samples from the record's start (may fall outside it)."""
        rr, first = self.rr_samples(rhythm)
        return first + tf.cumsum(rr, axis=1, exclusive=True)

    def call(self, rhythm, weights, templates, training=None):
        if training and self.compute_dtype != "float32":
            return tf.cast(self.overlap_add(rhythm, weights, templates), self.compute_dtype)
        name = "_compiled_training" if training else "_compiled_inference"
        if getattr(self, name, None) is None:
            setattr(self, name, tf.function(functools.partial(self.overlap_add, mix_first=not training),
                                            jit_compile=True, reduce_retracing=True))
        return tf.cast(getattr(self, name)(rhythm, weights, templates), self.compute_dtype)

    def overlap_add(self, rhythm, weights, templates, mix_first: bool = False):
        """The rendered beats (batch, T, leads) in float32 (what :meth:`call` computes, uncompiled).

        ``mix_first`` (inference): the fractional shift is applied to the templates before they are mixed
        into beats, one einsum instead of an interpolation of every placed beat. The same function up to
        rounding; on the AMD AVX2 machine it made fp32 generation about 1.1× faster (bf16 within noise) and
        the training step (its gradient) about 12% slower (paired timings), so training keeps the
        interpolation."""
        templates = tf.cast(templates, tf.float32)
        weights = tf.cast(weights, tf.float32)
        beat_length, n_leads = templates.shape[2], templates.shape[3]
        margin = beat_length + 1  # a beat may start up to one template length before the record
        extended = self.length + 2 * margin
        # template sample j of beat k belongs at time t_k - r_offset + j; split the fractional part f by
        # linear interpolation, S'[j] = (1 - f) S[j] + f S[j - 1] on beat_length + 1 samples, S being the
        # beat's weighted mix of the templates (beats outside the record get 0)
        start = self.r_times(rhythm) - float(self.r_offset) + float(margin)
        base = tf.floor(start)
        frac = (start - base)[..., None]  # (batch, beats, 1)
        index = tf.cast(base, tf.int32)
        inside = (index >= 0) & (index + beat_length + 1 <= extended)
        keep = tf.cast(inside, tf.float32)[..., None]

        def now_and_delayed(x):  # x[..., j, :] and x[..., j - 1, :] on beat_length + 1 samples
            return tf.pad(x, [[0, 0], [0, 0], [0, 1], [0, 0]]), tf.pad(x, [[0, 0], [0, 0], [1, 0], [0, 0]])

        if mix_first:
            coefficients = tf.concat([(1.0 - frac) * weights, frac * weights], axis=-1) * keep
            shifted = tf.einsum("bkn,bnjl->bkjl", coefficients, tf.concat(now_and_delayed(templates), axis=1))
        else:
            now, delayed = now_and_delayed(tf.einsum("bkm,bmjl->bkjl", weights, templates))
            frac = frac[..., None]
            shifted = ((1.0 - frac) * now + frac * delayed) * keep[..., None]  # (batch, beats, beat_length + 1, leads)
        index = tf.where(inside, index, 0)
        batch = tf.shape(weights)[0]
        slot = (tf.range(batch)[:, None, None] * extended + index[..., None]
                + tf.range(beat_length + 1)[None, None, :])  # (batch, beats, beat_length + 1)
        summed = tf.math.unsorted_segment_sum(tf.reshape(shifted, [-1, n_leads]), tf.reshape(slot, [-1]),
                                              batch * extended)
        return tf.reshape(summed, [batch, extended, n_leads])[:, margin:margin + self.length]

    def compute_output_shape(self, rhythm_shape, weights_shape, templates_shape):
        return (rhythm_shape[0], self.length, templates_shape[-1])

    def get_config(self):
        return {**super().get_config(), "length": self.length, "r_offset": self.r_offset,
                "max_rr_log_dev": self.max_rr_log_dev, "fs": self.fs}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class EctopicTiming(layers.Layer):
    """RR deviation logits with the timing of ectopic beats built in: ``(deviations, choice, jitter) -> deviations'``.

    Each of the ``n_templates`` beat shapes m has a learnt prematurity a_m ≥ 0 and pause b_m ≥ 0
    (softplus(``rate`` · w), both starting at ``start`` for every template, which leaves a regular
    rhythm of one template unchanged): a beat k drawn as template m shortens the interval *before* it
    by a_m and lengthens the one *after* it by b_m (compensatory pause), so RR intervals around a
    premature beat alternate short–long as in real PAC/PVC records (negative lag-1 autocorrelation)
    instead of having to be learnt beat by beat. ``jitter`` (batch, n_beats) adds beat-to-beat
    irregularity that is independent between beats (atrial fibrillation), which a smooth MLP
    readout of the latent code rarely makes. Indexing as in :class:`BeatRenderer`: deviation k is
    the interval from beat k to beat k + 1.

    The default ``start`` (softplus(−4) ≈ 0.018) lies where softplus is nearly flat: Adam moves w by
    about one learning rate per step, so a and b then move by 0.018 of that and were measured to stay
    at their starting value through pretraining and fine-tuning. A plausible ``start`` (0.3: an RR
    about 16% short or long) and ``rate`` > 1 (the parameters' own learning-rate factor) let them move.
    """

    def __init__(self, start: float = float(np.log1p(np.exp(-4.0))), rate: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        if not (start > 0 and rate > 0):
            raise ValueError(f"EctopicTiming needs start > 0 and rate > 0, got start={start!r}, rate={rate!r}")
        self.start = float(start)
        self.rate = float(rate)

    def build(self, deviations_shape, choice_shape, jitter_shape):
        n_templates = choice_shape[-1]
        start = keras.initializers.Constant(float(np.log(np.expm1(self.start))) / self.rate)
        self.prematurity = self.add_weight(shape=(n_templates,), initializer=start, name="prematurity")
        self.pause = self.add_weight(shape=(n_templates,), initializer=start, name="pause")

    def timing(self):
        """The prematurity a_m and pause b_m of every template (n_templates,) each, in RR-deviation units."""
        return keras.ops.softplus(self.rate * self.prematurity), keras.ops.softplus(self.rate * self.pause)

    def call(self, deviations, choice, jitter):
        choice = keras.ops.cast(choice, "float32")
        prematurity, pause = self.timing()
        early = keras.ops.matmul(choice, prematurity)  # (batch, beats)
        later = keras.ops.matmul(choice, pause)
        early_next = keras.ops.pad(early[:, 1:], [[0, 0], [0, 1]])
        out = keras.ops.cast(deviations, "float32") - early_next + later + keras.ops.cast(jitter, "float32")
        return keras.ops.cast(out, self.compute_dtype)

    def compute_output_shape(self, deviations_shape, choice_shape, jitter_shape):
        return deviations_shape

    def get_config(self):
        return {**super().get_config(), "start": self.start, "rate": self.rate}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LeadField(layers.Layer):
    """Project a few cardiac source signals onto the 8 independent leads: ``(sources, mixing) -> (batch, T, 8)``.

    ``sources`` ``(batch, T, rank)``; ``mixing`` ``(batch, rank · 8)``, a per-ECG lead-field matrix
    (heart position and orientation differ between people). Real 12-lead ECGs are projections of
    the heart's electrical dipole: in the PTB-XL subset the first 3 principal components of the 8
    independent leads (0.5–40 Hz) hold 99.1% of the variance (median record; 98.5% for PAC), while
    a generator that draws each lead freely was measured at 94–97% (``beat_visible_ectopic_init``;
    README *Limitations*), so its neighbouring leads correlate less than real ones (PAC V5–V6 0.88
    vs 0.96). Drawn through a rank-``rank`` lead field, the leads are as coherent as that by
    construction (``beat_lead_field``: 98.3–99.4%).
    """

    def call(self, sources, mixing):
        rank = sources.shape[-1]
        m = keras.ops.reshape(keras.ops.cast(mixing, sources.dtype), (-1, rank, N_INDEPENDENT))
        return keras.ops.matmul(sources, m)

    def compute_output_shape(self, sources_shape, mixing_shape):
        return (*sources_shape[:-1], N_INDEPENDENT)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class TemplateScale(layers.Layer):
    """Beat templates at a set sharpness: ``(templates, level, relative) -> templates'``, so no beat is invisible.

    Each template ``(batch, n_templates, beat_length, leads)`` is divided by the RMS of its first
    difference (over samples and leads) and multiplied by the ECG's ``level`` ``(batch, 1)`` times
    its own factor exp(``max_log_ratio`` · tanh(``relative``)) ``(batch, n_templates)``: templates
    differ in size by at most that ratio. Without it a free generator was measured to draw about
    twice the visible number of beats, every other one from a near-silent template, so its rhythm
    head's RR intervals were not the ECG's (README *Limitations*).
    """

    def __init__(self, max_log_ratio: float = 0.7, **kwargs):
        super().__init__(**kwargs)
        self.max_log_ratio = float(max_log_ratio)

    def call(self, templates, level, relative):
        t = keras.ops.cast(templates, "float32")
        slope = keras.ops.sqrt(keras.ops.mean(keras.ops.square(t[:, :, 1:] - t[:, :, :-1]), axis=(2, 3)) + 1e-8)
        factor = keras.ops.cast(level, "float32") * keras.ops.exp(
            self.max_log_ratio * keras.ops.tanh(keras.ops.cast(relative, "float32")))
        return keras.ops.cast(t * (factor / slope)[:, :, None, None], self.compute_dtype)

    def compute_output_shape(self, templates_shape, level_shape, relative_shape):
        return templates_shape

    def get_config(self):
        return {**super().get_config(), "max_log_ratio": self.max_log_ratio}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Gain(layers.Layer):
    """Multiply by one learnt scalar (initialised to ``initial``): lets a branch start near silent."""

    def __init__(self, initial: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.initial = float(initial)

    def build(self, input_shape):
        self.gain = self.add_weight(shape=(), initializer=keras.initializers.Constant(self.initial), name="gain")

    def call(self, x):
        return x * keras.ops.cast(self.gain, x.dtype)

    def get_config(self):
        return {**super().get_config(), "initial": self.initial}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class EnergyPenalty(layers.Layer):
    """Identity that, in training, adds ``weight · mean(y²)`` to the model's losses (:attr:`keras.Model.losses`).

    ``y`` is the input, or with ``highpass_window`` > 1 the input minus its moving average over that
    many samples, so slow content (baseline wander below ~100 / window Hz) is free and only faster
    content costs: a branch is then used only where the rest of the model cannot do the job.
    """

    def __init__(self, weight: float = 1.0, highpass_window: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.weight = float(weight)
        self.highpass_window = int(highpass_window)

    def call(self, x, training=False):
        if training and self.weight:
            y = keras.ops.cast(x, "float32")
            if self.highpass_window > 1:
                y = y - keras.ops.average_pool(y, self.highpass_window, strides=1, padding="same")
            self.add_loss(self.weight * keras.ops.mean(keras.ops.square(y)))
        return x

    def get_config(self):
        return {**super().get_config(), "weight": self.weight, "highpass_window": self.highpass_window}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SmoothUpsample(layers.Layer):
    """Upsample by ``factor`` with piecewise-linear interpolation (repeat, then a ``factor``-wide moving average)."""

    def __init__(self, factor: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, x):
        repeated = keras.ops.repeat(x, self.factor, axis=1)
        return keras.ops.average_pool(repeated, self.factor, strides=1, padding="same")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None if input_shape[1] is None else input_shape[1] * self.factor, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ProjectedNoise(layers.Layer):
    """Noise that is a fixed function of the latent vector: ``z @ W`` reshaped to (batch, length,
    sources), with W a fixed random (latent, length × sources) matrix (seeded, not trained), so
    generated ECGs stay a pure function of the latent input while their noise looks white."""

    def __init__(self, length: int = N_SAMPLES, sources: int = 3, seed: int = 1234, **kwargs):
        super().__init__(**kwargs)
        self.length, self.sources, self.seed = int(length), int(sources), int(seed)

    def build(self, z_shape):
        w = np.random.default_rng(self.seed).standard_normal((z_shape[-1], self.length * self.sources))
        self.projection = (w / np.sqrt(z_shape[-1])).astype(np.float32)

    def call(self, z):
        noise = keras.ops.matmul(keras.ops.cast(z, "float32"), keras.ops.convert_to_tensor(self.projection))
        return keras.ops.cast(keras.ops.reshape(noise, (-1, self.length, self.sources)), self.compute_dtype)

    def flops(self, z_shape) -> int:
        """Forward FLOPs per sample (multiply-add = 2) of the fixed projection."""
        return 2 * z_shape[-1] * self.length * self.sources

    def compute_output_shape(self, z_shape):
        return (z_shape[0], self.length, self.sources)

    def get_config(self):
        return {**super().get_config(), "length": self.length, "sources": self.sources, "seed": self.seed}


def _up_stack(x, channels: Sequence[int], kernel_size: int, name: str, blocks: int = 1):
    """Per entry: nearest-neighbour ×2 → Conv1D (one :class:`UpsampleConv1D`) → BN → LeakyReLU →
    ``blocks`` residual inception blocks."""
    for i, c in enumerate(channels):
        x = UpsampleConv1D(c, kernel_size, 2, use_bias=False, name=f"{name}_conv{i + 1}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{i + 1}")(x)
        x = layers.LeakyReLU(0.2, name=f"{name}_act{i + 1}")(x)
        for j in range(blocks):
            x = ResidualInception1D(c, name=f"{name}_block{i + 1}_{j + 1}")(x)
    return x


def build_beat_generator(
    latent_dim: int = 128,
    n_labels: int = 0,
    label_dim: int = 64,
    hidden: int = 512,
    n_beats: int = 36,
    n_templates: int = 3,
    beat_length: int = 96,
    r_offset: int = 32,
    template_channels: Sequence[int] = (256, 128, 64),
    residual_channels: int = 32,
    residual_rate: int = 250,
    residual_gain: float = 0.1,
    residual_l2: float = 50.0,
    noise_sources: int = 3,
    noise_l2: float = 50.0,
    head_init_sd: float = 0.01,
    rhythm: str = "free",
    visible_beats: bool = False,
    template_slope: float = 0.03,
    ectopic_start: float = float(np.log1p(np.exp(-4.0))),
    ectopic_rate: float = 1.0,
    lead_rank: int = 0,
) -> keras.Model:
    """Beat-and-rhythm generator ``[z, labels] -> ECG (batch, 1000, 12)`` in scaled units (see module doc).

    ``n_labels > 0``: a second input, a multi-hot float vector of SCP codes ``(batch, n_labels)``.
    ``beat_length`` samples per template (96 = 0.96 s, R at ``r_offset``); its decoder starts at
    ``beat_length / 2**len(template_channels)`` samples.

    What is not a repeated beat is kept from imitating beats: the residual is drawn at
    ``residual_rate`` samples per 10 s and upsampled smoothly (:class:`SmoothUpsample`), so it holds
    baseline wander and slow atrial waves (below ~10 Hz at 250), never a QRS; its energy above ~2 Hz
    is penalised (``residual_l2`` · mean square, scaled units; :class:`EnergyPenalty`) in the
    generator's loss, baseline wander is free. Noise comes from ``noise_sources`` white-looking
    sources (:class:`ProjectedNoise`) mixed into the leads by a learnt matrix (real noise is shared
    between leads) at a learnt per-ECG level, its energy penalised by ``noise_l2``: a discriminator
    smoothed by R1 is nearly blind to small high-frequency noise, so without a cost the generator
    adds too much. The heads that make beats differ from
    each other (RR deviations, amplitudes, template choice) start near zero (``head_init_sd``), so
    an untrained generator draws a regular rhythm of identical beats and learns the deviations.

    ``rhythm``: "free" (per-beat RR deviations read out of the latent code) or "ectopic"
    (:class:`EctopicTiming`: the beat's template sets the prematurity and pause around it, plus
    independent per-beat jitter at a learnt level; ``ectopic_start`` and ``ectopic_rate`` are its
    ``start`` and ``rate``).

    ``visible_beats``: every template is drawn at a learnt per-ECG sharpness (RMS of the first
    difference, starting near ``template_slope`` scaled units per sample) and the templates of one
    ECG differ by at most 2× (:class:`TemplateScale`), so every beat the rhythm head places is one a
    detector sees.

    ``lead_rank`` > 0: beat templates and residual are drawn as ``lead_rank`` cardiac source signals
    and projected onto the 8 leads by a per-ECG lead-field matrix (:class:`LeadField`); 0 draws
    every lead freely.
    """
    if rhythm not in RHYTHMS:
        raise ValueError(f"rhythm must be one of {RHYTHMS}, got {rhythm!r}")
    if not 0 <= lead_rank <= N_INDEPENDENT:
        raise ValueError(f"lead_rank must be 0 (free leads) to {N_INDEPENDENT}, got {lead_rank!r}")
    channels = lead_rank or N_INDEPENDENT
    if beat_length % 2 ** len(template_channels):
        raise ValueError(f"beat_length {beat_length} must be divisible by 2**{len(template_channels)}")
    if N_SAMPLES % residual_rate:
        raise ValueError(f"residual_rate {residual_rate} must divide {N_SAMPLES}")
    small = keras.initializers.RandomNormal(stddev=head_init_sd)
    inputs, h = generator_inputs(latent_dim, n_labels, label_dim)
    z = inputs[0] if n_labels else inputs
    for i in range(2):
        h = layers.Dense(hidden, name=f"code{i + 1}")(h)
        h = layers.LeakyReLU(0.2, name=f"code{i + 1}_act")(h)

    rate_phase = layers.Dense(2, name="rate_phase")(h)
    deviations = layers.Dense(n_beats, kernel_initializer=small, name="rr_deviation")(h)
    amplitude = layers.Dense(n_beats, kernel_initializer=small, name="beat_amplitude")(h)
    choice = layers.Reshape((n_beats, n_templates), name="choice_logits")(
        layers.Dense(n_beats * n_templates, kernel_initializer=small, name="beat_choice")(h))
    # sharp choice (logits × 4): once learnt, each beat is essentially one template, as in real ECGs
    choice = layers.Softmax(axis=-1, name="choice")(layers.Rescaling(4.0, name="choice_sharpen")(choice))
    amplitude = layers.Rescaling(0.1, offset=1.0, name="amplitude")(layers.Activation("tanh", name="amplitude_tanh")(amplitude))
    amplitude = layers.Reshape((n_beats, 1), name="amplitude_col")(amplitude)
    weights = layers.Multiply(name="beat_weights")([choice, amplitude])
    if rhythm == "ectopic":
        jitter_level = layers.Activation("softplus", name="rr_jitter_softplus")(
            layers.Dense(1, kernel_initializer=small, bias_initializer=keras.initializers.Constant(-4.0),
                         name="rr_jitter_level")(h))
        jitter = layers.Multiply(name="rr_jitter")([layers.Reshape((n_beats,), name="rr_jitter_flat")(
            ProjectedNoise(n_beats, 1, seed=4321, name="rr_jitter_source")(z)), jitter_level])
        deviations = EctopicTiming(ectopic_start, ectopic_rate, name="ectopic_timing")(deviations, choice, jitter)
    rhythm = layers.Concatenate(name="rhythm")([rate_phase, deviations])

    start = beat_length // 2 ** len(template_channels)
    t = layers.Dense(start * template_channels[0], name="template_project")(h)
    t = layers.Reshape((start, template_channels[0]), name="template_reshape")(t)
    t = layers.LeakyReLU(0.2, name="template_project_act")(t)
    t = _up_stack(t, template_channels, 5, "template")
    t = layers.Conv1D(channels * n_templates, 5, padding="same", name="template_out")(t)
    templates = layers.Permute((2, 1, 3), name="templates")(
        layers.Reshape((beat_length, n_templates, channels), name="template_split")(t))
    if visible_beats:
        start_level = keras.initializers.Constant(float(np.log(np.expm1(template_slope))))
        level = layers.Activation("softplus", name="template_level_softplus")(
            layers.Dense(1, kernel_initializer=small, bias_initializer=start_level, name="template_level")(h))
        relative = layers.Dense(n_templates, kernel_initializer=small, name="template_relative")(h)
        templates = TemplateScale(name="template_scale")(templates, level, relative)

    beats = BeatRenderer(length=N_SAMPLES, r_offset=r_offset, name="render")(rhythm, weights, templates)

    r = layers.Dense(residual_rate * residual_channels // 10, name="residual_project")(h)
    r = layers.Reshape((residual_rate // 10, residual_channels), name="residual_reshape")(r)
    r = layers.LeakyReLU(0.2, name="residual_project_act")(r)
    r = _up_stack(r, [residual_channels], 5, "residual", blocks=0)  # ×2
    r = UpsampleConv1D(residual_channels, 5, 5, activation="leaky_relu", name="residual_conv")(r)  # to residual_rate
    r = layers.Conv1D(channels, 5, padding="same", name="residual_out")(r)
    r = SmoothUpsample(N_SAMPLES // residual_rate, name="residual_smooth")(r)
    r = EnergyPenalty(residual_l2, highpass_window=51, name="residual_penalty")(Gain(residual_gain,
                                                                                       name="residual_gain")(r))

    level = layers.Dense(1, kernel_initializer=small, bias_initializer=keras.initializers.Constant(-6.0),
                         name="noise_level")(h)
    noise = layers.Dense(N_INDEPENDENT, use_bias=False, name="noise_mixing")(
        ProjectedNoise(N_SAMPLES, noise_sources, name="noise_sources")(z))
    noise = layers.Multiply(name="noise")([noise, layers.Reshape((1, 1), name="noise_level_col")(
        layers.Activation("softplus", name="noise_level_softplus")(level))])
    noise = EnergyPenalty(noise_l2, name="noise_penalty")(noise)

    cardiac = [beats, r]
    if lead_rank:
        # the bias is the shared lead field, starting as a random matrix of unit gain per lead; the kernel
        # (starting near zero) lets it vary from ECG to ECG
        field = keras.initializers.RandomNormal(stddev=float(lead_rank) ** -0.5, seed=1)
        mixing = layers.Dense(lead_rank * N_INDEPENDENT, kernel_initializer=small, bias_initializer=field,
                              name="lead_field_matrix")(h)
        cardiac = [LeadField(name="lead_field")(layers.Add(name="cardiac")(cardiac), mixing)]
    x = layers.Add(name="ecg8")([*cardiac, noise])
    x = LeadConsistent12(dtype="float32", name="leads12")(layers.Activation("linear", dtype="float32", name="ecg8_float32")(x))
    return keras.Model(inputs, x, name="generator")


def _trunk(x, stem: Sequence[tuple[int, int, int]], blocks: Sequence[int], name: str):
    """Conv stem (filters, kernel, stride) → LeakyReLU, then per block 2× average pool (not the first) →
    :class:`ResidualInception1D`; returns the last feature map and the list of intermediate maps."""
    features = []
    for i, (f, k, s) in enumerate(stem):
        x = layers.Conv1D(f, k, strides=s, padding="same", name=f"{name}_stem{i + 1}")(x)
        x = layers.LeakyReLU(0.2, name=f"{name}_stem{i + 1}_act")(x)
        features.append(x)
    for i, f in enumerate(blocks):
        if i:
            x = layers.AveragePooling1D(2, padding="same", name=f"{name}_pool{i + 1}")(x)
        x = ResidualInception1D(f, name=f"{name}_block{i + 1}")(x)
        features.append(x)
    return x, features


def build_multiscale_discriminator(
    input_length: int = N_SAMPLES,
    n_leads: int = N_LEADS,
    n_labels: int = 0,
    scales: Sequence[int] = (1, 4),
    blocks: Sequence[int] = (64, 128, 128),
    return_features: bool = False,
) -> keras.Model:
    """Critic ``[ECG, labels] -> logits (batch, len(scales))``: one inception/residual trunk per scale.

    Scale 1 sees the full 100 Hz signal through a stride-2 stem (7 and 5 taps, 32 and 64 channels):
    morphology. Scale s > 1 sees the ECG average-pooled by s (4: 25 Hz, the whole 10 s in 250
    samples) through a stride-1 stem: rhythm. Each trunk ends in global average pooling, a linear
    logit and, with ``n_labels``, a projection of the multi-hot labels onto the pooled features.
    ``return_features`` also returns every intermediate feature map (for feature matching).
    """
    ecg = keras.Input(shape=(input_length, n_leads), name="ecg")
    inputs = ecg
    if n_labels:
        labels = keras.Input(shape=(n_labels,), name="labels")
        inputs = [ecg, labels]
    logits, features = [], []
    for s in scales:
        name = f"d{s}"
        x = ecg if s == 1 else layers.AveragePooling1D(s, name=f"{name}_downsample")(ecg)
        stem = ((32, 7, 2), (64, 5, 2)) if s == 1 else ((32, 5, 1),)
        x, maps = _trunk(x, stem, blocks, name)
        h = layers.GlobalAveragePooling1D(name=f"{name}_gap")(x)
        logit = layers.Dense(1, dtype="float32", name=f"{name}_logit")(h)
        if n_labels:
            projected = layers.Dense(blocks[-1], use_bias=False, name=f"{name}_label_projection")(labels)
            logit = layers.Add(dtype="float32", name=f"{name}_conditional")(
                [logit, layers.Dot(axes=1, dtype="float32", name=f"{name}_projection")([projected, h])])
        logits.append(logit)
        features += maps
    out = logits[0] if len(logits) == 1 else layers.Concatenate(dtype="float32", name="logits")(logits)
    return keras.Model(inputs, [out, *features] if return_features else out, name="discriminator")


__all__ = ["BeatRenderer", "TemplateScale", "LeadField", "Gain", "EnergyPenalty", "SmoothUpsample", "ProjectedNoise", "build_beat_generator", "build_multiscale_discriminator", "HR_RANGE_BPM"]
