"""The runners on this machine's simulator: ``count`` (counters + cycle model) and ``full`` (bit-exact)."""
from __future__ import annotations

import functools
import time

from .._protocol import measurement
from ._stages import admit, build, check_counter_names, compare_output, counted, guarded


@functools.lru_cache(maxsize=1)
def _fast_count():
    """``dse.fastcount.count_candidate`` (the count path of the search), or None without it."""
    try:
        from ..fastcount import count_candidate
    except ImportError:
        return None
    return count_candidate


class CountRunner:
    """Counters, cycles and the buffer footprint without computing data: ``dse.fastcount`` on
    (layer, env, knobs) without building where it covers the layer (equal to a build + count-only
    run, tests/dse/test_fastcount.py; it builds where it does not), else the build +
    ``simulator.run(count_only=True)``."""

    name = "count"
    shares_cache = True        # a pure function of the code (dse._identity) and the candidate

    def measure(self, candidate, timeout_s: float | None = None) -> dict:
        return guarded(self._measure, candidate, timeout_s)

    def _measure(self, candidate) -> dict:
        check_counter_names()
        t0 = time.perf_counter()
        refused = admit(candidate)
        if refused is not None:
            return refused
        count_candidate = _fast_count()
        if count_candidate is None:
            return _general_count(candidate, t0)
        import compiler

        try:
            res = count_candidate(candidate.layer, candidate.env, candidate.knobs)
        except compiler.CompileError as exc:
            return measurement("compile_error", str(exc), compile_s=time.perf_counter() - t0)
        except Exception as exc:
            return measurement("run_error", f"{type(exc).__name__}: {exc}", compile_s=time.perf_counter() - t0)
        return counted(res, correct=None, compile_s=time.perf_counter() - t0, sim_s=0.0)


def _general_count(candidate, t0: float) -> dict:
    import simulator

    failed = build(candidate, t0)
    if failed is not None:
        return failed
    compile_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    try:
        res = simulator.run(candidate.module, count_only=True)
    except Exception as exc:
        return measurement("run_error", f"{type(exc).__name__}: {exc}", compile_s=compile_s,
                           sim_s=time.perf_counter() - t1)
    return counted(res, correct=None, compile_s=compile_s, sim_s=time.perf_counter() - t1)


class FullRunner:
    """A bit-exact run of the built module on random inputs (``Candidate.seed``), its output
    checked against numpy (``mismatch`` on a difference)."""

    name = "full"
    shares_cache = True

    def measure(self, candidate, timeout_s: float | None = None) -> dict:
        return guarded(self._measure, candidate, timeout_s)

    def _measure(self, candidate) -> dict:
        import simulator

        check_counter_names()
        t0 = time.perf_counter()
        refused = admit(candidate) or build(candidate, t0)
        if refused is not None:
            return refused
        compile_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        try:
            inputs = candidate.inputs()
            expected = candidate.reference(inputs)
            out = candidate.empty_output()
            res = simulator.run(candidate.module, *inputs, out)
        except Exception as exc:
            return measurement("run_error", f"{type(exc).__name__}: {exc}", compile_s=compile_s,
                               sim_s=time.perf_counter() - t1)
        status, error, correct = compare_output(out, expected, "simulator")
        return counted(res, status, error, correct=correct, compile_s=compile_s, sim_s=time.perf_counter() - t1)
