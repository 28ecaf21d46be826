"""ALU (vta-spec §3.5), vectorised over hazard-free groups of iterations.

Upstream runs iterations strictly in (y, x, uop) order, and an ALU reads accumulator rows that
earlier iterations of the same instruction may have written. Iterations are therefore split into
consecutive *waves* in which every destination is distinct and no source is a destination written
earlier in the wave; each wave is one gather-compute-scatter. Reads of rows written later in a
wave see the old value, exactly as sequential execution would. The usual programs (elementwise
ops, shifts and clips) form a single wave; commutative reductions into repeated destinations
whose sources are never written are folded with one ``ufunc.reduceat``.
"""
from __future__ import annotations

import numpy as np

from compiler import isa

from ._index import check_range, distinct, group_sum, loop_indices


def _shr(a: np.ndarray, b) -> np.ndarray:
    # Negative amounts shift left. Counts are masked to 5 bits as x86 does for the C shifts of
    # upstream (counts >= 32 are host-dependent there, vta-spec §3.5).
    if np.isscalar(b):
        return a >> (b & 31) if b >= 0 else a << ((-b) & 31)
    return np.where(b >= 0, a >> (b & 31), a << ((-b) & 31))


# f(a, b) on int64 lanes holding int32 values; the caller wraps to the accumulator width.
ALU_FUNCS = {
    isa.ALU_MIN: np.minimum,
    isa.ALU_MAX: np.maximum,
    isa.ALU_ADD: np.add,
    isa.ALU_SHR: _shr,
    isa.ALU_MUL: np.multiply,
}
# Associative and commutative modulo 2^32: repeated destinations may be folded in any order.
_REDUCIBLE = {isa.ALU_MIN: np.minimum, isa.ALU_MAX: np.maximum, isa.ALU_ADD: np.add,
              isa.ALU_MUL: np.multiply}


def _wrap(values: np.ndarray, dtype) -> np.ndarray:
    # Upstream computes in int32 then stores ACC_WIDTH bits; both are truncations of the
    # int64 result, so one cast suffices.
    return values.astype(dtype)


def _apply(m, f, dst, src, imm) -> None:
    a = m.acc[dst].astype(np.int64)
    b = imm if src is None else m.acc[src].astype(np.int64)
    m.acc[dst] = _wrap(f(a, b), m.acc_dtype)


def waves(dst: np.ndarray, src: np.ndarray | None) -> list[int]:
    """Start offsets of consecutive hazard-free waves (greedy, in execution order)."""
    starts, written = [0], set()
    srcs = src.tolist() if src is not None else None
    for n, d in enumerate(dst.tolist()):
        if d in written or (srcs is not None and srcs[n] in written):
            starts.append(n)
            written = set()
        written.add(d)
    return starts


def _single_wave(dst: np.ndarray, src: np.ndarray | None, depth: int) -> bool:
    if not distinct(dst, depth):
        return False
    if src is None:
        return True
    # A source row written by an earlier iteration would be read stale by a single gather.
    writer = np.full(depth, dst.size, dtype=np.int64)
    writer[dst] = np.arange(dst.size)
    return not bool(np.any(writer[src] < np.arange(dst.size)))


def alu(m, step) -> None:
    bgn, end, iter_out, iter_in, dfo, dfi, sfo, sfi, opcode, use_imm, imm = step.args
    n_uops = end - bgn
    if iter_out * iter_in * n_uops == 0:
        return
    depth = m.env.ACC_DEPTH
    dst = loop_indices(m.uop_dst[bgn:end], iter_out, iter_in, dfo, dfi)
    src = loop_indices(m.uop_src[bgn:end], iter_out, iter_in, sfo, sfi)
    check_range(dst, depth, "ALU destination", iter_in, n_uops, bgn)
    # Upstream forms the source pointer (and checks it) even when the immediate is used.
    check_range(src, depth, "ALU source", iter_in, n_uops, bgn)
    f = ALU_FUNCS[opcode]
    operand = None if use_imm else src
    if _single_wave(dst, operand, depth):
        _apply(m, f, dst, operand, imm)
        return
    if operand is not None and opcode in _REDUCIBLE and not np.isin(src, dst).any():
        rows, folded = group_sum(dst, m.acc[src].astype(np.int64), _REDUCIBLE[opcode])
        m.acc[rows] = _wrap(f(m.acc[rows].astype(np.int64), folded), m.acc_dtype)
        return
    starts = waves(dst, operand) + [dst.size]
    for lo, hi in zip(starts[:-1], starts[1:]):
        _apply(m, f, dst[lo:hi], None if operand is None else operand[lo:hi], imm)
