"""Design-space exploration of VTA: study files, candidate evaluation, Optuna studies on Ray.

Public names: :func:`load_study`, :func:`run_study`, :class:`RunOptions`, :class:`StudyError`,
:class:`StudySpec`, :class:`Task`; :func:`read_results`, :func:`read_trials` and
:func:`row_knobs` read a run's tables back with knobs as ``workloads.build`` takes them;
:func:`stored_rows` reads every row of a study from its storage (while it runs, or from another
driver's storage). The product's evaluator is ``dse.evaluate.SimulatorEvaluator``
(imported lazily: the rest of the package does not depend on compiler or simulator).
"""
from ._protocol import Evaluator, Task, make_task, measurement
from ._read import read_results, read_trials, row_knobs
from ._study import StudyError, StudySpec, Workload, load_study, parse_study


def __getattr__(name):
    if name in ("run_study", "RunOptions", "RunSummary"):
        from . import _driver
        return getattr(_driver, name)
    if name == "stored_rows":
        from ._results import stored_rows
        return stored_rows
    raise AttributeError(f"module 'dse' has no attribute {name!r}")


__all__ = ["Evaluator", "RunOptions", "RunSummary", "StudyError", "StudySpec", "Task", "Workload", "load_study",
           "make_task", "measurement", "parse_study", "read_results", "read_trials", "row_knobs", "run_study",
           "stored_rows"]
