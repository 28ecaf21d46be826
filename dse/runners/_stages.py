"""The stages every runner shares, each ending a failing candidate with its classified status:

    admit     ConfigError (hardware)      -> infeasible
              CompileError (static check) -> infeasible     (workloads.check_knobs: cannot fit)
    build     CompileError, other         -> compile_error
    run       any exception               -> run_error      (the runner's own stage)
    verify    output != numpy             -> mismatch       (bit-exact runners)
    any       past the time limit         -> timeout
"""
from __future__ import annotations

import functools
import time

import numpy as np

from .._columns import COUNTERS, TIMING
from .._protocol import measurement
from ._deadline import Timeout, deadline


def guarded(stage, candidate, timeout_s: float | None) -> dict:
    """``stage(candidate)`` within ``timeout_s``; a timeout or an escaped error is a row, never a raise."""
    t0 = time.perf_counter()
    try:
        if not timeout_s:                # the count path's common case: no timer to arm
            return stage(candidate)
        with deadline(timeout_s):
            return stage(candidate)
    except Timeout:
        return measurement("timeout", f"candidate took longer than {timeout_s:g} s (stopped by the runner)",
                           sim_s=time.perf_counter() - t0)
    except Exception as exc:     # a bug below is this candidate's failure, not the study's
        return measurement("run_error", f"{type(exc).__name__}: {exc}")


def _compile_errors() -> tuple:
    import compiler

    return (compiler.CompileError,)


def admit(candidate) -> dict | None:
    """None when the candidate can be built; else its ``infeasible`` measurement."""
    import hwconfigs

    try:
        candidate.env
    except hwconfigs.ConfigError as exc:
        return measurement("infeasible", str(exc))
    except Exception as exc:      # not a hardware config at all
        return measurement("infeasible", f"hardware: {type(exc).__name__}: {exc}")
    try:
        candidate.check()
    except _compile_errors() as exc:
        return measurement("infeasible", str(exc))
    except Exception as exc:      # knob values the op library does not even recognise
        return measurement("infeasible", f"knobs: {type(exc).__name__}: {exc}")
    return None


def build(candidate, t0: float) -> dict | None:
    """Compile the candidate's module (kept on it); None, or its ``compile_error`` measurement."""
    try:
        candidate.module
    except _compile_errors() as exc:
        return measurement("compile_error", str(exc), compile_s=time.perf_counter() - t0)
    except Exception as exc:      # a compiler bug is this candidate's failure
        return measurement("compile_error", f"{type(exc).__name__}: {exc}", compile_s=time.perf_counter() - t0)
    return None


@functools.lru_cache(maxsize=1)
def check_counter_names() -> None:
    import simulator

    if tuple(simulator.COUNTER_NAMES) != COUNTERS:
        raise RuntimeError(f"simulator counters {simulator.COUNTER_NAMES} differ from dse's {COUNTERS}")


def timing_columns(reports) -> dict:
    """The ``_columns.TIMING`` fields of a run from its programs' TimingReports: cycles, bytes
    and busy/stall cycles add up over the programs, the GEMM utilization is recomputed over the
    whole run and ``bound_by`` is the module with the most busy cycles (as ``fastcount``'s
    ``timing_row``)."""
    rows = [report.as_row() for report in reports]
    if not rows:
        return {}
    if set(rows[0]) - {"cycles", "latency_s"} != set(TIMING):
        raise RuntimeError(f"simulator timing row {sorted(rows[0])} differs from dse's {sorted(TIMING)}")
    if len(rows) == 1:
        return {k: rows[0][k] for k in TIMING}
    merged = {k: sum(r[k] for r in rows) for k in TIMING if k not in ("bound_by", "gemm_utilization")}
    cycles = sum(r["cycles"] for r in rows)
    merged["gemm_utilization"] = sum(r["gemm_utilization"] * r["cycles"] for r in rows) / cycles if cycles else 0.0
    merged["bound_by"] = max(("load", "compute", "store", "fetch"), key=lambda m: merged[f"{m}_busy_cycles"])
    return {k: merged[k] for k in TIMING}


def _timing_of(res) -> dict:
    """Plain Python values (the stored rows are JSON) of a run's timing fields."""
    row = getattr(res, "timing_row", None)
    row = {k: row[k] for k in TIMING} if row is not None else timing_columns(getattr(res, "timing", None) or [])
    return {k: str(v) if k == "bound_by" else float(v) if k == "gemm_utilization" else int(v) for k, v in row.items()}


def counted(res, status: str = "ok", error: str = "", **values) -> dict:
    """The measurement of a run result (``simulator.RunResult`` or ``fastcount.FastCount``)."""
    return measurement(status, error, **{c: int(res.stats[c]) for c in COUNTERS}, cycles=int(res.cycles),
                       latency_s=float(res.seconds), **_timing_of(res), **values)


def compare_output(out, expected, where: str) -> tuple[str, str, bool]:
    """(status, error, correct) of a bit-exact run's output against numpy's."""
    correct = bool(np.array_equal(out, expected))
    return ("ok", "", True) if correct else ("mismatch", f"{where} output differs from the numpy reference", False)
