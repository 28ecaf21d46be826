"""Decode a raw instruction stream once into ``Step`` records, checking everything static.

Field positions come from ``env.isa`` (the single derivation in ``hwconfigs``); all fields of
all instructions are extracted with a handful of vectorised shifts, so decoding costs little
next to execution. Every check that does not depend on SRAM contents happens here, before the
run touches any state, so a rejected program leaves the machine exactly as it was.
"""
from __future__ import annotations

import numpy as np

from compiler import isa

from . import _counters as C
from ._errors import SimulationError

LOAD_MODULE, COMPUTE_MODULE, STORE_MODULE = 0, 1, 2
MODULE_NAMES = ("load", "compute", "store")
L2G, G2L, S2G, G2S = 0, 1, 2, 3
QUEUE_NAMES = ("l2g", "g2l", "s2g", "g2s")
# (pop_prev, pop_next, push_prev, push_next) queue of each module; None: the flag has no queue
# there (upstream dereferences a null queue and crashes, vta-spec §2.2).
MODULE_QUEUES = {
    LOAD_MODULE: (None, G2L, None, L2G),
    COMPUTE_MODULE: (L2G, S2G, G2L, G2S),
    STORE_MODULE: (G2S, None, S2G, None),
}
FLAG_NAMES = ("pop_prev", "pop_next", "push_prev", "push_next")

K_NOP, K_LOAD, K_STORE, K_GEMM, K_ALU, K_FINISH = range(6)
MEM_FIELDS = ("sram_base", "dram_base", "y_size", "x_size", "x_stride",
              "y_pad_0", "y_pad_1", "x_pad_0", "x_pad_1")
LOOP_FIELDS = ("uop_bgn", "uop_end", "iter_out", "iter_in",
               "dst_factor_out", "dst_factor_in", "src_factor_out", "src_factor_in")
LOAD_COUNTER = {isa.MEM_INP: C.INP_LOAD, isa.MEM_WGT: C.WGT_LOAD, isa.MEM_ACC: C.ACC_LOAD,
                isa.MEM_ACC_8BIT: C.ACC_LOAD, isa.MEM_UOP: C.UOP_LOAD}


class Step:
    """One decoded instruction as the scheduler needs it.

    ``pops``/``pushes`` are the token-queue indices of its set flags; ``counter``/``amount`` its
    static contribution to the profiler (counts never depend on data, vta-spec §4); ``args`` the
    kind-specific fields in the order the executors unpack them.
    """

    __slots__ = ("index", "module", "kind", "pops", "pushes", "counter", "amount",
                 "memory_type", "args", "raw")

    def __init__(self, index, module, kind, pops, pushes, raw):
        self.index, self.module, self.kind = index, module, kind
        self.pops, self.pushes, self.raw = pops, pushes, raw
        self.counter, self.amount, self.memory_type, self.args = -1, 0, -1, ()

    def disassemble(self, env) -> str:
        try:
            return str(isa.decode(self.raw, env, self.index))
        except isa.IsaError:
            return f"raw {self.raw.hex()}"

    def describe(self, env) -> str:
        return f"instruction {self.index} ({self.disassemble(env)})"


def _columns(words: np.ndarray, layout) -> dict[str, list[int]]:
    """Every field of ``layout`` for every instruction, as Python ints."""
    out = {}
    for name, lsb, width in layout.fields:
        col = (words[:, lsb // 64] >> np.uint64(lsb % 64)) & np.uint64((1 << width) - 1)
        out[name] = col.tolist()
    return out


elem_bytes = isa.elem_bytes


def sram_depth(env, memory_type: int) -> int:
    return {isa.MEM_UOP: env.UOP_DEPTH, isa.MEM_INP: env.INP_DEPTH, isa.MEM_WGT: env.WGT_DEPTH,
            isa.MEM_ACC: env.ACC_DEPTH, isa.MEM_ACC_8BIT: env.ACC_DEPTH,
            isa.MEM_OUT: env.ACC_DEPTH}[memory_type]


def decode_stream(data, env, dram_size: int) -> list[Step]:
    """``Step`` records of a raw stream; raises SimulationError for anything statically wrong."""
    data = bytes(data)
    if len(data) % isa.INSN_BYTES:
        raise SimulationError(
            f"instruction stream of {len(data)} bytes is not a multiple of {isa.INSN_BYTES}: truncated, "
            f"{len(data) // isa.INSN_BYTES} whole instructions then {len(data) % isa.INSN_BYTES} stray bytes")
    n = len(data) // isa.INSN_BYTES
    if n == 0:
        raise SimulationError("empty instruction stream: no FINISH")
    words = np.frombuffer(data, dtype="<u8").reshape(n, 2)
    opcode = (words[:, 0] & np.uint64(7)).tolist()
    hdr = _columns(words, env.isa.gemm)  # the header sits at the same bits in every layout
    mem = _columns(words, env.isa.mem)
    gemm = _columns(words, env.isa.gemm)
    alu = _columns(words, env.isa.alu)
    flags = [hdr[f + "_dep"] for f in FLAG_NAMES]

    steps = []
    for i in range(n):
        op = opcode[i]
        raw = data[i * 16:(i + 1) * 16]
        if op in (isa.LOAD, isa.STORE, isa.GEMM, isa.ALU, isa.FINISH):
            module = MODULE_NAMES.index(isa.module_of(op, mem["memory_type"][i]))
        else:
            raise SimulationError(f"instruction {i}: unknown opcode {op} "
                                  f"(word0 {int(words[i, 0]):#018x}, word1 {int(words[i, 1]):#018x})")
        queues = MODULE_QUEUES[module]
        for f, flag in enumerate(FLAG_NAMES):
            if flags[f][i] and queues[f] is None:
                step = Step(i, module, K_NOP, (), (), raw)
                raise SimulationError(f"{step.describe(env)}: {flag} is set on a {MODULE_NAMES[module]}-module "
                                      f"instruction, which has no such token queue")
        pops = tuple(queues[f] for f in (0, 1) if flags[f][i])
        pushes = tuple(queues[f] for f in (2, 3) if flags[f][i])
        step = Step(i, module, K_NOP, pops, pushes, raw)
        if op in (isa.LOAD, isa.STORE):
            _decode_mem(step, op, {k: mem[k][i] for k in ("memory_type",) + MEM_FIELDS}, env, dram_size)
        elif op == isa.GEMM:
            _decode_gemm(step, {k: gemm[k][i] for k in ("reset_reg",) + LOOP_FIELDS + (
                "wgt_factor_out", "wgt_factor_in")}, env)
        elif op == isa.ALU:
            _decode_alu(step, {k: alu[k][i] for k in LOOP_FIELDS + ("alu_opcode", "use_imm", "imm")}, env)
        else:
            step.kind = K_FINISH
        steps.append(step)
    _check_finish(steps, env)
    return steps


def _decode_mem(step: Step, op: int, f: dict, env, dram_size: int) -> None:
    if f["x_size"] == 0:  # upstream returns before looking at anything else: a token-only NOP
        return
    mtype = f["memory_type"]
    step.memory_type = mtype
    step.args = tuple(f[k] for k in MEM_FIELDS)
    if op == isa.STORE:
        if mtype != isa.MEM_OUT:
            raise SimulationError(f"{step.describe(env)}: STORE memory_type {mtype} "
                                  f"({isa.MEM_NAMES.get(mtype, 'unknown')}); only OUT ({isa.MEM_OUT}) is stored")
        pads = [f[k] for k in ("y_pad_0", "y_pad_1", "x_pad_0", "x_pad_1")]
        if any(pads):
            raise SimulationError(f"{step.describe(env)}: STORE with padding (y_pad {pads[0]}/{pads[1]}, "
                                  f"x_pad {pads[2]}/{pads[3]}); stores take no padding")
        step.kind, step.counter = K_STORE, C.OUT_STORE
        step.amount = f["x_size"] * f["y_size"] * env.OUT_ELEM_BYTES
        rows = f["x_size"] * f["y_size"]
    else:
        if mtype not in LOAD_COUNTER:
            raise SimulationError(f"{step.describe(env)}: unknown LOAD memory_type {mtype} "
                                  f"(UOP 0, WGT 1, INP 2, ACC 3, ACC_8BIT 5)")
        if mtype == isa.MEM_ACC_8BIT and (env.ACC_WIDTH != 32 or env.INP_WIDTH != 8):
            raise SimulationError(f"{step.describe(env)}: ACC_8BIT loads need ACC_WIDTH 32 and INP_WIDTH 8 "
                                  f"(this geometry: {env.ACC_WIDTH}, {env.INP_WIDTH})")
        step.kind, step.counter = K_LOAD, LOAD_COUNTER[mtype]
        # ACC_8BIT counts the full accumulator element (upstream over-counts 4x, vta-spec §4).
        unit = env.ACC_ELEM_BYTES if mtype == isa.MEM_ACC_8BIT else elem_bytes(env, mtype)
        step.amount = f["x_size"] * f["y_size"] * unit
        rows = ((f["x_pad_0"] + f["x_size"] + f["x_pad_1"]) *
                (f["y_pad_0"] + f["y_size"] + f["y_pad_1"]))
    depth = sram_depth(env, mtype)
    if f["sram_base"] + rows > depth:
        raise SimulationError(f"{step.describe(env)}: SRAM rows [{f['sram_base']}, {f['sram_base'] + rows}) "
                              f"exceed the {isa.MEM_NAMES[mtype] if op == isa.LOAD else 'ACC'} depth {depth}")
    if f["y_size"]:
        e = elem_bytes(env, mtype)
        start = f["dram_base"] * e
        end = start + (f["y_size"] - 1) * f["x_stride"] * e + f["x_size"] * e
        if end > dram_size:
            raise SimulationError(f"{step.describe(env)}: DRAM bytes [{start:#x}, {end:#x}) lie outside the "
                                  f"simulated DRAM of {dram_size:#x} bytes")


def _check_loop(step: Step, f: dict, env) -> None:
    if f["uop_end"] < f["uop_bgn"]:
        raise SimulationError(f"{step.describe(env)}: uop_end {f['uop_end']} < uop_bgn {f['uop_bgn']}")
    if f["uop_end"] > env.UOP_DEPTH:
        raise SimulationError(f"{step.describe(env)}: uop range [{f['uop_bgn']}, {f['uop_end']}) "
                              f"exceeds the uop depth {env.UOP_DEPTH}")


def _decode_gemm(step: Step, f: dict, env) -> None:
    _check_loop(step, f, env)
    step.kind = K_GEMM
    step.args = (f["reset_reg"],) + tuple(f[k] for k in LOOP_FIELDS) + (f["wgt_factor_out"], f["wgt_factor_in"])
    if not f["reset_reg"]:  # reset GEMMs add nothing (vta-spec §4)
        step.counter = C.GEMM_COUNT
        step.amount = f["iter_out"] * f["iter_in"] * (f["uop_end"] - f["uop_bgn"])


def _decode_alu(step: Step, f: dict, env) -> None:
    _check_loop(step, f, env)
    if f["alu_opcode"] not in isa.ALU_NAMES:
        raise SimulationError(f"{step.describe(env)}: unknown ALU opcode {f['alu_opcode']} "
                              f"(MIN 0, MAX 1, ADD 2, SHR 3, MUL 4)")
    imm = f["imm"] - (1 << 16) if f["imm"] & 0x8000 else f["imm"]  # a signed bit-field upstream
    step.kind, step.counter = K_ALU, C.ALU_COUNT
    step.amount = f["iter_out"] * f["iter_in"] * (f["uop_end"] - f["uop_bgn"])
    step.args = tuple(f[k] for k in LOOP_FIELDS) + (f["alu_opcode"], f["use_imm"], imm)


def _check_finish(steps: list[Step], env) -> None:
    finishes = [s.index for s in steps if s.kind == K_FINISH]
    if not finishes:
        raise SimulationError(f"instruction stream of {len(steps)} instructions has no FINISH; "
                              f"the run would never end")
    first = finishes[0]
    # Upstream's done flag is overwritten by every later instruction, so anything the compute
    # module runs after FINISH makes the fsim spin forever (vta-spec §3.7).
    later = [s for s in steps[first + 1:] if s.module == COMPUTE_MODULE]
    if later:
        raise SimulationError(f"{later[0].describe(env)} follows FINISH (instruction {first}) in the compute "
                              f"module; FINISH must be the last compute instruction")
