"""EfficientNet-Lite0 as pure JAX functions over a parameter pytree (see :mod:`gdtools.dream.weights`).

stem conv 3x3/2 -> 16 MBConv blocks (expansion 1x1, depthwise kxk, projection 1x1, residual when
the shapes match) -> head 1x1 conv to 1280 -> global average pool -> 1000-way classifier. Batch norm
is already folded into the convolutions; activations are ReLU6; layout NHWC; padding TF "SAME"
(the weights come from TensorFlow, whose stride-2 "SAME" pads one pixel more at the bottom/right).

Kernel sizes and channel counts are read from the parameters' shapes; only the strides, which
shapes cannot tell, come from the EfficientNet-Lite0 table below. Layers that can be dreamed on are
named ``stem``, ``block0`` ... ``block15`` and ``head``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal

import jax
import jax.numpy as jnp
from jax import lax

from gdtools.errors import InputError

#: stride of each MBConv block of EfficientNet-Lite0 (stages of 1, 2, 2, 3, 3, 4, 1 blocks)
BLOCK_STRIDES = (1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1)
STEM_STRIDE = 2

DepthwiseMethod = Literal["auto", "shifts", "conv"]
DEPTHWISE_METHODS = ("auto", "shifts", "conv")

Precision = Literal["float32", "bfloat16"]
PRECISIONS = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """A layer one can dream on: its name, output channels and total stride from the input."""

    name: str
    channels: int
    stride: int


def layer_names(params) -> tuple[str, ...]:
    return ("stem",) + tuple(f"block{i}" for i in range(len(params["blocks"]))) + ("head",)


def layer_table(params) -> list[LayerInfo]:
    """Every dreamable layer with its channels and stride, from the parameters' shapes."""
    _check_blocks(params)
    stride = STEM_STRIDE
    table = [LayerInfo("stem", int(params["stem"]["w"].shape[-1]), stride)]
    for i, block in enumerate(params["blocks"]):
        stride *= BLOCK_STRIDES[i]
        table.append(LayerInfo(f"block{i}", int(block["project"]["w"].shape[-1]), stride))
    table.append(LayerInfo("head", int(params["head"]["w"].shape[-1]), stride))
    return table


def check_layer(params, layer: str) -> LayerInfo:
    """The :class:`LayerInfo` of ``layer``, or an :class:`InputError` that lists the layers."""
    for info in layer_table(params):
        if info.name == layer:
            return info
    raise InputError(f"unknown layer {layer!r}; layers are: {', '.join(layer_names(params))}")


def _check_blocks(params) -> None:
    if len(params["blocks"]) != len(BLOCK_STRIDES):
        raise InputError(
            f"parameters have {len(params['blocks'])} blocks; EfficientNet-Lite0 has {len(BLOCK_STRIDES)}"
        )


def resolve_depthwise(method: DepthwiseMethod) -> str:
    """``auto`` picks shifted multiply-adds on every backend: on the CPU, grouped
    ``conv_general_dilated`` was measured ~5x slower; on an H100 (jax 0.11.2) the network's
    value_and_grad at 1024^2 took 2.58 and 2.71 ms with shifts against 2.80 and 2.97 ms with the
    grouped convolution in two runs, and compiled faster (benchmarks/results/gpu_dream.json). The same choice writes the
    stem as a patch matrix product."""
    if method not in DEPTHWISE_METHODS:
        raise InputError(f"depthwise={method!r}; choose one of {', '.join(DEPTHWISE_METHODS)}")
    if method == "auto":
        return "shifts"
    return method


def check_precision(precision: Precision) -> str:
    """The number format the network computes in, ``float32`` (the default) or ``bfloat16``.

    bfloat16 halves the memory the network reads and writes. On an H100 its value and gradient at
    1024² took 1.92 and 2.14 ms against float32's 2.61 and 2.74 ms (two runs), but a whole dream
    step was not faster (2.48 against 2.36 ms in the same run): the step is bound by launching
    kernels, not by their memory traffic (benchmarks/gpu_notes.md). Its gradient is not float32's:
    correlation about 0.8 at block11 on a 256 px photo, about as far as float32's own gradient
    moves when noise of half a grey level (of 0..255) is added to the pixels.
    """
    if precision not in PRECISIONS:
        raise InputError(f"precision={precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) of one spatial axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def preprocess(image):
    """RGB values in [0, 255] -> the network's input scale (x - 127) / 128."""
    return (image - 127.0) / 128.0


def relu6(x):
    return jnp.clip(x, 0.0, 6.0)


def depthwise_conv(x, w, *, stride: int, method: str):
    """Depthwise convolution of NHWC ``x`` with ``w`` of shape (k, k, C), TF "SAME" padding.

    ``method="conv"`` is XLA's grouped convolution; ``"shifts"`` writes it as k*k shifted
    multiply-adds, which XLA fuses into one loop (and likewise the gradient, see
    :func:`_depthwise_shifts`), several times faster on the CPU.
    """
    if method == "conv":
        return lax.conv_general_dilated(
            x, w[:, :, None, :], window_strides=(stride, stride), padding="SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=x.shape[-1],
        )
    return _depthwise_shifts(x, w, stride)


def _shifted_sum(padded, w, out_h: int, out_w: int, stride: int):
    """sum over (i, j) of padded[:, i + stride*y, j + stride*x, :] * w[i, j]."""
    k = w.shape[0]
    total = None
    for i in range(k):
        for j in range(k):
            window = lax.slice(
                padded, (0, i, j, 0),
                (padded.shape[0], i + (out_h - 1) * stride + 1, j + (out_w - 1) * stride + 1, padded.shape[3]),
                (1, stride, stride, 1),
            )
            term = window * w[i, j]
            total = term if total is None else total + term
    return total


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _depthwise_shifts(x, w, stride: int):
    k = w.shape[0]
    _, height, width, _ = x.shape
    pad_h, pad_w = same_padding(height, k, stride), same_padding(width, k, stride)
    padded = jnp.pad(x, ((0, 0), pad_h, pad_w, (0, 0)))
    return _shifted_sum(padded, w, -(-height // stride), -(-width // stride), stride)


def _depthwise_shifts_fwd(x, w, stride):
    return _depthwise_shifts(x, w, stride), (x, w)


def _depthwise_shifts_bwd(stride, residuals, g):
    # The input gradient is itself a depthwise correlation, of the output gradient (dilated by the
    # stride, padded) with the flipped kernel: again k*k shifted multiply-adds that XLA fuses,
    # where autodiff of the forward slices would build k*k padded copies of the image.
    x, w = residuals
    k = w.shape[0]
    _, height, width, _ = x.shape
    (low_h, _), (low_w, _) = same_padding(height, k, stride), same_padding(width, k, stride)
    out_h, out_w = g.shape[1], g.shape[2]
    dilated_h, dilated_w = stride * (out_h - 1) + 1, stride * (out_w - 1) + 1
    before_h, before_w = k - 1 - low_h, k - 1 - low_w
    spread = lax.pad(g, jnp.zeros((), g.dtype), (
        (0, 0, 0),
        (before_h, height + k - 1 - before_h - dilated_h, stride - 1),
        (before_w, width + k - 1 - before_w - dilated_w, stride - 1),
        (0, 0, 0),
    ))
    grad_x = _shifted_sum(spread, w[::-1, ::-1], height, width, 1)
    # the kernel's gradient (unused by the dream, and then removed by XLA as dead code)
    pad_h, pad_w = same_padding(height, k, stride), same_padding(width, k, stride)
    padded = jnp.pad(x, ((0, 0), pad_h, pad_w, (0, 0)))
    rows = []
    for i in range(k):
        row = []
        for j in range(k):
            window = lax.slice(
                padded, (0, i, j, 0),
                (padded.shape[0], i + (out_h - 1) * stride + 1, j + (out_w - 1) * stride + 1, padded.shape[3]),
                (1, stride, stride, 1),
            )
            row.append(jnp.sum(window * g, axis=(0, 1, 2)))
        rows.append(jnp.stack(row))
    return grad_x, jnp.stack(rows).astype(w.dtype)


_depthwise_shifts.defvjp(_depthwise_shifts_fwd, _depthwise_shifts_bwd)


def pointwise_conv(x, w):
    return jnp.einsum("nhwc,cd->nhwd", x, w)


def stem_conv(x, w, *, method: str):
    """The stem's dense k x k convolution (stride ``STEM_STRIDE``, TF "SAME") of NHWC ``x``.

    ``method="conv"`` is XLA's convolution; ``"shifts"`` gathers the k*k strided windows of the
    three input channels into one (k*k*3)-channel patch image and multiplies it by the kernel as
    one matrix product, about a fifth faster on the CPU for the image's gradient and value (the
    convolution has only three input channels, which XLA:CPU's convolution handles poorly).
    """
    if method == "conv":
        return lax.conv_general_dilated(x, w, window_strides=(STEM_STRIDE, STEM_STRIDE), padding="SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    k, s = w.shape[0], STEM_STRIDE
    n, height, width, channels = x.shape
    padded = jnp.pad(x, ((0, 0), same_padding(height, k, s), same_padding(width, k, s), (0, 0)))
    out_h, out_w = -(-height // s), -(-width // s)
    windows = [lax.slice(padded, (0, i, j, 0), (n, i + (out_h - 1) * s + 1, j + (out_w - 1) * s + 1, channels),
                         (1, s, s, 1))
               for i in range(k) for j in range(k)]
    patches = jnp.concatenate(windows, axis=-1)  # channels ordered (i, j, c), as w.reshape below
    return jnp.einsum("nhwk,kd->nhwd", patches, w.reshape(k * k * channels, w.shape[-1]))


def stem(params, x, *, method: str = "conv"):
    return relu6(stem_conv(x, params["stem"]["w"], method=method) + params["stem"]["b"])


def mbconv(block, x, *, stride: int, depthwise: str):
    h = x
    if "expand" in block:
        h = relu6(pointwise_conv(h, block["expand"]["w"]) + block["expand"]["b"])
    h = relu6(depthwise_conv(h, block["depthwise"]["w"], stride=stride, method=depthwise) + block["depthwise"]["b"])
    h = pointwise_conv(h, block["project"]["w"]) + block["project"]["b"]
    if stride == 1 and x.shape[-1] == h.shape[-1]:
        h = h + x
    return h


def activations(params, x, *, layers, depthwise: DepthwiseMethod = "auto") -> dict:
    """Activations ``{name: (N, h, w, C)}`` of ``layers`` for a batch ``x`` (N, H, W, 3) of
    preprocessed images; nothing past the deepest requested layer is computed.

    Layer names are validated by :func:`check_layer`, outside jit.
    """
    wanted = set(layers)
    unknown = wanted - set(layer_names(params))
    if unknown:
        raise InputError(f"unknown layer {sorted(unknown)[0]!r}; layers are: {', '.join(layer_names(params))}")
    method = resolve_depthwise(depthwise)
    found = {}
    h = stem(params, x, method=method)
    if "stem" in wanted:
        found["stem"] = h
    for i, block in enumerate(params["blocks"]):
        if len(found) == len(wanted):
            return found
        h = mbconv(block, h, stride=BLOCK_STRIDES[i], depthwise=method)
        if f"block{i}" in wanted:
            found[f"block{i}"] = h
    if len(found) < len(wanted):
        found["head"] = relu6(pointwise_conv(h, params["head"]["w"]) + params["head"]["b"])
    return found


def features(params, x, *, layer: str = "head", depthwise: DepthwiseMethod = "auto"):
    """Activations of one ``layer`` for a batch ``x`` (N, H, W, 3) of preprocessed images."""
    return activations(params, x, layers=(layer,), depthwise=depthwise)[layer]


def logits(params, x, *, depthwise: DepthwiseMethod = "auto"):
    """Class scores (N, 1000) for a batch of preprocessed images."""
    h = features(params, x, layer="head", depthwise=depthwise)
    pooled = jnp.mean(h, axis=(1, 2))
    return pooled @ params["classifier"]["w"] + params["classifier"]["b"]
