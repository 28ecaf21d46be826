"""Replay of the tutorial runtime-call streams of vta-spec Appendix A against CommandQueue.

The streams are what upstream's compiled tutorials call; the instruction counts (§5.10, §5.7,
§8.3), the golden disassembly of matrix_multiply and the worked encodings of §2.9 pin the
runtime's output, and running them on the simulator pins counters and results.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

import hwconfigs
from compiler import isa
from compiler.runtime import CommandQueue, DeviceMemory
from tests.conftest import reference_file

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"
INP, WGT, OUT = isa.MEM_INP, isa.MEM_WGT, isa.MEM_OUT


@pytest.fixture(scope="module")
def env():
    return hwconfigs.get_env()


# ---- the three call streams (vta-spec Appendix A) ---------------------------------------------

def _gemm_reset_16(rec):
    rec.loop_begin(16, 1, 0, 0)
    rec.uop_push(0, 1, 0, 0, 0, 0, 0, 0)
    rec.loop_end()


def _alu_imm(opcode, imm, extent=16, dst=0):
    def finit(rec):
        rec.loop_begin(extent, 1, 1, 0)
        rec.uop_push(1, 0, dst, dst, 0, opcode, 1, imm)
        rec.loop_end()
    return finit


def stream_matrix_multiply(env):
    """A.1; buffers A (256 B), B (64 KiB), C (256 B) allocated before the first runtime call."""
    mem = DeviceMemory()
    bufs = {"A": mem.alloc(256), "B": mem.alloc(65536), "C": mem.alloc(256)}
    cq = CommandQueue(env, mem)

    def gemm(rec):
        rec.loop_begin(16, 1, 0, 1)
        rec.uop_push(0, 0, 0, 0, 0, 0, 0, 0)
        rec.loop_end()

    cq.push_gemm_op("R", _gemm_reset_16)
    cq.dep_push(2, 1)
    for ko in range(16):
        cq.dep_pop(2, 1)
        cq.load_buffer_2d(bufs["A"], ko, 1, 1, 1, 0, 0, 0, 0, 0, INP)
        cq.load_buffer_2d(bufs["B"], ko, 1, 16, 16, 0, 0, 0, 0, 0, WGT)
        cq.dep_push(1, 2)
        cq.dep_pop(1, 2)
        cq.push_gemm_op("G", gemm)
        cq.dep_push(2, 1)
    cq.dep_push(2, 3)
    cq.dep_pop(2, 1)
    cq.dep_pop(2, 3)
    cq.store_buffer_2d(0, OUT, bufs["C"], 0, 16, 1, 16)
    cq.synchronize()
    return cq, bufs


def call_matrix_multiply_opt(cq, bufs):
    """One call of the A.2 kernel (it ends with a dep_pop issued after the synchronize)."""
    def gemm(rec):
        rec.loop_begin(16, 1, 0, 16)
        rec.loop_begin(16, 0, 1, 1)
        rec.uop_push(0, 0, 0, 0, 0, 0, 0, 0)
        rec.loop_end()
        rec.loop_end()

    cq.dep_push(3, 2)
    for i1o in range(4):
        cq.dep_pop(3, 2)
        cq.push_gemm_op("R", _gemm_reset_16)
        cq.dep_push(2, 1)
        for ico in range(4):
            cq.dep_pop(2, 1)
            cq.load_buffer_2d(bufs["data"], ico * 16, 16, 1, 16, 0, 0, 0, 0, 0, INP)
            cq.load_buffer_2d(bufs["weight"], i1o * 1024 + ico * 16, 16, 16, 64, 0, 0, 0, 0, 0, WGT)
            cq.dep_push(1, 2)
            cq.dep_pop(1, 2)
            cq.push_gemm_op("G", gemm)
            cq.dep_push(2, 1)
        cq.dep_pop(2, 1)
        cq.push_alu_op("S", _alu_imm(isa.ALU_SHR, 8))
        cq.push_alu_op("X", _alu_imm(isa.ALU_MAX, 0))
        cq.push_alu_op("N", _alu_imm(isa.ALU_MIN, 127))
        cq.dep_push(2, 3)
        cq.dep_pop(2, 3)
        for i in range(16):
            cq.store_buffer_2d(i, OUT, bufs["res"], i1o * 16 + i, 1, 1, 1)
        cq.dep_push(3, 2)
    program = cq.synchronize()
    cq.dep_pop(3, 2)
    return program


def stream_matrix_multiply_opt(env, calls=1):
    mem = DeviceMemory()
    bufs = {"data": mem.alloc(1024), "weight": mem.alloc(1 << 20), "res": mem.alloc(1024)}
    cq = CommandQueue(env, mem)
    for _ in range(calls):
        call_matrix_multiply_opt(cq, bufs)
    return cq, bufs


def stream_convolution_opt(env):
    """A.3: 2 virtual threads (signature t), padded input loads, 3136 single-element stores."""
    mem = DeviceMemory()
    bufs = {"data": mem.alloc(50176), "kernel": mem.alloc(589824), "res": mem.alloc(50176)}
    cq = CommandQueue(env, mem)

    def reset(t):
        def finit(rec):
            rec.loop_begin(8, 98, 0, 0)
            rec.loop_begin(7, 14, 0, 0)
            for j in range(14):
                rec.uop_push(0, 1, t * 784 + j, 0, 0, 0, 0, 0)
            rec.loop_end()
            rec.loop_end()
        return finit

    def conv(t):
        def finit(rec):
            rec.loop_begin(8, 98, 0, 9)
            rec.loop_begin(7, 14, 16, 0)
            for dy in range(3):
                for dx in range(3):
                    for j in range(14):
                        rec.uop_push(0, 0, t * 784 + j, t * 144 + dy * 16 + j + dx, t * 72 + dy * 3 + dx, 0, 0, 0)
            rec.loop_end()
            rec.loop_end()
        return finit

    cq.dep_push(3, 2)
    cq.dep_push(3, 2)
    for i2o in range(2):
        for t in range(2):
            cq.dep_pop(3, 2)
            cq.push_gemm_op("R", reset(t), signature=t)
            cq.dep_push(2, 1)
        top, bot = max(1 - 7 * i2o, 0), max(7 * i2o - 6, 0)
        rows = 9 - top - bot
        for ic in range(16):
            off = ic * 196 + i2o * 98 + top * 14 - 14
            for t in range(2):
                cq.dep_pop(2, 1)
                cq.load_buffer_2d(bufs["data"], off, 14, rows, 14, 1, top, 1, bot, t * 144, INP)
                cq.load_buffer_2d(bufs["kernel"], ic * 9 + t * 1152, 9, 8, 144, 0, 0, 0, 0, t * 72, WGT)
                cq.dep_push(1, 2)
            for t in range(2):
                cq.dep_pop(1, 2)
                cq.push_gemm_op("G", conv(t), signature=t)
                cq.dep_push(2, 1)
        cq.dep_pop(2, 1)
        cq.dep_pop(2, 1)
        for t in range(2):
            cq.push_alu_op("S", _alu_imm(isa.ALU_SHR, 8, 784, t * 784), signature=t)
            cq.push_alu_op("X", _alu_imm(isa.ALU_MAX, 0, 784, t * 784), signature=t)
            cq.push_alu_op("N", _alu_imm(isa.ALU_MIN, 127, 784, t * 784), signature=t)
            cq.dep_push(2, 3)
        for t in range(2):
            cq.dep_pop(2, 3)
            for i1 in range(8):
                for i2 in range(7):
                    for i3 in range(14):
                        cq.store_buffer_2d(t * 784 + i1 * 98 + i2 * 14 + i3, OUT, bufs["res"],
                                           t * 1568 + i1 * 196 + i2o * 98 + i2 * 14 + i3, 1, 1, 1)
            cq.dep_push(3, 2)
    cq.dep_pop(3, 2)
    cq.dep_pop(3, 2)
    cq.synchronize()
    return cq, bufs


# ---- stream shape and encodings ---------------------------------------------------------------

def _words(insn, env) -> str:
    raw = isa.encode(insn, env)
    return f"{int.from_bytes(raw[8:], 'little'):016x} : {int.from_bytes(raw[:8], 'little'):016x}"


def golden_text(program) -> str:
    """Disassembly with the two 64-bit words (word1 : word0) of every instruction."""
    env = program.env
    lines = [f"{i:>4}: {_words(insn, env)}  {insn}" for i, insn in enumerate(program)]
    lines.append(f"uops @ {program.uop_base:#x}: " + " ".join(f"{w:08x}" for w in program.uops))
    return "\n".join(lines) + "\n"


def _check_golden(name: str, program):
    path = GOLDEN_DIR / name
    text = golden_text(program)
    if os.environ.get("VTA_DSE_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.is_file(), f"golden file {path} missing; create it with VTA_DSE_UPDATE_GOLDEN=1"
    expected = path.read_text()
    if text != expected:
        diff = "\n".join(difflib.unified_diff(expected.splitlines(), text.splitlines(), "golden", "now",
                                              lineterm="", n=1))
        pytest.fail(f"{name}: emitted stream differs from the golden file (VTA_DSE_UPDATE_GOLDEN=1 "
                    f"rewrites it if the change is meant):\n{diff[:4000]}")


def _flags(insn) -> set:
    names = {"pp": insn.pop_prev, "pn": insn.pop_next, "Pp": insn.push_prev, "Pn": insn.push_next}
    return {k for k, v in names.items() if v}


def test_matrix_multiply_stream_is_the_56_instructions_of_spec_5_10(env):
    cq, bufs = stream_matrix_multiply(env)
    assert len(cq.programs) == 1
    program = cq.programs[0]
    insns = program.instructions
    assert len(insns) == 56
    # Staging comes after A, B, C (0x1000, 0x2000, 0x12000): uop staging at 0x13000 (spec §3.2).
    assert (bufs["A"], bufs["B"], bufs["C"]) == (0x1000, 0x2000, 0x12000)
    assert program.uop_base == cq.uop_staging_phys == 0x13000
    assert cq.insn_staging_phys == 0x13000 + (1 << 25)

    def is_mem(insn, opcode, mem):
        return isinstance(insn, isa.MemInsn) and insn.opcode == opcode and insn.memory_type == mem

    assert is_mem(insns[0], isa.LOAD, isa.MEM_UOP) and (insns[0].sram_base, insns[0].x_size) == (0, 1)
    assert _flags(insns[0]) == set()
    assert isinstance(insns[1], isa.GemmInsn) and insns[1].reset_reg == 1 and _flags(insns[1]) == {"Pp"}
    assert (insns[1].uop_bgn, insns[1].uop_end, insns[1].iter_out, insns[1].dst_factor_out) == (0, 1, 16, 1)
    assert is_mem(insns[2], isa.LOAD, isa.MEM_INP) and _flags(insns[2]) == {"pn"}
    assert is_mem(insns[3], isa.LOAD, isa.MEM_WGT) and _flags(insns[3]) == {"Pn"}
    assert (insns[3].y_size, insns[3].x_size, insns[3].x_stride) == (16, 1, 16)
    assert is_mem(insns[4], isa.LOAD, isa.MEM_UOP) and insns[4].sram_base == 1 and _flags(insns[4]) == {"pp"}
    assert isinstance(insns[5], isa.GemmInsn) and _flags(insns[5]) == {"Pp"}
    assert (insns[5].uop_bgn, insns[5].uop_end, insns[5].wgt_factor_out) == (1, 2, 1)
    for ko in range(1, 16):   # cached kernel: no further uop loads
        inp, wgt, gemm = insns[3 * ko + 3:3 * ko + 6]
        assert is_mem(inp, isa.LOAD, isa.MEM_INP) and _flags(inp) == {"pn"} and inp.dram_base == 0x100 + ko
        assert is_mem(wgt, isa.LOAD, isa.MEM_WGT) and _flags(wgt) == {"Pn"} and wgt.dram_base == 0x20 + ko
        assert isinstance(gemm, isa.GemmInsn) and (gemm.uop_bgn, gemm.uop_end) == (1, 2)
        assert _flags(gemm) == ({"pp", "Pp", "Pn"} if ko == 15 else {"pp", "Pp"})
    assert is_mem(insns[51], isa.STORE, isa.MEM_OUT) and _flags(insns[51]) == {"pp", "Pp"}
    assert is_mem(insns[52], isa.LOAD, isa.MEM_INP) and insns[52].x_size == 0 and _flags(insns[52]) == {"pn"}
    assert is_mem(insns[53], isa.LOAD, isa.MEM_INP) and insns[53].x_size == 0 and _flags(insns[53]) == {"Pn"}
    assert is_mem(insns[54], isa.LOAD, isa.MEM_UOP) and insns[54].x_size == 0
    assert _flags(insns[54]) == {"pp", "pn"}
    assert isinstance(insns[55], isa.FinishInsn) and _flags(insns[55]) == set()
    assert list(program.uops) == list(isa.encode_uops([isa.Uop(0, 0, 0), isa.Uop(0, 0, 0)], env))


def test_matrix_multiply_matches_golden_disassembly(env):
    _check_golden("matrix_multiply.txt", stream_matrix_multiply(env)[0].programs[0])


def test_matrix_multiply_opt_matches_golden_disassembly(env):
    _check_golden("matrix_multiply_opt.txt", stream_matrix_multiply_opt(env)[0].programs[0])


# Worked encodings of spec §2.9 (word1 : word0) and the tutorial stream each appears in.
SPEC_2_9_ENCODINGS = {
    "LOAD UOP": ("0000000100010001 : 0000013000000000", "mm"),
    "GEMM reset": ("0000000000000001 : 00020080002000a2", "mm"),
    "LOAD INP": ("0000000100010001 : 0000000400000110", "mm"),
    "LOAD WGT": ("0000001000010010 : 00000000800000c0", "mm"),
    "GEMM": ("0000100000000001 : 000200800040012a", "mm"),
    "STORE": ("0000001000100001 : 0000004800000229", "mm"),
    "NOP load pop": ("0000000000000000 : 0000000000000110", "mm"),
    "NOP load push": ("0000000000000000 : 0000000000000140", "mm"),
    "NOP compute": ("0000000000000000 : 0000000000000018", "mm"),
    "NOP store": ("0000000000000000 : 0000000000000021", "conv"),
    "FINISH": ("0000000000000000 : 0000000000000003", "mm"),
    "LOAD INP padded": ("1101000e000e0008 : 0000000400000110", "conv"),
    "GEMM conv": ("0000902000007062 : 000e004013401c22", "conv"),
    "ALU SHR imm 8": ("0008b00200000800 : 0620000823211804", "conv"),
    "ALU MIN imm 127": ("007f800200000800 : 0620000823611a44", "conv"),
}


@pytest.fixture(scope="module")
def tutorial_streams(env):
    return {"mm": stream_matrix_multiply(env)[0], "mmopt": stream_matrix_multiply_opt(env)[0],
            "conv": stream_convolution_opt(env)[0]}


@pytest.mark.parametrize("name", list(SPEC_2_9_ENCODINGS))
def test_spec_2_9_encoding_appears_in_its_tutorial_stream(env, tutorial_streams, name):
    words, stream = SPEC_2_9_ENCODINGS[name]
    emitted = {_words(insn, env) for insn in tutorial_streams[stream].programs[0]}
    assert words in emitted


def test_matrix_multiply_first_encodings_in_order(env, tutorial_streams):
    insns = tutorial_streams["mm"].programs[0].instructions
    order = ["LOAD UOP", "GEMM reset", "LOAD INP", "LOAD WGT"]
    assert [_words(i, env) for i in insns[:4]] == [SPEC_2_9_ENCODINGS[n][0] for n in order]
    assert _words(insns[8], env) == SPEC_2_9_ENCODINGS["GEMM"][0]   # ko = 1: cached kernel, pp + Pp
    assert _words(insns[-1], env) == SPEC_2_9_ENCODINGS["FINISH"][0]


def test_matrix_multiply_opt_gives_142_then_143_instructions(env):
    cq, _ = stream_matrix_multiply_opt(env, calls=2)
    assert [len(p) for p in cq.programs] == [142, 143]
    first, second = cq.programs
    # The dep_pop issued after the first synchronize is pending into the second stream, and the
    # stream's own first dep_pop(3, 2) commits it as a compute NOP of its own (spec §5.7).
    nop, uop_load = second.instructions[1:3]
    assert isinstance(nop, isa.MemInsn) and nop.memory_type == isa.MEM_UOP and nop.x_size == 0
    assert _flags(nop) == {"pn"}
    assert uop_load.memory_type == isa.MEM_UOP and uop_load.x_size == 1 and _flags(uop_load) == {"pn"}
    # In the first stream the same pop rides on the LOAD UOP directly.
    assert first.instructions[1].x_size == 1 and _flags(first.instructions[1]) == {"pn"}
    # Kernels stay recorded but are reloaded once per synchronize: same uops, same loads.
    assert list(first.uops) == list(second.uops) and len(first.uops) == 5
    loads = [sum(1 for i in p if isinstance(i, isa.MemInsn) and i.memory_type == isa.MEM_UOP and i.x_size)
             for p in cq.programs]
    assert loads == [5, 5]


def test_convolution_opt_gives_3366_instructions(env, tutorial_streams):
    program = tutorial_streams["conv"].programs[0]
    assert len(program) == 3366
    assert len(program.uops) == 286
    stores = sum(1 for i in program if isinstance(i, isa.MemInsn) and i.opcode == isa.STORE and i.x_size)
    assert stores == 3136


def test_tutorial_stream_digests(env, tutorial_streams):
    """Regression pin of every byte of the three streams (the golden files show the small ones)."""
    digests = {}
    for name, cq in tutorial_streams.items():
        program = cq.programs[0]
        digests[name] = {"instructions": len(program), "uop_base": program.uop_base,
                         "insn_sha256": hashlib.sha256(program.to_bytes()).hexdigest(),
                         "uop_sha256": hashlib.sha256(program.uops.astype("<u4").tobytes()).hexdigest()}
    path = GOLDEN_DIR / "tutorial_stream_digests.json"
    if os.environ.get("VTA_DSE_UPDATE_GOLDEN"):
        path.write_text(json.dumps(digests, indent=1) + "\n")
    assert json.loads(path.read_text()) == digests


# ---- execution on the simulator -------------------------------------------------------------

def _simulator_run():
    try:
        from simulator import Simulator  # noqa: F401
    except ImportError:
        pytest.skip("simulator.Simulator is not available yet")
    from simulator._run import run
    return run


def _reference_counters(name: str) -> dict:
    entries = json.loads(reference_file("tutorial_counters.json").read_text())
    by_name = {entry["name"]: entry for entry in entries}
    return by_name[name]["per_call_counters"]


def _module(cq, name, buffers):
    from compiler.module import Module
    return Module.from_command_queue(name, cq, [(n, s, d, cq_phys) for n, s, d, cq_phys in buffers])


def _shr_clip(acc):
    return np.clip(acc >> 8, 0, 127).astype(np.int8)


def test_matrix_multiply_runs_to_published_counters_and_numpy_result(env):
    run = _simulator_run()
    cq, bufs = stream_matrix_multiply(env)
    mod = _module(cq, "matrix_multiply", [("A", (1, 16, 1, 16), "int8", bufs["A"]),
                                          ("B", (16, 16, 16, 16), "int8", bufs["B"]),
                                          ("C", (1, 16, 1, 16), "int8", bufs["C"])])
    rng = np.random.default_rng(0)
    a = rng.integers(-128, 128, (1, 16, 1, 16), dtype=np.int8)
    b = rng.integers(-128, 128, (16, 16, 16, 16), dtype=np.int8)
    c = np.zeros((1, 16, 1, 16), np.int8)
    result = run(mod, a, b, c)
    assert result.stats == _reference_counters("tvm_tutorial_matrix_multiply_simple")
    expected = np.einsum("ki,mkji->mj", a[0, :, 0, :].astype(np.int32), b.astype(np.int32))
    np.testing.assert_array_equal(c[0, :, 0, :], expected.astype(np.int8))


def test_matrix_multiply_opt_runs_to_published_counters_and_numpy_result(env):
    run = _simulator_run()
    cq, bufs = stream_matrix_multiply_opt(env)
    mod = _module(cq, "matrix_multiply_opt", [("data", (1, 64, 1, 16), "int8", bufs["data"]),
                                              ("weight", (64, 64, 16, 16), "int8", bufs["weight"]),
                                              ("res", (1, 64, 1, 16), "int8", bufs["res"])])
    rng = np.random.default_rng(1)
    data = rng.integers(-128, 128, (1, 64, 1, 16), dtype=np.int8)
    weight = rng.integers(-128, 128, (64, 64, 16, 16), dtype=np.int8)
    res = np.zeros((1, 64, 1, 16), np.int8)
    result = run(mod, data, weight, res)
    assert result.stats == _reference_counters("tvm_tutorial_matrix_multiply_opt_blocked_gemm")
    acc = np.einsum("ki,okji->oj", data[0, :, 0, :].astype(np.int32), weight.astype(np.int32))
    np.testing.assert_array_equal(res[0, :, 0, :], _shr_clip(acc))


def test_convolution_opt_runs_to_published_counters_and_numpy_result(env):
    run = _simulator_run()
    cq, bufs = stream_convolution_opt(env)
    mod = _module(cq, "convolution_opt", [("data", (1, 16, 14, 14, 1, 16), "int8", bufs["data"]),
                                          ("kernel", (16, 16, 3, 3, 16, 16), "int8", bufs["kernel"]),
                                          ("res", (1, 16, 14, 14, 1, 16), "int8", bufs["res"])])
    rng = np.random.default_rng(2)
    data = rng.integers(-128, 128, (1, 16, 14, 14, 1, 16), dtype=np.int8)
    kernel = rng.integers(-128, 128, (16, 16, 3, 3, 16, 16), dtype=np.int8)
    res = np.zeros((1, 16, 14, 14, 1, 16), np.int8)
    result = run(mod, data, kernel, res)
    assert result.stats == _reference_counters("tvm_tutorial_convolution_opt_resnet_c9_like")
    padded = np.pad(data[0, :, :, :, 0, :].astype(np.int32), ((0, 0), (1, 1), (1, 1), (0, 0)))
    acc = np.zeros((16, 14, 14, 16), np.int32)
    for dy in range(3):
        for dx in range(3):
            window = padded[:, dy:dy + 14, dx:dx + 14, :]          # (icb, h, w, ici)
            acc += np.einsum("chwi,ocji->ohwj", window, kernel[:, :, dy, dx].astype(np.int32))
    np.testing.assert_array_equal(res[0, :, :, :, 0, :], _shr_clip(acc))
