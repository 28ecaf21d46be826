"""Functional simulation of VTA programs: bit-exact with upstream's fsim, plus its counters."""
from ._counters import COUNTER_NAMES
from ._errors import SimulationError
from ._reference import REFERENCE_DIR, reference_path
from ._run import RunResult, run
from ._simulator import Simulator

__all__ = ["COUNTER_NAMES", "REFERENCE_DIR", "RunResult", "SimulationError", "Simulator", "reference_path", "run"]
