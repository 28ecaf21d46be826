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

from ._errors import SimulationError
from ._index import PlanCache, check_range, distinct, group_sum, loop_indices, rows_or_slice


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


def waves(dst: np.ndarray, src: np.ndarray | None, limit: int | None = None) -> list[int]:
    """Start offsets of consecutive hazard-free waves (greedy, in execution order); raises
    SimulationError as soon as there are more than ``limit`` (each wave is one numpy pass)."""
    starts, written = [0], set()
    srcs = src.tolist() if src is not None else None
    for n, d in enumerate(dst.tolist()):
        if d in written or (srcs is not None and srcs[n] in written):
            starts.append(n)
            written = set()
            if limit is not None and len(starts) > limit:
                raise SimulationError(
                    f"ALU iterations re-read or re-write accumulator rows written earlier in the instruction "
                    f"more than {limit} times in sequence (after {n} of {dst.size} iterations), beyond the "
                    f"simulator's work limit (WorkLimit.alu_waves)")
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


# Immediate ops that never leave the int32 range: done in place on an int32 accumulator.
_IN_PLACE = {isa.ALU_MIN: np.minimum, isa.ALU_MAX: np.maximum}

_PLANS = PlanCache()


def _plan(m, args):
    """How to run one ALU instruction, from its indices alone: ("wave", dst, operand) for a
    single hazard-free wave (indices as slices where consecutive), ("fold", dst, src) for a
    commutative reduction, ("waves", dst, operand, starts) otherwise."""
    bgn, end, iter_out, iter_in, dfo, dfi, sfo, sfi, opcode, use_imm = args
    n_uops = end - bgn
    depth = m.env.ACC_DEPTH
    dst = loop_indices(m.uop_dst[bgn:end], iter_out, iter_in, dfo, dfi)
    src = loop_indices(m.uop_src[bgn:end], iter_out, iter_in, sfo, sfi)
    check_range(dst, depth, "ALU destination", iter_in, n_uops, bgn)
    # Upstream forms the source pointer (and checks it) even when the immediate is used.
    check_range(src, depth, "ALU source", iter_in, n_uops, bgn)
    operand = None if use_imm else src
    if _single_wave(dst, operand, depth):
        return ("wave", rows_or_slice(dst), None if operand is None else rows_or_slice(operand))
    if operand is not None and opcode in _REDUCIBLE and not np.isin(src, dst).any():
        return ("fold", dst, src)
    return ("waves", dst, operand, waves(dst, operand, m.work_limit.alu_waves) + [dst.size])


def alu(m, step) -> None:
    args = step.args
    bgn, end, iter_out, iter_in = args[:4]
    if iter_out * iter_in * (end - bgn) == 0:
        return
    opcode, imm = args[8], args[10]
    key = (m.geometry, args[:10], m.uop_dst[bgn:end].tobytes(), m.uop_src[bgn:end].tobytes())
    plan = _PLANS.get(key)
    if plan is None:
        plan = _plan(m, args[:10])    # raises for out-of-range indices: nothing is cached then
        _PLANS.put(key, plan, iter_out * iter_in * (end - bgn))
    f = ALU_FUNCS[opcode]
    if plan[0] == "wave":
        dst, operand = plan[1], plan[2]
        if operand is None and m.acc_dtype == np.int32 and isinstance(dst, slice):
            rows = m.acc[dst]
            if opcode in _IN_PLACE:
                _IN_PLACE[opcode](rows, imm, out=rows)
                return
            if opcode == isa.ALU_SHR and imm >= 0:
                np.right_shift(rows, imm & 31, out=rows)
                return
        _apply(m, f, dst, operand, imm)
    elif plan[0] == "fold":
        dst, src = plan[1], plan[2]
        rows, folded = group_sum(dst, m.acc[src].astype(np.int64), _REDUCIBLE[opcode])
        m.acc[rows] = _wrap(f(m.acc[rows].astype(np.int64), folded), m.acc_dtype)
    else:
        dst, operand, starts = plan[1], plan[2], plan[3]
        for lo, hi in zip(starts[:-1], starts[1:]):
            _apply(m, f, dst[lo:hi], None if operand is None else operand[lo:hi], imm)
