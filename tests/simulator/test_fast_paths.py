"""The shortcuts of the fast simulator change nothing observable.

- A Program is read from its instruction objects, never encoded: the columns equal those of
  its encoded bytes, field truncation included, and odd objects take the encoding path.
- A count-only run (also the private one of ``simulator.run``, which skips the UOP loads nobody
  sees) rejects every statically bad program and deadlock with the full run's message.
- GEMM/ALU index plans are cached by instruction *and* uop contents.
- The cycle model's in-order replay equals the event-driven one.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

import hwconfigs
from compiler import isa
from compiler.isa import AluInsn, FinishInsn, GemmInsn, MemInsn, Program, Uop
from simulator import SimulationError, Simulator
from simulator import _decode
from simulator.timing import TimingModel
from tests.conftest import reference_file

from .sim_asm import Asm, put
from .test_errors import CASES

ENV = hwconfigs.get_env()
# Errors found while executing (SRAM indices depend on uop contents), which count-only never sees.
RUNTIME_ONLY = {"acc index out of range", "inp index out of range", "alu source out of range"}


def _corpus():
    with open(reference_file("fsim_raw_corpus_dev.jsonl")) as fh:
        return [json.loads(line) for line in fh if line.strip()]


CORPUS = _corpus()


@pytest.mark.parametrize("case", CORPUS[::7], ids=[c["name"] for c in CORPUS[::7]])
def test_program_objects_decode_like_their_bytes(case):
    env = hwconfigs.get_env(**case["config"])
    raw = bytes.fromhex(case["insns_hex"])
    program = Program.from_bytes(raw, env)
    from_objects = _decode.decode(program, env, 1 << 30)
    from_bytes = _decode.decode(raw, env, 1 << 30)
    assert from_objects._raw is None      # read from the objects, not re-encoded
    np.testing.assert_array_equal(from_objects.table[_decode.COL["opcode"]],
                                  from_bytes.table[_decode.COL["opcode"]])
    for name in _decode.COLUMNS:
        used = _used_rows(from_bytes, name)
        np.testing.assert_array_equal(from_objects.cols[name][used], from_bytes.cols[name][used], err_msg=name)
    assert from_objects.counters == from_bytes.counters
    assert from_objects.pops == from_bytes.pops and from_objects.pushes == from_bytes.pushes


def _used_rows(stream, name):
    """Instructions whose layout has field ``name`` (elsewhere the raw bits mean nothing)."""
    op = stream.cols["opcode"]
    if name == "opcode" or name in _decode.FLAG_NAMES:
        return np.ones(op.size, dtype=bool)
    if name in ("memory_type",) + _decode.MEM_FIELDS:
        return op <= isa.STORE
    if name in _decode.GEMM_FIELDS[-2:]:
        return op == isa.GEMM
    if name in _decode.ALU_FIELDS[-3:]:
        return op == isa.ALU
    return (op == isa.GEMM) | (op == isa.ALU)


def test_overflowing_fields_are_truncated_as_encoding_does():
    insns = [MemInsn(memory_type=isa.MEM_INP, sram_base=(1 << 16) + 3, dram_base=5, y_size=1, x_size=2,
                     x_stride=2 + (1 << 16), push_next=1),
             MemInsn(memory_type=isa.MEM_UOP, pop_prev=1),
             AluInsn(uop_bgn=0, uop_end=0, imm=-5, alu_opcode=isa.ALU_ADD, use_imm=1),
             GemmInsn(uop_bgn=0, uop_end=0, iter_out=(1 << 14) + 1),
             FinishInsn()]
    program = Program(ENV, insns)
    a = _decode.decode(program, ENV, 1 << 20)
    b = _decode.decode(program.to_bytes(), ENV, 1 << 20)
    for name in ("sram_base", "x_stride", "imm", "iter_out", "opcode"):
        rows = _used_rows(b, name)
        np.testing.assert_array_equal(a.cols[name][rows], b.cols[name][rows], err_msg=name)
    assert a.cols["imm"][2] == -5 and a.cols["sram_base"][0] == 3


def test_a_mem_instruction_with_another_opcode_takes_the_encoding_path():
    odd = MemInsn(opcode=isa.GEMM, memory_type=isa.MEM_UOP)   # its bits decode as a GEMM
    program = Program(ENV, [odd, FinishInsn()])
    stream = _decode.decode(program, ENV, 1 << 20)
    assert stream._raw == program.to_bytes()
    assert stream.cols["opcode"][0] == isa.GEMM


def _static_cases():
    return [name for name in CASES if name not in RUNTIME_ONLY]


@pytest.mark.parametrize("private", [False, True], ids=["execute", "private-run"])
@pytest.mark.parametrize("name", _static_cases())
def test_count_only_rejects_what_the_full_run_rejects(name, private):
    build, fragments = CASES[name]
    program = build()
    full = Simulator(ENV, dram_size=1 << 20)
    with pytest.raises(SimulationError) as expected:
        full.execute(program)
    sim = Simulator(ENV, dram_size=1 << 20)
    with pytest.raises(SimulationError) as got:
        sim._run_stream(sim._decode(program), program, count_only=True, private=private)
    assert str(got.value) == str(expected.value)
    assert sim.tokens == {"l2g": 0, "g2l": 0, "s2g": 0, "g2s": 0}


def test_count_only_reports_instructions_running_after_finish():
    # The store runs in the round after FINISH: an error in both modes.
    program = Program(ENV, [GemmInsn(push_next=1), FinishInsn(),
                            MemInsn(opcode=isa.STORE, memory_type=isa.MEM_OUT, pop_prev=1)])
    messages = []
    for count_only in (False, True):
        with pytest.raises(SimulationError, match="ran after FINISH") as info:
            Simulator(ENV, dram_size=1 << 20).execute(program, count_only=count_only)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_gemm_plans_follow_the_uop_contents():
    """Two programs run the very same GEMM instruction over different uops in the same SRAM
    range: a plan cached for the first must not serve the second."""
    rng = np.random.default_rng(5)
    inp = rng.integers(-128, 128, (4, 1, 16), dtype=np.int8)
    wgt = rng.integers(-128, 128, (4, 16, 16), dtype=np.int8)
    sim = Simulator(ENV, dram_size=1 << 20)
    put(sim, 0x1000, inp)
    put(sim, 0x2000, wgt)
    for uops in ([Uop(0, 0, 0), Uop(1, 1, 1)], [Uop(0, 2, 3), Uop(1, 3, 2)], [Uop(0, 0, 1), Uop(0, 1, 0)]):
        asm = Asm(ENV)
        asm.load(isa.MEM_INP, 0, 0x1000 // 16, 1, 4)
        asm.load(isa.MEM_WGT, 0, 0x2000 // 256, 1, 4)
        r = asm.kernel([Uop(0, 0, 0)])
        asm.gemm(r, out=(2, 1, 0, 0), reset=1)
        g = asm.kernel(uops, sram_base=1)
        asm.gemm(g, out=(3, 0, 0, 0))
        sim.execute(asm.program())
        expected = np.zeros((2, 1, 16), np.int64)
        for u in uops:
            expected[u.dst_idx] += 3 * np.einsum("bi,oi->bo", inp[u.src_idx].astype(np.int64),
                                                 wgt[u.wgt_idx].astype(np.int64))
        np.testing.assert_array_equal(sim.acc[:2], expected)


@pytest.mark.parametrize("case", CORPUS[::5], ids=[c["name"] for c in CORPUS[::5]])
def test_in_order_replay_equals_the_event_driven_run(case):
    env = hwconfigs.get_env(**case["config"])
    program = Program.from_bytes(bytes.fromhex(case["insns_hex"]), env)
    model = TimingModel(env)
    fast = model.estimate(program.instructions)
    model._replay_in_order = lambda *args: None     # force the general event loop
    slow = model.estimate(program.instructions)
    assert fast == slow


@pytest.mark.parametrize("case", CORPUS[::5], ids=[c["name"] for c in CORPUS[::5]])
def test_vectorised_costs_equal_the_per_instruction_cost(case):
    env = hwconfigs.get_env(**case["config"])
    program = Program.from_bytes(bytes.fromhex(case["insns_hex"]), env)
    model = TimingModel(env)
    table, _ = _decode.columns_from_objects(program.instructions)
    cycles, nbytes, split, _ = model._costs(_decode.as_columns(table))
    names = ("gemm", "alu", "uop_load", "acc_load", "other")
    for k, insn in enumerate(program.instructions):
        c, b, kind = model.cost(insn)
        assert (cycles[k], nbytes[k]) == (c, b), str(insn)
        if _decode.MODULE_NAMES.index(isa.module_of(insn.opcode, getattr(insn, "memory_type", 0))) == 1:
            assert names[split[k]] == (kind if kind in names else "other"), str(insn)
