"""Functional simulation of VTA programs: bit-exact with upstream's fsim, plus its counters."""
from ._counters import COUNTER_NAMES
from ._errors import SimulationError
from ._run import RunResult, count_columns, run
from ._simulator import Simulator

__all__ = ["COUNTER_NAMES", "RunResult", "SimulationError", "Simulator", "count_columns", "run"]
