"""The VTA JIT runtime, re-implemented: runtime API calls in, exact VTA instruction streams out.

Mirrors upstream ``vta/runtime/runtime.cc`` (apache/tvm v0.18) call for call (vta-spec §5):
``DeviceMemory`` is the fsim's paged allocator (§3.2), ``CommandQueue`` the C API
(``VTALoadBuffer2D``, ``VTAStoreBuffer2D``, ``VTADepPush/Pop``, ``VTAPushGEMMOp/ALUOp`` with
kernel recording through ``rec.loop_begin/loop_end/uop_push``, ``VTASynchronize``). Every fatal
``CHECK`` of upstream raises :class:`RuntimeCheckError`.
"""
from ._runtime.command_queue import MAX_XFER, CommandQueue
from ._runtime.errors import RuntimeCheckError
from ._runtime.insn_queue import COMPUTE_STAGE, LOAD_STAGE, STORE_STAGE, pipeline_stage
from ._runtime.kernels import ALU_MODE, GEMM_MODE, KernelRecorder, LoopEntry, UopKernel
from ._runtime.memory import PAGE_BYTES, Allocation, DeviceMemory

__all__ = ["ALU_MODE", "Allocation", "COMPUTE_STAGE", "CommandQueue", "DeviceMemory", "GEMM_MODE",
           "KernelRecorder", "LOAD_STAGE", "LoopEntry", "MAX_XFER", "PAGE_BYTES", "RuntimeCheckError",
           "STORE_STAGE", "UopKernel", "pipeline_stage"]
