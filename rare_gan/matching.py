"""Summary-statistic matching: a direct training signal for what the discriminator barely sees.

Measured on the default recipe's ECGs (``python -m rare_gan.study`` top features; README
*Limitations*): PAC, PVC and AFIB ECGs are given away first by their rhythm — the lag-1
autocorrelation of RR intervals is negative in real records (a premature beat is followed by a
pause) and ≥ 0 in synthetic ones — and CLBBB ones by spectral detail (several times the real share of
power at 25–45 Hz). RR intervals reach the generator only through the renderer's fractional R times,
whose gradient through a discriminator is local and weak, and a discriminator smoothed by R1 is
nearly blind to small high-frequency content. So with ``stats_weight`` > 0 the generator's loss
gets a term that compares, batch by batch, per-ECG statistics of its ECGs with those of the real
batch (same labels, since fakes are drawn for the batch's labels):

* RR statistics (:data:`RR_STATS`) of the generator's own R times (:meth:`rare_gan.ecgnets.BeatRenderer.r_times`)
  against those of the real records, measured once with the R-peak detector of the realism
  features (:mod:`rare_gan.features`), so both sides mean the same thing;
* per-lead shares of spectral power in the realism features' bands (:data:`rare_gan.features.BANDS_HZ`),
  log10, from a periodogram of real and generated batches alike (``'band'``), or from Welch's
  estimate exactly as the realism features make it (``'band_welch'``: 2.56 s Hann segments, each
  mean-removed, so drift slower than a segment does not count). Measured on
  ``beat_matched_lead_field_agree`` (PVC, GAN seed 0): the periodogram's 0–0.5 Hz share matched
  real (log10 −0.60 vs −0.68 in lead III) while the features' Welch share was 3× real's (0.12 vs
  0.035) and the most separating feature: real drift sits below ~0.2 Hz, the generator's nearer 0.5 Hz;
* optionally the RR *jumps* (:data:`JUMP_STATS`: pNN50, soft, and the largest successive RR change),
  which tell a regular rhythm with rare premature beats from one with even jitter at the same RMSSD,
  and per-lead *roughness* (log10 SD of the second difference), which sees the 45–50 Hz detail
  that no band covers;
* optionally *beat agreement* (``'beats'``, :func:`beat_agreement`): not a moment but a penalty that
  the placed beats be the ECG's beats — every placed R time at one of lead II's steepest slopes,
  nothing elsewhere nearly as steep. Measured on ``beat_matched_lead_field_detail`` (PVC, GAN seed 0,
  300 ECGs): the placed R times had the real lag-1 RR autocorrelation (−0.37 vs −0.42) but the
  detector agreed with the placed beat count in only 24% of ECGs (a third held ~twice the placed beats
  it found, overlapping beats cancelling each other; a third had extra steep peaks), so the measured
  lag-1 autocorrelation was ≈ 0; where counts agreed it was −0.50.

Every statistic is standardised by its mean and SD over the run's real training records, and the
term is the mean over statistics of (Δ mean)² + (Δ SD)² between the generated and the real batch:
first- and second-moment matching (feature matching, Salimans et al. 2016, on fixed ECG features
rather than on the discriminator's).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from rare_gan.leads import N_SAMPLES, SAMPLING_RATE_HZ

RR_STATS = ("rr_mean_ms", "rr_sd_ms", "rmssd_ms", "rr_min_ms", "rr_max_ms", "rr_lag1_autocorr")
"""RR statistics that are matched, named (and defined) as in :mod:`rare_gan.features`."""
JUMP_STATS = ("pnn50", "rr_max_jump_ms")
"""RR-jump statistics matched with ``'rr_jumps'`` (pNN50 with a soft threshold of :data:`PNN_SOFTNESS_MS`)."""
PNN_SOFTNESS_MS = 5.0
R_EDGE_SAMPLES = 3
"""Generated R peaks closer than this to either end of the record are not counted (a detector misses them)."""
_LOG_FLOOR = 1e-4


def with_rhythm(generator):
    """The beat generator seen as ``inputs -> [ECG, rhythm]`` (same layers and weights), so the R
    times of what it draws come from its renderer (:meth:`rare_gan.ecgnets.BeatRenderer.r_times`)."""
    import keras

    return keras.Model(generator.inputs, [generator.outputs[0], generator.get_layer("rhythm").output])


def placed(r_times, length: int = N_SAMPLES):
    """Which R times (samples; NumPy or TensorFlow) fall inside the record, :data:`R_EDGE_SAMPLES` from either end."""
    return (r_times >= R_EDGE_SAMPLES) & (r_times < length - R_EDGE_SAMPLES)


def rr_names(statistics) -> tuple[str, ...]:
    """The RR statistics (columns, in order) that ``statistics`` (``matched_statistics``) match:
    :data:`RR_STATS` with ``'rr'``, then :data:`JUMP_STATS` with ``'rr_jumps'``."""
    return (RR_STATS if "rr" in statistics else ()) + (JUMP_STATS if "rr_jumps" in statistics else ())


def real_rr_statistics(ecgs_mv: np.ndarray, names: tuple[str, ...] = RR_STATS) -> np.ndarray:
    """RR statistics ``names`` of real ECGs ``(n, T, 12)`` in mV ``(n, len(names))``, float32, from the
    realism features (cached on disk); a statistic that cannot be measured (too few beats) gets the
    median of the others."""
    from rare_gan import features

    columns = features.feature_names()
    values = features.cached(ecgs_mv, tag="rr_matching")[:, [columns.index(f"rr:{s}") for s in names]]
    medians = np.nanmedian(values, axis=0) if np.isfinite(values).any() else np.zeros(len(names))
    medians = np.where(np.isfinite(medians), medians, 0.0)
    return np.where(np.isfinite(values), values, medians).astype(np.float32)


def rr_statistics(r_times, names: tuple[str, ...] = RR_STATS, length: int = N_SAMPLES,
                  fs: float = SAMPLING_RATE_HZ):
    """RR statistics ``names`` (of :data:`RR_STATS` and :data:`JUMP_STATS`) ``(batch, len(names))`` of
    R times ``(batch, beats)`` in samples (ascending), differentiable.

    Only beats inside the record (:data:`R_EDGE_SAMPLES` from either end) count; SD with ddof 1,
    the lag-1 autocorrelation as ``numpy.corrcoef(rr[:-1], rr[1:])`` (0 for a perfectly regular rhythm),
    pNN50 as the mean of sigmoid((|ΔRR| − 50 ms) / :data:`PNN_SOFTNESS_MS`).
    """
    t = tf.cast(r_times, tf.float32)
    inside = tf.cast(placed(t, length), tf.float32)
    rr = (t[:, 1:] - t[:, :-1]) * (1000.0 / fs)
    m = inside[:, 1:] * inside[:, :-1]
    n = tf.reduce_sum(m, axis=1)
    mean = tf.reduce_sum(m * rr, axis=1) / tf.maximum(n, 1.0)
    sd = tf.sqrt(tf.reduce_sum(m * tf.square(rr - mean[:, None]), axis=1) / tf.maximum(n - 1.0, 1.0) + 1.0)
    pair = m[:, 1:] * m[:, :-1]
    n_pair = tf.maximum(tf.reduce_sum(pair, axis=1), 1.0)
    a, b = rr[:, :-1], rr[:, 1:]
    rmssd = tf.sqrt(tf.reduce_sum(pair * tf.square(b - a), axis=1) / n_pair + 1.0)
    ca = pair * (a - tf.reduce_sum(pair * a, axis=1, keepdims=True) / n_pair[:, None])
    cb = pair * (b - tf.reduce_sum(pair * b, axis=1, keepdims=True) / n_pair[:, None])
    lag1 = tf.reduce_sum(ca * cb, axis=1) / tf.sqrt(tf.reduce_sum(ca ** 2, axis=1) * tf.reduce_sum(cb ** 2, axis=1)
                                                    + 100.0)
    counted = m > 0
    rr_min = tf.reduce_min(tf.where(counted, rr, tf.reduce_max(rr, axis=1, keepdims=True)), axis=1)
    rr_max = tf.reduce_max(tf.where(counted, rr, tf.reduce_min(rr, axis=1, keepdims=True)), axis=1)
    jump = tf.sqrt(tf.square(b - a) + 1.0)
    pnn50 = tf.reduce_sum(pair * tf.sigmoid((jump - 50.0) / PNN_SOFTNESS_MS), axis=1) / n_pair
    values = {"rr_mean_ms": mean, "rr_sd_ms": sd, "rmssd_ms": rmssd, "rr_min_ms": rr_min, "rr_max_ms": rr_max,
              "rr_lag1_autocorr": lag1, "pnn50": pnn50, "rr_max_jump_ms": tf.reduce_max(pair * jump, axis=1)}
    return tf.stack([values[name] for name in names], axis=1)


AGREEMENT_LEAD = 1
"""Lead II (index in the 12-lead order), the lead whose R peaks the realism features detect."""
AGREEMENT_WINDOW = (-6, 8)
"""Samples around a placed R time searched for its QRS slope (the templates' steepest slope lies a few samples late)."""
AGREEMENT_CLEAR = 15
"""Samples either side of a placed R time that count as its beat when looking for extra steep peaks."""
MISSING_RATIO, EXTRA_RATIO = 0.5, 0.35
"""A placed beat's lead-II slope below ``MISSING_RATIO`` × the ECG's mean beat slope is penalised as
invisible, a slope elsewhere above ``EXTRA_RATIO`` × that mean as an extra beat (the detector keeps
peaks steeper than 0.3 × the median; :mod:`rare_gan.physiology`)."""
AGREEMENT_SCALE = 10.0
"""Factor on the hinge penalties so the term weighs like a moment gap of a few SDs."""


def beat_agreement(ecgs, r_times, length: int = N_SAMPLES, ref_floor: float = 0.0):
    """Penalty ``()`` that the placed beats (R times ``(batch, beats)`` in samples) are not the ECG's
    beats as a slope detector sees them in lead II of ``ecgs`` ``(batch, T, 12)`` (any units).

    Per ECG: a = the largest |first difference| of lead II within :data:`AGREEMENT_WINDOW` of each
    placed R time, ref = their mean; the penalty is the mean over placed beats of
    relu(:data:`MISSING_RATIO` − a/ref)² plus relu(b/ref − :data:`EXTRA_RATIO`)², b the largest
    slope farther than :data:`AGREEMENT_CLEAR` samples from every placed R time (and from the ends),
    times :data:`AGREEMENT_SCALE`; mean over the batch. The R times only select windows (no
    gradient through them); the gradient reaches the beats' shapes, sizes and positions through the ECG.

    With ``ref_floor`` > 0, ref is at least ``ref_floor`` × the ECG's steepest lead-II slope, which
    bounds b/ref by 1/``ref_floor``: without it an ECG whose placed beats are near-flat gets a
    penalty without bound (51,000 in the first batch of a fine-tuning, against ~4 usually).
    """
    x = tf.cast(ecgs, tf.float32)[:, :, AGREEMENT_LEAD]
    slope = tf.abs(x[:, 1:] - x[:, :-1])  # (batch, T - 1)
    r = tf.stop_gradient(tf.cast(r_times, tf.float32))
    inside = tf.cast(placed(r, length), tf.float32)  # (batch, beats)
    offset = tf.range(length - 1, dtype=tf.float32)[None, None, :] - r[:, :, None]  # (batch, beats, T - 1)
    near = (offset >= AGREEMENT_WINDOW[0]) & (offset <= AGREEMENT_WINDOW[1])
    a = tf.reduce_max(tf.where(near, slope[:, None, :], 0.0), axis=2)
    n = tf.maximum(tf.reduce_sum(inside, axis=1), 1.0)
    ref = tf.maximum(tf.reduce_sum(inside * a, axis=1) / n, ref_floor * tf.reduce_max(slope, axis=1)) + 1e-6
    missing = tf.reduce_sum(inside * tf.square(tf.nn.relu(MISSING_RATIO - a / ref[:, None])), axis=1) / n
    covered = tf.reduce_any((tf.abs(offset) <= AGREEMENT_CLEAR) & (inside[:, :, None] > 0), axis=1)
    position = tf.range(length - 1)[None, :]
    interior = (position >= AGREEMENT_CLEAR) & (position < length - 1 - AGREEMENT_CLEAR)
    b = tf.reduce_max(tf.where(~covered & interior, slope, 0.0), axis=1)
    extra = tf.square(tf.nn.relu(b / ref - EXTRA_RATIO))
    return AGREEMENT_SCALE * tf.reduce_mean(missing + extra)


def band_statistics(ecgs, fs: float = SAMPLING_RATE_HZ):
    """log10 share of each lead's 0–45 Hz power in each band of :data:`rare_gan.features.BANDS_HZ`
    ``(batch, leads × bands)``, from a periodogram of the mean-removed record (any units)."""
    x = tf.cast(ecgs, tf.float32)
    length = x.shape[1]
    x = tf.transpose(x - tf.reduce_mean(x, axis=1, keepdims=True), [0, 2, 1])  # (batch, leads, T)
    power = tf.square(tf.abs(tf.signal.rfft(x)))
    return _log_band_shares(power, np.fft.rfftfreq(length, 1.0 / fs), np.ones(length // 2 + 1))


def _log_band_shares(power, freqs: np.ndarray, bin_weights: np.ndarray):
    """log10 share of each lead's power ``(batch, leads, F)`` (bins at ``freqs``, weighted) in each band of
    :data:`rare_gan.features.BANDS_HZ`, flattened to ``(batch, leads × bands)``."""
    from rare_gan.features import BANDS_HZ

    bands = np.stack([(freqs >= lo) & (freqs < hi) for lo, hi in BANDS_HZ], 1) * bin_weights[:, None]
    in_bands = tf.einsum("blf,fk->blk", power, tf.constant(bands, tf.float32))
    share = in_bands / (tf.reduce_sum(in_bands, axis=-1, keepdims=True) + 1e-12)
    return tf.reshape(tf.math.log(share + _LOG_FLOOR) / np.log(10.0), [tf.shape(power)[0], -1])


WELCH_SEGMENT, WELCH_HOP = 256, 128
"""Welch segments of the realism features (:func:`scipy.signal.welch` with ``nperseg=256`` and its defaults)."""


def welch_band_statistics(ecgs, fs: float = SAMPLING_RATE_HZ):
    """log10 share of each lead's power in each band of :data:`rare_gan.features.BANDS_HZ`
    ``(batch, leads × bands)`` from Welch's estimate as the realism features compute it (periodic
    Hann window of :data:`WELCH_SEGMENT` samples, hop :data:`WELCH_HOP`, each segment mean-removed)."""
    x = tf.transpose(tf.cast(ecgs, tf.float32), [0, 2, 1])  # (batch, leads, T)
    frames = tf.signal.frame(x, WELCH_SEGMENT, WELCH_HOP)  # (batch, leads, segments, WELCH_SEGMENT)
    frames = frames - tf.reduce_mean(frames, axis=-1, keepdims=True)
    window = tf.constant(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WELCH_SEGMENT) / WELCH_SEGMENT), tf.float32)
    power = tf.reduce_mean(tf.square(tf.abs(tf.signal.rfft(frames * window))), axis=2)  # (batch, leads, F)
    freqs = np.fft.rfftfreq(WELCH_SEGMENT, 1.0 / fs)
    return _log_band_shares(power, freqs, np.where((freqs > 0) & (freqs < fs / 2), 2.0, 1.0))  # scipy's one-sided


MORPHOLOGY_WINDOW = (-25, 45)
"""Samples around an R time of the beat window (−250 … +450 ms at 100 Hz), as the realism features' median beat."""
MORPHOLOGY_STEP = 5
"""Every 5th sample of the window (every 50 ms) is a statistic, per lead."""
MORPHOLOGY_BASELINE = 15
"""The window's first 15 samples (−250 … −110 ms, the PR segment) are its baseline."""


def beat_morphology(ecgs, r_times, length: int = N_SAMPLES):
    """Each ECG's mean beat every 50 ms from −250 to +450 ms around its R times, per lead,
    ``(batch, 15 × leads)`` (point-major), differentiable in ``ecgs`` (any units).

    Beats are windows of ``ecgs`` ``(batch, T, leads)`` around the R times ``(batch, beats)`` in samples
    (rounded; no gradient through them; a window that does not fit in the record is left out), each
    minus its PR-segment mean (:data:`MORPHOLOGY_BASELINE`), averaged over the ECG's beats. The
    realism features' ``beat_<t>ms_mv`` are the same points of the *median* beat at the detected peaks.
    """
    x = tf.cast(ecgs, tf.float32)
    lo, hi = MORPHOLOGY_WINDOW
    r = tf.round(tf.stop_gradient(tf.cast(r_times, tf.float32)))
    valid = tf.cast((r + lo >= 0) & (r + hi <= length - 1), tf.float32)  # (batch, beats)
    index = tf.cast(tf.clip_by_value(r[:, :, None] + tf.range(lo, hi + 1, dtype=tf.float32), 0, length - 1), tf.int32)
    beats = tf.gather(x, index, batch_dims=1)  # (batch, beats, window, leads)
    beats -= tf.reduce_mean(beats[:, :, :MORPHOLOGY_BASELINE], axis=2, keepdims=True)
    mean = tf.reduce_sum(valid[:, :, None, None] * beats, axis=1) / tf.maximum(tf.reduce_sum(valid, axis=1), 1.0)[:, None, None]
    points = mean[:, ::MORPHOLOGY_STEP]  # (batch, 15, leads)
    return tf.reshape(points, (tf.shape(x)[0], -1))


def real_r_times(ecgs_mv: np.ndarray, slots: int = 40) -> np.ndarray:
    """Lead-II R peaks of real ECGs ``(n, T, 12)`` in mV (:func:`rare_gan.physiology.detect_rpeaks`, the
    realism features' detector) as R times ``(n, slots)``, float32, unused slots far outside the record."""
    from rare_gan import physiology

    out = np.full((len(ecgs_mv), slots), -1000.0, np.float32)
    for i, ecg in enumerate(ecgs_mv):
        peaks = physiology.detect_rpeaks(ecg[:, AGREEMENT_LEAD])[:slots]
        out[i, :len(peaks)] = peaks
    return out


def population_moment_gap(fake, mean, sd):
    """:func:`moment_gap` against the real *population* (mean ``mean``, SD ``sd`` per statistic) instead of a
    real batch: mean over statistics of (Δ mean)² + (Δ SD)² in units of the real SD."""
    mu, spread = _standardised_moments(fake, mean, sd)
    return tf.reduce_mean(tf.square(mu) + tf.square(spread - 1.0))


def roughness_statistics(ecgs):
    """log10 SD of each lead's second difference ``(batch, leads)`` (any units, the same on both sides):
    the realism features' ``diff2_sd_mv`` up to a per-lead constant, so it sees detail up to 50 Hz."""
    x = tf.cast(ecgs, tf.float32)
    d2 = x[:, 2:] - 2.0 * x[:, 1:-1] + x[:, :-2]
    sd = tf.sqrt(tf.reduce_mean(tf.square(d2 - tf.reduce_mean(d2, axis=1, keepdims=True)), axis=1) + 1e-8)
    return tf.math.log(sd) / np.log(10.0)


def standardisation(x_scaled: np.ndarray, rr_stats: np.ndarray | None = None, batch_size: int = 256,
                    r_times: np.ndarray | None = None) -> dict:
    """Means and SDs of the matched statistics over the real training records (the run's fixed constants);
    the RR ones only with ``rr_stats`` (band-only matching needs none), the beat morphology's only with the
    records' R times ``r_times`` (:func:`real_r_times`)."""
    def over_batches(statistic, *more):
        return np.concatenate([statistic(x_scaled[i:i + batch_size], *(m[i:i + batch_size] for m in more)).numpy()
                               for i in range(0, len(x_scaled), batch_size)])

    floor = lambda sd: np.maximum(sd, 1e-3).tolist()  # noqa: E731  a constant statistic must not blow up
    out = {}
    for key, statistic in (("band", band_statistics), ("welch", welch_band_statistics), ("rough", roughness_statistics)):
        values = over_batches(statistic)
        out |= {f"{key}_mean": values.mean(axis=0).tolist(), f"{key}_sd": floor(values.std(axis=0))}
    if rr_stats is not None:
        out.update(rr_mean=rr_stats.mean(axis=0).tolist(), rr_sd=floor(rr_stats.std(axis=0)))
    if r_times is not None:
        values = over_batches(beat_morphology, r_times)
        out.update(morph_mean=values.mean(axis=0).tolist(), morph_sd=floor(values.std(axis=0)))
    return out


def placed_and_detected_beats(run, n: int = 300, seed: int = 0) -> dict:
    """How many beats a beat generator places inside each record and how many the realism features'
    R-peak detector finds in the ECG it draws (``run``: a :class:`rare_gan.generate.GeneratorRun`).

    Returns the medians of both counts per ECG and the fractions of ECGs where the detector finds
    fewer / as many / more: far fewer detected than placed means beats drawn from near-silent
    templates, so the rhythm head's RR intervals are not the ECG's.
    """
    from rare_gan import features, generate

    z = generate.latent_vectors(n, run.config.latent_dim, seed)
    inputs = [z, generate.condition_labels(run, None, n, seed)] if run.config.conditional else z
    scaled, rhythm = with_rhythm(run.generator)(inputs, training=False)
    n_placed = placed(run.generator.get_layer("render").r_times(rhythm).numpy()).sum(axis=1)
    detected = features.extract(run.scaler.inverse(scaled.numpy()))[:, features.feature_names().index("rr:n_beats")]
    return {"placed_median": float(np.median(n_placed)), "detected_median": float(np.median(detected)),
            "fraction_fewer": float(np.mean(detected < n_placed)),
            "fraction_equal": float(np.mean(detected == n_placed)), "fraction_more": float(np.mean(detected > n_placed))}


def _standardised_moments(values, mean, sd):
    """Batch mean and SD per statistic of ``(values − mean) / sd``."""
    v = (tf.cast(values, tf.float32) - mean) / sd
    mu = tf.reduce_mean(v, axis=0)
    return mu, tf.sqrt(tf.reduce_mean(tf.square(v - mu), axis=0) + 1e-6)


def moment_gap(fake, real, mean, sd):
    """Mean over statistics of (Δ mean)² + (Δ SD)² between two batches, in units of the real SD."""
    (mf, sf), (mr, sr) = _standardised_moments(fake, mean, sd), _standardised_moments(real, mean, sd)
    return tf.reduce_mean(tf.square(mf - mr) + tf.square(sf - sr))


__all__ = ["RR_STATS", "JUMP_STATS", "rr_names", "with_rhythm", "placed", "real_rr_statistics", "rr_statistics",
           "band_statistics", "welch_band_statistics", "roughness_statistics", "beat_agreement", "beat_morphology",
           "real_r_times", "population_moment_gap", "standardisation",
           "placed_and_detected_beats", "moment_gap"]
