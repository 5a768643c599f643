"""Conditional generation, pretraining + fine-tuning, and the variant comparison (issue: beyond one GAN per code)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from rare_gan import data, evaluate, generate, models, train, variants
from rare_gan.leads import limb_lead_residuals

CONDITIONAL = dict(target="AFIB,STACH", common_class="NORM", conditional=True, data_dir="demo", batch_size=16)


def test_conditional_models_take_labels_and_round_trip(tmp_path):
    generator = models.build_generator(n_classes=3)
    discriminator = models.build_discriminator(n_classes=3)
    z = np.random.default_rng(0).standard_normal((4, 100)).astype("float32")
    labels = np.array([0, 1, 2, 0], "int32")
    ecgs = np.asarray(generator([z, labels], training=False))
    assert ecgs.shape == (4, 1000, 12) and np.abs(limb_lead_residuals(np.asarray(ecgs))).max() < 1e-6
    assert not np.allclose(ecgs[0], np.asarray(generator([z, labels[[1, 1, 1, 1]]], training=False))[0])
    assert discriminator([ecgs, labels], training=False).shape == (4, 1)
    for model, inputs in ((generator, [z, labels]), (discriminator, [ecgs, labels])):
        model.save(tmp_path / f"{model.name}.keras")
        loaded = keras.saving.load_model(tmp_path / f"{model.name}.keras")
        np.testing.assert_allclose(loaded(inputs, training=False), model(inputs, training=False), atol=1e-6)


def test_class_labels_rarest_first_and_common_class_capped(demo_dir):
    config = train.TrainConfig(**CONDITIONAL, common_per_rare=2)
    training = train.prepare_training_data(config)
    counts = np.bincount(training.labels, minlength=3)
    meta = data.load_metadata(demo_dir)
    for index, code in enumerate(("AFIB", "STACH")):
        assert counts[index] == len(meta.select(code, split="train"))
    assert counts[2] == 2 * counts[:2].max()  # NORM capped at common_per_rare × the largest rare class
    assert set(meta.database.loc[training.ecg_ids, "split"]) == {"train"}
    with pytest.raises(ValueError, match="at least two classes"):
        train.TrainConfig(target="AFIB", conditional=True)


def test_conditional_generator_follows_the_requested_code(demo_dir, tmp_path):
    """After a short training, a classifier trained on *real* AFIB-vs-rest ranks AFIB-conditioned ECGs
    above STACH-conditioned ones (label control above chance)."""
    config = train.TrainConfig(**CONDITIONAL, epochs=40, steps_per_epoch=25, sample_every=40, checkpoint_every=40)
    train.train(config, tmp_path / "cgan")
    run = generate.load_run(tmp_path / "cgan")
    task = evaluate.load_task("demo", "AFIB")
    classifier, _ = evaluate.fit_or_load(task, "real", 0, 5, tmp_path / "clf")
    scores = {code: evaluate.predict_proba(classifier, task.scaler.transform(generate.generate(run, 48, 1, code=code)))
              for code in ("AFIB", "STACH")}
    auroc = roc_auc_score(np.r_[np.ones(48), np.zeros(48)], np.r_[scores["AFIB"], scores["STACH"]])
    assert auroc > 0.75, auroc
    with pytest.raises(ValueError, match="pass code="):
        generate.generate(run, 2)


def test_fine_tuning_starts_from_the_pretrained_weights(tmp_path, demo_dir):
    tiny = dict(data_dir="demo", epochs=1, steps_per_epoch=1, batch_size=8)
    train.train(train.TrainConfig(target=train.ALL_RECORDS, **tiny), tmp_path / "pre")
    pretrained = keras.saving.load_model(tmp_path / "pre" / "generator.keras")
    fine = train.TrainConfig(target="AFIB", init_from=str(tmp_path / "pre"), **tiny)
    gan = train.make_gan(*train.build_models(fine), fine)
    train.init_weights(gan, tmp_path / "pre")
    for a, b in zip(gan.generator.get_weights(), pretrained.get_weights()):
        np.testing.assert_array_equal(a, b)
    prepared = train.prepare_training_data(fine)
    saved = json.loads((tmp_path / "pre" / "config.json").read_text())["scaler"]
    assert prepared.scaler == data.SignalScaler.from_dict(saved)  # the pretrained scale is kept
    history = train.train(fine, tmp_path / "fine")
    assert len(history) == 1
    mismatch = train.TrainConfig(**CONDITIONAL, epochs=1, steps_per_epoch=1, init_from=str(tmp_path / "pre"))
    with pytest.raises(ValueError, match="different architecture"):
        train.train(mismatch, tmp_path / "bad")


def test_variant_comparison_end_to_end(tmp_path, demo_dir):
    plan = variants.Plan(codes=["AFIB", "STACH"], data_dir="demo", out_dir=str(tmp_path), epochs=1, steps_per_epoch=1,
                         batch_size=8, eval_seeds=[0], classifier_epochs=1, n_generate=16, n_boot=50)
    runs = variants.train_variants(plan, ["uncond_initial", "conditional"])
    assert runs[("conditional", "AFIB")] == runs[("conditional", "STACH")]
    table, comparisons = variants.evaluate_variants(plan, runs)
    assert set(table["variant"]) == {"real", "oversample@0.25", "uncond_initial", "conditional"}
    assert (table.loc[table["variant"] == "conditional", "near_copy_%"] >= 0).all()
    report = variants.write_report(plan, table, comparisons).read_text()
    assert "## Verdicts" in report and "AFIB" in report and (tmp_path / "auroc_by_variant.png").is_file()
