"""Inception/residual 1D networks for 12-lead ECGs: generator, discriminator and classifier.

All tensors are channels-last: an ECG batch is ``(batch, 1000, 12)`` (PTB-XL lead order, scaled to
[-1, 1]). The custom layers are registered Keras serializables, so every model here saves and loads
as a ``.keras`` file without ``custom_objects``.

Sizes are chosen for a 2-core CPU: the generator does its 128-channel work at ≤ 250 samples and the
discriminator/classifier downsample by 4 before the inception blocks. :func:`flops_per_sample`
counts the forward cost analytically.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import layers, ops

from rare_gan.leads import INDEPENDENT_LEADS, INDEPENDENT_TO_12, N_LEADS, N_SAMPLES

_PACKAGE = "rare_gan"
UPSAMPLE_MODES = ("transpose", "nearest")
POOLINGS = ("average", "flatten", "average_max")


# --------------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package=_PACKAGE)
class InceptionBlock1D(layers.Layer):
    """Parallel 1D convolutions (kernels 1, 3, 5 and max-pool → 1×1), concatenated.

    ``(batch, T, C_in) -> (batch, T, filters)``; each of the 4 branches gives ``filters // 4``
    channels, all with ``'same'`` padding and stride 1, then ``activation`` is applied.
    """

    KERNEL_SIZES = (1, 3, 5)

    def __init__(self, filters: int = 128, activation: str | None = "leaky_relu", use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        if filters % 4 or filters <= 0:
            raise ValueError(f"filters must be a positive multiple of 4, got {filters}")
        self.filters = int(filters)
        self.activation = keras.activations.get(activation)
        self._activation_name = activation
        self.use_bias = use_bias
        branch = self.filters // 4
        conv = dict(filters=branch, padding="same", use_bias=use_bias, dtype=self.dtype_policy)
        self.convs = [layers.Conv1D(kernel_size=k, name=f"conv_k{k}", **conv) for k in self.KERNEL_SIZES]
        self.pool = layers.MaxPooling1D(pool_size=3, strides=1, padding="same", name="pool", dtype=self.dtype_policy)
        self.pool_conv = layers.Conv1D(kernel_size=1, name="pool_conv_k1", **conv)

    def build(self, input_shape):
        for conv in self.convs:
            conv.build(input_shape)
        self.pool.build(input_shape)
        self.pool_conv.build(input_shape)

    def call(self, x):
        branches = [conv(x) for conv in self.convs] + [self.pool_conv(self.pool(x))]
        return self.activation(ops.concatenate(branches, axis=-1))

    def flops(self, input_shape) -> int:
        """Forward FLOPs per sample of its convolutions."""
        return sum(_layer_flops(conv, input_shape) for conv in (*self.convs, self.pool_conv))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "activation": self._activation_name, "use_bias": self.use_bias}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ResidualInception1D(layers.Layer):
    """:class:`InceptionBlock1D` plus a shortcut: ``inception(x) + shortcut(x)``.

    ``(batch, T, C_in) -> (batch, T, filters)``. The shortcut is a 1×1 ``Conv1D`` (attribute
    ``shortcut``) when ``C_in != filters`` and the identity (``shortcut is None``) otherwise.
    """

    def __init__(self, filters: int = 128, activation: str | None = "leaky_relu", **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self._activation_name = activation
        self.inception = InceptionBlock1D(self.filters, activation=activation, name="inception", dtype=self.dtype_policy)
        self.shortcut: layers.Conv1D | None = None

    def build(self, input_shape):
        self.inception.build(input_shape)
        if input_shape[-1] != self.filters:
            self.shortcut = layers.Conv1D(self.filters, 1, name="shortcut", dtype=self.dtype_policy)
            self.shortcut.build(input_shape)

    def call(self, x):
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.inception(x) + skip

    def flops(self, input_shape) -> int:
        """Forward FLOPs per sample of the inception block and the 1×1 shortcut, if any."""
        shortcut = 0 if self.shortcut is None else _layer_flops(self.shortcut, input_shape)
        return self.inception.flops(input_shape) + shortcut

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "activation": self._activation_name}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class UpsampleConv1D(layers.Layer):
    """Nearest-neighbour ``UpSampling1D(factor)`` then ``Conv1D(filters, kernel_size, padding="same")``,
    computed without the upsampled tensor: ``(batch, T, C) -> (batch, factor·T, filters)``.

    Output sample ``factor·i + r`` reads only input samples ``i + d`` with ``d`` in a few offsets, so the
    two layers are one conv of ``taps`` (3 for kernel 5, factor 2) on the input, with ``factor · filters``
    output channels (one group per phase ``r``), whose outputs are interleaved. Its kernel is the
    ``(kernel_size, C, filters)`` kernel of the ``Conv1D`` it replaces (same weights, same function up to
    float rounding), folded into the phases on every call. Kernel 5, factor 2: 3/5 of the pair's FLOPs
    and no ``factor``-times larger intermediate.
    """

    def __init__(self, filters: int, kernel_size: int = 5, factor: int = 2, use_bias: bool = True,
                 activation=None, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.factor = int(filters), int(kernel_size), int(factor)
        self.use_bias = bool(use_bias)
        self.activation = keras.activations.get(activation)
        left = (self.kernel_size - 1) // 2  # "same" padding of the replaced Conv1D
        # offset of the input sample that kernel tap j reads for output phase r
        offsets = np.array([[(r + j - left) // self.factor for r in range(self.factor)]
                            for j in range(self.kernel_size)])
        self.pad = (-int(offsets.min()), int(offsets.max()))
        self.taps = self.pad[0] + self.pad[1] + 1
        phase_map = np.zeros((self.kernel_size, self.taps, self.factor), np.float32)
        for j in range(self.kernel_size):
            for r in range(self.factor):
                phase_map[j, offsets[j, r] + self.pad[0], r] = 1.0
        self.phase_map = phase_map

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(self.kernel_size, input_shape[-1], self.filters),
                                      initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros") if self.use_bias else None

    def call(self, x):
        kernel = ops.einsum("jdr,jco->dcro", ops.cast(self.phase_map, self.kernel.dtype), self.kernel)
        kernel = ops.reshape(kernel, (self.taps, -1, self.factor * self.filters))
        y = ops.conv(ops.pad(x, [[0, 0], list(self.pad), [0, 0]]), kernel, padding="valid")
        y = ops.reshape(y, (ops.shape(x)[0], -1, self.filters))
        if self.use_bias:
            y = y + self.bias
        return self.activation(y)

    def flops(self, input_shape) -> int:
        """Forward FLOPs per sample (multiply-add = 2) of the phase convolution."""
        return 2 * input_shape[1] * self.taps * input_shape[-1] * self.factor * self.filters

    def compute_output_shape(self, input_shape):
        length = None if input_shape[1] is None else input_shape[1] * self.factor
        return (input_shape[0], length, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "factor": self.factor, "use_bias": self.use_bias,
                "activation": keras.activations.serialize(self.activation)}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LeadConsistent12(layers.Layer):
    """Derive all 12 leads from the 8 independent ones: ``(batch, T, 8) -> (batch, T, 12)``.

    A constant matmul with :data:`rare_gan.leads.INDEPENDENT_TO_12` (no weights), so III, aVR, aVL
    and aVF obey Einthoven's and Goldberger's laws exactly. Input leads in
    :data:`~rare_gan.leads.INDEPENDENT_LEADS` order, output in PTB-XL order.
    """

    def build(self, input_shape):
        if input_shape[-1] != len(INDEPENDENT_LEADS):
            raise ValueError(f"expected {len(INDEPENDENT_LEADS)} independent leads on the last axis, got {input_shape}")

    def call(self, x):
        return ops.matmul(x, ops.convert_to_tensor(INDEPENDENT_TO_12, dtype=x.dtype))

    def flops(self, input_shape) -> int:
        """Forward FLOPs per sample of the (8 → 12) lead matmul."""
        return 2 * int(np.prod(input_shape[1:])) * N_LEADS

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], N_LEADS)


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------


def generator_inputs(latent_dim: int, n_labels: int = 0, label_dim: int = 32):
    """A generator's inputs and what it starts from: ``z``, or ``[z, labels]`` with the multi-hot labels'
    learnt linear ``label_dim`` embedding concatenated to ``z`` (conditional, ``n_labels`` > 0)."""
    z = keras.Input(shape=(latent_dim,), name="z")
    if not n_labels:
        return z, z
    labels = keras.Input(shape=(n_labels,), name="labels")
    embedded = layers.Dense(label_dim, use_bias=False, name="label_embedding")(labels)
    return [z, labels], layers.Concatenate(name="condition")([z, embedded])


def build_generator(
    latent_dim: int = 100,
    lead_consistent: bool = True,
    base_length: int = 125,
    filters: Sequence[int] = (128, 64),
    kernel_size: int = 5,
    n_refine: int = 1,
    upsample: str = "transpose",
    n_labels: int = 0,
    label_dim: int = 32,
) -> keras.Model:
    """Generator ``z (batch, latent_dim) -> ECG (batch, base_length * 2**(len(filters)+1), 12)``.

    ``n_labels > 0`` makes it conditional: inputs ``[z, labels]`` (a multi-hot float vector of
    ``n_labels`` SCP codes), its learnt linear ``label_dim`` embedding concatenated to ``z`` before
    the projection.

    Dense(base_length·filters[0]) → BN → LeakyReLU → Reshape, then one stride-2 ``Conv1DTranspose``
    stage per entry of ``filters`` (each → BN → LeakyReLU), with ``n_refine``
    :class:`ResidualInception1D` blocks after the first stage, and a last stride-2 transposed conv to
    the output leads with ``tanh``. Defaults: 125 → 250 (128 ch, inception) → 500 (64 ch) → 1000.

    ``lead_consistent=True``: the last conv makes the 8 independent leads (I, II, V1–V6, in
    [-1, 1]) and :class:`LeadConsistent12` derives III, aVR, aVL, aVF exactly (these may exceed
    [-1, 1]). ``False``: 12 free channels. Outputs are float32 under any dtype policy.

    ``kernel_size`` 5 is the research's; 4, a multiple of the stride 2, gives every output sample of
    a stride-2 transposed conv the same number of kernel taps and so avoids the period-2
    "checkerboard" pattern (high-frequency ripple at 50 Hz, 25 Hz, ...) that 5 gives. ``upsample="nearest"`` replaces each
    transposed conv by nearest-neighbour ``UpSampling1D(2)`` + ``Conv1D(kernel_size)`` (artefact-free
    by construction; computed as one :class:`UpsampleConv1D`, 1.2× the FLOPs of those layers with
    kernel 5).
    """
    if not filters:
        raise ValueError("filters needs at least one stage")
    if upsample not in UPSAMPLE_MODES:
        raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")

    def up(x, channels, name, **kw):
        if upsample == "transpose":
            return layers.Conv1DTranspose(channels, kernel_size, strides=2, padding="same", name=name, **kw)(x)
        return UpsampleConv1D(channels, kernel_size, 2, name=name, **kw)(x)

    inputs, x = generator_inputs(latent_dim, n_labels, label_dim)
    x = layers.Dense(base_length * filters[0], use_bias=False, name="project")(x)
    x = layers.BatchNormalization(name="project_bn")(x)
    x = layers.LeakyReLU(0.2, name="project_act")(x)
    x = layers.Reshape((base_length, filters[0]), name="reshape")(x)
    for i, f in enumerate(filters):
        x = up(x, f, f"up{i + 1}", use_bias=False)
        x = layers.BatchNormalization(name=f"up{i + 1}_bn")(x)
        x = layers.LeakyReLU(0.2, name=f"up{i + 1}_act")(x)
        if i == 0:
            for j in range(n_refine):
                x = ResidualInception1D(f, name=f"refine{j + 1}")(x)
    out_channels = len(INDEPENDENT_LEADS) if lead_consistent else N_LEADS
    x = up(x, out_channels, f"up{len(filters) + 1}")
    x = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    if lead_consistent:
        x = LeadConsistent12(dtype="float32", name="leads12")(x)
    return keras.Model(inputs, x, name="generator")


def _conv_trunk(
    x,
    *,
    stem_filters: Sequence[int],
    block_filters: Sequence[int],
    norm: str | None,
    dropout: float,
    pooling: str = "average",
):
    """Shared 1D CNN trunk ``(batch, T, C) -> (batch, features)``.

    Stem: stride-2 convs (kernel 7 then 5) → [norm] → LeakyReLU, one per ``stem_filters`` (T/4 for
    two). Then per ``block_filters``: 2× average-pool (except first) → ResidualInception1D →
    [norm] → [dropout]. Finally ``pooling``: ``"average"`` (global average, position-free),
    ``"flatten"`` (keeps where each feature occurs, so the head can judge the rhythm over all
    10 s) or ``"average_max"`` (global average and global maximum side by side: a single ectopic
    beat in 10 s survives the maximum, while the average dilutes it). ``norm`` is None,
    ``"layer"`` or ``"batch"``.
    """
    if norm not in (None, "layer", "batch"):
        raise ValueError(f"norm must be None, 'layer' or 'batch', got {norm!r}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")

    def normalize(x, name):
        if norm == "layer":
            return layers.LayerNormalization(name=f"{name}_ln")(x)
        if norm == "batch":
            return layers.BatchNormalization(name=f"{name}_bn")(x)
        return x

    for i, f in enumerate(stem_filters):
        name = f"stem{i + 1}"
        x = layers.Conv1D(f, 7 if i == 0 else 5, strides=2, padding="same", use_bias=norm is None, name=name)(x)
        x = normalize(x, name)
        x = layers.LeakyReLU(0.2, name=f"{name}_act")(x)
    for i, f in enumerate(block_filters):
        name = f"block{i + 1}"
        if i > 0:
            x = layers.AveragePooling1D(2, padding="same", name=f"{name}_pool")(x)
        x = ResidualInception1D(f, name=name)(x)
        x = normalize(x, name)
        if dropout:
            x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    if pooling == "flatten":
        return layers.Flatten(name="flatten")(x)
    if pooling == "average_max":
        return layers.Concatenate(name="gap")([layers.GlobalAveragePooling1D(name="average")(x),
                                               layers.GlobalMaxPooling1D(name="maximum")(x)])
    return layers.GlobalAveragePooling1D(name="gap")(x)


def _build_cnn(name, input_length, n_leads, stem_filters, block_filters, norm, dropout,
               pooling="average", n_labels=0) -> keras.Model:
    ecg = keras.Input(shape=(input_length, n_leads), name="ecg")
    h = _conv_trunk(ecg, stem_filters=stem_filters, block_filters=block_filters, norm=norm, dropout=dropout,
                    pooling=pooling)
    logit = layers.Dense(1, dtype="float32", name="logit")(h)
    if not n_labels:
        return keras.Model(ecg, logit, name=name)
    # projection discriminator (Miyato & Koyama 2018): logit + <embed(labels), features>
    labels = keras.Input(shape=(n_labels,), name="labels")
    embedded = layers.Dense(h.shape[-1], use_bias=False, name="label_projection")(labels)
    projection = layers.Dot(axes=1, dtype="float32", name="projection")([embedded, h])
    return keras.Model([ecg, labels], layers.Add(dtype="float32", name="logit_conditional")([logit, projection]),
                       name=name)


def build_discriminator(
    input_length: int = N_SAMPLES,
    n_leads: int = N_LEADS,
    stem_filters: Sequence[int] = (32, 64),
    block_filters: Sequence[int] = (64, 128, 256),
    norm: str | None = None,
    dropout: float = 0.0,
    pooling: str = "average",
    n_labels: int = 0,
) -> keras.Model:
    """Critic ``ECG (batch, input_length, n_leads) -> real/fake logit (batch, 1)`` (no sigmoid).

    Shared inception/residual trunk (see :func:`_conv_trunk`) without BatchNorm, so per-sample
    gradient penalties (WGAN-GP) stay valid; ``norm="layer"`` adds LayerNormalization.
    ``n_labels > 0``: inputs ``[ecg, labels]`` (multi-hot) and a projection head (the labels' linear
    embedding's dot product with the pooled features is added to the logit).
    """
    if norm == "batch":
        raise ValueError("BatchNorm in the discriminator breaks WGAN-GP; use norm=None or 'layer'")
    return _build_cnn("discriminator", input_length, n_leads, stem_filters, block_filters, norm, dropout, pooling,
                      n_labels)


def build_classifier(
    input_length: int = N_SAMPLES,
    n_leads: int = N_LEADS,
    stem_filters: Sequence[int] = (32, 64),
    block_filters: Sequence[int] = (64, 128, 256),
    norm: str | None = "batch",
    dropout: float = 0.3,
    pooling: str = "average",
) -> keras.Model:
    """Target-vs-rest classifier ``ECG (batch, input_length, n_leads) -> logit (batch, 1)``.

    Same trunk as :func:`build_discriminator`, with BatchNorm and dropout by default.
    """
    return _build_cnn("classifier", input_length, n_leads, stem_filters, block_filters, norm, dropout, pooling)


# --------------------------------------------------------------------------------------------------
# Cost
# --------------------------------------------------------------------------------------------------


def _layer_flops(layer: layers.Layer, input_shape: Sequence[int | None]) -> int:
    """Forward FLOPs of one layer for one sample (multiply-add = 2); 0 for layers not counted."""
    if isinstance(layer, keras.Model):
        return flops_per_sample(layer)
    if hasattr(layer, "flops"):  # the custom layers count their own (InceptionBlock1D, UpsampleConv1D, ...)
        return layer.flops(input_shape)
    if isinstance(layer, layers.Conv1DTranspose):
        (k,) = layer.kernel_size
        return 2 * input_shape[1] * k * input_shape[-1] * layer.filters
    if isinstance(layer, layers.Conv1D):
        (k,) = layer.kernel_size
        out_len = layer.compute_output_shape(tuple(input_shape))[1]
        return 2 * out_len * k * (input_shape[-1] // layer.groups) * layer.filters
    if isinstance(layer, layers.Dense):
        return 2 * int(np.prod(input_shape[1:])) * layer.units
    return 0


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Set every layer of ``target`` that has weights from ``source``'s layer of the same name (so a model
    saved before a weightless layer was merged into its neighbour still fits: ``UpSampling1D`` +
    ``Conv1D`` then, :class:`UpsampleConv1D` now). ValueError naming the first layer that is missing
    or of another shape."""
    for layer in target.layers:
        if not layer.weights:
            continue
        try:
            layer.set_weights(source.get_layer(layer.name).get_weights())
        except ValueError as exc:
            raise ValueError(f"layer {layer.name!r}: {exc}") from exc


def flops_per_sample(model: keras.Model) -> int:
    """Analytic forward FLOPs per sample of a built functional model (multiply-add = 2 FLOPs).

    Counts Conv1D, Conv1DTranspose, Dense, nested models recursively, and every custom layer with a
    ``flops(input_shape)`` method (its own count: the inception/residual blocks' convs,
    :class:`LeadConsistent12`, :class:`UpsampleConv1D`, ...); biases, normalisation, activations and
    pooling are ignored.
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            total += flops_per_sample(layer)
            continue
        inputs = layer.input
        shape = (inputs[0] if isinstance(inputs, (list, tuple)) else inputs).shape
        total += _layer_flops(layer, shape)
    return int(total)


__all__ = [
    "InceptionBlock1D",
    "ResidualInception1D",
    "LeadConsistent12",
    "UpsampleConv1D",
    "build_generator",
    "build_discriminator",
    "build_classifier",
    "flops_per_sample",
    "copy_weights",
]
