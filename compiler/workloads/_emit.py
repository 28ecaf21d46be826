"""The runtime's instruction-stream bookkeeping (``compiler._runtime``: InsnQueue token
insertion, uop-kernel residency) as one compiled loop over a small op program.

``_streams`` turns a template's host loop nest into an op program (loops, DMA calls, GEMM/ALU
kernel pushes, token pushes/pops); :func:`emit` runs it and writes the instruction stream as
int64 columns, exactly as executing the lowered host code against the command queue would,
except ``dram_base`` (left 0: no counter, cycle or buffer footprint depends on it).
"""
from __future__ import annotations

import numpy as np

try:   # numba compiles the loop; without it the same code runs (slowly) as Python
    from numba import njit
except ImportError:   # pragma: no cover
    def njit(*args, **kwargs):
        if args and callable(args[0]):
            return args[0]
        return lambda f: f

# Column order of the stream table: simulator._decode.COLUMNS (tests check they agree).
COLUMNS = ("opcode", "pop_prev", "pop_next", "push_prev", "push_next", "memory_type", "sram_base",
           "dram_base", "y_size", "x_size", "x_stride", "y_pad_0", "y_pad_1", "x_pad_0", "x_pad_1",
           "reset_reg", "uop_bgn", "uop_end", "iter_out", "iter_in", "dst_factor_out", "dst_factor_in",
           "src_factor_out", "src_factor_in", "wgt_factor_out", "wgt_factor_in", "alu_opcode", "use_imm", "imm")
NCOL = len(COLUMNS)

# op kinds (one row of the op program each)
OP_LOOP, OP_END, OP_DMA, OP_GEMM, OP_ALU, OP_PUSH, OP_POP, OP_SYNC = range(8)
OP_WIDTH = 12
# OP_LOOP: extent, slot, body independent of the index (1/0) | OP_END: slot | OP_DMA: opcode, memory_type, stage, x_size, y_size, x_stride,
# sram affine row, pad row (-1: none), footprint buffer (0 inp, 1 wgt, 2 acc, 3 out) | OP_GEMM/OP_ALU: site, thread slot (-1: no signature) |
# OP_PUSH/OP_POP: from stage, to stage
# kernel table (site * nsig + signature): uops, reset, nloops, ext0, dst0, src0, wgt0, ext1, dst1,
# src1, wgt1, alu_opcode, use_imm, imm
K_WIDTH = 14
# pad table: row affine, col affine, rows, cols, height, width, row step, col step, pad
PAD_WIDTH = 9

# status codes
OK, FAIL_WRAP, FAIL_PENDING, FAIL_UOP_DEPTH, FAIL_OVERFLOW = 0, 1, 2, 3, 4

LOAD, STORE, GEMM, FINISH, ALU = 0, 1, 2, 3, 4
MEM_UOP, MEM_INP = 0, 2
NO_STAGE, LOAD_STAGE, COMPUTE_STAGE, STORE_STAGE = 0, 1, 2, 3
MAX_INSNS = (1 << 25) // 16 - 6   # the instruction staging buffer (upstream VTA_MAX_XFER)



@njit(cache=True, inline="always")
def _nop(out, n, st, stage, push_prev, push_next, pop_prev, pop_next):
    out[n, :] = 0
    out[n, 0] = STORE if stage == STORE_STAGE else LOAD
    out[n, 5] = MEM_INP if stage == LOAD_STAGE else MEM_UOP
    out[n, 1] = pop_prev
    out[n, 2] = pop_next
    out[n, 3] = push_prev
    out[n, 4] = push_next
    st[0] = STORE_STAGE if stage == STORE_STAGE else NO_STAGE   # a LOAD NOP belongs to no stage
    return n + 1


@njit(cache=True, inline="always")
def _new(out, n, st, stage):
    """Start an instruction for ``stage``, taking over its pending pops (InsnQueue.create)."""
    out[n, :] = 0
    out[n, 1] = st[4 + stage]
    out[n, 2] = st[8 + stage]
    st[4 + stage] = 0
    st[8 + stage] = 0


@njit(cache=True, inline="always")
def _commit(out, n, st, stage):
    if st[4 + stage] or st[8 + stage]:
        n = _nop(out, n, st, stage, 0, 0, st[4 + stage], st[8 + stage])
        st[4 + stage] = 0
        st[8 + stage] = 0
    return n


@njit(cache=True, inline="always")
def _dep_push(out, n, st, f, t):
    n = _commit(out, n, st, f)
    forward = f < t
    if n > 0 and st[0] == f:
        if forward and out[n - 1, 4] == 0:
            out[n - 1, 4] = 1
            return n
        if not forward and out[n - 1, 3] == 0:
            out[n - 1, 3] = 1
            return n
    return _nop(out, n, st, f, 0 if forward else 1, 1 if forward else 0, 0, 0)


@njit(cache=True, inline="always")
def _dep_pop(out, n, st, f, t):
    base = 4 if f < t else 8
    if st[base + t]:
        n = _commit(out, n, st, t)
    st[base + t] = 1
    return n


@njit(cache=True, inline="always")
def _pad_values(aff, pads, p, idx, slot, value):
    """(y_pad_0, y_pad_1, x_pad_0, x_pad_1) of pad row ``p`` with loop ``slot`` at ``value``."""
    ra, ca = pads[p, 0], pads[p, 1]
    rv = aff[ra, 0] + aff[ra, 1 + slot] * value
    cv = aff[ca, 0] + aff[ca, 1 + slot] * value
    for j in range(aff.shape[1] - 1):
        if j != slot:
            rv += aff[ra, 1 + j] * idx[j]
            cv += aff[ca, 1 + j] * idx[j]
    r0 = rv * pads[p, 6] - pads[p, 8]
    c0 = cv * pads[p, 7] - pads[p, 8]
    return (max(-r0, 0), max(r0 + pads[p, 2] - pads[p, 4], 0), max(-c0, 0), max(c0 + pads[p, 3] - pads[p, 5], 0))


@njit(cache=True)
def emit(ops, aff, pads, kernels, nsig, uop_depth, nslots, out, tops, repeats):
    """Run the op program into the rows of ``out`` (one instruction per row, the COLUMNS in
    order, at least ``prepare(ops, ...)`` rows; its contents need not be zero); returns
    (status, n, number of repeats). ``tops`` (inp, wgt, acc, out, uop) receives the highest
    SRAM index + 1 each LOAD/STORE and uop load touches. ``repeats`` receives (row, period,
    count) for each run of copied iterations: rows [row, row + period * count) repeat rows
    [row - period, row) (a hint for the consumer; the rows hold the whole stream)."""
    # st: last stage, -, -, -, pending_prev[4], pending_next[4]
    st = np.zeros(12, dtype=np.int64)
    idx = np.zeros(max(nslots, 1), dtype=np.int64)
    starts = np.zeros(64, dtype=np.int64)
    row1 = np.zeros(64, dtype=np.int64)
    row2 = np.zeros(64, dtype=np.int64)
    snap = np.zeros((64, 12), dtype=np.int64)
    nrep = 0
    depth = 0
    nker = kernels.shape[0]
    kbegin = np.zeros(nker, dtype=np.int64)
    kend = np.zeros(nker, dtype=np.int64)
    naff = aff.shape[1] - 1
    sram_end = 0
    n = 0
    pc = 0
    nops = ops.shape[0]
    while pc < nops:
        kind = ops[pc, 0]
        if kind == OP_LOOP:
            idx[ops[pc, 2]] = 0
            starts[depth] = pc
            depth += 1
        elif kind == OP_END:
            begin = starts[depth - 1]
            slot = ops[begin, 2]
            extent = ops[begin, 1]
            i = idx[slot] + 1
            idx[slot] = i
            if i < extent:
                # A body that does not read its loop index emits the same rows every iteration
                # once the runtime state repeats: iterations 1 and 2 emitted equal rows from
                # equal states, so the remaining ones are copies of iteration 2.
                if i == 1:
                    row1[depth] = n
                elif i == 2:
                    row2[depth] = n
                    snap[depth, :] = st
                elif i == 3 and ops[begin, 3] != 0:
                    a, b = row1[depth], row2[depth]
                    size = b - a
                    same = size == n - b and size > 0
                    if same:
                        for j in range(12):
                            if snap[depth, j] != st[j]:
                                same = False
                                break
                    if same:
                        for r in range(size):
                            for col in range(29):
                                if out[a + r, col] != out[b + r, col]:
                                    same = False
                                    break
                            if not same:
                                break
                    last = extent
                    if same and ops[begin, 3] == 2:
                        # the body reads the index only through padding: copy while the pads
                        # stay those of iteration 2 (they change only at the borders)
                        for pr in range(pads.shape[0]):
                            if aff[pads[pr, 0], 1 + slot] == 0 and aff[pads[pr, 1], 1 + slot] == 0:
                                continue
                            ref = _pad_values(aff, pads, pr, idx, slot, 2)
                            for j in range(3, last):
                                v = _pad_values(aff, pads, pr, idx, slot, j)
                                if v[0] != ref[0] or v[1] != ref[1] or v[2] != ref[2] or v[3] != ref[3]:
                                    last = j
                                    break
                    if same:
                        if last > 3 and nrep < repeats.shape[0]:
                            repeats[nrep, 0] = n
                            repeats[nrep, 1] = size
                            repeats[nrep, 2] = last - 3
                            nrep += 1
                        for rep in range(last - 3):
                            out[n:n + size, :] = out[b:b + size, :]
                            n += size
                        if last == extent:
                            depth -= 1
                            pc += 1
                            continue
                        idx[slot] = last
                pc = begin + 1
                continue
            depth -= 1
        elif kind == OP_DMA:
            stage = ops[pc, 3]
            _new(out, n, st, stage)
            out[n, 0] = ops[pc, 1]
            mtype = ops[pc, 2]
            out[n, 5] = mtype
            r = ops[pc, 7]
            sram = aff[r, 0]
            for j in range(naff):
                sram += aff[r, 1 + j] * idx[j]
            out[n, 6] = sram
            x, y = ops[pc, 4], ops[pc, 5]
            out[n, 10] = ops[pc, 6]
            p = ops[pc, 8]
            ytot = y
            xtot = x
            if p >= 0:
                ra, ca = pads[p, 0], pads[p, 1]
                rv = aff[ra, 0]
                cv = aff[ca, 0]
                for j in range(naff):
                    rv += aff[ra, 1 + j] * idx[j]
                    cv += aff[ca, 1 + j] * idx[j]
                r0 = rv * pads[p, 6] - pads[p, 8]
                c0 = cv * pads[p, 7] - pads[p, 8]
                yp0 = max(-r0, 0)
                yp1 = max(r0 + pads[p, 2] - pads[p, 4], 0)
                xp0 = max(-c0, 0)
                xp1 = max(c0 + pads[p, 3] - pads[p, 5], 0)
                y = pads[p, 2] - yp0 - yp1
                x = pads[p, 3] - xp0 - xp1
                out[n, 11] = yp0
                out[n, 12] = yp1
                out[n, 13] = xp0
                out[n, 14] = xp1
                ytot = pads[p, 2]
                xtot = pads[p, 3]
            out[n, 8] = y
            out[n, 9] = x
            if x != 0 and y != 0:
                b = ops[pc, 9]
                end = sram + (xtot * ytot if ops[pc, 1] == LOAD else x * y)
                if end > tops[b]:
                    tops[b] = end
            st[0] = stage if (x != 0 or ops[pc, 1] == STORE) else NO_STAGE
            n += 1
        elif kind == OP_GEMM or kind == OP_ALU:
            sig = 0
            if ops[pc, 2] >= 0:
                sig = idx[ops[pc, 2]]
            k = ops[pc, 1] * nsig + sig
            count = kernels[k, 0]
            if kbegin[k] == kend[k]:   # not resident: place it and load its uops
                if count > uop_depth:
                    return FAIL_UOP_DEPTH, n, nrep
                if sram_end + count > uop_depth:
                    return FAIL_WRAP, n, nrep
                kbegin[k] = sram_end
                sram_end += count
                kend[k] = sram_end
                if sram_end > tops[4]:
                    tops[4] = sram_end
                _new(out, n, st, COMPUTE_STAGE)
                out[n, 0] = LOAD
                out[n, 5] = MEM_UOP
                out[n, 6] = kbegin[k]
                out[n, 8] = 1
                out[n, 9] = count
                out[n, 10] = count
                n += 1
            _new(out, n, st, COMPUTE_STAGE)
            out[n, 15] = kernels[k, 1]
            out[n, 16] = kbegin[k]
            out[n, 17] = kend[k]
            out[n, 18] = 1
            out[n, 19] = 1
            nl = kernels[k, 2]
            if kind == OP_GEMM:
                out[n, 0] = GEMM
                if nl >= 1:
                    out[n, 18] = kernels[k, 3]
                    out[n, 20] = kernels[k, 4]
                    out[n, 22] = kernels[k, 5]
                    out[n, 24] = kernels[k, 6]
                if nl >= 2:
                    out[n, 19] = kernels[k, 7]
                    out[n, 21] = kernels[k, 8]
                    out[n, 23] = kernels[k, 9]
                    out[n, 25] = kernels[k, 10]
            else:
                out[n, 0] = ALU
                out[n, 26] = kernels[k, 11]
                out[n, 27] = kernels[k, 12]
                out[n, 28] = kernels[k, 13]
                if nl == 1:
                    out[n, 19] = kernels[k, 3]
                    out[n, 21] = kernels[k, 4]
                    out[n, 23] = kernels[k, 5]
                elif nl == 2:
                    out[n, 18] = kernels[k, 3]
                    out[n, 20] = kernels[k, 4]
                    out[n, 22] = kernels[k, 5]
                    out[n, 19] = kernels[k, 7]
                    out[n, 21] = kernels[k, 8]
                    out[n, 23] = kernels[k, 9]
            st[0] = COMPUTE_STAGE
            n += 1
        elif kind == OP_PUSH:
            n = _dep_push(out, n, st, ops[pc, 1], ops[pc, 2])
        elif kind == OP_POP:
            n = _dep_pop(out, n, st, ops[pc, 1], ops[pc, 2])
        elif kind == OP_SYNC:
            n = _dep_push(out, n, st, STORE_STAGE, COMPUTE_STAGE)
            n = _dep_push(out, n, st, LOAD_STAGE, COMPUTE_STAGE)
            n = _dep_pop(out, n, st, STORE_STAGE, COMPUTE_STAGE)
            n = _dep_pop(out, n, st, LOAD_STAGE, COMPUTE_STAGE)
            n = _commit(out, n, st, COMPUTE_STAGE)
            _new(out, n, st, COMPUTE_STAGE)
            out[n, 0] = FINISH
            st[0] = NO_STAGE
            n += 1
            for s in range(1, 4):
                if st[4 + s] or st[8 + s]:
                    return FAIL_PENDING, n, nrep
            return OK, n, nrep   # later pops belong to the next stream, never flushed
        if n > MAX_INSNS:
            return FAIL_OVERFLOW, n, nrep
        pc += 1
    return OK, n, nrep


# Most instructions one op can emit (a GEMM/ALU with its uop load; a push or pop committing a
# pending pop on a NOP first); the capacity of the output rows.
_EMITS = np.array([0, 0, 1, 2, 2, 2, 1, 8], dtype=np.int64)


@njit(cache=True)
def _prepare(ops, aff, pads, emits):
    """Flag each OP_LOOP by how its body reads its index: 1 not at all (iterations can be
    copied), 2 only through padding (copied while the pads repeat), 0 otherwise (an SRAM
    address or a kernel signature); returns the most instructions the program can emit."""
    stack = np.zeros(64, dtype=np.int64)
    mults = np.ones(65, dtype=np.int64)
    depth = 0
    total = 1
    for pc in range(ops.shape[0]):
        kind = ops[pc, 0]
        if kind == OP_LOOP:
            ops[pc, 3] = 1
            stack[depth] = pc
            mults[depth + 1] = mults[depth] * ops[pc, 1]
            depth += 1
            continue
        if kind == OP_END:
            depth -= 1
            continue
        total += mults[depth] * emits[kind]
        for d in range(depth):
            loop = stack[d]
            slot = ops[loop, 2]
            if kind == OP_DMA:
                if aff[ops[pc, 7], 1 + slot] != 0:
                    ops[loop, 3] = 0
                elif ops[pc, 8] >= 0 and ops[loop, 3] == 1:
                    p = ops[pc, 8]
                    if aff[pads[p, 0], 1 + slot] != 0 or aff[pads[p, 1], 1 + slot] != 0:
                        ops[loop, 3] = 2
            elif (kind == OP_GEMM or kind == OP_ALU) and ops[pc, 2] == slot:
                ops[loop, 3] = 0
    return total


def prepare(ops: np.ndarray, aff: np.ndarray, pads: np.ndarray) -> int:
    """Flag the loops whose iterations may be copied (in place, see ``_prepare``) and return
    the capacity the output needs."""
    return int(_prepare(ops, aff, pads, _EMITS))
