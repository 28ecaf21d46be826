"""GEMM (vta-spec §3.4), one instruction as a few whole-array numpy operations.

The products of an instruction depend only on INP and WGT, never on ACC, and additions modulo
2^ACC_WIDTH commute, so the sequential (y, x, uop) order of upstream needs no emulation:
compute all products in one batched matmul and scatter-add them, summing repeated
destinations (the taps of a convolution) first.
"""
from __future__ import annotations

import numpy as np

from ._index import check_range, distinct, group_sum, loop_indices


def _float64_exact(env, n: int) -> bool:
    """True when every partial sum of ``n`` products fits float64's 53-bit mantissa, so BLAS
    products and float reductions are exact integers."""
    bound = env.BLOCK_IN << (env.INP_WIDTH - 1 + env.WGT_WIDTH - 1)
    return bound * max(n, 1) <= 1 << 53


def _products(m, src, wgt, n):
    """(n, BATCH*BLOCK_OUT) dot products INP[src[k]] . WGT[wgt[k]]^T, float64 or int64."""
    env = m.env
    if not _float64_exact(env, n):  # int64 wraps modulo 2^64: the low ACC_WIDTH bits stay exact
        inp = m.inp[src].reshape(n, env.BATCH, env.BLOCK_IN).astype(np.int64)
        w = m.wgt[wgt].reshape(n, env.BLOCK_OUT, env.BLOCK_IN).astype(np.int64)
        return np.einsum("nbk,nok->nbo", inp, w).reshape(n, -1)
    rows_i, inv_i = np.unique(src, return_inverse=True)
    rows_w, inv_w = np.unique(wgt, return_inverse=True)
    if rows_i.size * rows_w.size <= 2 * n:
        # Convolutions reuse few input and weight rows many times: one small matmul of every
        # (input, weight) pair, then pick the pairs the iterations use.
        a = m.inp[rows_i].reshape(-1, env.BLOCK_IN).astype(np.float64)
        b = m.wgt[rows_w].reshape(-1, env.BLOCK_IN).astype(np.float64)
        pairs = (a @ b.T).reshape(rows_i.size, env.BATCH, rows_w.size, env.BLOCK_OUT)
        pairs = pairs.transpose(0, 2, 1, 3).reshape(rows_i.size * rows_w.size, -1)
        return np.take(pairs, inv_i.ravel() * rows_w.size + inv_w.ravel(), axis=0)
    inp = m.inp[src].reshape(n, env.BATCH, env.BLOCK_IN).astype(np.float64)
    w = m.wgt[wgt].reshape(n, env.BLOCK_OUT, env.BLOCK_IN).astype(np.float64)
    return np.matmul(inp, w.transpose(0, 2, 1)).reshape(n, -1)


def gemm(m, step) -> None:
    reset, bgn, end, iter_out, iter_in, dfo, dfi, sfo, sfi, wfo, wfi = step.args
    n_uops = end - bgn
    if iter_out * iter_in * n_uops == 0:
        return
    env = m.env
    dst = loop_indices(m.uop_dst[bgn:end], iter_out, iter_in, dfo, dfi)
    check_range(dst, env.ACC_DEPTH, "accumulator", iter_in, n_uops, bgn)
    if reset:
        m.acc[dst] = 0
        return
    src = loop_indices(m.uop_src[bgn:end], iter_out, iter_in, sfo, sfi)
    wgt = loop_indices(m.uop_wgt[bgn:end], iter_out, iter_in, wfo, wfi)
    check_range(src, env.INP_DEPTH, "input", iter_in, n_uops, bgn)
    check_range(wgt, env.WGT_DEPTH, "weight", iter_in, n_uops, bgn)
    prods = _products(m, src, wgt, dst.size)
    if not distinct(dst, env.ACC_DEPTH):
        dst, prods = group_sum(dst, prods)
    m.acc[dst] = (m.acc[dst].astype(np.int64) + prods.astype(np.int64)).astype(m.acc_dtype)
