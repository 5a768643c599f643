"""Named recipes, the beat-and-rhythm networks, the pretraining cache and fine-tuning, run folders."""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from rare_gan import data as rare_data
from rare_gan import ecgnets, gan, generate, recipes, train
from rare_gan.leads import limb_lead_residuals

PROFILE = "test"


# --- the research recipe is the research's model ------------------------------------------------------


def test_research_recipe_builds_the_research_layers():
    config = recipes.get_recipe("research").config("PAC")
    assert (config.diff_augment, config.r1_weight, config.conditional, config.loss) == (False, 0.0, False,
                                                                                          "nonsaturating")
    generator, discriminator = gan.build_models(config)
    ups = [layer for layer in generator.layers if isinstance(layer, keras.layers.Conv1DTranspose)]
    assert [(u.filters, u.kernel_size, u.strides) for u in ups] == [(128, (5,), (2,)), (64, (5,), (2,)),
                                                                    (12, (5,), (2,))]
    kinds = [type(layer).__name__ for layer in generator.layers]
    assert kinds[:5] == ["InputLayer", "Dense", "BatchNormalization", "LeakyReLU", "Reshape"]
    assert "ResidualInception1D" in kinds and generator.get_layer("tanh").activation.__name__ == "tanh"
    assert generator.output.shape[1:] == (1000, 12) and "LeadConsistent12" not in kinds
    assert discriminator.output.shape[1:] == (1,)
    assert any(type(layer).__name__ == "ResidualInception1D" for layer in discriminator.layers)


def test_unknown_recipe_and_stage_are_clear_errors():
    with pytest.raises(ValueError, match="unknown recipe 'beta'.*research"):
        recipes.get_recipe("beta")
    with pytest.raises(ValueError, match="no pretraining stage"):
        recipes.get_recipe("research").config("PAC", stage="pretrain")


def test_recipe_config_round_trips_through_config_json(tmp_path):
    config = recipes.get_recipe("beat").config("PAC", lr_generator=4e-4, lr_discriminator=1e-4, seed=3)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"train": config.to_dict()}))
    loaded = recipes.TrainConfig.from_dict(json.loads(path.read_text())["train"])
    assert loaded == config and loaded.recipe == "beat" and loaded.discriminator_scales == (1, 4)


# --- the beat-and-rhythm networks ---------------------------------------------------------------------


def test_renderer_places_a_beat_at_its_r_time_with_linear_interpolation():
    renderer = ecgnets.BeatRenderer(length=200, r_offset=3, fs=100)
    template = np.zeros((1, 1, 8, 1), np.float32)
    template[0, 0, 3, 0] = 1.0  # a unit spike at the template's R sample
    rr, first = renderer.rr_samples(tf.zeros((1, 4)))
    assert float(rr[0, 0]) == pytest.approx(60 * 100 / np.mean(ecgnets.HR_RANGE_BPM))  # sigmoid(0) = mid-range HR
    for beat in (0, 1):
        weights = np.zeros((1, 2, 1), np.float32)
        weights[0, beat, 0] = 1.0  # only this beat is drawn
        for phase_logit in (-2.0, 0.0, 1.5):
            rhythm = np.array([[0.0, phase_logit, 0.0, 0.0]], np.float32)
            t = float(renderer.r_times(rhythm)[0, beat])
            out = np.asarray(renderer(rhythm, weights, template))[0, :, 0]
            if beat == 0:
                assert t <= 0  # the record starts inside the first RR interval
            if t < 0:
                assert np.abs(out).max() < 1e-6  # the beat fell before the record
                continue
            lo = int(np.floor(t))
            np.testing.assert_allclose(out[lo:lo + 2], [1 - (t - lo), t - lo], atol=1e-5)
            assert np.abs(np.delete(out, [lo, lo + 1])).max() < 1e-6
    with tf.GradientTape() as tape:
        rhythm = tf.Variable([[0.0, 0.5, 0.0, 0.0]])
        smooth = np.hanning(8).astype(np.float32).reshape(1, 1, 8, 1)
        loss = tf.reduce_sum(renderer(rhythm, weights, smooth) * tf.range(200, dtype=tf.float32)[None, :, None])
    assert np.abs(np.asarray(tape.gradient(loss, rhythm))[0, :2]).min() > 0  # R time is differentiable


def test_compiled_renderer_equals_the_plain_overlap_add():
    rng = np.random.default_rng(0)
    renderer = ecgnets.BeatRenderer(r_offset=32)
    rhythm = rng.normal(size=(4, 2 + 36)).astype(np.float32) * 2  # fast and irregular: beats overlap
    rhythm[:, 0] = 3.0
    weights = rng.uniform(size=(4, 36, 3)).astype(np.float32)
    templates = rng.normal(size=(4, 3, 96, 8)).astype(np.float32)
    plain = renderer.overlap_add(rhythm, weights, templates).numpy()
    assert np.abs(plain).max() > 1
    # XLA's own exp/tanh and summation order move late R times by < 1e-3 samples: agreement to 0.05% of the peak
    np.testing.assert_allclose(np.asarray(renderer(rhythm, weights, templates)), plain, atol=5e-4 * np.abs(plain).max())


@pytest.mark.parametrize("mix_first", [False, True])
def test_overlap_add_equals_a_beat_by_beat_sum(mix_first):
    """Every beat's template mix, shifted by its fractional R time, added where it falls (numpy loop)."""
    rng = np.random.default_rng(1)
    renderer = ecgnets.BeatRenderer(length=300, r_offset=10)
    rhythm = rng.normal(size=(3, 2 + 12)).astype(np.float32) * 2
    rhythm[:, 0] = 2.5  # fast: neighbouring beats overlap, the last ones fall after the record
    weights = rng.uniform(size=(3, 12, 2)).astype(np.float32)
    templates = rng.normal(size=(3, 2, 40, 5)).astype(np.float32)
    times = renderer.r_times(rhythm).numpy().astype(np.float64)
    expected = np.zeros((3, 300 + 2 * 41, 5))
    for b in range(3):
        for k in range(12):
            start = times[b, k] - 10 + 41
            lo, f = int(np.floor(start)), start - np.floor(start)
            shape = np.einsum("m,mjl->jl", weights[b, k], templates[b]).astype(np.float64)
            if 0 <= lo and lo + 41 <= expected.shape[1]:
                expected[b, lo:lo + 40] += (1 - f) * shape
                expected[b, lo + 1:lo + 41] += f * shape
    expected = expected[:, 41:341]
    assert (times[:, -1] > 300).all() and np.abs(expected).max() > 1
    np.testing.assert_allclose(renderer.overlap_add(rhythm, weights, templates, mix_first).numpy(), expected, atol=1e-4)


def test_beat_generator_is_lead_consistent_conditional_and_saves(tmp_path):
    generator = ecgnets.build_beat_generator(n_labels=5)
    discriminator = ecgnets.build_multiscale_discriminator(n_labels=5, scales=(1, 4))
    z = np.random.default_rng(0).standard_normal((3, 128)).astype("float32")
    labels = np.eye(5, dtype="float32")[[0, 1, 2]]
    ecgs = np.asarray(generator([z, labels], training=False))
    assert ecgs.shape == (3, 1000, 12) and np.abs(limb_lead_residuals(ecgs)).max() < 1e-5
    assert not np.allclose(ecgs[0], np.asarray(generator([z, labels[[1, 1, 1]]], training=False))[0])
    assert discriminator([ecgs, labels], training=False).shape == (3, 2)  # one logit per scale
    for model, inputs in ((generator, [z, labels]), (discriminator, [ecgs, labels])):
        model.save(tmp_path / f"{model.name}.keras")
        loaded = keras.saving.load_model(tmp_path / f"{model.name}.keras")
        np.testing.assert_allclose(loaded(inputs, training=False), model(inputs, training=False), atol=1e-5)
    with tf.GradientTape():
        generator([z, labels], training=True)
    assert len(generator.losses) == 2 and float(generator.losses[0]) > 0  # residual- and noise-energy penalties


def test_ectopic_timing_shortens_the_interval_before_an_ectopic_beat_and_lengthens_the_one_after(tmp_path):
    layer = ecgnets.EctopicTiming()
    choice = np.zeros((1, 6, 2), "float32")
    choice[0, :, 0] = 1.0
    choice[0, 3] = [0.0, 1.0]  # beat 3 drawn with template 1
    layer.build((1, 6), (1, 6, 2), (1, 6))
    layer.prematurity.assign([-30.0, np.log(np.expm1(0.4))])  # softplus: 0 for template 0, 0.4 for template 1
    layer.pause.assign([-30.0, np.log(np.expm1(0.25))])
    jitter = np.linspace(-0.1, 0.1, 6).astype("float32")[None]
    out = np.asarray(layer(np.zeros((1, 6), "float32"), choice, jitter)) - jitter
    np.testing.assert_allclose(out[0], [0, 0, -0.4, 0.25, 0, 0], atol=1e-6)  # RR 2→3 short, RR 3→4 long
    generator = ecgnets.build_beat_generator(n_labels=2, rhythm="ectopic")
    inputs = [np.random.default_rng(0).standard_normal((2, 128)).astype("float32"), np.eye(2, dtype="float32")]
    generator.save(tmp_path / "g.keras")
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "g.keras")(inputs), generator(inputs), atol=1e-5)
    with pytest.raises(ValueError, match="rhythm must be one of"):
        ecgnets.build_beat_generator(rhythm="regular")


def test_networks_build_the_same_config_twice():
    """The pretraining cache is keyed by the networks' configuration: it must not depend on Keras's
    automatic layer names, which change with every model built in a process."""
    for recipe in ("beat", "research"):
        config = recipes.get_recipe(recipe).config("PAC", label_codes=["A", "B"] if recipe == "beat" else None)
        first = [m.get_config() for m in gan.build_models(config, n_labels=2 if recipe == "beat" else 0)]
        second = [m.get_config() for m in gan.build_models(config, n_labels=2 if recipe == "beat" else 0)]
        assert first == second, recipe


def test_freeze_discriminator_freezes_the_lowest_stages_of_every_scale():
    discriminator = ecgnets.build_multiscale_discriminator(scales=(1, 4))
    frozen = gan.freeze_discriminator(discriminator, 2)
    assert frozen == ["d1_stem1", "d1_stem2", "d4_stem1", "d4_block1"]
    assert all(not discriminator.get_layer(n).trainable for n in frozen)
    assert discriminator.get_layer("d1_block1").trainable and discriminator.get_layer("d1_logit").trainable


# --- labels -------------------------------------------------------------------------------------------


def test_multi_hot_labels_and_condition_draws(demo_dir, tmp_path):
    assert train.multi_hot([["AFIB", "X"], []], ["AFIB", "NORM"]).tolist() == [[1, 0], [0, 0]]
    config = recipes.get_recipe("beat").config(None, stage="pretrain", profile=PROFILE, data_dir="demo")
    data = train.prepare_training_data(config)
    assert data.label_codes and "AFIB" in data.label_codes and data.labels.shape == (len(data.ecg_ids),
                                                                                     len(data.label_codes))
    assert sum(data.label_combinations().values()) == len(data.ecg_ids)
    run = generate.GeneratorRun(generator=None, config=train.dataclasses.replace(config, label_codes=data.label_codes),
                                scaler=data.scaler, run_dir=tmp_path, checkpoint_sha256="",
                                label_combinations=data.label_combinations())
    rows = generate.condition_labels(run, "afib", 50, seed=1)
    assert (rows[:, data.label_codes.index("AFIB")] == 1).all()
    np.testing.assert_array_equal(rows, generate.condition_labels(run, "AFIB", 50, seed=1))
    with pytest.raises(ValueError, match="not among them"):
        generate.condition_labels(run, "WPW", 5, seed=0)


# --- pretraining cache, fine-tuning, run folders ------------------------------------------------------


@pytest.fixture(scope="module")
def pretrained(demo_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    return root, train.pretrained_run("beat", "demo", seed=0, profile=PROFILE, cache_root=root)


def test_pretraining_cache_is_reused_and_invalidated(pretrained, demo_dir):
    root, folder = pretrained
    stamp = (folder / "generator.keras").stat().st_mtime_ns
    assert train.pretrained_run("beat", "demo", seed=0, profile=PROFILE, cache_root=root) == folder
    assert train.pretrained_run("beat_band", "demo", seed=0, profile=PROFILE, cache_root=root) == folder  # shared
    assert (folder / "generator.keras").stat().st_mtime_ns == stamp  # reused, not retrained
    saved = json.loads((folder / "config.json").read_text())
    assert saved["train"]["target"] == ["ALL"] and saved["data"]["n_train_records"] > 100
    assert train.pretraining_folder("beat", "demo", seed=0, profile=PROFILE, cache_root=root)[0] == folder
    other_seed, config, _ = train.pretraining_folder("beat", "demo", seed=1, profile=PROFILE, cache_root=root)
    assert other_seed.parent == root and other_seed != folder and not other_seed.exists()  # nothing trained
    assert config.seed == 1 and list(config.target) == ["ALL"]
    longer = train.pretraining_folder("beat", "demo", seed=0, profile=PROFILE, cache_root=root, epochs=3)[0]
    assert longer != folder  # another budget, another folder
    config = recipes.get_recipe("beat").config(None, stage="pretrain", data_dir="demo", profile=PROFILE)
    record = next((demo_dir / "records100").rglob("*.hea"))
    os.utime(record, ns=(record.stat().st_atime_ns, record.stat().st_mtime_ns + 10**9))  # unpacked again, same bytes
    try:
        data = train.prepare_training_data(config)
        assert data.fingerprint == saved["data"]["fingerprint"]  # keyed by content, not by file times
    finally:
        os.utime(record, ns=(record.stat().st_atime_ns, record.stat().st_mtime_ns - 10**9))
    mv = np.asarray(rare_data.load_signals(rare_data.load_metadata("demo"), data.ecg_ids, progress=False).mv)
    assert train.data_fingerprint(data.ecg_ids, mv, data.labels) == data.fingerprint
    changed = mv.copy()
    changed[0, 0, 0] += 0.01  # the data changed
    assert train.data_fingerprint(data.ecg_ids, changed, data.labels) != data.fingerprint
    assert train.data_fingerprint(data.ecg_ids[::-1], mv[::-1], data.labels[::-1]) != data.fingerprint


def test_fine_tuning_starts_from_the_pretrained_weights(pretrained, tmp_path):
    _, folder = pretrained
    config = recipes.get_recipe("beat").config("AFIB", profile=PROFILE, data_dir="demo", init_from=str(folder))
    config = train.dataclasses.replace(config, label_codes=json.loads((folder / "config.json").read_text())
                                       ["train"]["label_codes"])
    generator, discriminator = gan.build_models(config, n_labels=len(config.label_codes))
    before = [w.copy() for w in generator.get_weights()]
    train.init_weights(generator, discriminator, folder)
    source = keras.saving.load_model(folder / "generator.keras", compile=False)
    for a, b in zip(generator.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(before, generator.get_weights()))
    research = recipes.get_recipe("research").config("AFIB")
    g2, d2 = gan.build_models(research)
    with pytest.raises(ValueError, match="does not match"):
        train.init_weights(g2, d2, folder)


def test_train_recipe_fine_tunes_into_the_derived_folder(pretrained, tmp_path, capsys):
    root, folder = pretrained
    run_dir, history = train.train_recipe("beat", "AFIB", profile=PROFILE, outputs=tmp_path, pretrained_root=root,
                                          data_dir="demo", **recipes.MODIFIED)
    assert run_dir == tmp_path / "Rare_GAN_Improved" / "arrhythmia_gan_outputs_tuned"
    assert str(run_dir) in capsys.readouterr().err
    saved = json.loads((run_dir / "config.json").read_text())["train"]
    assert saved["init_from"] == str(folder) and saved["freeze_discriminator"] == 2
    ecgs = generate.generate(generate.load_run(run_dir), 4, seed=0)
    assert ecgs.shape == (4, 1000, 12) and np.isfinite(ecgs).all()


def test_bf16_generation_is_close_to_float32_and_recorded(pretrained, monkeypatch):
    from rare_gan import bench

    _, folder = pretrained
    fp32, bf16 = generate.load_run(folder), generate.load_run(folder, precision="mixed_bfloat16")
    assert fp32.generator.get_layer("rhythm").dtype_policy.name == "float32"
    assert {layer.dtype_policy.name for layer in bf16.generator.layers if layer.weights} == {"mixed_bfloat16"}
    a, b = (generate.generate(run, 8, seed=0, code="AFIB") for run in (fp32, bf16))
    assert b.dtype == np.float32 and b.shape == a.shape and not np.array_equal(a, b)
    # bf16 rounding, not other ECGs: each bf16 ECG is nearer its fp32 twin than any other ECG drawn (a rounded R
    # time moves a sharp QRS, so the twin's distance is up to ~0.3 of the ECG's RMS; over 6 test-profile
    # pretrainings the twin was at most 0.54 of the nearest other ECG's distance)
    pool = np.concatenate([a, generate.generate(fp32, 8, seed=1, code="AFIB")])
    distance = np.sqrt(((b[:, None] - pool[None]) ** 2).mean(axis=(2, 3)))  # (8 bf16, 16 fp32)
    twin = distance[np.arange(8), np.arange(8)].copy()
    distance[np.arange(8), np.arange(8)] = np.inf
    assert (twin < 0.75 * distance.min(axis=1)).all(), twin / distance.min(axis=1)
    assert (fp32.provenance["generation_precision"], bf16.provenance["generation_precision"]) == \
        ("float32", "mixed_bfloat16")
    for units, want in ((True, "mixed_bfloat16"), (False, "float32")):
        monkeypatch.setattr(bench, "bf16_hardware", lambda units=units: {"bf16_matrix_units": units})
        assert generate.resolve_precision("auto") == want
    with pytest.raises(ValueError, match="precision must be one of"):
        generate.load_run(folder, precision="float16")


def test_run_folder_is_derived_from_the_parameters_and_never_shared(tmp_path):
    beat = recipes.get_recipe("beat")
    initial = beat.config("PAC", **recipes.INITIAL)
    assert train.run_folder(initial, tmp_path) == tmp_path / "Rare_GAN" / "arrhythmia_gan_outputs"
    research = recipes.get_recipe("research").config("PAC", **recipes.MODIFIED)
    assert train.run_folder(research, tmp_path) == tmp_path / "research" / "Rare_GAN_Improved" / \
        "arrhythmia_gan_outputs_tuned"
    other = beat.config("PAC", lr_generator=4e-4)
    assert train.run_folder(other, tmp_path) == tmp_path / "runs" / "beat-PAC-g0.0004-d0.0002"
    occupied = tmp_path / "Rare_GAN" / "arrhythmia_gan_outputs"
    occupied.mkdir(parents=True)
    (occupied / "config.json").write_text(json.dumps({"train": beat.config("AFIB", **recipes.INITIAL).to_dict()}))
    moved = train.run_folder(initial, tmp_path)
    assert moved.parent == occupied.parent and moved.name.startswith("arrhythmia_gan_outputs-")
    assert train.run_folder(initial, tmp_path) == moved  # the same parameters find the same folder again


def test_an_explicit_folder_holding_another_run_is_left_alone(tmp_path, capsys):
    """A rerun with other settings (e.g. notebook 06 after a new pretraining) never touches the old
    run: it goes to ``<folder>-<config digest>``, which is printed."""
    folder = tmp_path / "k5-draw0"
    folder.mkdir()
    other = recipes.get_recipe("research").config("AFIB", profile=PROFILE, lr_generator=1e-3, data_dir="demo")
    (folder / "config.json").write_text(json.dumps({"train": other.to_dict()}))
    before = (folder / "config.json").read_bytes()
    run_dir, _ = train.train_recipe("research", "AFIB", folder, profile=PROFILE, data_dir="demo")
    assert run_dir.parent == tmp_path and run_dir.name.startswith("k5-draw0-") and str(run_dir) in capsys.readouterr().err
    assert (run_dir / "generator.keras").is_file()
    assert os.listdir(folder) == ["config.json"] and (folder / "config.json").read_bytes() == before


# --- the lead-field candidate --------------------------------------------------------------------------


def test_beat_lead_field_draws_every_lead_through_a_rank_4_lead_field(tmp_path):
    """beat_lead_field differs from beat_visible_ectopic_init in lead_rank only; its cardiac signal (beats +
    residual) has rank 4 over the 8 independent leads, varies its lead field per ECG, and survives .keras."""
    base = recipes.get_recipe("beat_visible_ectopic_init").config("PAC", label_codes=["A", "B"])
    config = recipes.get_recipe("beat_lead_field").config("PAC", label_codes=["A", "B"])
    assert config.lead_rank == 4 and {**config.to_dict(), "lead_rank": 0, "recipe": base.recipe} == base.to_dict()
    assert train.config_digest(base) == train.config_digest(recipes.TrainConfig(**{**base.to_dict(), "lead_rank": 0}))
    generator = gan.build_models(config, n_labels=2, discriminator=False)[0]
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((6, config.latent_dim)).astype("float32"), np.eye(2, dtype="float32")[[0, 1] * 3]]
    cardiac = keras.Model(generator.inputs, generator.get_layer("lead_field").output)(inputs).numpy()
    assert cardiac.shape == (6, 1000, 8)
    singular = np.linalg.svd(cardiac, compute_uv=False)  # (6, 8) per ECG
    assert np.all(singular[:, 4:] < 1e-4 * singular[:, :1]) and np.all(singular[:, 3] > 1e-3 * singular[:, 0])
    mixing = keras.Model(generator.inputs, generator.get_layer("lead_field_matrix").output)(inputs).numpy()
    assert mixing.shape == (6, 32) and np.ptp(mixing, axis=0).max() > 0  # per ECG
    out = generator(inputs).numpy()
    assert out.shape == (6, 1000, 12) and np.isfinite(out).all()
    generator.save(tmp_path / "g.keras")
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "g.keras", compile=False)(inputs).numpy(), out,
                               atol=1e-6)
    free = gan.build_models(base, n_labels=2, discriminator=False)[0]  # lead_rank 0: the free leads' graph as before
    assert "lead_field" not in [layer.name for layer in free.layers]
    assert len(free.get_layer("ecg8").input) == 3
    with pytest.raises(ValueError, match="lead_rank must be 0"):
        recipes.TrainConfig(target="PAC", architecture="beat", lead_rank=9)
    with pytest.raises(ValueError, match="with architecture='beat'"):
        recipes.TrainConfig(target="PAC", lead_rank=4)


def test_beat_matched_lead_field_is_beat_matched_with_the_lead_field():
    """The candidate differs from beat_matched in lead_rank only (free rhythm head, RR + band matching), so
    a difference in its measurements is the lead field's; its pretraining is its own."""
    matched = recipes.get_recipe("beat_matched").config("PAC", "pretrain")
    config = recipes.get_recipe("beat_matched_lead_field").config("PAC", "pretrain")
    assert (config.lead_rank, config.beat_rhythm, config.matched_statistics) == (4, "free", ("rr", "band"))
    assert {**config.to_dict(), "lead_rank": 0, "recipe": matched.recipe} == matched.to_dict()
    assert train.config_digest(config) != train.config_digest(matched)


def test_beat_matched_lead_field_detail_shares_the_pretraining_and_matches_more_in_fine_tuning():
    detail, base = recipes.get_recipe("beat_matched_lead_field_detail"), recipes.get_recipe("beat_matched_lead_field")
    assert detail.config(None, "pretrain", seed=2) == base.config(None, "pretrain", seed=2)  # the same cached run
    tuned = detail.config("PAC")
    assert tuned.matched_statistics == ("rr", "band", "rr_jumps", "roughness") and tuned.stats_weight == 1.0
    assert {**tuned.to_dict(), "matched_statistics": ("rr", "band"), "recipe": "x"} == \
        {**base.config("PAC").to_dict(), "recipe": "x"}
    with pytest.raises(ValueError, match="matched_statistics must be"):
        recipes.TrainConfig(target="PAC", architecture="beat", stats_weight=1.0, matched_statistics=("jumps",))
