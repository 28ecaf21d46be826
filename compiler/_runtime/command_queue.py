"""The command queue: the runtime C API as methods, producing finished :class:`Program` streams
(upstream ``CommandQueue`` of ``vta/runtime/runtime.cc``, tvm v0.18; vta-spec §5)."""
from __future__ import annotations

from typing import Callable, Hashable

from ..isa import (LOAD, MEM_NAMES, MEM_UOP, STORE, AluInsn, FinishInsn, GemmInsn, Insn,
                   MemInsn, Program)
from ..isa import IsaError
from ..isa import elem_bytes as isa_elem_bytes
from .errors import RuntimeCheckError
from .insn_queue import COMPUTE_STAGE, LOAD_STAGE, STORE_STAGE, InsnQueue, memory_stage
from .kernels import ALU_MODE, GEMM_MODE, MODE_NAMES, KernelCache, KernelRecorder, UopKernel
from .memory import PAGE_BYTES, DeviceMemory
from .uop_cache import UOP_ELEM_BYTES, UopCache

MAX_XFER = 1 << 25          # upstream VTA_MAX_XFER: bytes of each staging buffer (32 MiB)
# Upstream CheckInsnOverFlow: one API call can add at most 2 compute NOPs, 2 memory NOPs,
# 1 compute NOP and FINISH, so it synchronizes early when fewer than 6 slots would remain.
WORST_CASE_TAIL = 6
SYNC_WAIT_CYCLES = 1 << 31  # what compiled code passes to VTASynchronize

Finit = Callable[[KernelRecorder], object]


def _field_masks(env, insn_class) -> list[tuple[str, int, bool]]:
    """(attribute, mask, signed) of every settable field of ``insn_class`` in ``env``'s layout."""
    key = (env, insn_class)
    if key not in _MASKS:
        layout = getattr(env.isa, insn_class.layout_name)
        fields = []
        for name, _, width in layout.fields:
            attr = name[:-4] if name.endswith("_dep") else name
            if attr != "opcode" and attr in insn_class.__dataclass_fields__:
                fields.append((attr, (1 << width) - 1, attr == "imm"))   # imm is a signed bit-field
        _MASKS[key] = fields
    return _MASKS[key]


_MASKS: dict = {}


def _fit_fields(insn: Insn, fields) -> Insn:
    """Truncate every field to its bit width, as the C bit-field assignments upstream do, so the
    objects in a Program equal what decoding its bytes gives. ``fields`` is ``_field_masks``
    of the instruction's class; a value already in range (the usual case) is left alone."""
    for attr, mask, signed in fields:
        value = getattr(insn, attr)
        if type(value) is int and 0 <= value <= (mask >> 1 if signed else mask):
            continue
        value = int(value) & mask
        if signed and value > mask >> 1:
            value -= mask + 1
        setattr(insn, attr, value)
    return insn


class CommandQueue:
    """Turns runtime API calls into VTA instruction streams, exactly as upstream does.

    ``memory`` is the device allocator the data buffers came from. The uop and instruction
    staging buffers (``max_xfer`` bytes each) are reserved from it on the first API call, as
    upstream creates its thread-local command handle at the first call of a compiled function:
    after the data buffers that were allocated before it. Every synchronize appends its
    :class:`Program` to :attr:`programs`.
    """

    def __init__(self, env, memory: DeviceMemory | None = None, max_xfer: int = MAX_XFER):
        self.env = env
        self.memory = memory if memory is not None else DeviceMemory()
        self.max_xfer = int(max_xfer)
        self.programs: list[Program] = []
        self.kernels = KernelCache(env)
        self._insns = InsnQueue()
        self._uops = UopCache(env.UOP_DEPTH)
        self._uop_staging: int | None = None
        self._insn_staging: int | None = None
        self._masks: dict = {}        # instruction class -> _field_masks (hashing an env is slow)
        self._elem_bytes: dict = {}   # memory type -> element bytes

    # ---- staging buffers ----------------------------------------------------------------
    def open(self) -> None:
        """Create the command handle now (reserve the staging buffers); API calls do it lazily."""
        if self._uop_staging is None:
            self._uop_staging = self.memory.alloc(self.max_xfer)
            self._insn_staging = self.memory.alloc(self.max_xfer)

    @property
    def uop_staging_phys(self) -> int:
        """Physical byte address of the uop staging buffer (LOAD UOP ``dram_base`` × 4 points here)."""
        self.open()
        return self._uop_staging

    @property
    def insn_staging_phys(self) -> int:
        self.open()
        return self._insn_staging

    @property
    def pending_instructions(self) -> list[Insn]:
        """The open stream (not yet synchronized)."""
        return list(self._insns.insns)

    # ---- DMA ----------------------------------------------------------------------------
    def elem_bytes(self, memory_type: int) -> int:
        """Bytes of one element of ``memory_type``: the unit of ``dram_base`` (upstream GetElemBytes)."""
        found = self._elem_bytes.get(memory_type)
        if found is not None:
            return found
        try:
            size = isa_elem_bytes(self.env, memory_type)
        except IsaError as exc:
            raise RuntimeCheckError(str(exc)) from None
        if size > PAGE_BYTES:
            raise RuntimeCheckError(f"{MEM_NAMES[memory_type]} element of {size} B exceeds the {PAGE_BYTES} B page")
        self._elem_bytes[memory_type] = size
        return size

    def _dram_base(self, phys: int, elem_offset: int, memory_type: int) -> int:
        self.memory.allocation(phys)   # upstream dereferences a buffer handle: it must be one
        return int(phys) // self.elem_bytes(memory_type) + int(elem_offset)

    def load_buffer_2d(self, src_phys, src_elem_offset, x_size, y_size, x_stride, x_pad_before,
                       y_pad_before, x_pad_after, y_pad_after, dst_sram_index, dst_memory_type) -> None:
        """``VTALoadBuffer2D``: one LOAD of a 2-D block (with zero padding) into an SRAM."""
        self.open()
        dram_base = self._dram_base(src_phys, src_elem_offset, int(dst_memory_type))
        insn = MemInsn(opcode=LOAD, memory_type=int(dst_memory_type), sram_base=dst_sram_index,
                       dram_base=dram_base, y_size=y_size, x_size=x_size, x_stride=x_stride,
                       y_pad_0=y_pad_before, y_pad_1=y_pad_after, x_pad_0=x_pad_before, x_pad_1=x_pad_after)
        self._append(memory_stage(int(dst_memory_type)), insn)
        self._check_overflow()

    def store_buffer_2d(self, src_sram_index, src_memory_type, dst_phys, dst_elem_offset,
                        x_size, y_size, x_stride) -> None:
        """``VTAStoreBuffer2D``: one STORE of a 2-D block (no padding) from the output buffer."""
        self.open()
        dram_base = self._dram_base(dst_phys, dst_elem_offset, int(src_memory_type))
        insn = MemInsn(opcode=STORE, memory_type=int(src_memory_type), sram_base=src_sram_index,
                       dram_base=dram_base, y_size=y_size, x_size=x_size, x_stride=x_stride)
        self._append(STORE_STAGE, insn)
        self._check_overflow()

    # ---- dependency tokens --------------------------------------------------------------
    def dep_push(self, from_stage: int, to_stage: int) -> None:
        """``VTADepPush``: ``from_stage`` signals ``to_stage`` (1 load, 2 compute, 3 store)."""
        self.open()
        self._insns.dep_push(int(from_stage), int(to_stage))

    def dep_pop(self, from_stage: int, to_stage: int) -> None:
        """``VTADepPop``: ``to_stage`` waits for a token from ``from_stage``."""
        self.open()
        self._insns.dep_pop(int(from_stage), int(to_stage))

    # ---- GEMM / ALU ---------------------------------------------------------------------
    def push_gemm_op(self, site: Hashable, finit: Finit, signature: int | None = None) -> None:
        """``VTAPushGEMMOp``: the (recorded once, then cached) kernel of ``site`` as one GEMM."""
        self.open()
        kernel = self._kernel(site, finit, signature, GEMM_MODE)
        self._load_uops(kernel)
        insn = GemmInsn(reset_reg=kernel.reset, uop_bgn=kernel.sram_begin, uop_end=kernel.sram_end)
        loops = kernel.loops
        if loops:
            insn.iter_out, insn.dst_factor_out = loops[0].extent, loops[0].dst_factor
            insn.src_factor_out, insn.wgt_factor_out = loops[0].src_factor, loops[0].wgt_factor
        if len(loops) > 1:
            insn.iter_in, insn.dst_factor_in = loops[1].extent, loops[1].dst_factor
            insn.src_factor_in, insn.wgt_factor_in = loops[1].src_factor, loops[1].wgt_factor
        self._append(COMPUTE_STAGE, insn)
        self._check_overflow()

    def push_alu_op(self, site: Hashable, finit: Finit, signature: int | None = None) -> None:
        """``VTAPushALUOp``: the kernel of ``site`` as one ALU instruction."""
        self.open()
        kernel = self._kernel(site, finit, signature, ALU_MODE)
        self._load_uops(kernel)
        insn = AluInsn(reset_reg=kernel.reset, uop_bgn=kernel.sram_begin, uop_end=kernel.sram_end,
                       alu_opcode=kernel.alu_opcode, use_imm=int(kernel.use_imm), imm=kernel.imm)
        loops = kernel.loops
        # Upstream maps a single ALU loop to the *inner* fields (iter_out 1); the wgt factor of
        # ALU loops is dropped (there is no weight operand).
        if len(loops) == 1:
            insn.iter_in, insn.dst_factor_in, insn.src_factor_in = (
                loops[0].extent, loops[0].dst_factor, loops[0].src_factor)
        elif len(loops) == 2:
            insn.iter_out, insn.dst_factor_out, insn.src_factor_out = (
                loops[0].extent, loops[0].dst_factor, loops[0].src_factor)
            insn.iter_in, insn.dst_factor_in, insn.src_factor_in = (
                loops[1].extent, loops[1].dst_factor, loops[1].src_factor)
        self._append(COMPUTE_STAGE, insn)
        self._check_overflow()

    def _kernel(self, site: Hashable, finit: Finit, signature, mode: int) -> UopKernel:
        kernel = self.kernels.lookup(site, finit, signature)
        if kernel.mode != mode and kernel.uops:
            # Not checked upstream (it would emit a garbage instruction); a clear error instead.
            raise RuntimeCheckError(f"{kernel.name} was recorded in {MODE_NAMES.get(kernel.mode, kernel.mode)} "
                                    f"mode but pushed as a {MODE_NAMES[mode]} op")
        return kernel

    def _load_uops(self, kernel: UopKernel) -> None:
        load = self._uops.place(kernel)
        if load is None:
            return
        # Created before the GEMM/ALU: the compute stage's pending pops attach to this LOAD UOP.
        dram_base = (self.uop_staging_phys + load.staging_offset) // UOP_ELEM_BYTES
        insn = MemInsn(opcode=LOAD, memory_type=MEM_UOP, sram_base=load.sram_base, dram_base=dram_base,
                       y_size=1, x_size=load.count, x_stride=load.count)
        self._append(COMPUTE_STAGE, insn)

    # ---- stream ---------------------------------------------------------------------------
    def _append(self, stage: int, insn: Insn) -> None:
        cls = type(insn)
        fields = self._masks.get(cls)
        if fields is None:
            fields = self._masks[cls] = _field_masks(self.env, cls)
        self._insns.create(stage, _fit_fields(insn, fields))

    def _check_overflow(self) -> None:
        # Upstream checks after each DMA/GEMM/ALU call and synchronizes on its own when the
        # instruction staging buffer could overflow.
        if (len(self._insns) + WORST_CASE_TAIL) * 16 > self.max_xfer:
            self.synchronize()

    def synchronize(self, wait_cycles: int = SYNC_WAIT_CYCLES) -> Program:
        """``VTASynchronize`` (normal mode): close the stream with the final tokens and FINISH,
        record it as a :class:`Program`, and start a new stream.

        Pending pops are not cleared (upstream): a ``dep_pop`` after synchronize belongs to the
        next stream. Kernels stay recorded but are no longer resident in uop SRAM.
        """
        self.open()
        queue = self._insns
        # FINISH must wait for the last store and the last load to be consumed.
        queue.dep_push(STORE_STAGE, COMPUTE_STAGE)
        queue.dep_push(LOAD_STAGE, COMPUTE_STAGE)
        queue.dep_pop(STORE_STAGE, COMPUTE_STAGE)
        queue.dep_pop(LOAD_STAGE, COMPUTE_STAGE)
        queue.commit(COMPUTE_STAGE)
        queue.create(COMPUTE_STAGE, FinishInsn())
        left = queue.pending_stages()
        if left:
            raise RuntimeCheckError(f"synchronize with pops still pending ({', '.join(left)}): a dep_pop on the "
                                    f"load or store stage was not followed by any instruction of that stage")
        if len(queue) * 16 > self.max_xfer:
            raise RuntimeCheckError(f"stream of {len(queue)} instructions ({len(queue) * 16} B) exceeds the "
                                    f"{self.max_xfer} B instruction staging buffer")
        program = Program(self.env, queue.insns, self._uops.staged_words(), self.uop_staging_phys)
        self.programs.append(program)
        queue.reset()
        self._uops.reset()
        return program

    def __repr__(self) -> str:
        return (f"CommandQueue({self.env!r}, {len(self._insns)} open instructions, "
                f"{len(self.programs)} programs, {len(self.kernels)} kernels)")
