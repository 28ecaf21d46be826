"""Plain tensors (NCHW activations, OIHW kernels, per-channel biases) to and from the packed
layouts of ``input_shapes`` / ``output_shape``, as upstream's graph packing lays them out."""
from __future__ import annotations

import numpy as np

from ..isa import host_dtype
from ._layers import Conv2DTranspose, Dense, Elementwise
from ._numeric import dilate_input, input_shapes


def _pack_activation(x: np.ndarray, b: int, c: int) -> np.ndarray:
    if x.ndim == 2:    # (N, I) -> (N/b, I/c, b, c)
        n, i = x.shape
        return x.reshape(n // b, b, i // c, c).transpose(0, 2, 1, 3)
    n, ch, h, w = x.shape   # (N, C, H, W) -> (N/b, C/c, H, W, b, c)
    return x.reshape(n // b, b, ch // c, c, h, w).transpose(0, 2, 4, 5, 1, 3)


def unpack_output(layer, env, out: np.ndarray) -> np.ndarray:
    """The packed output of ``layer`` as a plain (N, C, H, W) or (N, O) array."""
    if out.ndim == 4:
        n, o, b, c = out.shape
        return out.transpose(0, 2, 1, 3).reshape(n * b, o * c)
    n, o, h, w, b, c = out.shape
    return out.transpose(0, 4, 1, 5, 2, 3).reshape(n * b, o * c, h, w)


def pack_inputs(layer, env, data: np.ndarray, weight: np.ndarray | None = None, bias: np.ndarray | None = None,
                rhs: np.ndarray | None = None, knobs=None) -> list[np.ndarray]:
    """The module arguments of ``layer`` (before the output) from plain tensors: ``data`` NCHW (or
    (N, I) for a Dense), ``weight`` as a correlation kernel (O, C/groups, KH, KW) or a (O, I)
    matrix, ``bias`` (O,), ``rhs`` the second operand of an Elementwise. A Conv2DTranspose's data
    is dilated here, as upstream does on the CPU."""
    shapes = input_shapes(layer, env, knobs)
    if isinstance(layer, Elementwise):
        return [_pack_activation(t, env.BATCH, env.BLOCK_OUT).astype(host_dtype(env.acc_dtype)) for t in (data, rhs)]
    packed = _pack_activation(data, env.BATCH, env.BLOCK_IN).astype(host_dtype(env.inp_dtype))
    if isinstance(layer, Conv2DTranspose):
        packed = dilate_input(layer, packed)
    c_o, c_i = env.BLOCK_OUT, env.BLOCK_IN
    if isinstance(layer, Dense):
        o, i = weight.shape
        kernel = weight.reshape(o // c_o, c_o, i // c_i, c_i).transpose(0, 2, 1, 3)
    else:
        o, i, kh, kw = weight.shape
        kernel = weight.reshape(o // c_o, c_o, i // c_i, c_i, kh, kw).transpose(0, 2, 4, 5, 1, 3)
    arrays = [packed, np.ascontiguousarray(kernel).astype(host_dtype(env.wgt_dtype))]
    if len(shapes) > 2:
        shape, dtype = shapes[2][1], shapes[2][2]
        per_channel = np.asarray(bias).reshape(-1)
        if isinstance(layer, Dense):    # (1, O/c, 1, c)
            values = per_channel.reshape(1, -1, 1, c_o)
        else:                           # (N/b, O/c, 1, 1, b, c)
            values = per_channel.reshape(1, -1, 1, 1, 1, c_o)
        arrays.append(np.ascontiguousarray(np.broadcast_to(values, shape)).astype(host_dtype(dtype)))
    return [np.ascontiguousarray(a) for a in arrays]
