"""Hand-assembled programs against numpy: every instruction kind, padding, wraparound, geometries."""
from __future__ import annotations

import numpy as np
import pytest

import hwconfigs
from compiler import isa
from compiler.isa import FinishInsn, MemInsn, Program, Uop
from simulator import Simulator

from .sim_asm import Asm, get, put

DEFAULT = hwconfigs.get_env()
B2K8 = hwconfigs.get_env(LOG_BATCH=1, LOG_BLOCK=3, LOG_WGT_BUFF_SIZE=16)
B4K8 = hwconfigs.get_env(LOG_BATCH=2, LOG_BLOCK=3, LOG_WGT_BUFF_SIZE=16)
rng = np.random.default_rng(1234)


def _vadd_program(env, a_addr, b_addr, c_addr, uop_addr):
    """The vector-add stream as upstream's runtime emits it (vta-spec §5.3, §5.7)."""
    rows = 1024
    acc = env.ACC_ELEM_BYTES
    insns = [
        MemInsn(opcode=isa.LOAD, memory_type=isa.MEM_ACC, sram_base=0, dram_base=a_addr // acc,
                y_size=16, x_size=64, x_stride=64),
        MemInsn(opcode=isa.LOAD, memory_type=isa.MEM_ACC, sram_base=rows, dram_base=b_addr // acc,
                y_size=16, x_size=64, x_stride=64),
        MemInsn(opcode=isa.LOAD, memory_type=isa.MEM_UOP, sram_base=0, dram_base=uop_addr // 4,
                y_size=1, x_size=1, x_stride=1),
        isa.AluInsn(uop_bgn=0, uop_end=1, iter_out=1, iter_in=rows, dst_factor_in=1, src_factor_in=1,
                    alu_opcode=isa.ALU_ADD, push_next=1),
        MemInsn(opcode=isa.STORE, memory_type=isa.MEM_OUT, sram_base=0, dram_base=c_addr // env.OUT_ELEM_BYTES,
                y_size=16, x_size=64, x_stride=64, pop_prev=1, push_prev=1),
        MemInsn(opcode=isa.LOAD, memory_type=isa.MEM_INP, push_next=1),            # load-stage NOP
        MemInsn(opcode=isa.LOAD, memory_type=isa.MEM_UOP, pop_prev=1, pop_next=1),  # compute NOP
        FinishInsn(),
    ]
    return Program(env, insns, isa.encode_uops([Uop(0, rows, 0)], env), uop_addr)


def test_vector_add_matches_numpy_and_published_counters():
    env = DEFAULT
    a = rng.integers(-2**31, 2**31, (16, 1024), dtype=np.int64).astype(np.int32)
    b = rng.integers(-2**31, 2**31, (16, 1024), dtype=np.int64).astype(np.int32)
    sim = Simulator(env, dram_size=1 << 20)
    put(sim, 0x1000, a)
    put(sim, 0x11000, b)
    stats = sim.execute(_vadd_program(env, 0x1000, 0x11000, 0x21000, 0x25000))
    assert stats == {"inp_load_nbytes": 0, "wgt_load_nbytes": 0, "acc_load_nbytes": 131072,
                     "uop_load_nbytes": 4, "out_store_nbytes": 16384, "gemm_counter": 0,
                     "alu_counter": 1024}
    expected = (a.astype(np.int64) + b).astype(np.int32).astype(np.int8)
    np.testing.assert_array_equal(get(sim, 0x21000, np.int8, (16, 1024)), expected)
    # The runtime's tokens balance: nothing is left over for the next run.
    assert sim.tokens == {"l2g": 0, "g2l": 0, "s2g": 0, "g2s": 0}


def _gemm_tile(env, n_in, n_out):
    """inp (n_in tiles), wgt (n_out x n_in tiles) -> acc n_out tiles; returns program and data."""
    inp = rng.integers(-128, 128, (n_in, env.BATCH, env.BLOCK_IN), dtype=np.int8)
    wgt = rng.integers(-128, 128, (n_out, n_in, env.BLOCK_OUT, env.BLOCK_IN), dtype=np.int8)
    asm = Asm(env)
    inp_addr, wgt_addr, out_addr = 0x1000, 0x10000, 0x80000
    asm.load(isa.MEM_INP, 0, inp_addr // env.INP_ELEM_BYTES, 1, n_in)
    asm.load(isa.MEM_WGT, 0, wgt_addr // env.WGT_ELEM_BYTES, 1, n_out * n_in)
    r = asm.kernel([Uop(0, 0, 0)])
    asm.gemm(r, out=(n_out, 1, 0, 0), reset=1)
    g = asm.kernel([Uop(0, 0, 0)], sram_base=1)
    # out loop over output tiles (dst 1, wgt n_in), in loop over the reduction (src 1, wgt 1)
    asm.gemm(g, out=(n_out, 1, 0, n_in), inner=(n_in, 0, 1, 1))
    asm.store(0, out_addr // env.OUT_ELEM_BYTES, 1, n_out)
    return asm.program(), inp, wgt, (inp_addr, wgt_addr, out_addr)


def _numpy_gemm(inp, wgt):
    # out[o][b][j] = sum_i sum_k inp[i][b][k] * wgt[o][i][j][k]
    return np.einsum("ibk,oijk->obj", inp.astype(np.int64), wgt.astype(np.int64))


@pytest.mark.parametrize("env", [DEFAULT, B2K8, B4K8], ids=["1x16", "2x8", "4x8"])
def test_gemm_tile_matches_numpy(env):
    n_in, n_out = 4, 3
    program, inp, wgt, (ia, wa, oa) = _gemm_tile(env, n_in, n_out)
    sim = Simulator(env, dram_size=1 << 20)
    put(sim, ia, inp)
    put(sim, wa, wgt)
    stats = sim.execute(program)
    expected = _numpy_gemm(inp, wgt)
    np.testing.assert_array_equal(sim.acc[:n_out], expected.astype(np.int32))
    np.testing.assert_array_equal(get(sim, oa, np.int8, expected.shape), expected.astype(np.int8))
    assert stats["gemm_counter"] == n_out * n_in
    assert stats["inp_load_nbytes"] == n_in * env.INP_ELEM_BYTES
    assert stats["wgt_load_nbytes"] == n_in * n_out * env.WGT_ELEM_BYTES
    assert stats["uop_load_nbytes"] == 8
    assert stats["out_store_nbytes"] == n_out * env.OUT_ELEM_BYTES


@pytest.mark.parametrize("env", [DEFAULT, B2K8, B4K8], ids=["1x16", "2x8", "4x8"])
def test_alu_ops_match_numpy_on_other_geometries(env):
    lanes = (env.BATCH, env.BLOCK_OUT)
    a = rng.integers(-2**31, 2**31, (8,) + lanes, dtype=np.int64).astype(np.int32)
    b = rng.integers(-2**31, 2**31, (8,) + lanes, dtype=np.int64).astype(np.int32)
    asm = Asm(env)
    asm.load(isa.MEM_ACC, 0, 0x1000 // env.ACC_ELEM_BYTES, 1, 8)
    asm.load(isa.MEM_ACC, 8, 0x2000 // env.ACC_ELEM_BYTES, 1, 8)
    r = asm.kernel([Uop(0, 8, 0)])
    asm.alu(r, isa.ALU_MUL, inner=(8, 1, 1))
    asm.alu(r, isa.ALU_MAX, inner=(8, 1, 0), imm=-7)
    sim = Simulator(env, dram_size=1 << 20)
    put(sim, 0x1000, a)
    put(sim, 0x2000, b)
    sim.execute(asm.program())
    expected = np.maximum((a.astype(np.int64) * b).astype(np.int32), -7)
    np.testing.assert_array_equal(sim.acc[:8], expected)


def _run_alu(op, a, b=None, imm=None, env=DEFAULT):
    """acc rows 0..n-1 = a, n..2n-1 = b; one ALU op dst i, src n+i; returns acc rows 0..n-1."""
    n = a.shape[0]
    asm = Asm(env)
    asm.load(isa.MEM_ACC, 0, 0x1000 // env.ACC_ELEM_BYTES, 1, n)
    if b is not None:
        asm.load(isa.MEM_ACC, n, 0x4000 // env.ACC_ELEM_BYTES, 1, n)
    r = asm.kernel([Uop(0, n, 0)])
    asm.alu(r, op, inner=(n, 1, 1), imm=imm)
    sim = Simulator(env, dram_size=1 << 20)
    put(sim, 0x1000, a)
    if b is not None:
        put(sim, 0x4000, b)
    stats = sim.execute(asm.program())
    assert stats["alu_counter"] == n
    return sim.acc[:n].copy()


def _i32(x):
    return np.asarray(x, dtype=np.int64).astype(np.int32)


EDGE = _i32([[[0, 1, -1, 127, -128, 255, 2**31 - 1, -2**31, 123456789, -987654321, 2**16, -2**16 - 3,
               77, -77, 1 << 30, -(1 << 30)]]])


@pytest.mark.parametrize("imm", [0, 1, 5, -1, -8, 127, -128, 32767, -32768])
@pytest.mark.parametrize("op", [isa.ALU_MIN, isa.ALU_MAX, isa.ALU_ADD, isa.ALU_MUL])
def test_alu_immediate(op, imm):
    a = np.concatenate([EDGE, _i32(rng.integers(-2**31, 2**31, (3, 1, 16)))])
    got = _run_alu(op, a, imm=imm)
    f = {isa.ALU_MIN: np.minimum, isa.ALU_MAX: np.maximum, isa.ALU_ADD: np.add, isa.ALU_MUL: np.multiply}[op]
    np.testing.assert_array_equal(got, _i32(f(a.astype(np.int64), imm)))


@pytest.mark.parametrize("imm", [0, 1, 3, 8, 16, 24, 31, -1, -3, -8, -31])
def test_alu_shift_immediate_negative_is_left(imm):
    a = np.concatenate([EDGE, _i32(rng.integers(-2**31, 2**31, (3, 1, 16)))])
    got = _run_alu(isa.ALU_SHR, a, imm=imm)
    a64 = a.astype(np.int64)
    expected = a64 >> imm if imm >= 0 else a64 << -imm
    np.testing.assert_array_equal(got, _i32(expected))


@pytest.mark.parametrize("op", [isa.ALU_MIN, isa.ALU_MAX, isa.ALU_ADD, isa.ALU_MUL, isa.ALU_SHR])
def test_alu_tensor_operand(op):
    a = np.concatenate([EDGE, _i32(rng.integers(-2**31, 2**31, (3, 1, 16)))])
    if op == isa.ALU_SHR:
        b = _i32(rng.integers(-8, 32, a.shape))
    else:
        b = np.concatenate([EDGE[:, :, ::-1], _i32(rng.integers(-2**31, 2**31, (3, 1, 16)))])
    got = _run_alu(op, a, b)
    a64, b64 = a.astype(np.int64), b.astype(np.int64)
    expected = {isa.ALU_MIN: np.minimum(a64, b64), isa.ALU_MAX: np.maximum(a64, b64), isa.ALU_ADD: a64 + b64,
                isa.ALU_MUL: a64 * b64,
                isa.ALU_SHR: np.where(b64 >= 0, a64 >> np.maximum(b64, 0), a64 << np.maximum(-b64, 0))}[op]
    np.testing.assert_array_equal(got, _i32(expected))


def test_mul_wraps_modulo_2_32():
    a = _i32([[[2**31 - 1] * 8 + [65536] * 8]])
    b = _i32([[[2] * 8 + [65536] * 8]])
    got = _run_alu(isa.ALU_MUL, a, b)
    np.testing.assert_array_equal(got, _i32([[[-2] * 8 + [0] * 8]]))


def test_alu_src_equal_dst_reads_itself():
    env = DEFAULT
    a = _i32(rng.integers(-1000, 1000, (4, 1, 16)))
    asm = Asm(env)
    asm.load(isa.MEM_ACC, 0, 0x1000 // env.ACC_ELEM_BYTES, 1, 4)
    r = asm.kernel([Uop(0, 0, 0)])
    asm.alu(r, isa.ALU_ADD, inner=(4, 1, 1))  # a[i] += a[i]
    sim = Simulator(env, dram_size=1 << 20)
    put(sim, 0x1000, a)
    sim.execute(asm.program())
    np.testing.assert_array_equal(sim.acc[:4], 2 * a)


def test_alu_prefix_sum_reads_rows_written_earlier_in_the_same_instruction():
    env = DEFAULT
    a = _i32(rng.integers(-1000, 1000, (6, 1, 16)))
    asm = Asm(env)
    asm.load(isa.MEM_ACC, 0, 0x1000 // env.ACC_ELEM_BYTES, 1, 6)
    r = asm.kernel([Uop(1, 0, 0)])
    asm.alu(r, isa.ALU_ADD, inner=(5, 1, 1))  # a[i+1] += a[i], sequentially
    sim = Simulator(env, dram_size=1 << 20)
    put(sim, 0x1000, a)
    sim.execute(asm.program())
    np.testing.assert_array_equal(sim.acc[:6], np.cumsum(a, axis=0))


def test_gemm_accumulates_several_uops_into_one_destination():
    env = DEFAULT
    inp = rng.integers(-128, 128, (5, 1, 16), dtype=np.int8)
    wgt = rng.integers(-128, 128, (5, 16, 16), dtype=np.int8)
    asm = Asm(env)
    asm.load(isa.MEM_INP, 0, 0x1000 // 16, 1, 5)
    asm.load(isa.MEM_WGT, 0, 0x2000 // 256, 1, 5)
    r = asm.kernel([Uop(3, 0, 0)])
    asm.gemm(r, reset=1)
    g = asm.kernel([Uop(3, k, k) for k in range(5)], sram_base=1)
    asm.gemm(g, out=(2, 0, 0, 0))  # the same five taps twice: 10 products into acc row 3
    sim = Simulator(env, dram_size=1 << 20)
    put(sim, 0x1000, inp)
    put(sim, 0x2000, wgt)
    stats = sim.execute(asm.program())
    expected = 2 * np.einsum("kbi,koi->bo", inp.astype(np.int64), wgt.astype(np.int64))
    np.testing.assert_array_equal(sim.acc[3], expected)
    assert stats["gemm_counter"] == 10


def test_gemm_accumulation_wraps_modulo_2_32():
    env = DEFAULT
    asm = Asm(env)
    asm.load(isa.MEM_ACC, 0, 0x1000 // 64, 1, 1)
    asm.load(isa.MEM_INP, 0, 0x2000 // 16, 1, 1)
    asm.load(isa.MEM_WGT, 0, 0x3000 // 256, 1, 1)
    g = asm.kernel([Uop(0, 0, 0)])
    asm.gemm(g)
    sim = Simulator(env, dram_size=1 << 20)
    put(sim, 0x1000, _i32([[2**31 - 1] * 16]))
    put(sim, 0x2000, np.full(16, -128, np.int8))
    put(sim, 0x3000, np.full((16, 16), -128, np.int8))
    sim.execute(asm.program())
    np.testing.assert_array_equal(sim.acc[0, 0], _i32([2**31 - 1 + 16 * 128 * 128] * 16))


def test_reset_zeroes_only_addressed_rows():
    env = DEFAULT
    a = _i32(rng.integers(1, 1000, (8, 1, 16)))
    asm = Asm(env)
    asm.load(isa.MEM_ACC, 0, 0x1000 // 64, 1, 8)
    r = asm.kernel([Uop(1, 0, 0)])
    asm.gemm(r, out=(3, 2, 0, 0), reset=1)  # rows 1, 3, 5
    sim = Simulator(env, dram_size=1 << 20)
    put(sim, 0x1000, a)
    stats = sim.execute(asm.program())
    expected = a.copy()
    expected[[1, 3, 5]] = 0
    np.testing.assert_array_equal(sim.acc[:8], expected)
    assert stats["gemm_counter"] == 0


@pytest.mark.parametrize("mem", [isa.MEM_INP, isa.MEM_WGT, isa.MEM_ACC])
def test_padded_strided_load(mem):
    env = DEFAULT
    e = {isa.MEM_INP: env.INP_ELEM_BYTES, isa.MEM_WGT: env.WGT_ELEM_BYTES, isa.MEM_ACC: env.ACC_ELEM_BYTES}[mem]
    y, x, stride, pads = 3, 2, 5, (1, 2, 3, 1)
    src = rng.integers(0, 256, (y * stride, e), dtype=np.uint8)
    asm = Asm(env)
    asm.load(mem, 4, 0x2000 // e, y, x, stride, pads)
    sim = Simulator(env, dram_size=1 << 20)
    put(sim, 0x2000, src)
    sram = {isa.MEM_INP: sim.inp, isa.MEM_WGT: sim.wgt, isa.MEM_ACC: sim.acc}[mem]
    sram[...] = 1  # pads must overwrite, not skip
    sim.execute(asm.program())
    xt, yt = pads[2] + x + pads[3], pads[0] + y + pads[1]
    got = sram.view(np.uint8).reshape(sram.shape[0], -1)[4:4 + xt * yt].reshape(yt, xt, e)
    expected = np.zeros((yt, xt, e), np.uint8)
    expected[pads[0]:pads[0] + y, pads[2]:pads[2] + x] = src.reshape(y, stride, e)[:, :x]
    np.testing.assert_array_equal(got, expected)
    assert sram.view(np.uint8).reshape(sram.shape[0], -1)[4 + xt * yt, 0] == 1
    assert sram.view(np.uint8).reshape(sram.shape[0], -1)[3, 0] == 1


def test_acc_8bit_load_sign_extends():
    env = DEFAULT
    data = rng.integers(-128, 128, (2, 3, 16), dtype=np.int8)  # 2 rows of 3 elements, stride 4
    asm = Asm(env)
    asm.load(isa.MEM_ACC_8BIT, 0, 0x4000 // 16, 2, 3, 4, (0, 0, 1, 0))
    sim = Simulator(env, dram_size=1 << 20)
    buf = np.zeros((2, 4, 16), np.int8)
    buf[:, :3] = data
    put(sim, 0x4000, buf)
    stats = sim.execute(asm.program())
    got = sim.acc[:8].reshape(2, 4, 16)
    np.testing.assert_array_equal(got[:, 0], 0)
    np.testing.assert_array_equal(got[:, 1:], data.astype(np.int32))
    assert stats["acc_load_nbytes"] == 6 * env.ACC_ELEM_BYTES  # upstream counts the full element


def test_store_with_stride_truncates():
    env = DEFAULT
    a = _i32(rng.integers(-2**31, 2**31, (6, 1, 16)))
    asm = Asm(env)
    asm.load(isa.MEM_ACC, 0, 0x1000 // 64, 1, 6)
    r = asm.kernel([Uop(0, 0, 0)])
    asm.alu(r, isa.ALU_SHR, inner=(6, 1, 1), imm=0)
    asm.store(0, 0x8000 // 16, 2, 3, 5)
    sim = Simulator(env, dram_size=1 << 20)
    put(sim, 0x1000, a)
    sim.dram[0x8000:0x8000 + 160] = 0xAA
    sim.execute(asm.program())
    got = get(sim, 0x8000, np.int8, (2, 5, 16))
    np.testing.assert_array_equal(got[:, :3], a.reshape(2, 3, 16).astype(np.int8))
    assert (got[:, 3:].view(np.uint8) == 0xAA).all()


def test_count_only_moves_no_data_but_loads_uops():
    env = DEFAULT
    sim = Simulator(env, dram_size=1 << 20)
    put(sim, 0x1000, _i32(rng.integers(-100, 100, (16, 1024))))
    put(sim, 0x11000, _i32(rng.integers(-100, 100, (16, 1024))))
    program = _vadd_program(env, 0x1000, 0x11000, 0x21000, 0x25000)
    stats = sim.execute(program, count_only=True)
    assert stats["alu_counter"] == 1024 and stats["acc_load_nbytes"] == 131072
    assert not sim.acc.any()
    assert not sim.dram[0x21000:0x25000].any()
    assert sim.uop[0] == isa.encode_uops([Uop(0, 1024, 0)], env)[0]


def test_tokens_persist_between_runs():
    env = DEFAULT
    push = [isa.MemInsn(opcode=isa.LOAD, memory_type=isa.MEM_UOP, push_prev=1), FinishInsn()]
    pop = [isa.MemInsn(opcode=isa.LOAD, memory_type=isa.MEM_INP, pop_next=1), FinishInsn()]
    sim = Simulator(env, dram_size=1 << 16)
    sim.execute(Program(env, push))
    assert sim.tokens["g2l"] == 1
    assert sim.execute(Program(env, pop)) == dict.fromkeys(sim.execute(Program(env, push)), 0)
    assert sim.tokens["g2l"] == 1


def test_acc16_geometry_wraps_at_acc_width():
    env = hwconfigs.get_env(LOG_ACC_WIDTH=4, LOG_BLOCK=2, LOG_UOP_BUFF_SIZE=10, LOG_INP_BUFF_SIZE=8,
                            LOG_WGT_BUFF_SIZE=9, LOG_ACC_BUFF_SIZE=9)
    a = np.array([[[32767, -32768, 1000, -5]]], np.int16)
    got = _run_alu(isa.ALU_ADD, a, imm=1, env=env)
    np.testing.assert_array_equal(got, np.array([[[-32768, -32767, 1001, -4]]], np.int16))
