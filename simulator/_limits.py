"""How much work one program may ask of the simulator, refused before it starts.

A GEMM or ALU instruction is a loop of up to 2^14 x 2^14 x 8192 uop-iterations; the simulator
vectorises each instruction into index and gather arrays of one row per iteration, so an
unbounded instruction is an unbounded allocation (16 TiB for the largest GEMM) and an unbounded
run. Work is counted in *cells*: per uop-iteration, its lanes (BATCH x the larger block) plus a
fixed share for its index arrays, about the int64 values the executors hold for it. Every bound
is far above what a compiled layer needs (a ResNet-18 layer at batch 16 on the 1x16 geometry is
~2^27 cells in its largest instruction, ~2^28 in its program) and is configurable.
"""
from __future__ import annotations

import dataclasses

INDEX_CELLS = 8   # per uop-iteration: its dst/src/wgt indices, orderings and gathers


@dataclasses.dataclass(frozen=True)
class WorkLimit:
    """Bounds on one program's work (``Simulator(work_limit=...)``, ``simulator.run(work_limit=...)``).

    per_instruction  cells of one GEMM/ALU instruction: bounds the memory of its arrays
                     (about 8 bytes a cell, so the default is ~2 GiB at most)
    per_program      cells of all GEMM/ALU instructions of one program: bounds its run time
    alu_waves        sequential passes of one ALU instruction whose iterations read or write
                     rows written earlier in it (each pass is a Python-level numpy call)
    """

    per_instruction: int = 1 << 28
    per_program: int = 1 << 33
    alu_waves: int = 1 << 14

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                from ._errors import SimulationError
                raise SimulationError(f"WorkLimit.{field.name} = {value!r}: must be a positive integer")


DEFAULT_WORK_LIMIT = WorkLimit()


def cells_per_iteration(env) -> int:
    return INDEX_CELLS + env.BATCH * max(env.BLOCK_IN, env.BLOCK_OUT)
