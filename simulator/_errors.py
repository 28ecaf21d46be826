"""The one exception the simulator raises for a program it cannot run."""
from __future__ import annotations


class SimulationError(ValueError):
    """A program the functional simulator refuses or cannot finish.

    Raised for malformed streams (truncated, unknown opcode or memory type, no FINISH),
    out-of-range DRAM addresses or SRAM indices, and dependency deadlocks. The message names the
    instruction index, its disassembly and the offending numbers. The simulator stays usable:
    token counters are restored to their value before the failed run.
    """
