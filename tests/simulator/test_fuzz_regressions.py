"""Reproducers of the fuzzing findings of issue #16 on the simulator: a failed call leaves the
machine exactly as it was, both run modes accept the same programs, work is bounded up front."""
from __future__ import annotations

import time

import numpy as np
import pytest

import hwconfigs
import simulator
from compiler import isa, workloads
from compiler.isa import AluInsn, FinishInsn, GemmInsn, MemInsn, Program, Uop
from simulator import SimulationError, Simulator, WorkLimit

from .sim_asm import Asm, put

ENV = hwconfigs.get_env()


def _state(sim) -> tuple:
    return (sim.tokens, sim.dram.copy(), sim.uop.copy(), sim.inp.copy(), sim.wgt.copy(), sim.acc.copy())


def _assert_same_state(before, after) -> None:
    assert before[0] == after[0]
    for a, b in zip(before[1:], after[1:]):
        np.testing.assert_array_equal(a, b)


def _dense_matches_reference(sim) -> bool:
    layer = workloads.Dense(1, 16, 16)
    mod = workloads.build(layer, env=ENV)
    inputs = workloads.random_inputs(layer, ENV, seed=3)
    out = workloads.empty_output(layer, ENV)
    simulator.run(mod, *inputs, out, sim=sim)
    return bool(np.array_equal(out, workloads.reference(layer, *inputs)))


def _failing_midway() -> Program:
    """Loads, computes and stores (DRAM and SRAMs change, a token is pushed), then a GEMM whose
    uop points past the accumulator: an error only the run itself can find."""
    asm = Asm(ENV)
    asm.load(isa.MEM_ACC, 0, 0x1000 // 64, 1, 2)
    r = asm.kernel([Uop(0, 0, 0)])
    asm.alu(r, isa.ALU_ADD, inner=(2, 1, 1), imm=3)
    asm.store(0, 0x3000 // 16, 1, 2)
    bad = asm.kernel([Uop(ENV.ACC_DEPTH - 1, 0, 0)], sram_base=4)
    asm.gemm(bad, inner=(2, 1, 0, 0))
    return asm.program()


def test_run_error_leaves_the_machine_exactly_as_before():
    sim = Simulator(ENV)
    put(sim, 0x1000, np.arange(32, dtype=np.int32))
    sim.acc[5] = 7
    before = _state(sim)
    with pytest.raises(SimulationError, match="out of range"):
        sim.execute(_failing_midway())
    _assert_same_state(before, _state(sim))
    assert _dense_matches_reference(sim)


@pytest.mark.parametrize("exc", [MemoryError, KeyboardInterrupt, RuntimeError])
def test_any_exception_during_a_run_restores_the_machine(monkeypatch, exc):
    """Not only SimulationError: an interrupt or an unexpected error mid-run (here injected into
    the ALU executor, after a LOAD, a STORE and a token push) restores everything."""
    sim = Simulator(ENV)
    put(sim, 0x1000, np.arange(32, dtype=np.int32))
    asm = Asm(ENV)
    asm.load(isa.MEM_ACC, 0, 0x1000 // 64, 1, 2)
    r = asm.kernel([Uop(0, 0, 0)])
    asm.store(0, 0x3000 // 16, 1, 2)
    asm.alu(r, isa.ALU_ADD, inner=(2, 1, 1), imm=3)
    program = asm.program()
    before = _state(sim)

    def boom(m, step):
        raise exc("injected")

    from simulator import _scheduler
    monkeypatch.setitem(_scheduler.EXECUTORS, _scheduler.K_ALU, boom)
    with pytest.raises(exc):
        sim.execute(program)
    _assert_same_state(before, _state(sim))
    monkeypatch.undo()
    assert _dense_matches_reference(sim)


def test_failure_on_a_fresh_simulator_leaves_it_fresh():
    sim = Simulator(ENV)
    with pytest.raises(SimulationError):
        sim.execute(_failing_midway())
    assert sim.tokens == {"l2g": 0, "g2l": 0, "s2g": 0, "g2s": 0}
    assert not sim.acc.any() and not sim.dram.any()
    assert _dense_matches_reference(sim)


def _y0_program(push_token: bool) -> Program:
    # The issue's reproducer: a NOP pushing a token, a LOAD ACC of 0 rows of 3 elements.
    return Program(ENV, [MemInsn(opcode=isa.LOAD, memory_type=isa.MEM_UOP, x_size=0, push_next=int(push_token)),
                         MemInsn(opcode=isa.LOAD, memory_type=isa.MEM_ACC, sram_base=2, y_size=0, x_size=3,
                                 x_stride=3, y_pad_0=1, y_pad_1=1),
                         FinishInsn()])


def test_load_of_zero_rows_writes_only_its_pad_rows_in_both_modes():
    """vta-spec §3.3: x_size != 0 runs the load; with y_size 0 it copies nothing and writes its
    y_pad_0 + y_pad_1 zero rows of x_pad_0 + x_size + x_pad_1 elements. Count-only and full runs
    accept it alike and count 0 bytes."""
    full, count = Simulator(ENV), Simulator(ENV)
    full.acc[:10] = 9
    stats = full.execute(_y0_program(False))
    assert stats == count.execute(_y0_program(False), count_only=True)
    assert stats["acc_load_nbytes"] == 0
    assert not full.acc[2:8].any() and (full.acc[:2] == 9).all() and (full.acc[8:10] == 9).all()


def test_issue_reproducer_runs_and_the_simulator_stays_correct():
    sim = Simulator(ENV)
    sim.execute(_y0_program(True))
    assert sim.tokens["g2s"] == 1      # a finished program's leftover token persists (vta-spec §3.1)
    fresh = Simulator(ENV)
    assert _dense_matches_reference(fresh)


def test_a_gemm_of_two_trillion_iterations_is_refused_up_front():
    sim = Simulator(ENV)
    start = time.perf_counter()
    with pytest.raises(SimulationError, match="work limit"):
        sim.execute(Program(ENV, [GemmInsn(uop_end=8192, iter_out=16383, iter_in=16383), FinishInsn()]))
    assert time.perf_counter() - start < 2


def test_program_work_limit_sums_instructions():
    insns = [GemmInsn(uop_end=1, iter_out=100, iter_in=100) for _ in range(5)] + [FinishInsn()]
    per = 8 + ENV.BATCH * ENV.BLOCK_OUT
    limit = WorkLimit(per_instruction=10_000 * per, per_program=30_000 * per)
    with pytest.raises(SimulationError, match="per-program work limit"):
        Simulator(ENV, work_limit=limit).execute(Program(ENV, insns))
    Simulator(ENV, work_limit=WorkLimit(per_program=50_000 * per)).execute(Program(ENV, insns))


def test_alu_of_a_million_sequential_iterations_into_one_row_is_refused_quickly():
    asm = Asm(ENV)
    r = asm.kernel([Uop(0, 0, 0)])
    asm.alu(r, isa.ALU_ADD, out=(100, 0, 0), inner=(16383, 0, 0), imm=1)
    sim = Simulator(ENV)
    before = _state(sim)
    start = time.perf_counter()
    with pytest.raises(SimulationError, match="alu_waves"):
        sim.execute(asm.program())
    assert time.perf_counter() - start < 5
    _assert_same_state(before, _state(sim))


def test_sequential_alu_within_the_limit_still_runs_exactly():
    asm = Asm(ENV)
    r = asm.kernel([Uop(0, 0, 0)])
    asm.alu(r, isa.ALU_ADD, inner=(1000, 0, 0), imm=2)
    sim = Simulator(ENV)
    sim.execute(asm.program())
    assert (sim.acc[0] == 2000).all()


@pytest.mark.parametrize("field, value", [("instructions", None), ("uops", None), ("uop_base", None),
                                          ("env", None), ("instructions", [None]), ("uops", [1, 2]),
                                          ("instructions", 5)])
def test_program_fields_replaced_by_garbage_are_named_errors(field, value):
    program = _failing_midway()
    setattr(program, field, value)
    with pytest.raises(SimulationError):
        Simulator(ENV).execute(program)


def test_insn_field_of_the_wrong_type_is_a_named_error():
    program = Program(ENV, [AluInsn(iter_out=None), FinishInsn()])
    with pytest.raises(SimulationError):
        Simulator(ENV).execute(program)


@pytest.mark.parametrize("bad", [None, 5, "x", [b"\0" * 16]])
def test_execute_of_something_else_is_a_named_error(bad):
    with pytest.raises(SimulationError):
        Simulator(ENV).execute(bad)


def test_bad_simulator_arguments_are_named_errors():
    for kwargs in ({"env": None}, {"env": ENV, "dram_size": 0}, {"env": ENV, "dram_size": "big"},
                   {"env": ENV, "work_limit": 5}):
        with pytest.raises(SimulationError):
            Simulator(**kwargs)
    with pytest.raises(SimulationError):
        WorkLimit(per_instruction=0)


def test_failed_run_on_a_callers_simulator_undoes_the_argument_copies_too():
    layer = workloads.Dense(1, 32, 16)
    mod = workloads.build(layer, env=ENV)
    sim = Simulator(ENV, dram_size=mod.dram_size, work_limit=WorkLimit(per_instruction=8))
    sim.dram[:64] = 3
    before = _state(sim)
    inputs = workloads.random_inputs(layer, ENV, seed=2)
    with pytest.raises(SimulationError, match="work limit"):
        simulator.run(mod, *inputs, workloads.empty_output(layer, ENV), sim=sim)
    _assert_same_state(before, _state(sim))


def test_a_long_program_stays_interruptible_and_an_interrupt_restores_the_machine():
    """Ctrl-C (here SIGALRM raising KeyboardInterrupt) stops a program of many bounded GEMMs
    within a fraction of a second, and the machine is as before."""
    import signal

    asm = Asm(ENV)
    r = asm.kernel([Uop(0, 0, 0), Uop(1, 1, 1)])
    for _ in range(3000):
        asm.gemm(r, out=(256, 0, 1, 1), inner=(256, 0, 0, 0))
    program = asm.program()
    sim = Simulator(ENV, work_limit=WorkLimit(per_program=1 << 40))
    sim.acc[:3] = 5
    before = _state(sim)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    start = time.perf_counter()
    raised = None
    try:
        sim.execute(program)
    except BaseException as exc:   # noqa: BLE001 — which exception is what is checked below
        raised = exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    elapsed = time.perf_counter() - start
    # Usually the KeyboardInterrupt itself; numpy re-raises an interrupt that lands inside some
    # of its C routines as another error (np.unique on structured views: a TypeError). Either
    # way the call stops at once and the machine is restored.
    chain, exc = [], raised
    while exc is not None:
        chain.append(type(exc).__name__)
        exc = exc.__context__
    assert raised is not None, "the program finished before the interrupt"
    assert "KeyboardInterrupt" in chain or isinstance(raised, TypeError), chain
    assert elapsed < 10, elapsed
    _assert_same_state(before, _state(sim))


def test_run_passes_its_work_limit_to_the_fresh_simulator():
    mod = workloads.build(workloads.Dense(1, 32, 16), env=ENV)
    with pytest.raises(SimulationError, match="work limit"):
        simulator.run(mod, count_only=True, work_limit=WorkLimit(per_instruction=8))
    simulator.run(mod, count_only=True, work_limit=WorkLimit())
