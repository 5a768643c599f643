"""The trainer: losses, resume after interrupt, NaN guard, determinism, precision, strategies, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pandas as pd
import pytest

from rare_gan import atomic, gan, generate, train
from tests.conftest import REPO

pytestmark = pytest.mark.graph  # the trainer runs traced here, as in users' runs

TINY = dict(target="AFIB", data_dir="demo", epochs=4, steps_per_epoch=2, batch_size=8, checkpoint_every=2,
            sample_every=2, diff_augment=True)


@pytest.fixture(scope="module")
def afib_data(demo_dir):
    return train.prepare_training_data(train.TrainConfig(**TINY))


def test_config_validation():
    with pytest.raises(ValueError, match="loss must be one of"):
        train.TrainConfig(target="AFIB", loss="hinge")
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        train.TrainConfig(target="AFIB", epochs=0)
    config = train.TrainConfig(target="bigu, trigu")
    assert config.target == ["BIGU", "TRIGU"]
    assert train.TrainConfig.from_dict(config.to_dict()) == config


def test_training_data_is_training_folds_only(afib_data, demo_dir):
    db = pd.read_csv(demo_dir / "ptbxl_database.csv", index_col="ecg_id")
    assert set(db.loc[afib_data.ecg_ids, "strat_fold"]) <= set(range(1, 9))
    assert len(afib_data.ecg_ids) == int(((db.strat_fold <= 8) & db.scp_codes.str.contains("AFIB")).sum())
    assert afib_data.x_scaled.min() >= -1 and afib_data.x_scaled.max() <= 1


def test_discriminator_step_lowers_its_loss(afib_data):
    config = train.TrainConfig(**{**TINY, "lr_discriminator": 1e-3})
    train.seed_everything(0)
    model = gan.make_gan(*gan.build_models(config), config)
    real = afib_data.x_scaled[:8]
    fake = model.generator(np.random.default_rng(0).standard_normal((8, 100)).astype("float32"), training=False)

    def d_loss():
        return float(model.discriminator_loss(model.discriminator(real, training=False),
                                              model.discriminator(fake, training=False)))

    before = d_loss()
    for _ in range(3):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = model.discriminator_loss(model.discriminator(real, training=True),
                                            model.discriminator(fake, training=True))
        grads = tape.gradient(loss, model.discriminator.trainable_weights)
        model.d_optimizer.apply_gradients(zip(grads, model.discriminator.trainable_weights))
    assert d_loss() < before


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 3:
            raise KeyboardInterrupt


def _whole_and_resumed(config, data, out):
    """Histories of a whole run and of a run cut after epoch 3 and resumed; the cut run's epochs
    before the cut are themselves a repeat of the whole run's (same seed, from scratch)."""
    whole = train.train(config, out / "whole", data=data)
    with pytest.raises(KeyboardInterrupt):
        train.train(config, out / "cut", data=data, callbacks=[_Interrupt()])
    assert not atomic.is_complete(out / "cut") and train.latest_checkpoint(out / "cut").name == "epoch_0002"
    resumed = train.train(config, out / "cut", data=data)
    assert atomic.is_complete(out / "cut") and len(whole) == 4
    timing = ["seconds", "samples_per_s"]
    return [h.drop(columns=timing) for h in (whole, resumed)]


def test_same_seed_and_resume_are_bit_identical_without_r1(afib_data, tmp_path):
    """A run, and a run with the same seed interrupted after epoch 3 then resumed (its epochs before
    the cut repeat the first run's), give identical histories and identical ECGs (DiffAugment on; R1
    off, see the next test)."""
    config = train.TrainConfig(**{**TINY, "r1_weight": 0.0})
    whole, resumed = _whole_and_resumed(config, afib_data, tmp_path)
    pd.testing.assert_frame_equal(whole, resumed, check_exact=True)
    runs = [generate.load_run(tmp_path / name) for name in ("whole", "cut", "whole")]  # "whole" loaded twice
    ecgs = [generate.generate(run, 32, seed=11) for run in runs]
    assert all(np.array_equal(ecgs[0], e) for e in ecgs[1:]), "same seed, different ECGs"
    assert np.array_equal(generate.generate(runs[0], 300, seed=11)[:32], ecgs[0])  # the i-th ECG does not depend on n
    assert not np.array_equal(generate.generate(runs[0], 32, seed=12), ecgs[0])
    for name in ("config.json", "history.csv", "loss_curves.png", "generator.keras", "discriminator.keras",
                 "samples/epoch_0004.png"):
        assert (tmp_path / "cut" / name).is_file(), name


def test_r1_runs_reproduce_to_float_rounding(afib_data, tmp_path):
    """With R1 on, the penalty's second-order gradient graph is not bit-stable on CPU: repeated
    and resumed runs agree to float rounding, not bit for bit (README, Reproducibility). The resumed
    run's epochs before the cut are the repeat."""
    config = train.TrainConfig(**TINY, r1_weight=0.1, r1_every=2)
    whole, resumed = _whole_and_resumed(config, afib_data, tmp_path)
    # RR-SD of the fixed-noise batch is left out: R-peak detection is a step function of the samples, so
    # float rounding can move a detected beat by a sample and RR-SD by tens of ms
    continuous = ["epoch", "d_loss", "g_loss", "d_real", "d_fake"]
    pd.testing.assert_frame_equal(whole[continuous], resumed[continuous], check_exact=False, rtol=1e-3, atol=1e-4)


class _Poison(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            weights = self.model.discriminator.trainable_weights[0]
            weights.assign(np.full(weights.shape, np.nan, dtype="float32"))


def test_nan_guard_stops_and_keeps_last_good_checkpoint(afib_data, tmp_path):
    config = train.TrainConfig(**{**TINY, "checkpoint_every": 1})
    with pytest.raises(train.TrainingDivergedError, match="diverged at epoch 3.*d_loss=nan.*epoch_0002"):
        train.train(config, tmp_path / "run", data=afib_data, callbacks=[_Poison()])
    assert train.latest_checkpoint(tmp_path / "run").name == "epoch_0002"
    assert len(pd.read_csv(tmp_path / "run" / "history.csv")) == 2
    assert not atomic.is_complete(tmp_path / "run")
    assert not (tmp_path / "run" / "generator.keras").exists()


def test_resume_refuses_a_different_config(afib_data, tmp_path):
    config = train.TrainConfig(**{**TINY, "epochs": 2})
    train.train(config, tmp_path / "run", data=afib_data)
    with pytest.raises(ValueError, match="different config"):
        train.train(train.TrainConfig(**{**TINY, "epochs": 2, "lr_generator": 1e-3}), tmp_path / "run",
                    data=afib_data)


@pytest.mark.parametrize("options", [{"loss": "wgan-gp", "critic_steps": 2}, {"precision": "mixed_bfloat16"},
                                     {"lead_consistent": False, "augment_noise": 0.01, "augment_wander": 0.05}])
def test_variants_train(afib_data, tmp_path, options):
    history = train.train(train.TrainConfig(**{**TINY, "epochs": 1, **options}), tmp_path / "run", data=afib_data)
    assert np.isfinite(history[["d_loss", "g_loss"]].to_numpy()).all()
    assert keras.mixed_precision.global_policy().name == "float32"


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from rare_gan import train
        assert train.get_strategy("mirrored").num_replicas_in_sync == 2
        config = train.TrainConfig(target="AFIB", data_dir="demo", epochs=1, steps_per_epoch=2, batch_size=8,
                                   strategy="mirrored")
        history = train.train(config, r"{tmp_path / 'run'}")
        assert history["d_loss"].notna().all(), history
        print("replicas ok", history["d_loss"].iloc[0])
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "replicas ok" in out.stdout


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "rare_gan.train", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


def test_cli_trains(tmp_path):
    out = _cli("--target", "AFIB", "--data", "demo", "--out", str(tmp_path / "run"), "--config", "modified",
               "--recipe", "research", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "8")
    assert out.returncode == 0, out.stderr[-2000:]
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert (saved["lr_generator"], saved["lr_discriminator"]) == (4e-4, 1e-4)


def test_cli_starts_without_tensorflow_noise():
    """TensorFlow's start-up lines (oneDNN notices, CUDA probes, 'failed call to cuInit') read as failures to a
    new user on a machine without a GPU: the package silences them."""
    out = subprocess.run([sys.executable, "-m", "rare_gan.train", "--help"], capture_output=True, text=True, cwd=REPO,
                         timeout=120, env={k: v for k, v in os.environ.items()
                                           if k not in ("TF_CPP_MIN_LOG_LEVEL", "RARE_GAN_TF_LOGS")})
    assert out.returncode == 0 and "--recipe" in out.stdout
    for noise in ("cuInit", "oneDNN", "cuda drivers", "absl::InitializeLog"):
        assert noise not in out.stderr, out.stderr


def test_rare_gan_eager_runs_tensorflow_functions_eagerly_and_tests_here_run_traced():
    """``RARE_GAN_EAGER=1`` (what most tests run with, tests/conftest.py) turns tracing off in a new process;
    this module is marked ``graph``, so its training runs traced, as users' runs do."""
    import tensorflow as tf

    assert not tf.config.functions_run_eagerly() and os.environ["RARE_GAN_EAGER"] == "0"
    script = "import rare_gan, tensorflow as tf; print(tf.config.functions_run_eagerly())"
    for value, expected in (("1", "True"), ("0", "False")):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120,
                             env={**os.environ, "RARE_GAN_EAGER": value})
        assert out.returncode == 0 and out.stdout.split()[-1] == expected, out.stderr[-2000:]


def test_notebooks_import_rare_gan_before_tensorflow():
    """The package's quiet import only helps if it comes first: a notebook that imports keras or tensorflow
    before rare_gan prints TensorFlow's start-up lines into run_all.sh's output."""
    import re

    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        source = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        first = {name: m.start() for name, pattern in (("rare_gan", r"^\s*(from|import) rare_gan"),
                                                      ("tensorflow", r"^\s*(import|from) (keras|tensorflow)\b"))
                 if (m := re.search(pattern, source, re.M))}
        if "tensorflow" in first:
            assert "rare_gan" in first and first["rare_gan"] < first["tensorflow"], path.name
