"""The VTA instruction set: instruction and micro-op objects, the 128-bit encoding, ``Program``.

Field positions come from ``env.isa`` (``hwconfigs._isa_layout.isa_layout``), the one place they
are derived, so every legal geometry encodes exactly as the upstream C structs do.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Iterable, Sequence

import numpy as np

# Opcodes, memory ids and ALU opcodes of the v2 ISA (vta-spec §2.1).
LOAD, STORE, GEMM, FINISH, ALU = 0, 1, 2, 3, 4
OPCODE_NAMES = {LOAD: "LOAD", STORE: "STORE", GEMM: "GEMM", FINISH: "FINISH", ALU: "ALU"}
MEM_UOP, MEM_WGT, MEM_INP, MEM_ACC, MEM_OUT, MEM_ACC_8BIT = 0, 1, 2, 3, 4, 5
MEM_NAMES = {MEM_UOP: "UOP", MEM_WGT: "WGT", MEM_INP: "INP", MEM_ACC: "ACC", MEM_OUT: "OUT",
             MEM_ACC_8BIT: "ACC_8BIT"}
ALU_MIN, ALU_MAX, ALU_ADD, ALU_SHR, ALU_MUL = 0, 1, 2, 3, 4
ALU_NAMES = {ALU_MIN: "MIN", ALU_MAX: "MAX", ALU_ADD: "ADD", ALU_SHR: "SHR", ALU_MUL: "MUL"}
INSN_BYTES = 16

_HEADER_FIELDS = {"pop_prev": "pop_prev_dep", "pop_next": "pop_next_dep",
                  "push_prev": "push_prev_dep", "push_next": "push_next_dep"}


class IsaError(ValueError):
    """Bytes that are not a valid VTA instruction stream (names the instruction and field)."""


@dataclasses.dataclass(slots=True)
class Insn:
    """Common header: dependency-token flags (vta-spec §2.2)."""

    pop_prev: int = 0
    pop_next: int = 0
    push_prev: int = 0
    push_next: int = 0

    layout_name: ClassVar[str] = ""

    def flags(self) -> str:
        names = (("pp", self.pop_prev), ("pn", self.pop_next), ("Pp", self.push_prev), ("Pn", self.push_next))
        on = [n for n, v in names if v]
        return f" [{' '.join(on)}]" if on else ""


@dataclasses.dataclass(slots=True)
class MemInsn(Insn):
    """LOAD or STORE of a 2-D strided block with zero padding (vta-spec §2.3)."""

    opcode: int = LOAD
    memory_type: int = MEM_INP
    sram_base: int = 0
    dram_base: int = 0
    y_size: int = 0
    x_size: int = 0
    x_stride: int = 0
    y_pad_0: int = 0
    y_pad_1: int = 0
    x_pad_0: int = 0
    x_pad_1: int = 0

    layout_name: ClassVar[str] = "mem"

    def __str__(self) -> str:
        op = OPCODE_NAMES[self.opcode]
        mem = MEM_NAMES.get(self.memory_type, f"mem{self.memory_type}")
        if self.x_size == 0:
            return f"{op} {mem} NOP{self.flags()}"
        pads = ""
        if self.y_pad_0 or self.y_pad_1 or self.x_pad_0 or self.x_pad_1:
            pads = f" pad y({self.y_pad_0},{self.y_pad_1}) x({self.x_pad_0},{self.x_pad_1})"
        return (f"{op} {mem} sram={self.sram_base} dram={self.dram_base:#x} y={self.y_size} x={self.x_size} "
                f"stride={self.x_stride}{pads}{self.flags()}")


@dataclasses.dataclass(slots=True)
class _LoopInsn(Insn):
    reset_reg: int = 0
    uop_bgn: int = 0
    uop_end: int = 0
    iter_out: int = 1
    iter_in: int = 1
    dst_factor_out: int = 0
    dst_factor_in: int = 0
    src_factor_out: int = 0
    src_factor_in: int = 0

    @property
    def iterations(self) -> int:
        """uop-iterations executed: the unit of gemm_counter and alu_counter."""
        return self.iter_out * self.iter_in * (self.uop_end - self.uop_bgn)


@dataclasses.dataclass(slots=True)
class GemmInsn(_LoopInsn):
    """Matrix multiply-accumulate over a uop range and a two-level loop (vta-spec §2.4)."""

    wgt_factor_out: int = 0
    wgt_factor_in: int = 0

    opcode: ClassVar[int] = GEMM
    layout_name: ClassVar[str] = "gemm"

    def __str__(self) -> str:
        kind = "GEMM reset" if self.reset_reg else "GEMM"
        return (f"{kind} uop=[{self.uop_bgn},{self.uop_end}) out={self.iter_out}"
                f"(d{self.dst_factor_out},s{self.src_factor_out},w{self.wgt_factor_out}) in={self.iter_in}"
                f"(d{self.dst_factor_in},s{self.src_factor_in},w{self.wgt_factor_in}){self.flags()}")


@dataclasses.dataclass(slots=True)
class AluInsn(_LoopInsn):
    """Vector ALU op on accumulator elements, with a tensor or immediate operand (§2.5)."""

    alu_opcode: int = ALU_ADD
    use_imm: int = 0
    imm: int = 0

    opcode: ClassVar[int] = ALU
    layout_name: ClassVar[str] = "alu"

    def __str__(self) -> str:
        name = ALU_NAMES.get(self.alu_opcode, f"op{self.alu_opcode}")
        operand = f" imm={self.imm}" if self.use_imm else ""
        return (f"ALU {name}{operand} uop=[{self.uop_bgn},{self.uop_end}) out={self.iter_out}"
                f"(d{self.dst_factor_out},s{self.src_factor_out}) in={self.iter_in}"
                f"(d{self.dst_factor_in},s{self.src_factor_in}){self.flags()}")


@dataclasses.dataclass(slots=True)
class FinishInsn(Insn):
    """End of the stream: the simulator stops when compute executes it."""

    opcode: ClassVar[int] = FINISH
    layout_name: ClassVar[str] = "gemm"  # only the header is meaningful

    def __str__(self) -> str:
        return f"FINISH{self.flags()}"


@dataclasses.dataclass(frozen=True, slots=True)
class Uop:
    """A micro-op: SRAM element indices (dst in ACC; src in INP for GEMM, ACC for ALU; wgt)."""

    dst_idx: int = 0
    src_idx: int = 0
    wgt_idx: int = 0


# ---- facts every stage shares ---------------------------------------------------------------

def elem_bytes(env, memory_type: int) -> int:
    """Bytes of one DRAM element of ``memory_type``: the unit of ``dram_base`` (upstream
    GetElemBytes). ACC_8BIT elements hold int8 lanes, a quarter of an accumulator element."""
    sizes = {MEM_UOP: env.UOP_ELEM_BYTES, MEM_INP: env.INP_ELEM_BYTES, MEM_WGT: env.WGT_ELEM_BYTES,
             MEM_ACC: env.ACC_ELEM_BYTES, MEM_OUT: env.OUT_ELEM_BYTES,
             MEM_ACC_8BIT: env.ACC_ELEM_BYTES * env.INP_WIDTH // env.ACC_WIDTH}
    if memory_type not in sizes:
        raise IsaError(f"memory type {memory_type} is not recognized; valid: "
                       + ", ".join(f"{name} ({mid})" for mid, name in MEM_NAMES.items()))
    return sizes[memory_type]


LOAD_MODULE, COMPUTE_MODULE, STORE_MODULE = "load", "compute", "store"


def module_of(opcode: int, memory_type: int = MEM_INP) -> str:
    """The hardware module an instruction runs on (vta-spec §2.2): INP/WGT loads on load,
    stores on store, everything else (uop and acc loads, GEMM, ALU, FINISH) on compute."""
    if opcode == STORE:
        return STORE_MODULE
    if opcode == LOAD and memory_type in (MEM_INP, MEM_WGT):
        return LOAD_MODULE
    return COMPUTE_MODULE


# ---- encoding ------------------------------------------------------------------------------

def _layout_of(insn: Insn, env):
    return getattr(env.isa, "gemm" if isinstance(insn, FinishInsn) else insn.layout_name)


def encode(insn: Insn, env) -> bytes:
    """The 16 little-endian bytes of ``insn``; values are truncated to their field widths, as
    upstream's C bit-field assignments do."""
    layout = _layout_of(insn, env)
    word = 0
    for name, lsb, width in layout.fields:
        if name == "opcode":
            value = insn.opcode
        elif isinstance(insn, FinishInsn) and name not in _HEADER_FIELDS.values():
            continue
        else:
            value = getattr(insn, _attr(name))
        word |= (int(value) & ((1 << width) - 1)) << lsb
    return word.to_bytes(INSN_BYTES, "little")


def _attr(field: str) -> str:
    return field[:-4] if field.endswith("_dep") else field


def _extract(word: int, layout) -> dict:
    return {_attr(name): (word >> lsb) & ((1 << width) - 1) for name, lsb, width in layout.fields
            if name != "opcode"}


def decode(raw: bytes, env, index: int = 0) -> Insn:
    """One instruction from its 16 bytes (``index`` only names it in errors)."""
    if len(raw) != INSN_BYTES:
        raise IsaError(f"instruction {index}: needs {INSN_BYTES} bytes, got {len(raw)}")
    word = int.from_bytes(raw, "little")
    opcode = word & 0x7
    if opcode in (LOAD, STORE):
        fields = _extract(word, env.isa.mem)
        return MemInsn(opcode=opcode, **fields)
    if opcode == GEMM:
        return GemmInsn(**_extract(word, env.isa.gemm))
    if opcode == ALU:
        fields = _extract(word, env.isa.alu)
        if fields["imm"] & 0x8000:  # the fsim reads imm as a signed bit-field
            fields["imm"] -= 1 << 16
        return AluInsn(**fields)
    if opcode == FINISH:
        header = {k: (word >> env.isa.gemm[v][0]) & 1 for k, v in _HEADER_FIELDS.items()}
        return FinishInsn(**header)
    raise IsaError(f"instruction {index}: unknown opcode {opcode} (word0 {word & ((1 << 64) - 1):#018x})")


def encode_uops(uops: Iterable[Uop], env) -> np.ndarray:
    """Micro-ops packed into uint32 words (fields truncated to their widths)."""
    out = []
    layout = env.isa.uop
    for uop in uops:
        word = 0
        for name, lsb, width in layout.fields:
            word |= (int(getattr(uop, name)) & ((1 << width) - 1)) << lsb
        out.append(word)
    return np.asarray(out, dtype=np.uint32)


def decode_uop_fields(words: np.ndarray, env) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dst, src, wgt) index arrays of packed uop words, vectorised."""
    words = np.asarray(words, dtype=np.uint32).astype(np.int64)
    out = []
    for name in ("dst_idx", "src_idx", "wgt_idx"):
        lsb, width = env.isa.uop[name]
        out.append((words >> lsb) & ((1 << width) - 1))
    return tuple(out)


def decode_uops(words: np.ndarray, env) -> list[Uop]:
    dst, src, wgt = decode_uop_fields(words, env)
    return [Uop(int(d), int(s), int(w)) for d, s, w in zip(dst, src, wgt)]


# ---- programs ------------------------------------------------------------------------------

class Program:
    """An instruction stream for one environment, plus the micro-op words its LOAD UOPs read.

    ``uops`` (uint32) live in DRAM at byte address ``uop_base`` (upstream's uop staging buffer);
    a program decoded from raw bytes carries none: its uops are expected in DRAM already.
    """

    def __init__(self, env, instructions: Sequence[Insn], uops: np.ndarray | None = None,
                 uop_base: int = 0):
        self.env = env
        self.instructions = list(instructions)
        self.uops = np.zeros(0, np.uint32) if uops is None else np.asarray(uops, dtype=np.uint32)
        self.uop_base = int(uop_base)

    def __len__(self) -> int:
        return len(self.instructions)

    def __iter__(self):
        return iter(self.instructions)

    def to_bytes(self) -> bytes:
        return b"".join(encode(insn, self.env) for insn in self.instructions)

    @classmethod
    def from_bytes(cls, data: bytes, env) -> "Program":
        data = bytes(data)
        if len(data) % INSN_BYTES:
            raise IsaError(f"instruction stream of {len(data)} bytes is not a multiple of {INSN_BYTES}: "
                           f"truncated after instruction {len(data) // INSN_BYTES}")
        insns = [decode(data[i:i + INSN_BYTES], env, i // INSN_BYTES)
                 for i in range(0, len(data), INSN_BYTES)]
        return cls(env, insns)

    def disassemble(self) -> str:
        width = len(str(max(len(self.instructions) - 1, 0)))
        return "\n".join(f"{i:>{width}}: {insn}" for i, insn in enumerate(self.instructions))

    __str__ = disassemble

    def __repr__(self) -> str:
        return f"Program({len(self.instructions)} instructions, {len(self.uops)} uops, {self.env!r})"


# ---- scalars narrower than a byte -----------------------------------------------------------------
# DRAM and SRAM pack 1-, 2- and 4-bit scalars little-endian within each byte (scalar 0 in the low
# bits), as upstream's fsim BitPacker does. On the host such a tensor is an int8 array of the
# unpacked values; only the device copy is packed.

def dtype_bits(dtype) -> int:
    """Bits of one scalar of ``dtype`` ('int4', 'int8', 'int32', a numpy dtype...)."""
    text = str(dtype)
    for prefix in ("uint", "int"):
        if text.startswith(prefix) and text[len(prefix):].isdigit():
            bits = int(text[len(prefix):])
            if bits < 8:
                if bits not in (1, 2, 4):
                    raise ValueError(f"{text}: sub-byte scalars must be 1, 2 or 4 bits wide")
                return bits
    return np.dtype(dtype).itemsize * 8


def host_dtype(dtype) -> np.dtype:
    """The numpy dtype a host array of ``dtype`` uses: itself, or int8/uint8 below 8 bits."""
    if dtype_bits(dtype) < 8:
        return np.dtype(np.uint8 if str(dtype).startswith("uint") else np.int8)
    return np.dtype(dtype)


def buffer_nbytes(shape, dtype) -> int:
    """Device bytes of a ``shape`` tensor of ``dtype`` (packed when narrower than a byte)."""
    count = int(np.prod(tuple(shape), dtype=np.int64))
    return -(-count * dtype_bits(dtype) // 8)


def pack_scalars(values: np.ndarray, bits: int) -> np.ndarray:
    """uint8 bytes of ``values`` (..., n) packed ``8 // bits`` to a byte; n must fill whole bytes."""
    per = 8 // bits
    v = (np.asarray(values).astype(np.int64) & ((1 << bits) - 1)).astype(np.uint8)
    v = v.reshape(*v.shape[:-1], v.shape[-1] // per, per)
    shifts = (np.arange(per, dtype=np.uint8) * bits).astype(np.uint8)
    return np.bitwise_or.reduce(v << shifts, axis=-1).astype(np.uint8)


def unpack_scalars(raw: np.ndarray, bits: int, signed: bool = True) -> np.ndarray:
    """int8 (or uint8) scalars of packed bytes ``raw`` (..., n): shape (..., n · 8 // bits)."""
    per = 8 // bits
    shifts = (np.arange(per, dtype=np.uint8) * bits).astype(np.uint8)
    v = (np.asarray(raw, dtype=np.uint8)[..., None] >> shifts) & np.uint8((1 << bits) - 1)
    v = v.reshape(*v.shape[:-2], v.shape[-2] * per)
    if not signed:
        return v
    sign = np.int16(1 << (bits - 1))
    return ((v.astype(np.int16) ^ sign) - sign).astype(np.int8)
