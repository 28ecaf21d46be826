"""``Module``: what ``compiler.build`` returns — the finished program(s), where every argument
buffer lives in device memory, and how much DRAM a run needs; saved and loaded as one ``.npz``."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .isa import (ALU, GEMM, LOAD, MEM_ACC, MEM_ACC_8BIT, MEM_INP, MEM_OUT, MEM_UOP, MEM_WGT, STORE, MemInsn,
                  Program, buffer_nbytes, decode_uop_fields, dtype_bits)
from ._runtime.command_queue import CommandQueue
from ._runtime.memory import PAGE_BYTES
from ._runtime.uop_cache import UOP_ELEM_BYTES

FORMAT = "vta-dse-module-v1"


@dataclasses.dataclass(frozen=True)
class ArgBuffer:
    """One argument of the built function, in call order, at its device physical address."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    phys_addr: int
    nbytes: int
    is_output: bool = False   # written by a STORE of the program

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: dict) -> "ArgBuffer":
        return cls(**{**data, "shape": tuple(data["shape"])})


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def _mem_extent(insn: MemInsn, elem_bytes: int) -> tuple[int, int]:
    """[start, end) DRAM bytes a LOAD/STORE touches (pads are not read)."""
    start = insn.dram_base * elem_bytes
    span = ((insn.y_size - 1) * insn.x_stride + insn.x_size) * elem_bytes
    return start, start + span


class Module:
    """A built VTA kernel: ``programs`` (one per synchronize), ``args`` and ``dram_size``."""

    def __init__(self, env, name: str, programs: Sequence[Program], args: Sequence[ArgBuffer],
                 dram_size: int, lowered_ir: str | None = None):
        if not programs:
            raise ValueError(f"module {name!r}: no program (the runtime was never synchronized)")
        self.env = env
        self.name = name
        self.programs = list(programs)
        self.args = list(args)
        self.dram_size = int(dram_size)
        self.lowered_ir = lowered_ir

    @property
    def program(self) -> Program:
        """The program of the single synchronize."""
        if len(self.programs) != 1:
            raise ValueError(f"module {self.name!r} has {len(self.programs)} programs (one per synchronize); "
                             f"use .programs")
        return self.programs[0]

    @property
    def outputs(self) -> list[ArgBuffer]:
        return [arg for arg in self.args if arg.is_output]

    def __repr__(self) -> str:
        sizes = "+".join(str(len(p)) for p in self.programs)
        return (f"Module({self.name!r}, {sizes} instructions, args {[a.name for a in self.args]}, "
                f"dram {self.dram_size:#x}, {self.env!r})")

    # ---- construction from a runtime ------------------------------------------------------
    @classmethod
    def from_command_queue(cls, name: str, queue: CommandQueue,
                           buffers: Iterable[tuple[str, Sequence[int], str, int]],
                           lowered_ir: str | None = None) -> "Module":
        """A module of every program ``queue`` synchronized; ``buffers`` are ``(name, shape, dtype,
        phys_addr)`` in argument order, each allocated from ``queue.memory``."""
        env = queue.env
        if not queue.programs:
            raise ValueError(f"module {name!r}: the command queue was never synchronized")
        out_bytes = queue.elem_bytes(MEM_OUT)
        stores = [_mem_extent(insn, out_bytes) for program in queue.programs for insn in program
                  if isinstance(insn, MemInsn) and insn.opcode == STORE and insn.x_size]
        args = []
        for arg_name, shape, dtype, phys in buffers:
            shape = tuple(int(s) for s in shape)
            nbytes = buffer_nbytes(shape, dtype)
            block = queue.memory.allocation(phys)
            if nbytes > block.num_pages * PAGE_BYTES:
                raise ValueError(f"argument {arg_name!r}: {nbytes} B of {shape} {dtype} does not fit its "
                                 f"{block.num_pages * PAGE_BYTES} B device allocation at {phys:#x}")
            written = any(start < phys + nbytes and end > phys for start, end in stores)
            dtype = str(dtype) if dtype_bits(dtype) < 8 else str(np.dtype(dtype))   # numpy has no int4
            args.append(ArgBuffer(arg_name, shape, dtype, int(phys), nbytes, written))
        return cls(env, name, queue.programs, args, required_dram(queue, args), lowered_ir)

    def footprint(self) -> dict[str, int]:
        """On-chip bytes each SRAM must hold for this module, derived from its instructions.

        Per buffer: (highest element index any LOAD/STORE, GEMM or ALU uop-iteration touches
        + 1) x element bytes; 'uop' is the highest uop-SRAM index loaded or referenced + 1 times
        the uop bytes. 'out' is the output buffer, which shares the accumulator's index space
        (OUT depth = ACC depth, vta-spec §1): stores read it, GEMM/ALU write it at their dst.
        A reset GEMM reads no input or weight; an ALU with an immediate reads no src."""
        return module_footprint(self.env, self.programs)

    # ---- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        meta = {"format": FORMAT, "name": self.name, "config": self.env.cfg.to_dict(),
                "args": [a.to_dict() for a in self.args], "dram_size": self.dram_size,
                "lowered_ir": self.lowered_ir, "uop_bases": [p.uop_base for p in self.programs]}
        arrays = {"meta": np.array(json.dumps(meta))}
        for i, program in enumerate(self.programs):
            arrays[f"insns_{i}"] = np.frombuffer(program.to_bytes(), dtype=np.uint8)
            arrays[f"uops_{i}"] = program.uops.astype(np.uint32)
        with open(path, "wb") as handle:   # a file object keeps numpy from appending ".npz"
            np.savez_compressed(handle, **arrays)


def module_footprint(env, programs: Sequence[Program]) -> dict[str, int]:
    """:meth:`Module.footprint` of ``programs`` run in order (uop SRAM persists between them,
    as on the device, and each LOAD UOP reads the staged words at its DRAM address as the
    hardware does, including upstream's post-wrap staging defect)."""
    top = {"inp": 0, "wgt": 0, "acc": 0, "uop": 0, "out": 0}   # highest index + 1
    sram_of = {MEM_INP: "inp", MEM_WGT: "wgt", MEM_ACC: "acc", MEM_ACC_8BIT: "acc", MEM_UOP: "uop"}
    uop_dst = [0] * env.UOP_DEPTH
    uop_src = [0] * env.UOP_DEPTH
    uop_wgt = [0] * env.UOP_DEPTH
    for program in programs:
        dst, src, wgt = (a.tolist() for a in decode_uop_fields(program.uops, env))
        staged = program.uop_base // UOP_ELEM_BYTES
        for insn in program.instructions:
            opcode = insn.opcode
            if opcode == LOAD or opcode == STORE:
                if not insn.x_size or not insn.y_size:
                    continue
                if opcode == STORE:
                    end = insn.sram_base + insn.x_size * insn.y_size
                    if end > top["out"]:
                        top["out"] = end
                    continue
                rows = insn.y_pad_0 + insn.y_size + insn.y_pad_1
                cols = insn.x_pad_0 + insn.x_size + insn.x_pad_1
                end = insn.sram_base + rows * cols
                name = sram_of.get(insn.memory_type)
                if name is None:
                    continue
                if end > top[name]:
                    top[name] = end
                if insn.memory_type == MEM_UOP:
                    for row in range(insn.y_size):
                        first = insn.dram_base + row * insn.x_stride - staged
                        sram = insn.sram_base + row * insn.x_size
                        for j in range(insn.x_size):
                            w = first + j
                            inside = 0 <= w < len(dst)   # outside the staging buffer DRAM holds zeros
                            slot = (sram + j) % env.UOP_DEPTH
                            uop_dst[slot] = dst[w] if inside else 0
                            uop_src[slot] = src[w] if inside else 0
                            uop_wgt[slot] = wgt[w] if inside else 0
            elif opcode == GEMM or opcode == ALU:
                bgn, end = insn.uop_bgn, insn.uop_end
                if end <= bgn or insn.iter_out <= 0 or insn.iter_in <= 0:
                    continue
                if end > top["uop"]:
                    top["uop"] = end
                o, i = insn.iter_out - 1, insn.iter_in - 1
                d = max(uop_dst[bgn:end]) + o * insn.dst_factor_out + i * insn.dst_factor_in + 1
                if d > top["acc"]:
                    top["acc"] = d
                if d > top["out"]:
                    top["out"] = d
                if opcode == GEMM:
                    if insn.reset_reg:
                        continue
                    s = max(uop_src[bgn:end]) + o * insn.src_factor_out + i * insn.src_factor_in + 1
                    w = max(uop_wgt[bgn:end]) + o * insn.wgt_factor_out + i * insn.wgt_factor_in + 1
                    if s > top["inp"]:
                        top["inp"] = s
                    if w > top["wgt"]:
                        top["wgt"] = w
                elif not insn.use_imm:
                    s = max(uop_src[bgn:end]) + o * insn.src_factor_out + i * insn.src_factor_in + 1
                    if s > top["acc"]:
                        top["acc"] = s
    unit = {"inp": env.INP_ELEM_BYTES, "wgt": env.WGT_ELEM_BYTES, "acc": env.ACC_ELEM_BYTES,
            "uop": env.UOP_ELEM_BYTES, "out": env.OUT_ELEM_BYTES}
    return {name: top[name] * unit[name] for name in top}


def required_dram(queue: CommandQueue, args: Sequence[ArgBuffer]) -> int:
    """Bytes of flat DRAM a run needs: every argument, every byte a LOAD/STORE touches and the
    used part of the uop staging buffer, rounded up to a page."""
    end = max((a.phys_addr + a.nbytes for a in args), default=0)
    for program in queue.programs:
        end = max(end, program.uop_base + 4 * len(program.uops))
        for insn in program:
            if isinstance(insn, MemInsn) and insn.x_size:
                end = max(end, _mem_extent(insn, queue.elem_bytes(insn.memory_type))[1])
    return _round_up(max(end, PAGE_BYTES), PAGE_BYTES)


def load(path: str | Path) -> Module:
    """A module saved by :meth:`Module.save`."""
    import hwconfigs

    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a saved module ({exc})") from None
    with archive:
        if "meta" not in archive.files:
            raise ValueError(f"{path}: not a saved module (no 'meta' entry)")
        meta = json.loads(str(archive["meta"]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: module format {meta.get('format')!r}, expected {FORMAT!r}")
        env = hwconfigs.get_env(meta["config"])
        programs = []
        for i, uop_base in enumerate(meta["uop_bases"]):
            program = Program.from_bytes(archive[f"insns_{i}"].tobytes(), env)
            programs.append(Program(env, program.instructions, archive[f"uops_{i}"], uop_base))
    args = [ArgBuffer.from_dict(a) for a in meta["args"]]
    return Module(env, meta["name"], programs, args, meta["dram_size"], meta["lowered_ir"])
