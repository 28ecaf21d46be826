"""LOAD and STORE: 2-D strided DRAM blocks with zero padding (vta-spec §3.3, §3.6).

Bounds were checked when the stream was decoded, so strided views here are always in range.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from compiler import isa

from ._decode import elem_bytes


def _dram_rows(dram: np.ndarray, start: int, rows: int, row_bytes: int, stride: int) -> np.ndarray:
    if stride >= row_bytes and start + rows * stride <= dram.size:
        return dram[start:start + rows * stride].reshape(rows, stride)[:, :row_bytes]   # a plain view
    return as_strided(dram[start:], shape=(rows, row_bytes), strides=(stride, 1))


def _padded_block(sram: np.ndarray, args) -> np.ndarray:
    """The (ytotal, xtotal, lanes) SRAM block a LOAD writes, with its pad rows/columns zeroed."""
    sram_base, _, y, x, _, yp0, yp1, xp0, xp1 = args
    xt, yt = xp0 + x + xp1, yp0 + y + yp1
    # The lane count is explicit: a LOAD of y_size 0 (pad rows only) has an empty block.
    block = sram[sram_base:sram_base + xt * yt].reshape(yt, xt, sram.shape[1])
    if yp0 or yp1 or xp0 or xp1:
        block[:yp0] = 0
        block[yp0 + y:] = 0
        block[yp0:yp0 + y, :xp0] = 0
        block[yp0:yp0 + y, xp0 + x:] = 0
    return block


def _scalar_bits(env, mtype) -> int:
    return {isa.MEM_INP: env.INP_WIDTH, isa.MEM_WGT: env.WGT_WIDTH}.get(mtype, 8)


def load(m, step) -> None:
    sram_base, dram_base, y, x, stride, yp0, _, xp0, _ = step.args
    mtype = step.memory_type
    e = elem_bytes(m.env, mtype)
    if mtype == isa.MEM_ACC_8BIT:
        # int8 lanes in DRAM, sign-extended into the accumulator lanes.
        block = _padded_block(m.acc, step.args)
        src = _dram_rows(m.dram, dram_base * e, y, x * e, stride * e).view(np.int8)
        block[yp0:yp0 + y, xp0:xp0 + x] = src.reshape(y, x, block.shape[2])
        return
    bits = _scalar_bits(m.env, mtype)
    if bits < 8:
        # packed scalars in DRAM, one sign-extended scalar per SRAM lane
        block = _padded_block(m.lanes(mtype), step.args)
        raw = _dram_rows(m.dram, dram_base * e, y, x * e, stride * e).reshape(y, x, e)
        block[yp0:yp0 + y, xp0:xp0 + x] = isa.unpack_scalars(raw, bits)
        return
    block = _padded_block(m.sram_rows(mtype), step.args)
    block[yp0:yp0 + y, xp0:xp0 + x] = _dram_rows(m.dram, dram_base * e, y, x * e, stride * e).reshape(y, x, e)
    if mtype == isa.MEM_UOP:
        xt = x + xp0 + step.args[8]
        m.refresh_uops(sram_base, sram_base + xt * (y + yp0 + step.args[6]))


def store(m, step) -> None:
    sram_base, dram_base, y, x, stride = step.args[:5]
    e = m.env.OUT_ELEM_BYTES
    # Narrowing is truncation to the low OUT_WIDTH bits, not saturation (vta-spec §3.6).
    if m.env.OUT_WIDTH < 8:
        data = isa.pack_scalars(m.acc[sram_base:sram_base + x * y], m.env.OUT_WIDTH).reshape(y, x * e)
    else:
        data = m.acc[sram_base:sram_base + x * y].astype(m.out_dtype).view(np.uint8).reshape(y, x * e)
    dst = _dram_rows(m.dram, dram_base * e, y, x * e, stride * e)
    m.log_dram(dst)
    if stride >= x or y == 1:
        dst[...] = data
    else:  # rows overlap in DRAM: later rows win, as in upstream's sequential loop
        for r in range(y):
            dst[r] = data[r]
