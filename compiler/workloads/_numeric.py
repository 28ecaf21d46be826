"""Packed random inputs and the numpy answer of each layer, bit-exact with VTA's arithmetic."""
from __future__ import annotations

import numpy as np

from ..isa import dtype_bits, host_dtype
from ._layers import CONV_LAYERS, Elementwise, conv_geometry


def dilate_input(layer, data: np.ndarray) -> np.ndarray:
    """A Conv2DTranspose's packed input (N/b, C/c, H, W, b, c) with ``stride - 1`` zero rows and
    columns between its pixels: the data argument of the layer's module (upstream dilates on the
    CPU before VTA loads it)."""
    n, c, h, w, b, bc = data.shape
    if (h, w) != (layer.height, layer.width):
        raise ValueError(f"dilate_input: data is {h}x{w}, the layer's input is {layer.height}x{layer.width}")
    s = layer.stride
    out = np.zeros((n, c, (h - 1) * s + 1, (w - 1) * s + 1, b, bc), dtype=data.dtype)
    out[:, :, ::s, ::s] = data
    return out


def _wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """``x`` modulo 2^bits as signed values (int64): the accumulator's wrap-around."""
    return x.astype(np.int64).astype(f"int{bits}").astype(np.int64)


def input_shapes(layer, env, knobs=None) -> list[tuple[str, tuple, str]]:
    """(name, packed shape, dtype) of every input, in argument order (a bias is int8 in DRAM
    when the knobs say ``bias_dtype`` int8)."""
    if isinstance(layer, Elementwise):
        shape = output_shape(layer, env)
        return [("lhs", shape, env.acc_dtype), ("rhs", shape, env.acc_dtype)]
    if isinstance(layer, CONV_LAYERS):
        g = conv_geometry(layer)
        n, c = layer.batch // env.BATCH, layer.in_channels // env.BLOCK_IN
        o = layer.out_channels // env.BLOCK_OUT
        shapes = [("data", (n, c, g.in_height, g.in_width, env.BATCH, env.BLOCK_IN), env.inp_dtype),
                  ("kernel", (o, c // g.groups, g.kernel, g.kernel, env.BLOCK_OUT, env.BLOCK_IN), env.wgt_dtype)]
        bias_shape = (n, o, 1, 1, env.BATCH, env.BLOCK_OUT)
    else:
        n, c = layer.batch // env.BATCH, layer.in_features // env.BLOCK_IN
        o = layer.out_features // env.BLOCK_OUT
        shapes = [("data", (n, c, env.BATCH, env.BLOCK_IN), env.inp_dtype),
                  ("weight", (o, c, env.BLOCK_OUT, env.BLOCK_IN), env.wgt_dtype)]
        bias_shape = (1, o, 1, env.BLOCK_OUT)
    if any(step[0] == "bias" for step in layer.epilogue):
        narrow = (knobs or {}).get("bias_dtype") == "int8"
        shapes.append(("bias", bias_shape, env.inp_dtype if narrow else env.acc_dtype))
    return shapes


def output_shape(layer, env) -> tuple:
    if isinstance(layer, Elementwise):
        return (layer.batch // env.BATCH, layer.channels // env.BLOCK_OUT, layer.height, layer.width,
                env.BATCH, env.BLOCK_OUT)
    if isinstance(layer, CONV_LAYERS):
        return (layer.batch // env.BATCH, layer.out_channels // env.BLOCK_OUT, layer.out_height, layer.out_width,
                env.BATCH, env.BLOCK_OUT)
    return (layer.batch // env.BATCH, layer.out_features // env.BLOCK_OUT, env.BATCH, env.BLOCK_OUT)


def random_inputs(layer, env, seed: int = 0, knobs=None) -> list[np.ndarray]:
    """Packed inputs with values over the whole input range. A bias holds int8-ranged values
    (quantized), so the int32 and int8 DRAM layouts of ``bias_dtype`` carry the same numbers."""
    rng = np.random.default_rng(seed)
    arrays = []
    dilated = conv_geometry(layer).order == "transpose" if isinstance(layer, CONV_LAYERS) else False
    for name, shape, dtype in input_shapes(layer, env, knobs):
        if name == "data" and dilated:   # a transposed conv's input, dilated as the CPU would
            n, c, _, _, b, bc = shape
            low, high = _range(dtype)
            undilated = rng.integers(low, high + 1, size=(n, c, layer.height, layer.width, b, bc))
            arrays.append(dilate_input(layer, undilated.astype(host_dtype(dtype))))
            continue
        if name in ("lhs", "rhs"):   # int32 operands with headroom, as after a conv's shift
            arrays.append(rng.integers(-(1 << 20), 1 << 20, size=shape).astype(dtype))
        elif name == "bias":
            low, high = _range(env.inp_dtype)
            arrays.append(rng.integers(low, high + 1, size=shape).astype(host_dtype(dtype)))
        else:
            low, high = _range(dtype)
            arrays.append(rng.integers(low, high + 1, size=shape).astype(host_dtype(dtype)))
    return arrays


def _range(dtype) -> tuple[int, int]:
    """Smallest and largest value of a signed ``dtype`` (int4 included: host arrays are int8)."""
    bits = dtype_bits(dtype)
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _truncate(values: np.ndarray, bits: int, dtype) -> np.ndarray:
    """The low ``bits`` of ``values`` sign-extended, as a STORE of ``bits``-wide scalars keeps them."""
    sign = 1 << (bits - 1)
    return (((values.astype(np.int64) & ((1 << bits) - 1)) ^ sign) - sign).astype(dtype)


def empty_output(layer, env) -> np.ndarray:
    return np.zeros(output_shape(layer, env), dtype=host_dtype(env.out_dtype))


def _apply_epilogue(acc: np.ndarray, epilogue, bias, acc_bits: int) -> np.ndarray:
    acc = acc.astype(np.int64)
    for step in epilogue:
        name = step[0]
        if name == "bias":
            acc = acc + bias.astype(np.int64)
        elif name == "shr":
            acc = acc >> step[1]
        elif name == "add":
            acc = acc + step[1]
        elif name in ("max", "relu"):
            acc = np.maximum(acc, 0 if name == "relu" else step[1])
        elif name == "min":
            acc = np.minimum(acc, step[1])
        elif name == "clip":
            acc = np.maximum(np.minimum(acc, step[2]), step[1])
        acc = _wrap(acc, acc_bits)    # every ALU op keeps the accumulator's low ACC_WIDTH bits
    return acc


def reference(layer, *inputs, env=None) -> np.ndarray:
    """The layer's answer in the packed output layout, as VTA computes it: accumulation wrapping
    at ACC_WIDTH, the epilogue, then truncation to the output width (STORE keeps low bits).

    ``env`` gives the widths; without it ACC_WIDTH is 32 (an Elementwise's inputs' width) and
    the output is as wide as the data (8 bits for an Elementwise)."""
    out_bits = env.OUT_WIDTH if env is not None else None
    if isinstance(layer, Elementwise):
        lhs, rhs = (x.astype(np.int64) for x in inputs)
        acc_bits = env.ACC_WIDTH if env is not None else inputs[0].dtype.itemsize * 8
        combined = _wrap(lhs + rhs if layer.op == "add" else lhs * rhs, acc_bits)
        bits = out_bits or 8
        return _truncate(_apply_epilogue(combined, layer.epilogue, None, acc_bits), bits, host_dtype(f"int{bits}"))
    acc_bits = env.ACC_WIDTH if env is not None else 32
    data, weight = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    if isinstance(layer, CONV_LAYERS):
        n, c, h, w, bn, bc = data.shape
        o, cg, kh, kw, bo, _ = weight.shape
        g = conv_geometry(layer)
        x = data.astype(np.int64).transpose(0, 4, 1, 5, 2, 3).reshape(n * bn, c * bc, h, w)
        k = weight.astype(np.int64).transpose(0, 4, 1, 5, 2, 3).reshape(o * bo, cg * bc, kh, kw)
        top, left, bottom, right = g.pads
        s = g.stride
        x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
        oh, ow = g.out_height, g.out_width
        groups = g.groups
        x = x.reshape(n * bn, groups, c * bc // groups, *x.shape[2:])
        k = k.reshape(groups, o * bo // groups, cg * bc, kh, kw)
        out = np.zeros((n * bn, groups, o * bo // groups, oh, ow), dtype=np.int64)
        for dy in range(kh):
            for dx in range(kw):
                patch = x[:, :, :, dy:dy + s * (oh - 1) + 1:s, dx:dx + s * (ow - 1) + 1:s]
                out += np.einsum("ngchw,goc->ngohw", patch, k[:, :, :, dy, dx], optimize=True)
        out = _wrap(out.reshape(n * bn, o * bo, oh, ow), acc_bits)
        packed = out.reshape(n, bn, o, bo, oh, ow).transpose(0, 2, 4, 5, 1, 3)
        if bias is not None:
            bias = np.broadcast_to(bias, packed.shape)
    else:
        n, c, bn, bc = data.shape
        o = weight.shape[0]
        x = data.astype(np.int64).transpose(0, 2, 1, 3).reshape(n * bn, c * bc)
        wt = weight.astype(np.int64).transpose(0, 2, 1, 3).reshape(o * weight.shape[2], c * bc)
        out = _wrap(x @ wt.T, acc_bits)
        packed = out.reshape(n, bn, o, weight.shape[2]).transpose(0, 2, 1, 3)
        if bias is not None:
            bias = np.broadcast_to(bias, packed.shape)
    result = _apply_epilogue(packed, layer.epilogue, bias, acc_bits)
    if out_bits is None:
        return result.astype(data.dtype)   # OUT_WIDTH = INP_WIDTH; numpy's cast keeps the low bits
    return _truncate(result, out_bits, host_dtype(env.out_dtype))
