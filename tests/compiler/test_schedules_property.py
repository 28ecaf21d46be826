"""Property: random tile factors, loop orders and virtual-thread counts for GEMM and conv2d
either build and compute the numpy answer, or raise CompileError — never a wrong answer, a
crash or a hang."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import compiler
import hwconfigs
import simulator
from compiler import CompileError, te
from examples import convolution_opt

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _gemm(env, n_in, n_out, i_block, o_block, nthreads, swap):
    data_shape = (1, n_in, env.BATCH, env.BLOCK_IN)
    weight_shape = (n_out, n_in, env.BLOCK_OUT, env.BLOCK_IN)
    out_shape = (1, n_out, env.BATCH, env.BLOCK_OUT)
    ic = te.reduce_axis((0, n_in), name="ic")
    k = te.reduce_axis((0, env.BLOCK_IN), name="k")
    data = te.placeholder(data_shape, name="data", dtype=env.inp_dtype)
    weight = te.placeholder(weight_shape, name="weight", dtype=env.wgt_dtype)
    gemm = te.compute(out_shape, lambda bo, co, bi, ci: te.sum(
        data[bo, ic, bi, k].astype(env.acc_dtype) * weight[co, ic, ci, k].astype(env.acc_dtype), axis=[ic, k]),
        name="gemm")
    shr = te.compute(out_shape, lambda *i: gemm(*i) >> 4, name="shr")
    lo = te.compute(out_shape, lambda *i: te.max(shr(*i), -128), name="clip_lo")
    clip = te.compute(out_shape, lambda *i: te.min(lo(*i), 127), name="clip_hi")
    res = te.compute(out_shape, lambda *i: clip(*i).astype(env.inp_dtype), name="res")
    s = te.create_schedule(res.op)
    b, oc, bt, ot = s[res].op.axis
    oc_out, oc_inn = s[res].split(oc, factor=o_block)
    if nthreads > 1:
        _, tx = s[res].split(oc_out, nparts=nthreads)
        s[res].bind(tx, te.thread_axis("cthread"))
        attach = _
    else:
        attach = oc_out
    for t in (gemm, shr, lo, clip):
        s[t].compute_at(s[res], attach)
        s[t].set_scope(env.acc_scope)
    bi, oci, btn, otn = s[gemm].op.axis
    ic_out, ic_inn = s[gemm].split(ic, factor=i_block)
    order = [ic_out, bi, oci, ic_inn] if not swap else [ic_out, bi, ic_inn, oci]
    s[gemm].reorder(*order, btn, otn, k)
    dbuf = s.cache_read(data, env.inp_scope, [gemm])
    wbuf = s.cache_read(weight, env.wgt_scope, [gemm])
    s[dbuf].compute_at(s[gemm], ic_out)
    s[wbuf].compute_at(s[gemm], ic_out)
    s[dbuf].pragma(s[dbuf].op.axis[0], env.dma_copy)
    s[wbuf].pragma(s[wbuf].op.axis[0], env.dma_copy)
    s[res].pragma(s[res].op.axis[2], env.dma_copy)
    s[gemm].tensorize(btn, env.gemm)
    s[shr].pragma(s[shr].op.axis[0], env.alu)
    s[lo].pragma(s[lo].op.axis[0], env.alu)
    s[clip].pragma(s[clip].op.axis[0], env.alu)
    return s, data, weight, res


@SETTINGS
@given(n_in=st.sampled_from([4, 8, 16]), n_out=st.sampled_from([4, 8, 16]), i_block=st.sampled_from([1, 2, 3, 4, 8]),
       o_block=st.sampled_from([1, 2, 4, 6, 8]), nthreads=st.sampled_from([1, 2, 3]), swap=st.booleans(),
       seed=st.integers(0, 1000))
def test_random_gemm_schedules(n_in, n_out, i_block, o_block, nthreads, swap, seed):
    env = hwconfigs.get_env()
    try:
        s, data, weight, res = _gemm(env, n_in, n_out, i_block, o_block, nthreads, swap)
        mod = compiler.build(s, [data, weight, res], env=env)
    except CompileError:
        return
    rng = np.random.default_rng(seed)
    d = rng.integers(-128, 128, size=data.shape).astype(np.int8)
    w = rng.integers(-128, 128, size=weight.shape).astype(np.int8)
    out = np.zeros(res.shape, np.int8)
    simulator.run(mod, d, w, out)
    acc = np.einsum("aibk,oipk->aobp", d.astype(np.int32), w.astype(np.int32))
    np.testing.assert_equal(out, np.clip(acc >> 4, -128, 127).astype(np.int8))


@SETTINGS
@given(h_block=st.sampled_from([1, 2, 4, 8, 3]), w_block=st.sampled_from([2, 4, 8, 5]),
       oc_block=st.sampled_from([16, 32, 64, 48]), ic_block=st.sampled_from([16, 32, 64]),
       v_threads=st.sampled_from([1, 2]), seed=st.integers(0, 1000))
def test_random_conv_schedules(h_block, w_block, oc_block, ic_block, v_threads, seed):
    env = hwconfigs.get_env()
    try:
        t = convolution_opt.declare(env, height=8, width=8, in_channels=64, out_channels=64)
        s = convolution_opt.schedule(env, t, oc_block=oc_block, ic_block=ic_block, h_block=h_block,
                                     w_block=w_block, v_threads=v_threads)
        mod = compiler.build(s, [t["data"], t["kernel"], t["res"]], env=env)
    except CompileError:
        return
    _, out, ref = convolution_opt.run(env, mod, t, seed=seed)
    np.testing.assert_equal(out, ref)
