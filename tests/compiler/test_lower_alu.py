"""ALU lowering: the ALU cases of upstream's test_vta_insn.py give correct outputs and counters."""
from __future__ import annotations

import json

import numpy as np
import pytest

import compiler
import hwconfigs
import simulator
from compiler import te
from tests.conftest import reference_file


@pytest.fixture(scope="module")
def env():
    return hwconfigs.get_env()


def _alu_case(env, op, use_imm, imm=3, m=8, n=8):
    shape = (m, n, env.BATCH, env.BLOCK_OUT)
    a = te.placeholder(shape, name="a", dtype=env.acc_dtype)
    a_buf = te.compute(shape, lambda *i: a(*i), "a_buf")
    args = [a]
    if use_imm:
        res_buf = te.compute(shape, lambda *i: op(a_buf(*i), imm), "res_buf")
    else:
        b = te.placeholder(shape, name="b", dtype=env.acc_dtype)
        b_buf = te.compute(shape, lambda *i: b(*i), "b_buf")
        res_buf = te.compute(shape, lambda *i: op(a_buf(*i), b_buf(*i)), "res_buf")
        args.append(b)
    res = te.compute(shape, lambda *i: res_buf(*i).astype(env.inp_dtype), "res")
    s = te.create_schedule(res.op)
    s[a_buf].set_scope(env.acc_scope)
    s[a_buf].pragma(a_buf.op.axis[0], env.dma_copy)
    s[res_buf].set_scope(env.acc_scope)
    s[res_buf].pragma(res_buf.op.axis[0], env.alu)
    s[res].pragma(res.op.axis[0], env.dma_copy)
    if not use_imm:
        s[b_buf].set_scope(env.acc_scope)
        s[b_buf].pragma(b_buf.op.axis[0], env.dma_copy)
    return s, args + [res]


CASES = [
    ("shl_imm", lambda x, y: x << y, lambda x, y: np.left_shift(x, y), True),
    ("max_imm", te.max, np.maximum, True),
    ("max", te.max, np.maximum, False),
    ("min_imm", te.min, np.minimum, True),
    ("min", te.min, np.minimum, False),
    ("add_imm", lambda x, y: x + y, lambda x, y: x + y, True),
    ("add", lambda x, y: x + y, lambda x, y: x + y, False),
    ("shr_imm", lambda x, y: x >> y, lambda x, y: x >> y, True),
    ("mul_imm", lambda x, y: x * y, lambda x, y: x * y, True),
]


@pytest.mark.parametrize("name,op,np_op,use_imm", CASES, ids=[c[0] for c in CASES])
def test_alu_op(env, name, op, np_op, use_imm):
    rng = np.random.default_rng(7)
    s, args = _alu_case(env, op, use_imm)
    mod = compiler.build(s, args, env=env, name=name)
    shape = args[0].shape
    a_np = rng.integers(-16, 16, size=shape).astype(np.int32)
    out = np.zeros(shape, np.int8)
    if use_imm:
        res = simulator.run(mod, a_np, out)
        ref = np_op(a_np, 3)
    else:
        b_np = rng.integers(-16, 16, size=shape).astype(np.int32)
        res = simulator.run(mod, a_np, b_np, out)
        ref = np_op(a_np, b_np)
    np.testing.assert_equal(out, ref.astype(np.int8))
    n_elems = shape[0] * shape[1]
    assert res.stats["alu_counter"] == n_elems
    assert res.stats["uop_load_nbytes"] == 4
    assert res.stats["acc_load_nbytes"] == n_elems * env.ACC_ELEM_BYTES * (1 if use_imm else 2)


def test_relu(env):
    shape = (8, 8, env.BATCH, env.BLOCK_OUT)
    a = te.placeholder(shape, name="a", dtype=env.acc_dtype)
    a_buf = te.compute(shape, lambda *i: a(*i), "a_buf")
    max_buf = te.compute(shape, lambda *i: te.max(a_buf(*i), 0), "res_buf")
    min_buf = te.compute(shape, lambda *i: te.min(max_buf(*i), (1 << (env.INP_WIDTH - 1)) - 1), "max_buf")
    res = te.compute(shape, lambda *i: min_buf(*i).astype(env.inp_dtype), "min_buf")
    s = te.create_schedule(res.op)
    for t in (a_buf, max_buf, min_buf):
        s[t].set_scope(env.acc_scope)
    s[a_buf].pragma(a_buf.op.axis[0], env.dma_copy)
    s[max_buf].pragma(max_buf.op.axis[0], env.alu)
    s[min_buf].pragma(min_buf.op.axis[0], env.alu)
    s[res].pragma(res.op.axis[0], env.dma_copy)
    mod = compiler.build(s, [a, res], env=env, name="relu")
    a_np = np.random.default_rng(1).integers(-256, 256, size=shape).astype(np.int32)
    out = np.zeros(shape, np.int8)
    simulator.run(mod, a_np, out)
    np.testing.assert_equal(out, np.clip(a_np, 0, 127).astype(np.int8))


def test_shift_and_scale_counters(env):
    ref = next(e for e in json.loads(reference_file("tutorial_counters.json").read_text())
               if e["name"] == "xinetzone_alu_shift_and_scale")["per_call_counters"]
    shape = (2, 8, env.BATCH, env.BLOCK_OUT)
    rng = np.random.RandomState(0xDEADB)
    imm_shift = int(rng.randint(0, 8))
    imm_scale = int(rng.randint(1, 5))
    a = te.placeholder(shape, name="a", dtype=env.acc_dtype)
    a_buf = te.compute(shape, lambda *i: a(*i), "a_buf")
    res_shift = te.compute(shape, lambda *i: a_buf(*i) + imm_shift, "res_shift")
    res_scale = te.compute(shape, lambda *i: res_shift(*i) >> imm_scale, "res_scale")
    res = te.compute(shape, lambda *i: res_scale(*i).astype(env.inp_dtype), "res")
    s = te.create_schedule(res.op)
    for t in (a_buf, res_shift, res_scale):
        s[t].set_scope(env.acc_scope)
    s[a_buf].pragma(a_buf.op.axis[0], env.dma_copy)
    s[res].pragma(res.op.axis[0], env.dma_copy)
    s[res_shift].pragma(res_shift.op.axis[0], env.alu)
    s[res_scale].pragma(res_scale.op.axis[0], env.alu)
    mod = compiler.build(s, [a, res], env=env, name="shift_scale")
    a_np = rng.randint(-10, 10, size=shape).astype(np.int32)
    out = np.zeros(shape, np.int8)
    result = simulator.run(mod, a_np, out)
    np.testing.assert_equal(out, ((a_np + imm_shift) >> imm_scale).astype(np.int8))
    assert result.stats == ref


def test_alu_kernel_has_one_uop_and_one_loop(env):
    s, args = _alu_case(env, lambda x, y: x + y, False)
    text = str(compiler.lower(s, args, env=env))
    assert "VTAUopLoopBegin(64, 1, 1, 0)" in text
    assert "vta.uop_push(1, 0, 0, 64, 0, 2, 0, 0)" in text   # in place on a_buf, source b_buf
