"""Shapes, lead consistency, serialisation, mixed precision and FLOP counting of rare_gan.models."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rare_gan.leads import INDEPENDENT_INDEX, INDEPENDENT_TO_12, LEAD_NAMES  # noqa: E402
from rare_gan.models import (  # noqa: E402
    InceptionBlock1D,
    LeadConsistent12,
    ResidualInception1D,
    UpsampleConv1D,
    build_classifier,
    build_discriminator,
    build_generator,
    copy_weights,
    flops_per_sample,
)

RNG = np.random.default_rng(0)


def _z(n: int = 4, dim: int = 100) -> np.ndarray:
    return RNG.standard_normal((n, dim)).astype("float32")


def _ecg(n: int = 3) -> np.ndarray:
    return RNG.uniform(-1, 1, (n, 1000, 12)).astype("float32")


@pytest.fixture
def bf16_policy():
    old = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(old)


# --- layers -----------------------------------------------------------------------------------------


def test_inception_block_shape_and_branches():
    block = InceptionBlock1D(128)
    y = block(RNG.standard_normal((2, 50, 12)).astype("float32"))
    assert tuple(y.shape) == (2, 50, 128)
    assert [c.kernel_size for c in block.convs] == [(1,), (3,), (5,)]
    assert all(c.filters == 32 for c in (*block.convs, block.pool_conv))
    with pytest.raises(ValueError):
        InceptionBlock1D(30)


def test_residual_shortcut_only_when_channels_change():
    x = RNG.standard_normal((2, 40, 16)).astype("float32")
    changed = ResidualInception1D(32)
    assert tuple(changed(x).shape) == (2, 40, 32)
    assert changed.shortcut is not None and changed.shortcut.kernel_size == (1,)
    same = ResidualInception1D(16)
    assert tuple(same(x).shape) == (2, 40, 16)
    assert same.shortcut is None
    assert len(changed.trainable_weights) == len(same.trainable_weights) + 2  # shortcut kernel + bias


def test_lead_consistent12_is_the_constant_map():
    layer = LeadConsistent12()
    x = RNG.standard_normal((2, 30, 8)).astype("float32")
    np.testing.assert_allclose(np.asarray(layer(x)), x @ INDEPENDENT_TO_12, atol=1e-6)
    assert layer.weights == []


@pytest.mark.parametrize(
    "layer, shape",
    [
        (InceptionBlock1D(64, activation="relu", name="inc"), (2, 20, 8)),
        (ResidualInception1D(64, name="res"), (2, 20, 8)),
        (LeadConsistent12(name="l12"), (2, 20, 8)),
        (UpsampleConv1D(6, 5, 2, activation="relu", name="upconv"), (2, 20, 8)),
    ],
)
def test_get_config_round_trip(layer, shape):
    x = RNG.standard_normal(shape).astype("float32")
    y = layer(x)
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone.build(shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(np.asarray(clone(x)), np.asarray(y))


# --- models -----------------------------------------------------------------------------------------


def test_generator_lead_consistent_output():
    g = build_generator()
    assert g.name == "generator"
    ecg = np.asarray(g(_z(), training=False))
    assert ecg.shape == (4, 1000, 12) and ecg.dtype == np.float32
    independent = ecg[..., list(INDEPENDENT_INDEX)]
    assert np.abs(independent).max() <= 1.0
    lead = {name: ecg[..., i].astype(np.float64) for i, name in enumerate(LEAD_NAMES)}
    i, ii = lead["I"], lead["II"]
    assert np.abs(lead["III"] - (ii - i)).max() < 1e-6
    assert np.abs(lead["AVR"] + (i + ii) / 2).max() < 1e-6
    assert np.abs(lead["AVL"] - (i - ii / 2)).max() < 1e-6
    assert np.abs(lead["AVF"] - (ii - i / 2)).max() < 1e-6


def test_generator_plain_mode_has_12_free_channels():
    g = build_generator(lead_consistent=False)
    assert not any(isinstance(layer, LeadConsistent12) for layer in g.layers)
    assert g.get_layer("up3").filters == 12
    ecg = np.asarray(g(_z(), training=False))
    assert ecg.shape == (4, 1000, 12) and np.abs(ecg).max() <= 1.0
    third = LEAD_NAMES.index("III")
    assert np.abs(ecg[..., third] - (ecg[..., 1] - ecg[..., 0])).max() > 1e-4  # not tied by construction


def test_generator_upsampling_has_no_checkerboard():
    """Kernel divisible by the stride: a constant input gives a constant interior output (kernel 5 alternates)."""
    g = build_generator(kernel_size=4)
    ups = [layer for layer in g.layers if isinstance(layer, keras.layers.Conv1DTranspose)]
    assert len(ups) == 3 and all(layer.kernel_size[0] % layer.strides[0] == 0 for layer in ups)

    def ripple(kernel_size):
        layer = keras.layers.Conv1DTranspose(1, kernel_size, strides=2, padding="same", use_bias=False,
                                             kernel_initializer="ones")
        y = np.asarray(layer(np.ones((1, 40, 1), "float32")))[0, 8:-8, 0]
        return float(y.max() - y.min())

    assert ripple(4) == 0.0 and ripple(5) > 0.5


@pytest.mark.parametrize("kernel_size, factor, use_bias, activation, taps",
                         [(5, 2, False, None, 3), (5, 5, True, "leaky_relu", 3), (4, 2, True, None, 3),
                          (7, 3, False, "tanh", 3), (7, 2, False, None, 5), (1, 4, True, None, 1)])
def test_upsample_conv_is_upsampling_then_conv(kernel_size, factor, use_bias, activation, taps):
    """Same weights, same function as UpSampling1D + Conv1D(padding="same"), edges included, with
    ``taps`` input samples per output instead of ``kernel_size``."""
    x = RNG.standard_normal((3, 13, 6)).astype("float32")
    conv = keras.layers.Conv1D(4, kernel_size, padding="same", use_bias=use_bias, activation=activation,
                               bias_initializer="random_normal")
    expected = np.asarray(conv(keras.layers.UpSampling1D(factor)(x)))
    layer = UpsampleConv1D(4, kernel_size, factor, use_bias=use_bias, activation=activation)
    layer.build(x.shape)
    layer.set_weights(conv.get_weights())
    np.testing.assert_allclose(np.asarray(layer(x)), expected, atol=2e-6)
    assert layer.taps == taps
    assert layer.flops((None, 13, 6)) == 2 * 13 * taps * 6 * factor * 4


def test_copy_weights_by_name_carries_a_model_saved_before_the_merged_layer(tmp_path):
    """A model saved with UpSampling1D + Conv1D (as before UpsampleConv1D) fills today's layout by layer name."""

    def model(merged):
        z = keras.Input((8,))
        x = keras.layers.Reshape((4, 4))(keras.layers.Dense(16, name="project")(z))
        x = keras.layers.LeakyReLU(0.2)(x)
        if merged:
            x = UpsampleConv1D(3, 5, 2, name="conv")(x)
        else:
            x = keras.layers.Conv1D(3, 5, padding="same", name="conv")(keras.layers.UpSampling1D(2, name="up")(x))
        return keras.Model(z, keras.layers.Dense(2, name="head")(x))

    old = model(merged=False)
    old.save(tmp_path / "old.keras")
    old = keras.saving.load_model(tmp_path / "old.keras")
    new = model(merged=True)
    copy_weights(old, new)
    z = RNG.standard_normal((5, 8)).astype("float32")
    np.testing.assert_allclose(np.asarray(new(z)), np.asarray(old(z)), atol=1e-6)
    other = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, name="project")])
    with pytest.raises(ValueError, match="layer 'project'"):
        copy_weights(old, other)


def test_generator_nearest_upsampling_option():
    g = build_generator(upsample="nearest")
    assert not any(isinstance(layer, keras.layers.Conv1DTranspose) for layer in g.layers)
    assert sum(isinstance(layer, UpsampleConv1D) for layer in g.layers) == 3
    # 3 taps × 2 phases per stage: 6/5 of the transposed convs' FLOPs
    transposed = [layer for layer in build_generator().layers if isinstance(layer, keras.layers.Conv1DTranspose)]
    extra = sum(2 * layer.input.shape[1] * 5 * layer.input.shape[-1] * layer.filters for layer in transposed) / 5
    assert flops_per_sample(g) == pytest.approx(flops_per_sample(build_generator()) + extra)
    ecg = np.asarray(g(_z(2), training=False))
    assert ecg.shape == (2, 1000, 12)
    assert np.abs(ecg[..., 2] - (ecg[..., 1] - ecg[..., 0])).max() < 1e-6
    with pytest.raises(ValueError, match="upsample"):
        build_generator(upsample="bilinear")


def test_diff_augment_is_lead_consistent_and_differentiable():
    import tensorflow as tf

    from rare_gan.gan import diff_augment

    x8 = RNG.uniform(-1, 1, (4, 1000, 8)).astype("float32")
    x = tf.constant(x8 @ INDEPENDENT_TO_12.astype("float32"))
    seed = tf.constant([3, 4], tf.int64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = diff_augment(x, seed, gain=0.2, shift=30, noise=0.01, wander=0.05)
    grad = np.asarray(tape.gradient(y, x))
    assert np.isfinite(grad).all() and np.abs(grad).sum() > 0
    y = np.asarray(y)
    assert y.shape == x.shape
    # Einthoven and Goldberger survive the noise and the baseline wander
    assert np.abs(y[..., 2] - (y[..., 1] - y[..., 0])).max() < 1e-5
    assert np.abs(y[..., 3] + (y[..., 0] + y[..., 1]) / 2).max() < 1e-5
    np.testing.assert_array_equal(y, np.asarray(diff_augment(x, seed, gain=0.2, shift=30, noise=0.01, wander=0.05)))
    # the wander alone: slow (≤ 0.5 Hz), bounded by its amplitude, different per ECG
    wander = np.asarray(diff_augment(x, seed, gain=0, shift=0, wander=0.05)) - np.asarray(x)
    assert 0.005 < np.abs(wander[..., 0]).max() <= 0.05 + 1e-6
    assert np.abs(np.diff(wander[..., 0], axis=1)).max() < 2 * np.pi * 0.5 * 0.05 / 100 + 1e-6
    assert not np.allclose(wander[0, :, 0], wander[1, :, 0])
    # without noise each ECG is one gain (same for all leads) times a circular shift within ±30 samples
    clean = np.asarray(diff_augment(x, seed, gain=0.2, shift=30, noise=0.0))
    xs = np.asarray(x)
    for b in range(len(xs)):
        fits = []
        for s in range(-30, 31):
            rolled = np.roll(xs[b], s, axis=0)
            gain = float((clean[b] * rolled).sum() / (rolled * rolled).sum())
            fits.append((np.abs(clean[b] - gain * rolled).max(), gain))
        err, gain = min(fits)
        assert err < 1e-5 and 0.8 <= gain <= 1.2
    np.testing.assert_array_equal(np.asarray(diff_augment(x, seed, gain=0, shift=0, noise=0)), xs)


def test_discriminator_and_classifier_share_the_trunk():
    d, c = build_discriminator(), build_classifier()
    assert (d.name, c.name) == ("discriminator", "classifier")
    x = _ecg()
    for m in (d, c):
        assert tuple(m(x, training=False).shape) == (3, 1)
        assert m.get_layer("logit").activation is keras.activations.linear
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in d.layers)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in c.layers)
    trunk = lambda m: [(l.name, l.output.shape) for l in m.layers if isinstance(l, (keras.layers.Conv1D, ResidualInception1D))]  # noqa: E731
    assert trunk(d) == trunk(c)
    with pytest.raises(ValueError):
        build_discriminator(norm="batch")


def test_keras_save_load_round_trip(tmp_path):
    cases = [
        (build_generator(), _z()),
        (build_generator(lead_consistent=False), _z()),
        (build_generator(upsample="nearest", kernel_size=5), _z()),
        (build_discriminator(norm="layer", dropout=0.2), _ecg()),
        (build_classifier(), _ecg()),
    ]
    for k, (model, x) in enumerate(cases):
        path = tmp_path / f"{model.name}{k}.keras"
        model.save(path)
        loaded = keras.models.load_model(path)
        np.testing.assert_allclose(np.asarray(loaded(x, training=False)), np.asarray(model(x, training=False)), rtol=0, atol=1e-6)


def test_mixed_bfloat16_outputs_are_float32(bf16_policy):
    g, d, c = build_generator(), build_discriminator(), build_classifier()
    assert g.get_layer("refine1").compute_dtype == "bfloat16"
    ecg = g(_z(2), training=False)
    assert ecg.dtype == "float32"
    ecg = np.asarray(ecg)
    assert np.abs(ecg[..., 2] - (ecg[..., 1] - ecg[..., 0])).max() < 1e-6  # III = II - I still exact
    for m in (d, c):
        assert m(ecg, training=False).dtype == "float32"


# --- cost -------------------------------------------------------------------------------------------


def test_flops_per_sample_hand_count():
    x = keras.Input((20, 3))
    h = keras.layers.Conv1D(4, 3, padding="same")(x)  # 2*20*3*4*3 = 1440
    h = keras.layers.Conv1D(4, 5, strides=2, padding="same")(h)  # 2*10*4*4*5 = 1600
    h = keras.layers.Conv1DTranspose(2, 5, strides=2, padding="same")(h)  # 2*10*4*2*5 = 800
    h = keras.layers.BatchNormalization()(h)  # not counted
    h = InceptionBlock1D(8)(h)  # (20, 2) -> 2 per branch: 2*20*2*2*(1+3+5+1) = 1600
    h = ResidualInception1D(12)(h)  # 3 per branch: 2*20*8*3*10 = 9600, shortcut 2*20*8*12 = 3840
    h = keras.layers.Flatten()(h)
    y = keras.layers.Dense(1)(h)  # 2*240 = 480
    model = keras.Model(x, y)
    assert flops_per_sample(model) == 1440 + 1600 + 800 + 1600 + 9600 + 3840 + 480

    z = keras.Input((100,))
    h = keras.layers.Reshape((25, 4))(z)
    out = LeadConsistent12()(keras.layers.Conv1D(8, 1)(h))  # 2*25*4*8 = 1600; 2*25*8*12 = 4800
    assert flops_per_sample(keras.Model(z, out)) == 1600 + 4800


def test_default_models_fit_the_cpu_budget():
    assert flops_per_sample(build_generator()) <= 80e6
    assert flops_per_sample(build_discriminator()) <= 80e6

