"""Invariants of the cycle model on every raw program of the reference corpus."""
import json

import pytest

import hwconfigs
from compiler.isa import FINISH, GEMM, Program
from simulator.timing import MODULES, TimingModel, TimingParams, TimingError, module_of
from tests.conftest import reference_file


def _corpus_programs():
    with open(reference_file("fsim_raw_corpus_dev.jsonl")) as fh:
        for line in fh:
            case = json.loads(line)
            env = hwconfigs.get_env(**case["config"])
            yield case["name"], Program.from_bytes(bytes.fromhex(case["insns_hex"]), env)


CORPUS = list(_corpus_programs())




@pytest.mark.parametrize("name, program", CORPUS, ids=[c[0] for c in CORPUS])
def test_cycles_bound_the_work(name, program):
    model = TimingModel(program.env)
    report = model.estimate(program.instructions)
    iters = sum(i.iterations for i in program.instructions if i.opcode == GEMM and not i.reset_reg)
    assert report.cycles >= iters * model.params.gemm_ii
    for port in ("load", "compute", "store"):
        assert report.cycles >= report.dram_bytes[port] / model.params.bus_bytes
    busy = {m: report.modules[m].busy for m in MODULES}
    assert report.cycles >= max(busy.values())
    assert report.cycles <= sum(busy.values()) + report.modules["fetch"].busy + report.modules["fetch"].stalled


@pytest.mark.parametrize("name, program", CORPUS[:20], ids=[c[0] for c in CORPUS[:20]])
def test_a_wider_bus_never_slows_a_program(name, program):
    narrow = TimingModel(program.env, TimingParams.for_env(program.env, bus_bytes=8)).estimate(program.instructions)
    wide = TimingModel(program.env, TimingParams.for_env(program.env, bus_bytes=16)).estimate(program.instructions)
    assert wide.cycles <= narrow.cycles


def test_without_overlap_cycles_are_the_sum_of_module_times():
    """Tokens chain every instruction to the previous one: nothing overlaps, so the run takes
    exactly the sum of the module times (after the first instruction is fetched)."""
    from compiler.isa import (LOAD, MEM_INP, MEM_OUT, MEM_UOP, MEM_WGT, STORE, FinishInsn, GemmInsn,
                              MemInsn)

    env = hwconfigs.get_env()
    insns = [
        MemInsn(opcode=LOAD, memory_type=MEM_INP, x_size=16, y_size=2, x_stride=16),
        MemInsn(opcode=LOAD, memory_type=MEM_WGT, x_size=4, y_size=3, x_stride=4, push_next=1),
        MemInsn(opcode=LOAD, memory_type=MEM_UOP, x_size=1, y_size=1, x_stride=1, pop_prev=1),
        GemmInsn(uop_bgn=0, uop_end=1, iter_out=8, iter_in=4, push_next=1),
        MemInsn(opcode=STORE, memory_type=MEM_OUT, x_size=16, y_size=1, x_stride=16, pop_prev=1, push_prev=1),
        MemInsn(opcode=LOAD, memory_type=MEM_UOP, pop_next=1),
        FinishInsn(),
    ]
    model = TimingModel(env)
    report = model.estimate(insns)
    busy = sum(report.modules[m].busy for m in MODULES)
    assert report.cycles == busy + model.params.fetch_cycles_per_insn
    assert report.compute_split["gemm"] == model.params.pipeline_fill + 32


def test_deadlock_is_reported():
    from compiler.isa import FinishInsn, MemInsn, LOAD, MEM_UOP

    env = hwconfigs.get_env()
    stuck = [MemInsn(opcode=LOAD, memory_type=MEM_UOP, pop_prev=1), FinishInsn()]
    with pytest.raises(TimingError, match="deadlock"):
        TimingModel(env).estimate(stuck)
