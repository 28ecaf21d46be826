"""Hand assembly of small VTA programs for the simulator tests.

``serialize`` adds the dependency tokens upstream's FORCE_SERIAL mode would: every change of
module between adjacent instructions is a push on the earlier and a pop on the later one, so the
program is race-free and runs in program order on any scheduler.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from compiler import isa
from compiler.isa import AluInsn, FinishInsn, GemmInsn, MemInsn, Program, Uop

LOAD_M, COMPUTE_M, STORE_M = 0, 1, 2


def module_of(insn) -> int:
    if isinstance(insn, MemInsn):
        if insn.opcode == isa.STORE:
            return STORE_M
        return LOAD_M if insn.memory_type in (isa.MEM_INP, isa.MEM_WGT) else COMPUTE_M
    return COMPUTE_M


def compute_nop() -> MemInsn:
    return MemInsn(opcode=isa.LOAD, memory_type=isa.MEM_UOP)


def _link(prev, nxt) -> None:
    if module_of(prev) < module_of(nxt):
        prev.push_next, nxt.pop_prev = 1, 1
    else:
        prev.push_prev, nxt.pop_next = 1, 1


def serialize(insns) -> list:
    """Copies of ``insns`` with tokens forcing program order, ending in a FINISH."""
    out = []
    for insn in insns:
        insn = dataclasses.replace(insn)
        if out and module_of(out[-1]) != module_of(insn):
            if {module_of(out[-1]), module_of(insn)} == {LOAD_M, STORE_M}:  # no direct queue
                nop = compute_nop()
                _link(out[-1], nop)
                out.append(nop)
            _link(out[-1], insn)
        out.append(insn)
    if out and module_of(out[-1]) != COMPUTE_M:  # FINISH must wait for the other modules
        nop = compute_nop()
        _link(out[-1], nop)
        out.append(nop)
    out.append(FinishInsn())
    return out


class Asm:
    """Collects instructions and uop kernels; uops go to DRAM at ``uop_base`` (byte address)."""

    def __init__(self, env, uop_base: int = 0xF0000):
        self.env, self.uop_base = env, uop_base
        self.insns: list = []
        self.uops: list[Uop] = []

    def load(self, mem, sram, dram_elem, y, x, stride=None, pads=(0, 0, 0, 0)):
        self.insns.append(MemInsn(opcode=isa.LOAD, memory_type=mem, sram_base=sram, dram_base=dram_elem,
                                  y_size=y, x_size=x, x_stride=x if stride is None else stride,
                                  y_pad_0=pads[0], y_pad_1=pads[1], x_pad_0=pads[2], x_pad_1=pads[3]))

    def store(self, sram, dram_elem, y, x, stride=None):
        self.insns.append(MemInsn(opcode=isa.STORE, memory_type=isa.MEM_OUT, sram_base=sram,
                                  dram_base=dram_elem, y_size=y, x_size=x,
                                  x_stride=x if stride is None else stride))

    def kernel(self, uops, sram_base: int = 0) -> tuple[int, int]:
        """LOAD UOP of ``uops`` into uop SRAM at ``sram_base``; returns (uop_bgn, uop_end)."""
        offset = len(self.uops)
        self.uops.extend(uops)
        n = len(uops)
        self.insns.append(MemInsn(opcode=isa.LOAD, memory_type=isa.MEM_UOP, sram_base=sram_base,
                                  dram_base=self.uop_base // 4 + offset, y_size=1, x_size=n, x_stride=n))
        return sram_base, sram_base + n

    def gemm(self, uops_range, out=(1, 0, 0, 0), inner=(1, 0, 0, 0), reset=0):
        self.insns.append(GemmInsn(reset_reg=reset, uop_bgn=uops_range[0], uop_end=uops_range[1],
                                   iter_out=out[0], dst_factor_out=out[1], src_factor_out=out[2],
                                   wgt_factor_out=out[3], iter_in=inner[0], dst_factor_in=inner[1],
                                   src_factor_in=inner[2], wgt_factor_in=inner[3]))

    def alu(self, uops_range, op, out=(1, 0, 0), inner=(1, 0, 0), imm=None):
        self.insns.append(AluInsn(uop_bgn=uops_range[0], uop_end=uops_range[1], iter_out=out[0],
                                  dst_factor_out=out[1], src_factor_out=out[2], iter_in=inner[0],
                                  dst_factor_in=inner[1], src_factor_in=inner[2], alu_opcode=op,
                                  use_imm=int(imm is not None), imm=0 if imm is None else imm))

    def program(self) -> Program:
        return Program(self.env, serialize(self.insns), isa.encode_uops(self.uops, self.env)
                       if self.uops else None, self.uop_base)


def put(sim, byte_addr: int, array) -> None:
    """Write ``array``'s bytes into the simulator DRAM."""
    data = np.ascontiguousarray(array).view(np.uint8).ravel()
    sim.dram[byte_addr:byte_addr + data.size] = data


def get(sim, byte_addr: int, dtype, shape) -> np.ndarray:
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return sim.dram[byte_addr:byte_addr + n].view(dtype).reshape(shape).copy()
