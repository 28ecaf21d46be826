"""GEMM (vta-spec §3.4), one instruction as a few whole-array numpy operations.

The products of an instruction depend only on INP and WGT, never on ACC, and additions modulo
2^ACC_WIDTH commute, so the sequential (y, x, uop) order of upstream needs no emulation: every
destination row receives the sum of its (input row . weight row) products, added once.

The index work depends only on the instruction and the uops it reads, never on data, so it is
done once into a *plan* and cached: a program re-runs the same few GEMMs for every tile, and a
network re-runs the same layers. The usual plan (``_Im2col``) groups the destinations by the
sequence of weight rows they see (in a convolution, one group per output-channel block, each
destination seeing the same kernel taps): a group is one matmul of the gathered input rows
(im2col) by its stacked weights, whose K dimension sums the taps, so repeated destinations need
no scatter. Products are exact integers in float32/float64 whenever their partial sums fit the
mantissa; otherwise int64 arithmetic wraps modulo 2^64 and keeps the low ACC_WIDTH bits exact.
"""
from __future__ import annotations

import numpy as np

from ._index import PlanCache, check_range, distinct, group_sum, loop_indices, rows_or_slice

_PLANS = PlanCache()
_CHUNK_VALUES = 1 << 22   # gathered values per chunk of a generic GEMM (32 MiB of float64)


def _exact_dtype(env, terms: int):
    """float32/float64 when every partial sum of ``terms`` products is an exact integer, else None."""
    bound = max(terms, 1) << (env.INP_WIDTH - 1 + env.WGT_WIDTH - 1)
    if bound <= 1 << 24:
        return np.float32
    if bound <= 1 << 53:
        return np.float64
    return None


class _Reset:
    __slots__ = ("rows",)

    def __init__(self, rows):
        self.rows = rows

    def run(self, m) -> None:
        m.acc[self.rows] = 0


def _accumulate(m, rows, values: np.ndarray, fits_int32: bool) -> None:
    """acc[rows] += values modulo 2^ACC_WIDTH; ``rows`` are distinct."""
    if fits_int32 and m.acc_dtype == np.int32:
        # int32 addition wraps modulo 2^32, which is ACC_WIDTH 32's truncation.
        m.acc[rows] += values.astype(np.int32)
    else:
        m.acc[rows] = (m.acc[rows].astype(np.int64) + values.astype(np.int64)).astype(m.acc_dtype)


class _Im2col:
    """Destinations in C groups of Dc rows; group c sees the same T weight rows ``wgt[c]``,
    and destination (c, d) the input rows ``src[c, d, :]``. One batched matmul
    (C, Dc*BATCH, T*BLOCK_IN) @ (C, T*BLOCK_IN, BLOCK_OUT) gives every sum."""

    __slots__ = ("rows", "src", "wgt", "dtype", "fits_int32", "shape")

    def __init__(self, rows, src, wgt, dtype, fits_int32):
        self.rows, self.src, self.wgt = rows_or_slice(rows), src, wgt
        self.dtype, self.fits_int32 = dtype, fits_int32

    def run(self, m) -> None:
        env = m.env
        c, dc, t = self.src.shape
        b, i, o = env.BATCH, env.BLOCK_IN, env.BLOCK_OUT
        a = m.inp.take(self.src.ravel(), axis=0)
        if b == 1:
            a = a.reshape(c, dc, t * i)
        else:
            a = a.reshape(c, dc, t, b, i).transpose(0, 1, 3, 2, 4).reshape(c, dc * b, t * i)
        w = m.wgt.take(self.wgt.ravel(), axis=0).reshape(c, t, o, i).transpose(0, 1, 3, 2).reshape(c, t * i, o)
        if self.dtype is None:
            out = np.matmul(a.astype(np.int64), w.astype(np.int64))
        else:
            out = np.matmul(a.astype(self.dtype), w.astype(self.dtype))
        _accumulate(m, self.rows, out.reshape(c * dc, b * o), self.fits_int32)


class _Generic:
    """Any index pattern: per-iteration products, repeated destinations summed first."""

    __slots__ = ("dst", "src", "wgt", "unique_dst")

    def __init__(self, dst, src, wgt, unique_dst):
        self.dst, self.src, self.wgt, self.unique_dst = dst, src, wgt, unique_dst

    def run(self, m) -> None:
        # In chunks: the gathered weight rows of one iteration are BLOCK_OUT x BLOCK_IN values,
        # and additions modulo 2^ACC_WIDTH commute, so the chunking changes nothing but memory.
        env = m.env
        chunk = max(1, _CHUNK_VALUES // (env.BLOCK_OUT * env.BLOCK_IN + env.BATCH * (env.BLOCK_IN + env.BLOCK_OUT)))
        for lo in range(0, self.dst.size, chunk):
            hi = min(lo + chunk, self.dst.size)
            prods = _products(m, self.src[lo:hi], self.wgt[lo:hi], hi - lo)
            dst = self.dst[lo:hi]
            if not self.unique_dst:
                dst, prods = group_sum(dst, prods)
            m.acc[dst] = (m.acc[dst].astype(np.int64) + prods.astype(np.int64)).astype(m.acc_dtype)


def _products(m, src, wgt, n):
    """(n, BATCH*BLOCK_OUT) dot products INP[src[k]] . WGT[wgt[k]]^T, float64 or int64."""
    env = m.env
    if _exact_dtype(env, n * env.BLOCK_IN) is None:  # int64 wraps modulo 2^64: the low bits stay exact
        inp = m.inp[src].reshape(n, env.BATCH, env.BLOCK_IN).astype(np.int64)
        w = m.wgt[wgt].reshape(n, env.BLOCK_OUT, env.BLOCK_IN).astype(np.int64)
        return np.einsum("nbk,nok->nbo", inp, w).reshape(n, -1)
    inp = m.inp[src].reshape(n, env.BATCH, env.BLOCK_IN).astype(np.float64)
    w = m.wgt[wgt].reshape(n, env.BLOCK_OUT, env.BLOCK_IN).astype(np.float64)
    return np.matmul(inp, w.transpose(0, 2, 1)).reshape(n, -1)


def _im2col_plan(env, dst, src, wgt):
    """An ``_Im2col`` when every destination gets the same number of products and the groups
    sharing a weight sequence are equally large; None otherwise."""
    n = dst.size
    order = np.lexsort((src, wgt, dst))     # by destination, then weight: a canonical tap order
    d_sorted = dst[order]
    starts = np.flatnonzero(np.r_[True, d_sorted[1:] != d_sorted[:-1]])
    n_dst = starts.size
    taps = n // n_dst
    if taps * n_dst != n or not np.all(np.diff(np.r_[starts, n]) == taps):
        return None
    rows = d_sorted[starts]
    w_rows = wgt[order].reshape(n_dst, taps)
    s_rows = src[order].reshape(n_dst, taps)
    if n_dst == 1 or bool(np.all(w_rows == w_rows[0])):
        groups = np.zeros(n_dst, dtype=np.int64)
        n_groups = 1
    else:
        _, first, groups = np.unique(w_rows, axis=0, return_index=True, return_inverse=True)
        groups = groups.reshape(-1)
        n_groups = first.size
        # Number the groups by their first destination, so that destinations stay ascending.
        rank = np.empty(n_groups, dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(n_groups)
        groups = rank[groups]
    sizes = np.bincount(groups, minlength=n_groups)
    if not np.all(sizes == sizes[0]):
        return None
    per = int(sizes[0])
    by_group = np.argsort(groups, kind="stable")
    first_of_group = by_group.reshape(n_groups, per)[:, 0]
    terms = taps * env.BLOCK_IN
    dtype = _exact_dtype(env, terms)
    fits_int32 = dtype is not None and (terms << (env.INP_WIDTH - 1 + env.WGT_WIDTH - 1)) < 1 << 31
    return _Im2col(rows[by_group], s_rows[by_group].reshape(n_groups, per, taps),
                   w_rows[first_of_group], dtype, fits_int32)


def _plan(m, args):
    reset, bgn, end, iter_out, iter_in, dfo, dfi, sfo, sfi, wfo, wfi = args
    env = m.env
    n_uops = end - bgn
    dst = loop_indices(m.uop_dst[bgn:end], iter_out, iter_in, dfo, dfi)
    check_range(dst, env.ACC_DEPTH, "accumulator", iter_in, n_uops, bgn)
    if reset:
        return _Reset(rows_or_slice(dst))
    src = loop_indices(m.uop_src[bgn:end], iter_out, iter_in, sfo, sfi)
    wgt = loop_indices(m.uop_wgt[bgn:end], iter_out, iter_in, wfo, wfi)
    check_range(src, env.INP_DEPTH, "input", iter_in, n_uops, bgn)
    check_range(wgt, env.WGT_DEPTH, "weight", iter_in, n_uops, bgn)
    plan = _im2col_plan(env, dst, src, wgt)
    if plan is None:
        plan = _Generic(dst, src, wgt, distinct(dst, env.ACC_DEPTH))
    return plan


def gemm(m, step) -> None:
    args = step.args
    reset, bgn, end, iter_out, iter_in = args[:5]
    if iter_out * iter_in * (end - bgn) == 0:
        return
    key = (m.geometry, args, m.uop_dst[bgn:end].tobytes())
    if not reset:
        key += (m.uop_src[bgn:end].tobytes(), m.uop_wgt[bgn:end].tobytes())
    plan = _PLANS.get(key)
    if plan is None:
        plan = _plan(m, args)    # raises for out-of-range indices: nothing is cached then
        _PLANS.put(key, plan, iter_out * iter_in * (end - bgn))
    plan.run(m)
