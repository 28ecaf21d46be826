"""``compiler.build``: lower a schedule and run its host code against the runtime, so the
module holds the complete instruction stream (shapes are static)."""
from __future__ import annotations

from .ir import CompileError
from .isa import buffer_nbytes
from .lower import lower
from .lower.execute import Executor
from .module import Module
from .runtime import CommandQueue, DeviceMemory, RuntimeCheckError


def build(s, args, target=None, target_host=None, env=None, name: str = "default_function", **_ignored) -> Module:
    """Compile schedule ``s`` with argument tensors ``args`` into a :class:`Module`.

    ``target``/``target_host`` are accepted (and ignored) so upstream calls port unchanged.
    """
    if env is None:
        import hwconfigs
        env = hwconfigs.get_env()
    func = lower(s, args, name=name, env=env)
    memory = DeviceMemory()
    phys = {}
    # Argument arrays exist before the kernel runs, so they precede the runtime's staging buffers.
    for t, buf in zip(args, func.args):
        nbytes = buffer_nbytes(t.shape, t.dtype)
        phys[buf] = memory.alloc(nbytes)
    queue = CommandQueue(env, memory)
    try:
        Executor(queue, phys).run(func.body, {})
    except RuntimeCheckError as err:
        raise CompileError(f"{name}: the VTA runtime rejects the generated calls: {err}") from err
    if not queue.programs:
        raise CompileError(f"{name}: the schedule issues no VTA work (no dma_copy/alu/tensorize stage)")
    buffers = [(t.name, t.shape, t.dtype, phys[buf]) for t, buf in zip(args, func.args)]
    return Module.from_command_queue(name, queue, buffers, lowered_ir=str(func))
