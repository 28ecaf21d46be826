"""Refusals: one CompileError type, naming the stage, the axis or buffer and the numbers."""
from __future__ import annotations

import pytest

import compiler
import hwconfigs
from compiler import CompileError, te
from examples import matrix_multiply, matrix_multiply_opt


@pytest.fixture(scope="module")
def env():
    return hwconfigs.get_env()


def _vadd(env, o=16, m=64, op=lambda a, b: a + b, scope=True):
    shape = (o, m, env.BATCH, env.BLOCK_OUT)
    A = te.placeholder(shape, name="A", dtype=env.acc_dtype)
    B = te.placeholder(shape, name="B", dtype=env.acc_dtype)
    A_buf = te.compute(shape, lambda *i: A(*i), "A_buf")
    B_buf = te.compute(shape, lambda *i: B(*i), "B_buf")
    C_buf = te.compute(shape, lambda *i: op(A_buf(*i), B_buf(*i)), "C_buf")
    C = te.compute(shape, lambda *i: C_buf(*i).astype(env.inp_dtype), "C")
    s = te.create_schedule(C.op)
    for t in (A_buf, B_buf, C_buf):
        if scope or t is not C_buf:
            s[t].set_scope(env.acc_scope)
    s[A_buf].pragma(A_buf.op.axis[0], env.dma_copy)
    s[B_buf].pragma(B_buf.op.axis[0], env.dma_copy)
    s[C].pragma(C.op.axis[0], env.dma_copy)
    s[C_buf].pragma(C_buf.op.axis[0], env.alu)
    return s, [A, B, C]


def test_tile_does_not_fit(env):
    s, args = _vadd(env, o=32)
    with pytest.raises(CompileError, match=r"acc buffer needs 262144 B for A_buf, B_buf, has 131072 B"):
        compiler.build(s, args, env=env)


def test_subtraction_is_not_an_alu_op(env):
    s, args = _vadd(env, op=lambda a, b: a - b)
    with pytest.raises(CompileError, match=r"alu stage A_buf: expression not recognized"):
        compiler.build(s, args, env=env)


def test_missing_scope(env):
    s, args = _vadd(env, scope=False)
    with pytest.raises(CompileError, match=r"C_buf \(global\).*missing set_scope"):
        compiler.build(s, args, env=env)


def test_copy_whose_innermost_dim_is_not_a_whole_element(env):
    shape = (1, 4, env.BATCH, env.BLOCK_OUT)
    A = te.placeholder(shape, name="A", dtype=env.acc_dtype)
    A_buf = te.compute(shape, lambda *i: A(*i), "A_buf")
    C = te.compute(shape, lambda *i: A_buf(*i).astype(env.inp_dtype), "C")
    s = te.create_schedule(C.op)
    s[A_buf].set_scope(env.acc_scope)
    s[A_buf].pragma(A_buf.op.axis[0], env.dma_copy)
    ci_o, ci_i = s[C].split(C.op.axis[3], factor=8)
    s[C].pragma(ci_i, env.dma_copy)
    with pytest.raises(CompileError, match=r"dma_copy of C.*(element|2d pattern)"):
        compiler.build(s, [A, C], env=env)


def test_tensorize_shape_mismatch(env):
    _, t = matrix_multiply.declare(env)
    A, B, A_buf, B_buf, C_buf, C, ko, ki = t
    s = matrix_multiply.schedule(env, t)
    s[C_buf].tensorize(s[C_buf].op.axis[3], env.gemm)   # region (ci, ki) only
    with pytest.raises(CompileError, match=r"tensorize of stage C_buf at ci"):
        compiler.build(s, [A, B, C], env=env)


def test_non_dividing_split(env):
    t = matrix_multiply_opt.declare(env)
    with pytest.raises(CompileError, match=r"split of axis i1 \(extent 64\) in stage res: factor 48"):
        s = matrix_multiply_opt.schedule(env, t, o_block=48 * env.BLOCK_OUT)
        compiler.build(s, [t["data"], t["weight"], t["res"]], env=env)


def test_wgt_tile_too_big(env):
    t = matrix_multiply_opt.declare(env)
    s = matrix_multiply_opt.schedule(env, t, i_block=1024, o_block=512)
    with pytest.raises(CompileError, match=r"wgt buffer needs 524288 B for weight.local.wgt_buffer, has 262144 B"):
        compiler.build(s, [t["data"], t["weight"], t["res"]], env=env)
