"""Functional simulation of VTA programs: bit-exact with upstream's fsim, plus its counters."""
from ._counters import COUNTER_NAMES
from ._errors import SimulationError
from ._limits import DEFAULT_WORK_LIMIT, WorkLimit
from ._reference import REFERENCE_DIR, reference_path
from ._run import RunResult, count_columns, run
from ._simulator import Simulator

__all__ = ["COUNTER_NAMES", "DEFAULT_WORK_LIMIT", "REFERENCE_DIR", "RunResult", "SimulationError", "Simulator",
           "WorkLimit", "count_columns", "reference_path", "run"]
