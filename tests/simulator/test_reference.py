"""Property test: the vectorised simulator equals a per-element reference interpreter on random
GEMM/ALU programs, including hazards (repeated destinations, sources overlapping destinations)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hwconfigs
from compiler import isa
from compiler.isa import Uop
from simulator import Simulator

from .sim_asm import Asm
from .sim_reference import Reference

SMALL = {
    "1x4": hwconfigs.get_env(LOG_BATCH=0, LOG_BLOCK=2, LOG_UOP_BUFF_SIZE=10, LOG_INP_BUFF_SIZE=8,
                             LOG_WGT_BUFF_SIZE=9, LOG_ACC_BUFF_SIZE=9),
    "2x4": hwconfigs.get_env(LOG_BATCH=1, LOG_BLOCK=2, LOG_UOP_BUFF_SIZE=10, LOG_INP_BUFF_SIZE=9,
                             LOG_WGT_BUFF_SIZE=9, LOG_ACC_BUFF_SIZE=10),
    "1x4_acc16": hwconfigs.get_env(LOG_ACC_WIDTH=4, LOG_BLOCK=2, LOG_UOP_BUFF_SIZE=10, LOG_INP_BUFF_SIZE=8,
                                   LOG_WGT_BUFF_SIZE=9, LOG_ACC_BUFF_SIZE=9),
    "1x4_acc8": hwconfigs.get_env(LOG_ACC_WIDTH=3, LOG_BLOCK=2, LOG_UOP_BUFF_SIZE=10, LOG_INP_BUFF_SIZE=8,
                                  LOG_WGT_BUFF_SIZE=8, LOG_ACC_BUFF_SIZE=8),
}
ROWS = 8          # SRAM rows the random programs touch: small, so indices collide often
DATA = 0x1000     # DRAM: inp, wgt, acc images, then uops; output store area
OUT = 0x8000


def _loop(draw, name):
    n = draw(st.integers(1, 3))
    return n, draw(st.integers(0, 2)), draw(st.integers(0, 2)), draw(st.integers(0, 2))


@st.composite
def programs(draw):
    env = SMALL[draw(st.sampled_from(sorted(SMALL)))]
    asm = Asm(env, uop_base=0x6000)
    e_inp, e_wgt, e_acc = env.INP_ELEM_BYTES, env.WGT_ELEM_BYTES, env.ACC_ELEM_BYTES
    base_inp, base_wgt, base_acc = DATA, DATA + 0x1000, DATA + 0x3000
    asm.load(isa.MEM_INP, 0, base_inp // e_inp, 1, ROWS)
    asm.load(isa.MEM_WGT, 0, base_wgt // e_wgt, 1, ROWS)
    asm.load(isa.MEM_ACC, 0, base_acc // e_acc, 1, ROWS + 8)
    sram = 0
    for _ in range(draw(st.integers(1, 4))):
        n_uops = draw(st.integers(1, 4))
        idx = st.integers(0, ROWS - 1)
        uops = [Uop(draw(idx), draw(idx), draw(idx)) for _ in range(n_uops)]
        rng = asm.kernel(uops, sram_base=sram)
        sram += n_uops
        out, inner = _loop(draw, "out"), _loop(draw, "in")
        if draw(st.booleans()):
            asm.gemm(rng, out=out, inner=inner, reset=int(draw(st.integers(0, 4)) == 0))
        else:
            op = draw(st.sampled_from(sorted(isa.ALU_NAMES)))
            if draw(st.booleans()):
                imm = draw(st.integers(-8, 31)) if op == isa.ALU_SHR else draw(st.integers(-32768, 32767))
            else:
                imm = None
            if op == isa.ALU_SHR and imm is None:
                # Shift amounts from the tensor: make them small first (AND is not an op, so MIN/MAX).
                clamp = asm.kernel([Uop(k, k, 0) for k in range(ROWS + 8)], sram_base=sram)
                sram += ROWS + 8
                asm.alu(clamp, isa.ALU_MIN, imm=draw(st.integers(0, 31)))
                asm.alu(clamp, isa.ALU_MAX, imm=-draw(st.integers(0, 8)))
            asm.alu(rng, op, out=out[:3], inner=inner[:3], imm=imm)
    asm.store(0, OUT // env.OUT_ELEM_BYTES, 2, ROWS // 2, ROWS // 2 + 1)
    seed = draw(st.integers(0, 2**32 - 1))
    return env, asm.program(), seed


def _dram(env, seed):
    rng = np.random.default_rng(seed)
    dram = np.zeros(1 << 16, np.uint8)
    dram[DATA:DATA + 0x5000] = rng.integers(0, 256, 0x5000, dtype=np.uint8)
    return dram


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_fast_simulator_equals_reference(case):
    env, program, seed = case
    dram = _dram(env, seed)
    sim = Simulator(env, dram_size=dram.size)
    sim.dram[:] = dram
    stats = sim.execute(program)

    ref_dram = bytearray(dram.tobytes())
    uops = program.uops.astype("<u4").tobytes()
    ref_dram[program.uop_base:program.uop_base + len(uops)] = uops
    ref = Reference(env, ref_dram)
    expected = ref.run(program)

    assert stats == expected
    np.testing.assert_array_equal(sim.acc.reshape(env.ACC_DEPTH, -1)[:ROWS + 8],
                                  np.array(ref.acc[:ROWS + 8], dtype=np.int64).astype(sim.acc.dtype))
    assert sim.dram.tobytes() == bytes(ref_dram)


@pytest.mark.parametrize("dst,src", [
    ([0, 0, 0, 0], [1, 2, 3, 4]),      # reduction into one row (commutative fold)
    ([1, 2, 3, 4], [0, 1, 2, 3]),      # chain: each reads the previous write
    ([0, 1, 0, 1], [1, 0, 1, 0]),      # ping-pong
    ([2, 3, 2, 5], [2, 2, 3, 2]),      # src == dst and repeats
])
@pytest.mark.parametrize("op", sorted(isa.ALU_NAMES))
def test_alu_hazard_patterns_equal_reference(dst, src, op):
    env = SMALL["1x4"]
    asm = Asm(env, uop_base=0x6000)
    asm.load(isa.MEM_ACC, 0, (DATA + 0x3000) // env.ACC_ELEM_BYTES, 1, ROWS)
    if op == isa.ALU_SHR:
        clamp = asm.kernel([Uop(k, k, 0) for k in range(ROWS)], sram_base=10)
        asm.alu(clamp, isa.ALU_MIN, imm=5)
        asm.alu(clamp, isa.ALU_MAX, imm=-3)
    rng = asm.kernel([Uop(d, s, 0) for d, s in zip(dst, src)])
    asm.alu(rng, op, out=(2, 0, 0))
    program = asm.program()
    dram = _dram(env, op)
    sim = Simulator(env, dram_size=dram.size)
    sim.dram[:] = dram
    sim.execute(program)
    ref_dram = bytearray(dram.tobytes())
    uops = program.uops.astype("<u4").tobytes()
    ref_dram[0x6000:0x6000 + len(uops)] = uops
    ref = Reference(env, ref_dram)
    ref.run(program)
    np.testing.assert_array_equal(sim.acc.reshape(env.ACC_DEPTH, -1)[:ROWS],
                                  np.array(ref.acc[:ROWS], dtype=np.int64))
