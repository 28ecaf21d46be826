"""Bad programs raise SimulationError naming the instruction and numbers; the machine survives."""
from __future__ import annotations

import numpy as np
import pytest

import hwconfigs
from compiler import isa
from compiler.isa import FinishInsn, MemInsn, Program, Uop
from simulator import SimulationError, Simulator

from .sim_asm import Asm, put

ENV = hwconfigs.get_env()


def _good_program():
    asm = Asm(ENV)
    asm.load(isa.MEM_ACC, 0, 0x1000 // 64, 1, 2)
    r = asm.kernel([Uop(0, 0, 0)])
    asm.alu(r, isa.ALU_ADD, inner=(2, 1, 1), imm=3)
    asm.store(0, 0x3000 // 16, 1, 2)
    return asm.program()


def _assert_still_usable(sim):
    put(sim, 0x1000, np.arange(32, dtype=np.int32))
    stats = sim.execute(_good_program())
    assert stats["alu_counter"] == 2
    np.testing.assert_array_equal(sim.dram[0x3000:0x3020].view(np.int8), np.arange(32) + 3)
    assert sim.tokens == {"l2g": 0, "g2l": 0, "s2g": 0, "g2s": 0}


def _raw(insns):
    return b"".join(isa.encode(i, ENV) for i in insns)


def _gemm_with_uop(uop, **gemm):
    asm = Asm(ENV)
    r = asm.kernel([uop])
    asm.gemm(r, **gemm)
    return asm.program()


CASES = {
    "acc index out of range": (lambda: _gemm_with_uop(Uop(2040, 0, 0), out=(10, 1, 0, 0)),
                               ["instruction 1", "GEMM", "accumulator index 2048", "depth 2048", "y=8"]),
    "inp index out of range": (lambda: _gemm_with_uop(Uop(0, 2047, 0), inner=(2, 0, 1, 0)),
                               ["input index 2048", "x=1"]),
    "alu source out of range": (
        lambda: (lambda a: (a.alu(a.kernel([Uop(0, 2047, 0)]), isa.ALU_ADD, inner=(3, 0, 1)), a.program())[1])(Asm(ENV)),
        ["ALU source index 2048"]),
    "load sram overflow": (
        lambda: Program(ENV, [MemInsn(memory_type=isa.MEM_INP, sram_base=2040, dram_base=1, y_size=2, x_size=4,
                                      x_stride=4, x_pad_0=1), FinishInsn()]),
        ["instruction 0", "SRAM rows [2040, 2050)", "depth 2048"]),
    "dram out of range": (
        lambda: Program(ENV, [MemInsn(memory_type=isa.MEM_UOP, dram_base=1 << 20, y_size=1, x_size=4,
                                      x_stride=4), FinishInsn()]),
        ["DRAM bytes [0x400000, 0x400010)", "0x100000"]),
    "store with pads": (
        lambda: Program(ENV, [MemInsn(opcode=isa.STORE, memory_type=isa.MEM_OUT, y_size=1, x_size=1,
                                      x_pad_0=1), FinishInsn()]),
        ["STORE with padding"]),
    "unknown memory type": (
        lambda: Program(ENV, [MemInsn(memory_type=6, y_size=1, x_size=1), FinishInsn()]),
        ["unknown LOAD memory_type 6"]),
    "unknown opcode": (lambda: _raw([FinishInsn()]) + bytes([5]) + bytes(15) + _raw([FinishInsn()]),
                       ["instruction 1", "unknown opcode 5"]),
    "truncated": (lambda: _raw([FinishInsn()])[:-3], ["not a multiple of 16", "truncated"]),
    "missing finish": (lambda: _raw([MemInsn(memory_type=isa.MEM_UOP)]), ["no FINISH"]),
    "deadlock": (
        lambda: Program(ENV, [MemInsn(memory_type=isa.MEM_INP, pop_next=1),
                              MemInsn(memory_type=isa.MEM_UOP, pop_prev=1), FinishInsn()]),
        ["deadlock", "load module stuck at instruction 0", "waiting for g2l",
         "compute module stuck at instruction 1", "l2g=0"]),
    "pop flag without queue": (
        lambda: Program(ENV, [MemInsn(opcode=isa.STORE, pop_next=1), FinishInsn()]),
        ["pop_next is set on a store-module instruction"]),
    "compute after finish": (
        lambda: Program(ENV, [FinishInsn(), MemInsn(memory_type=isa.MEM_UOP)]),
        ["follows FINISH"]),
    "unknown alu opcode": (
        lambda: Program(ENV, [isa.AluInsn(uop_bgn=0, uop_end=1, alu_opcode=6), FinishInsn()]),
        ["unknown ALU opcode 6"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_program_is_reported_and_simulator_survives(name):
    build, fragments = CASES[name]
    sim = Simulator(ENV, dram_size=1 << 20)
    with pytest.raises(SimulationError) as info:
        sim.execute(build())
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
    _assert_still_usable(sim)


def test_simulation_error_is_a_value_error():
    assert issubclass(SimulationError, ValueError)


def test_error_mid_run_restores_tokens():
    # The first instructions run (and push a token) before the GEMM fails on its uop.
    asm = Asm(ENV)
    asm.load(isa.MEM_INP, 0, 0x1000 // 16, 1, 1)
    r = asm.kernel([Uop(2047, 0, 0)])
    asm.gemm(r, out=(2, 1, 0, 0))
    sim = Simulator(ENV, dram_size=1 << 20)
    with pytest.raises(SimulationError, match="accumulator index 2048"):
        sim.execute(asm.program())
    assert sim.tokens == {"l2g": 0, "g2l": 0, "s2g": 0, "g2s": 0}
    _assert_still_usable(sim)


def test_unexecuted_instructions_after_finish_are_an_error():
    program = Program(ENV, [MemInsn(memory_type=isa.MEM_INP, pop_next=1), FinishInsn()])
    sim = Simulator(ENV, dram_size=1 << 20)
    with pytest.raises(SimulationError, match="never ran: load module at instruction 0"):
        sim.execute(program)


def test_program_for_another_geometry_is_refused():
    other = hwconfigs.get_env(LOG_BATCH=1, LOG_BLOCK=3, LOG_WGT_BUFF_SIZE=16)
    with pytest.raises(SimulationError, match="built for"):
        Simulator(ENV, dram_size=1 << 16).execute(Program(other, [FinishInsn()]))
