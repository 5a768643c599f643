"""Summary-statistic matching: the statistics are the realism features' own, and they train the rhythm head."""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from rare_gan import ecgnets, features, gan, matching, recipes, train
from rare_gan.features import BANDS_HZ, _rr_features
from rare_gan.leads import DISPLAY_NAMES

pytestmark = pytest.mark.graph  # the matched statistics run inside traced training steps, as in users' runs


def test_rr_statistics_are_the_realism_features_of_the_same_r_times():
    rng = np.random.default_rng(0)
    bigeminy = np.cumsum(np.r_[20, np.tile([55, 95], 6)])  # short-long: lag-1 autocorrelation near -1
    irregular = np.cumsum(np.r_[15, rng.uniform(50, 80, 11)])
    for peaks in (bigeminy, irregular):
        outside = np.r_[-40.0, peaks, peaks[-1] + 2000.0]  # beats before and after the record are not counted
        got = matching.rr_statistics(outside[None].astype(np.float32)).numpy()[0]
        want = dict(zip(features._RR_NAMES, _rr_features(peaks, 100.0)))
        expected = [want[name] for name in matching.RR_STATS]
        np.testing.assert_allclose(got, expected, rtol=0.02, atol=0.02)
    assert matching.rr_statistics(bigeminy[None].astype(np.float32)).numpy()[0, -1] < -0.9
    regular = np.arange(10, 1000, 80.0)[None].astype(np.float32)
    stats = matching.rr_statistics(regular).numpy()[0]
    assert stats[0] == pytest.approx(800.0) and stats[-1] == pytest.approx(0.0) and stats[1] == pytest.approx(1.0)


def test_band_statistics_put_a_sine_in_its_band():
    t = np.arange(1000) / 100.0
    x = np.zeros((1, 1000, 12), np.float32)
    x[0, :, :] = np.sin(2 * np.pi * 10.0 * t)[:, None]  # 10 Hz: the 8–15 Hz band
    shares = matching.band_statistics(x).numpy().reshape(12, len(BANDS_HZ))
    band = next(i for i, (lo, hi) in enumerate(BANDS_HZ) if lo <= 10.0 < hi)
    np.testing.assert_allclose(shares[:, band], 0.0, atol=1e-3)  # log10(1)
    assert (np.delete(shares, band, axis=1) < -3.5).all()


def test_moment_gap_is_zero_for_the_same_batch_and_grows_with_a_shift():
    x = tf.random.stateless_normal((64, 5), seed=[1, 2])
    mean, sd = tf.zeros(5), tf.ones(5)
    assert float(matching.moment_gap(x, x, mean, sd)) == pytest.approx(0.0, abs=1e-6)
    assert float(matching.moment_gap(x + 1.0, x, mean, sd)) == pytest.approx(1.0, rel=1e-4)
    assert float(matching.moment_gap(2.0 * x, x, mean, sd)) > 0.5  # a wider spread costs too


def test_the_gap_trains_the_rhythm_head():
    """The point of the term: a gradient on the per-beat RR deviations, which the discriminator hardly gives."""
    generator = ecgnets.build_beat_generator(latent_dim=16, n_labels=0, hidden=32, template_channels=(16, 8, 8),
                                             residual_channels=8)
    stats = {"rr_mean": [800.0, 60.0, 60.0, 700.0, 900.0, 0.0], "rr_sd": [100.0, 30.0, 30.0, 100.0, 100.0, 0.3],
             "band_mean": [0.0] * 72, "band_sd": [1.0] * 72, "weight": 1.0, "statistics": ["rr", "band"]}
    real = tf.zeros((8, 1000, 12))
    real_rr = tf.constant(np.tile([[800.0, 80.0, 120.0, 600.0, 1000.0, -0.5]], (8, 1)), tf.float32)
    gaps, grads = {}, {}
    for statistics in (["rr", "band"], ["rr"], ["band"]):
        model = gan.ECGGAN(generator, ecgnets.build_multiscale_discriminator(), latent_dim=16,
                           matching={**stats, "statistics": statistics})
        with tf.GradientTape() as tape:
            out, rhythm = matching.with_rhythm(generator)(tf.random.stateless_normal((8, 16), seed=[0, 1]), training=True)
            gap = model.stats_gap(out, rhythm, real, real_rr)
        grad = tape.gradient(gap, generator.get_layer("rr_deviation").kernel)
        gaps[tuple(statistics)] = float(gap)
        grads[tuple(statistics)] = 0.0 if grad is None else float(tf.reduce_max(tf.abs(grad)))
    assert gaps["rr", "band"] > 0 and grads["rr", "band"] > 0 and grads["rr",] > 0
    assert gaps["rr", "band"] == pytest.approx(gaps["rr",] + gaps["band",], rel=1e-5)
    model = gan.ECGGAN(generator, ecgnets.build_multiscale_discriminator(), latent_dim=16,
                       matching={**stats, "statistics": ["band"]})
    out, rhythm = matching.with_rhythm(generator)(tf.random.stateless_normal((8, 16), seed=[0, 1]), training=True)
    assert float(model.stats_gap(out, rhythm, real, 2.0 * real_rr)) == pytest.approx(gaps["band",])  # RR unused


def test_beat_band_fine_tunes_with_band_matching_on_the_default_pretraining():
    band, beat = recipes.get_recipe("beat_band"), recipes.get_recipe("beat")
    assert band.config(None, stage="pretrain", seed=3) == beat.config(None, stage="pretrain", seed=3)
    tuned = band.config("PAC")
    assert tuned.recipe == "beat_band" and tuned.stats_weight == 1.0 and tuned.matched_statistics == ("band",)
    assert tuned.freeze_discriminator == beat.config("PAC").freeze_discriminator
    with pytest.raises(ValueError, match="matched_statistics"):
        recipes.TrainConfig(target=["PAC"], matched_statistics=("qrs",))
    with pytest.raises(ValueError, match="only fine-tuning may differ"):
        dataclasses.replace(band, name="bad", settings={**band.settings, "beat_visible": True})
    with pytest.raises(ValueError, match="both need a pretraining stage"):
        dataclasses.replace(band, name="bad", pretraining_of="research")
    with pytest.raises(ValueError, match="unknown recipe 'nope'"):
        dataclasses.replace(band, name="bad", pretraining_of="nope")


def test_beat_visible_ectopic_matches_band_powers_in_both_stages_with_its_own_pretraining():
    spec = recipes.get_recipe("beat_visible_ectopic")
    for stage in ("pretrain", "finetune"):
        config = spec.config("PAC", stage=stage)
        assert (config.beat_visible, config.beat_rhythm, config.stats_weight, config.matched_statistics) == \
            (True, "ectopic", 1.0, ("band",))
    assert spec.pretraining_of is None and spec.config(None, stage="pretrain").recipe == "beat_visible_ectopic"
    generator, _ = gan.build_models(spec.config("PAC", stage="pretrain"), n_labels=3)
    assert {"template_scale", "ectopic_timing", "rr_jitter"} <= {layer.name for layer in generator.layers}
    rr = recipes.get_recipe("beat_visible_ectopic_rr")
    assert rr.config(None, stage="pretrain", seed=2) == spec.config(None, stage="pretrain", seed=2)  # shared
    assert rr.config("PAC").matched_statistics == ("rr", "band")
    assert train.config_digest(rr.config("PAC")) != train.config_digest(spec.config("PAC"))


def test_digests_leave_out_settings_at_their_default():
    """A new setting whose default keeps the old behaviour must not orphan existing runs and caches."""
    config = recipes.TrainConfig(target=["PAC"], architecture="beat")
    explicit = recipes.TrainConfig(target=["PAC"], architecture="beat", matched_statistics=("rr", "band"))
    assert train.config_digest(explicit) == train.config_digest(config)
    assert "matched_statistics" not in train._digest_fields(config) and "architecture" in train._digest_fields(config)
    assert train.config_digest(recipes.TrainConfig(target=["PAC"], architecture="beat", seed=1)) != \
        train.config_digest(config)


def test_stats_weight_needs_the_beat_generator_and_its_constants():
    with pytest.raises(ValueError, match="architecture='beat'"):
        recipes.TrainConfig(target=["PAC"], stats_weight=1.0)
    with pytest.raises(ValueError, match=">= 0"):
        recipes.TrainConfig(target=["PAC"], architecture="beat", stats_weight=-1.0)
    config = recipes.TrainConfig(target=["PAC"], architecture="beat", stats_weight=1.0)
    g, d = gan.build_models(config)
    with pytest.raises(ValueError, match="standardisation"):
        gan.make_gan(g, d, config)


def test_real_rr_statistics_fill_what_cannot_be_measured():
    ecgs = np.zeros((3, 1000, 12), np.float32)  # flat: no beats, every statistic unmeasurable
    out = matching.real_rr_statistics(ecgs)
    assert out.shape == (3, len(matching.RR_STATS)) and np.isfinite(out).all()


@pytest.fixture(scope="module")
def matched_run(demo_dir, tmp_path_factory):
    """A beat_matched run trained from scratch on DEMO (test profile), with its training data.

    Trained eagerly (29 s traced, 11 s eager alone on the 2-core AMD machine): the tests that use it read its history and saved
    run, while the other training tests of this file run the matched statistics traced."""
    config = recipes.get_recipe("beat_matched").config("AFIB", profile="test", data_dir="demo")
    data = train.prepare_training_data(config)
    folder = tmp_path_factory.mktemp("matched") / "run"
    tf.config.run_functions_eagerly(True)
    try:
        return folder, data, train.train(config, folder, data=data)
    finally:
        tf.config.run_functions_eagerly(False)


def test_training_with_statistic_matching_records_the_gap(matched_run):
    folder, data, history = matched_run
    want = features.extract(data.scaler.inverse(data.x_scaled))
    lag1 = want[:, features.feature_names().index("rr:rr_lag1_autocorr")]
    measured = np.isfinite(lag1)
    np.testing.assert_allclose(data.rr_stats[measured, -1], lag1[measured], atol=1e-5)
    assert "stats_gap" in history and np.isfinite(history["stats_gap"]).all() and (history["stats_gap"] > 0).all()
    saved = json.loads((folder / "config.json").read_text())["train"]
    assert saved["stats_weight"] == 1.0 and saved["beat_visible"] is True


def test_band_only_matching_trains_without_rr_statistics(demo_dir):
    config = dataclasses.replace(recipes.get_recipe("beat_matched").config("AFIB", profile="test", data_dir="demo"),
                                 matched_statistics=("band",))
    data = train.prepare_training_data(config)
    assert data.rr_stats is None  # no R-peak detection over the training records
    stats = matching.standardisation(data.x_scaled)
    assert set(stats) == {"band_mean", "band_sd", "welch_mean", "welch_sd", "rough_mean", "rough_sd"}
    generator = ecgnets.build_beat_generator(latent_dim=16, hidden=32, template_channels=(16, 8, 8), residual_channels=8)
    model = gan.ECGGAN(generator, ecgnets.build_multiscale_discriminator(), latent_dim=16,
                       matching={**stats, "weight": 1.0, "statistics": ["band"]})
    model.compile(keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-4))
    out = model.train_step(tf.constant(data.x_scaled[:4]))  # batches of ECGs only: no RR element to unpack
    assert np.isfinite(float(out["stats_gap"])) and float(out["stats_gap"]) > 0


def test_template_scale_sets_the_sharpness_and_bounds_the_ratio():
    rng = np.random.default_rng(1)
    templates = rng.standard_normal((2, 3, 96, 8)).astype(np.float32) * np.array([1e-3, 1.0, 50.0])[None, :, None, None]
    level = np.array([[0.03], [0.1]], np.float32)
    relative = np.array([[0.0, 0.0, 0.0], [-50.0, 0.0, 50.0]], np.float32)
    out = ecgnets.TemplateScale()(templates, level, relative).numpy()
    slope = np.sqrt(np.mean(np.diff(out, axis=2) ** 2, axis=(2, 3)))
    np.testing.assert_allclose(slope[0], 0.03, rtol=5e-3)  # a near-silent template is drawn as sharp as the others
    np.testing.assert_allclose(slope[1], 0.1 * np.exp(0.7 * np.array([-1, 0, 1])), rtol=5e-3)  # within 2x


def test_visible_beats_generator_draws_every_beat_and_saves(tmp_path):
    import keras

    generator = ecgnets.build_beat_generator(latent_dim=16, n_labels=3, hidden=32, template_channels=(16, 8, 8),
                                             residual_channels=8, visible_beats=True)
    assert generator.get_layer("template_scale") is not None
    z, labels = np.random.default_rng(0).standard_normal((4, 16)).astype(np.float32), np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    before = generator([z, labels]).numpy()
    generator.save(tmp_path / "g.keras")
    again = keras.saving.load_model(tmp_path / "g.keras", compile=False)
    np.testing.assert_array_equal(again([z, labels]).numpy(), before)
    config = recipes.get_recipe("beat_matched").config("PAC", stage="pretrain")
    assert config.beat_visible and config.stats_weight > 0


def test_placed_and_detected_beats_counts_the_renderers_beats(matched_run):
    import keras

    from rare_gan import generate

    run = generate.load_run(matched_run[0])
    counts = matching.placed_and_detected_beats(run, n=8, seed=0)
    assert set(counts) == {"placed_median", "detected_median", "fraction_fewer", "fraction_equal", "fraction_more"}
    assert counts["fraction_fewer"] + counts["fraction_equal"] + counts["fraction_more"] == pytest.approx(1.0)
    g = run.generator  # the same count by hand: the renderer's R times inside the record
    inputs = [generate.latent_vectors(8, run.config.latent_dim, 0), generate.condition_labels(run, None, 8, 0)]
    t = g.get_layer("render").r_times(keras.Model(g.inputs, g.get_layer("rhythm").output)(inputs)).numpy()
    placed = ((t >= matching.R_EDGE_SAMPLES) & (t < 1000 - matching.R_EDGE_SAMPLES)).sum(axis=1)
    assert counts["placed_median"] == pytest.approx(float(np.median(placed)))


def test_beat_visible_ectopic_init_starts_prematurity_and_pause_where_they_can_move():
    """The candidate's ectopic head starts at 0.3 (not softplus(-4) = 0.018) with learning-rate factor 10:
    one unit step of the raw weight moves softplus by far more, and a regular rhythm is left unchanged."""
    spec = recipes.get_recipe("beat_visible_ectopic_init")
    config = spec.config("PAC", label_codes=["A", "B"])
    assert (config.ectopic_start, config.ectopic_rate, config.beat_rhythm) == (0.3, 10.0, "ectopic")
    assert spec.pretraining_of is None  # its own pretraining: the starting values differ
    old = recipes.get_recipe("beat_visible_ectopic").config("PAC")
    assert train.config_digest(old) == train.config_digest(dataclasses.replace(old, ectopic_rate=1.0))
    layer = gan.build_models(config, n_labels=2, discriminator=False)[0].get_layer("ectopic_timing")
    prematurity, pause = (np.asarray(v) for v in layer.timing())
    np.testing.assert_allclose(prematurity, 0.3, rtol=1e-5)
    np.testing.assert_allclose(pause, 0.3, rtol=1e-5)
    for w in (layer.prematurity, layer.pause):
        w.assign(w + 0.01)  # one Adam-sized step of lr 0.01 on the raw weight
    moved = np.asarray(layer.timing()[0])[0] - 0.3
    assert 0.02 < moved < 0.03  # 10 × 0.01 × softplus'(.) = 0.1 × 0.26
    deviations = np.linspace(-0.2, 0.2, 6, dtype="float32")[None]
    choice = np.zeros((1, 6, 3), "float32")
    choice[..., 1] = 1.0  # one template throughout: prematurity and pause cancel
    out = np.asarray(layer(deviations, choice, np.zeros((1, 6), "float32")))[0]
    np.testing.assert_allclose(out[:-1], deviations[0, :-1], atol=1e-6)
    with pytest.raises(ValueError, match="ectopic_start and ectopic_rate must be > 0"):
        recipes.TrainConfig(target="PAC", ectopic_start=0.0)


def test_rr_jumps_are_the_realism_features_of_a_premature_beat():
    """One premature beat in a regular rhythm: ΔRR of 0, ±300 and 600 ms, so pNN50 = 0.5 and the largest jump 600 ms."""
    peaks = np.cumsum([20, 80, 80, 80, 50, 110, 80, 80]).astype(np.float32)
    want = dict(zip(features._RR_NAMES, _rr_features(peaks, 100.0)))
    names = matching.rr_names(("rr", "rr_jumps"))
    assert names == matching.RR_STATS + matching.JUMP_STATS and matching.rr_names(("band",)) == ()
    got = dict(zip(names, matching.rr_statistics(peaks[None], names).numpy()[0]))
    assert want["pnn50"] == pytest.approx(0.5) and got["pnn50"] == pytest.approx(0.5, abs=1e-3)
    assert got["rr_max_jump_ms"] == pytest.approx(want["rr_max_jump_ms"], rel=1e-3) == 600.0
    assert got["rmssd_ms"] == pytest.approx(want["rmssd_ms"], rel=0.01)
    only_jumps = matching.rr_statistics(peaks[None], matching.JUMP_STATS).numpy()[0]
    np.testing.assert_allclose(only_jumps, [got["pnn50"], got["rr_max_jump_ms"]])


def test_roughness_is_the_log_sd_of_the_second_difference():
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 1.0, (1, 20000, 12)).astype(np.float32)  # white: SD of Δ² is √6 σ
    np.testing.assert_allclose(matching.roughness_statistics(noise).numpy(), np.log10(np.sqrt(6.0)), atol=0.01)
    ramp = np.tile(np.linspace(0, 5, 1000, dtype=np.float32)[None, :, None], (1, 1, 12))
    assert (matching.roughness_statistics(ramp).numpy() < -3.5).all()  # a straight line has no second difference
    want = features.extract(np.asarray(noise[:, :1000], np.float64))
    diff2 = want[0, [features.feature_names().index(f"amp:{lead}:diff2_sd_mv") for lead in DISPLAY_NAMES]]
    np.testing.assert_allclose(matching.roughness_statistics(noise[:, :1000]).numpy()[0], np.log10(diff2), atol=1e-3)


def test_jump_and_roughness_matching_train_end_to_end(demo_dir):
    """The new statistics need only RR jumps from the detector, add to the gap and reach the generator."""
    config = dataclasses.replace(recipes.get_recipe("beat_matched").config("AFIB", profile="test", data_dir="demo"),
                                 matched_statistics=("rr_jumps", "roughness"), conditional=False)
    data = train.prepare_training_data(config)
    assert data.rr_stats.shape == (len(data.x_scaled), len(matching.JUMP_STATS)) and np.isfinite(data.rr_stats).all()
    stats = matching.standardisation(data.x_scaled, data.rr_stats)
    assert len(stats["rough_mean"]) == 12 and len(stats["rr_mean"]) == 2
    generator = ecgnets.build_beat_generator(latent_dim=16, hidden=32, template_channels=(16, 8, 8), residual_channels=8)
    model = gan.ECGGAN(generator, ecgnets.build_multiscale_discriminator(), latent_dim=16,
                       matching={**stats, "weight": 1.0, "statistics": ["rr_jumps", "roughness"]})
    real, real_rr = tf.constant(data.x_scaled[:4]), tf.constant(data.rr_stats[:4])
    with tf.GradientTape() as tape:
        out, rhythm = matching.with_rhythm(generator)(tf.random.stateless_normal((4, 16), seed=[0, 1]), training=True)
        gap = model.stats_gap(out, rhythm, real, real_rr)
    assert float(gap) > 0
    assert tape.gradient(gap, generator.get_layer("rr_deviation").kernel) is not None
    model.compile(keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-4))
    step = model.train_step((real, real_rr))
    assert np.isfinite(float(step["stats_gap"])) and float(step["stats_gap"]) > 0


def _spike_train(r_times, length=1000):
    """One ECG (1, length, 12) whose lead II is a narrow triangle (a QRS) at each R time, flat elsewhere."""
    ecg = np.zeros((1, length, 12), np.float32)
    for r in r_times:
        ecg[0, r - 3:r + 4, 1] = 1.0 - np.abs(np.arange(-3, 4)) / 4.0
    return ecg


def test_beat_agreement_is_zero_when_the_placed_beats_are_the_ecgs_and_grows_otherwise():
    beats = np.arange(60, 960, 90)
    ecg = _spike_train(beats)
    padded = lambda t: np.r_[t, np.full(36 - len(t), -100.0)][None].astype(np.float32)  # noqa: E731
    assert float(matching.beat_agreement(ecg, padded(beats))) == 0.0
    # half the QRS complexes placed (the others are extra steep peaks), or beats placed where there is none
    assert float(matching.beat_agreement(ecg, padded(beats[::2]))) > 1.0
    assert float(matching.beat_agreement(ecg, padded(np.sort(np.r_[beats, beats[:-1] + 45])))) > 0.5
    # placed beats outside the record do not count, and only lead II is looked at
    other = ecg.copy()
    other[0, :, 0] = np.sin(np.arange(1000))
    assert float(matching.beat_agreement(other, padded(np.r_[beats, 1200.0]))) == 0.0


def test_beat_agreement_floor_bounds_the_penalty_of_near_flat_placed_beats():
    beats = np.arange(60, 960, 90)
    ecg = _spike_train(beats)
    flat = np.arange(105, 960, 90).astype(np.float32)  # placed between the spikes: near-flat there
    placed = np.r_[flat, np.full(36 - len(flat), -100.0)][None].astype(np.float32)
    unbounded = float(matching.beat_agreement(ecg, placed))
    bounded = float(matching.beat_agreement(ecg, placed, ref_floor=0.5))
    # b/ref ≤ 1/0.5 and a/ref ≥ 0: at most 10 × (0.5² + (2 − 0.35)²)
    bound = matching.AGREEMENT_SCALE * (matching.MISSING_RATIO ** 2 + (2 - matching.EXTRA_RATIO) ** 2)
    assert unbounded > 100 * bound and 1.0 < bounded <= bound + 1e-3
    # where the placed beats are the ECG's, the floor changes nothing
    assert float(matching.beat_agreement(ecg, np.r_[beats, np.full(36 - len(beats), -100.0)][None].astype(np.float32),
                                         ref_floor=0.5)) == 0.0
    with pytest.raises(ValueError, match="agreement_floor"):
        recipes.TrainConfig(target=["PAC"], agreement_floor=1.0)


def test_beat_agreement_is_near_zero_on_real_ecgs_at_their_detected_peaks(demo_dir):
    from rare_gan import physiology

    config = recipes.get_recipe("beat_matched").config("AFIB", profile="test", data_dir="demo", conditional=False)
    data = train.prepare_training_data(config)
    mv = data.scaler.inverse(data.x_scaled[:20])
    values = []
    for scaled, ecg in zip(data.x_scaled[:20], mv):
        peaks = physiology.detect_rpeaks(ecg[:, 1]).astype(np.float32)
        values.append(float(matching.beat_agreement(scaled[None], np.r_[peaks, np.full(36 - len(peaks), -100.0)][None])))
    assert np.median(values) < 0.05, values


def test_beat_agreement_and_morphology_reach_the_generator_and_train(demo_dir):
    config = recipes.get_recipe("beat_matched_lead_field_morph").config("AFIB", profile="test", data_dir="demo",
                                                                        conditional=False)
    assert {"beats", "morphology"} <= set(config.matched_statistics) and config.agreement_floor == 0.5
    data = train.prepare_training_data(config)
    r_times = matching.real_r_times(data.scaler.inverse(data.x_scaled))
    stats = matching.standardisation(data.x_scaled, data.rr_stats, r_times=r_times)
    assert len(stats["morph_mean"]) == len(stats["morph_sd"]) == 15 * 12
    generator = ecgnets.build_beat_generator(latent_dim=16, hidden=32, template_channels=(16, 8, 8), residual_channels=8,
                                             visible_beats=True, lead_rank=4)
    model = gan.ECGGAN(generator, ecgnets.build_multiscale_discriminator(), latent_dim=16,
                       matching={**stats, "weight": 1.0, "statistics": list(config.matched_statistics),
                                 "agreement_floor": config.agreement_floor})
    real, real_rr = tf.constant(data.x_scaled[:4]), tf.constant(data.rr_stats[:4])
    with tf.GradientTape(persistent=True) as tape:
        out, rhythm = matching.with_rhythm(generator)(tf.random.stateless_normal((4, 16), seed=[0, 1]), training=True)
        r = generator.get_layer("render").r_times(rhythm)
        agreement = matching.beat_agreement(out, r)
        morphology = matching.population_moment_gap(matching.beat_morphology(out, r), stats["morph_mean"],
                                                    stats["morph_sd"])
    for term in (agreement, morphology):
        grads = tape.gradient(term, generator.get_layer("template_out").kernel)
        assert float(term) > 0 and grads is not None and float(tf.reduce_max(tf.abs(grads))) > 0
    model.compile(keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-4))
    step = model.train_step((real, real_rr))
    assert np.isfinite(float(step["stats_gap"])) and float(step["stats_gap"]) > 0


def test_beat_morphology_is_the_mean_beat_every_50_ms_without_its_baseline():
    beats = np.array([10, 100, 200, 300, 990])  # the first and last windows do not fit in the record
    ecg = _spike_train(beats[1:-1]) + 0.5  # a constant offset is baseline
    ecg[0, beats[0] - 3:beats[0] + 4, 1] += 5.0  # a beat left out must not count
    placed = np.r_[beats, np.full(36 - len(beats), -1000.0)][None].astype(np.float32)
    points = matching.beat_morphology(ecg, placed).numpy().reshape(15, 12)
    np.testing.assert_allclose(points[5, 1], 1.0, atol=1e-6)  # t = 0 ms: the QRS peak, lead II
    assert np.abs(np.delete(points, 5, axis=0)).max() < 1e-6 and np.abs(np.delete(points, 1, axis=1)).max() < 1e-6
    assert float(matching.population_moment_gap(np.full((8, 2), 3.0), [1.0, 1.0], [1.0, 1.0])) == pytest.approx(5.0, abs=0.01)
    rng = np.random.default_rng(0)
    assert float(matching.population_moment_gap(rng.normal(2.0, 3.0, (20000, 2)), [2.0, 2.0], [3.0, 3.0])) < 1e-3


def test_welch_band_statistics_are_the_realism_features_band_shares():
    rng = np.random.default_rng(0)
    t = np.arange(1000) / 100.0
    ecgs = (rng.normal(size=(3, 1000, 12)) * 0.05 + np.sin(2 * np.pi * 0.3 * t)[None, :, None]
            + 0.5 * np.sin(2 * np.pi * 1.2 * t)[None, :, None]).astype(np.float32)
    got = matching.welch_band_statistics(ecgs).numpy().reshape(3, 12, len(BANDS_HZ))
    names = features.feature_names()
    shares = features.extract(ecgs)[:, [names.index(f"band:{lead}:frac_{lo:g}_{hi:g}hz") for lead in DISPLAY_NAMES
                                        for lo, hi in BANDS_HZ]].reshape(3, 12, len(BANDS_HZ))
    np.testing.assert_allclose(got, np.log10(shares + 1e-4), atol=1e-3)
    # drift slower than a segment hardly counts in Welch's estimate, while the periodogram sees it whole
    slow = np.repeat(np.sin(2 * np.pi * 0.1 * t)[None, :, None], 12, axis=2).astype(np.float32) + 0.01 * ecgs
    assert (matching.welch_band_statistics(slow).numpy()[0, 0] < matching.band_statistics(slow).numpy()[0, 0])
