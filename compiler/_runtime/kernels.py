"""Micro-op kernels: recording (upstream ``UopKernel``) and caching by site and signature
(``UopKernelMap``), vta-spec §5.4–§5.5."""
from __future__ import annotations

import dataclasses
from typing import Callable, Hashable

import numpy as np

from ..isa import Uop, encode_uops
from .errors import RuntimeCheckError

GEMM_MODE, ALU_MODE = 0, 1
MODE_NAMES = {GEMM_MODE: "GEMM", ALU_MODE: "ALU"}
MAX_LOOPS = 2
MAX_SIGNATURE_KEY = 100          # upstream UopKernelMap: CHECK_LT(key, 100)
_U32 = 0xFFFFFFFF


def _u32(value: int) -> int:
    """A C ``uint32_t`` argument (upstream API parameters are unsigned 32-bit)."""
    return int(value) & _U32


def _int16(value: int) -> int:
    """Upstream stores the ALU immediate in an ``int16_t``: silent two's-complement truncation."""
    value = int(value) & 0xFFFF
    return value - 0x10000 if value & 0x8000 else value


@dataclasses.dataclass(frozen=True)
class LoopEntry:
    """One ``VTAUopLoopBegin``: extent and the per-iteration index increments."""

    extent: int
    dst_factor: int
    src_factor: int
    wgt_factor: int


class UopKernel:
    """A recorded micro-op sequence plus its loops, mode, reset flag and ALU operation.

    ``sram_begin``/``sram_end`` is the kernel's uop-SRAM range while resident (begin != end),
    tracked by :class:`compiler._runtime.uop_cache.UopCache`.
    """

    def __init__(self, env, site: Hashable, signature: int | None):
        self.env = env
        self.site = site
        self.signature = signature
        self.uops: list[Uop] = []
        self.loops: list[LoopEntry] = []
        self.mode: int | None = None
        self.reset: int | None = None
        self.alu_opcode: int | None = None
        self.use_imm = False
        self.imm = 0
        self.sram_begin = 0
        self.sram_end = 0
        self._words: np.ndarray | None = None

    # ---- identity and contents ----------------------------------------------------------
    @property
    def name(self) -> str:
        sig = "no signature" if self.signature is None else f"signature {self.signature}"
        return f"kernel of site {self.site!r} ({sig})"

    def __len__(self) -> int:
        return len(self.uops)

    @property
    def resident(self) -> bool:
        """Upstream ``cached()``: the kernel occupies uop SRAM in the current stream."""
        return self.sram_begin != self.sram_end

    @property
    def words(self) -> np.ndarray:
        """The kernel's uops packed as the 32-bit words the staging buffer holds."""
        if self._words is None or len(self._words) != len(self.uops):
            self._words = encode_uops(self.uops, self.env)
        return self._words

    def __repr__(self) -> str:
        mode = MODE_NAMES.get(self.mode, self.mode)
        return f"UopKernel({self.name}, {mode}, {len(self.uops)} uops, {len(self.loops)} loops)"

    # ---- recording (upstream PushLoopBegin / PushLoopEnd / Push) -------------------------
    def loop_begin(self, extent, dst_factor, src_factor, wgt_factor) -> None:
        if self.uops:
            raise RuntimeCheckError(f"{self.name}: loop_begin after {len(self.uops)} uop pushes; loops "
                                    f"must be declared before the first uop (they enclose the whole kernel)")
        if len(self.loops) >= MAX_LOOPS:
            raise RuntimeCheckError(f"{self.name}: a third loop_begin; a kernel has at most {MAX_LOOPS} loops "
                                    f"(iter_out and iter_in of the instruction)")
        self.loops.append(LoopEntry(_u32(extent), _u32(dst_factor), _u32(src_factor), _u32(wgt_factor)))

    def loop_end(self) -> None:
        """Upstream only decrements a counter nobody reads: loops always enclose every uop."""

    def uop_push(self, mode, reset, dst, src, wgt, alu_opcode=0, use_imm=0, imm=0) -> None:
        mode, reset, dst = _u32(mode), _u32(reset), _u32(dst)
        self._verify_dep(dst)
        if self.mode is None:
            self.mode = mode
        elif self.mode != mode:
            raise RuntimeCheckError(f"{self.name}: uop {len(self.uops)} has mode {mode}, the kernel's earlier "
                                    f"uops mode {self.mode}; one kernel is all GEMM (0) or all ALU (1)")
        if self.reset is None:
            self.reset = reset
        elif self.reset != reset:
            raise RuntimeCheckError(f"{self.name}: uop {len(self.uops)} has reset {reset}, the kernel's earlier "
                                    f"uops reset {self.reset}; the reset flag belongs to the whole instruction")
        if mode == ALU_MODE:
            self._check_alu_operation(_u32(alu_opcode), _u32(use_imm), int(imm))
        self.uops.append(self._fit(dst, _u32(src), _u32(wgt)))

    def _check_alu_operation(self, alu_opcode: int, use_imm: int, imm: int) -> None:
        if self.alu_opcode is None:
            self.alu_opcode, self.use_imm, self.imm = alu_opcode, bool(use_imm), _int16(imm)
            return
        # Upstream compares the stored bool / int16 against the new raw arguments, so a repeated
        # immediate outside int16 (stored truncated) is also rejected, as it is upstream.
        if (self.alu_opcode, int(self.use_imm), self.imm) != (alu_opcode, use_imm, imm):
            raise RuntimeCheckError(
                f"{self.name}: uop {len(self.uops)} has ALU opcode {alu_opcode}, use_imm {use_imm}, imm {imm}; "
                f"the kernel's earlier uops have opcode {self.alu_opcode}, use_imm {int(self.use_imm)}, "
                f"imm {self.imm}; one ALU kernel is one operation")

    def _verify_dep(self, dst: int) -> None:
        # Upstream VerifyDep: the GEMM/ALU pipelines have II=1 and a 2-cycle accumulator
        # read-modify-write, so a uop may not write the dst of either of the two before it.
        for back, previous in enumerate(reversed(self.uops[-2:]), start=1):
            if previous.dst_idx == dst:
                raise RuntimeCheckError(
                    f"{self.name}: uop {len(self.uops)} writes accumulator {dst}, as uop "
                    f"{len(self.uops) - back} {back} step(s) before it does; a dst index must differ from "
                    f"the dst of the previous two uops (pipeline hazard rule VerifyDep)")

    def _fit(self, dst: int, src: int, wgt: int) -> Uop:
        """Truncate to the VTAUop bit-field widths, as the C struct assignment does."""
        layout = self.env.isa.uop
        masked = {name: value & ((1 << layout[name][1]) - 1)
                  for name, value in (("dst_idx", dst), ("src_idx", src), ("wgt_idx", wgt))}
        return Uop(**masked)


class KernelRecorder:
    """The object a site's ``finit`` receives: the three recording calls of the C API
    (``VTAUopLoopBegin``, ``VTAUopLoopEnd``, ``VTAUopPush``), valid only during ``finit``."""

    def __init__(self, kernel: UopKernel):
        self._kernel: UopKernel | None = kernel
        self.signature = kernel.signature

    def _target(self) -> UopKernel:
        if self._kernel is None:
            raise RuntimeCheckError("uop recording call outside a kernel's finit: upstream has no kernel "
                                    "being recorded then (record_kernel() is null)")
        return self._kernel

    def loop_begin(self, extent, dst_factor, src_factor, wgt_factor) -> None:
        self._target().loop_begin(extent, dst_factor, src_factor, wgt_factor)

    def loop_end(self) -> None:
        self._target().loop_end()

    def uop_push(self, mode, reset, dst, src, wgt, alu_opcode=0, use_imm=0, imm=0) -> None:
        self._target().uop_push(mode, reset, dst, src, wgt, alu_opcode, use_imm, imm)

    def close(self) -> None:
        self._kernel = None


def signature_key(signature: int | None, site: Hashable) -> int:
    """Upstream ``UopKernelMap::Get``: no signature -> key 0, a 4-byte int v -> uint32(v + 1) < 100."""
    if signature is None:
        return 0
    if isinstance(signature, bool) or not isinstance(signature, (int, np.integer)):
        raise RuntimeCheckError(f"site {site!r}: signature must be None or one int (the 4-byte free variable "
                                f"of the uop scope), got {signature!r}")
    key = (int(signature) + 1) & _U32
    if key >= MAX_SIGNATURE_KEY:
        raise RuntimeCheckError(f"site {site!r}: signature {int(signature)} gives kernel key {key}; upstream "
                                f"allows keys below {MAX_SIGNATURE_KEY} (signature values -1..98)")
    return key


class KernelCache:
    """Every kernel ever recorded, per site and signature key; upstream keeps them for the life of
    the process (static handles), so a kernel is recorded once and re-used by later streams."""

    def __init__(self, env):
        self.env = env
        self._sites: dict[Hashable, dict[int, UopKernel]] = {}
        self.recording: UopKernel | None = None

    def lookup(self, site: Hashable, finit: Callable[[KernelRecorder], object],
               signature: int | None) -> UopKernel:
        try:
            kernels = self._sites.setdefault(site, {})
        except TypeError:
            raise RuntimeCheckError(f"kernel site {site!r} is not hashable: a site is a static handle") from None
        key = signature_key(signature, site)
        kernel = kernels.get(key)
        if kernel is not None:
            return kernel
        if self.recording is not None:
            raise RuntimeCheckError(f"site {site!r} pushed while {self.recording.name} is being recorded: "
                                    f"a finit may only record uops, not push kernels")
        kernel = UopKernel(self.env, site, signature)
        recorder = KernelRecorder(kernel)
        self.recording = kernel
        try:
            finit(recorder)
        finally:
            recorder.close()
            self.recording = None
        kernels[key] = kernel   # stored only once recorded without error, as upstream
        return kernel

    def __len__(self) -> int:
        return sum(len(k) for k in self._sites.values())

    def kernels(self) -> list[UopKernel]:
        return [kernel for kernels in self._sites.values() for kernel in kernels.values()]
