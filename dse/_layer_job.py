"""Worker side of the search: one Ray task runs one layer's schedule search on one hardware point.

A job proposes candidates (``dse._inner.LayerSearch``, or a fixed list when verifying), checks
them statically, answers the ones the driver already knows or has cached, and evaluates the rest
one after the other, streaming a message back after an evaluated candidate once
``MESSAGE_EVERY_S`` has passed since the last message:

    {"rows": [[index, knobs, measurement, how], ...], "end": bool, "space_error": str | None}

``how`` is ``"static"`` (refused by the static check, no evaluation), ``"cached"`` (answered by the
driver's cache) or ``"eval"``. Running the inner search here, next to the evaluation, keeps the
driver's work per candidate to receiving a row; one task per layer instead of one per candidate
spares Ray's per-task cost (milliseconds of CPU on the workers' cores).

Replay. A job resubmitted after its worker died carries the results the driver already holds
(``known``). The search is deterministic (seeded, told the same values in the same order), so it
proposes the same candidates again; known ones are told their recorded latency and produce no
row, so the driver never receives a row twice.

Flight record (``dse._flight``). When it starts, and before each evaluation, the worker records
what it is doing: when the worker dies or hangs, the driver reads which candidate it was on,
exactly -- messages still in flight die with the worker and cannot tell -- and a job without a
record has not started (no timeout runs for it).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import signal
import threading
import time

from ._flight import FlightRecorder
from ._inner import LayerSearch
from ._protocol import make_task, measurement

# A message goes out after the evaluation that ends this long a quiet spell: fast candidates share
# one (each message costs ~1 ms of CPU in the worker, Ray and the driver, on the cores the workers
# use: at 0.05 s the 20 ms candidates of benchmarks/dse_throughput.py sent one per 1.9
# candidates, at 0.25 s one per 5.6), a slow one is reported as soon as it ends. Rows not yet sent
# when a worker dies are evaluated again by the replay; the progress line moves in these steps.
MESSAGE_EVERY_S = 0.25


@dataclasses.dataclass
class LayerJob:
    hw: object                          # hwconfigs.HwConfig
    workload: object                    # dse._study.Workload
    mode: str                           # "count" | "full"
    seed: int                           # inputs of a full run
    budget: int = 0                     # search: candidates to evaluate
    sampler: str = "tpe"                # search: inner sampler
    exhaustive_up_to: int = 0           # search: a space this small is enumerated whole
    search_seed: int = 0
    shard: int = 0                      # search: this job's part of the layer search ...
    shards: int = 1                     # ... split into this many jobs (dse._inner.LayerSearch)
    fixed: list | None = None           # instead of a search: these knob sets, in order
    seeds: list = dataclasses.field(default_factory=list)     # search: warm starts, proposed first
    fit_hws: list = dataclasses.field(default_factory=list)   # where a candidate not fitting ``hw`` is measured
    refine_hws: list = dataclasses.field(default_factory=list)  # smaller hardware the search's refinement aims at
    known: dict = dataclasses.field(default_factory=dict)     # index -> latency (None: failed)
    cached: dict = dataclasses.field(default_factory=dict)    # knob text -> measurement
    flight_key: str = ""                # where the candidate in progress is recorded


def knob_text(knobs: dict) -> str:
    return json.dumps(knobs, sort_keys=True)


def latency_of(result: dict) -> float | None:
    """What the inner search is told of a measurement: its latency, or None for a failure."""
    ok = result.get("status") == "ok" and result.get("latency_s") is not None
    return float(result["latency_s"]) if ok else None


# ---- per-candidate timeout ----------------------------------------------------------------------

class _CandidateTimeout(BaseException):
    """Raised by SIGALRM inside ``evaluate()``. Not an ``Exception``: an evaluator that turns its
    own errors into rows (``except Exception`` -> ``compile_error``) must not turn a timeout into
    one, which would be cached as that candidate's result."""


def _on_alarm(signum, frame):
    raise _CandidateTimeout()


def evaluate_with_timeout(evaluator, task, timeout: float | None) -> dict:
    """Run ``evaluator.evaluate(task)``; past ``timeout`` seconds, a ``timeout`` measurement."""
    use_alarm = bool(timeout) and threading.current_thread() is threading.main_thread()
    t0 = time.perf_counter()
    if use_alarm:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return evaluator.evaluate(task)
    except _CandidateTimeout:
        return measurement("timeout", f"candidate took longer than {timeout:g} s (stopped in the worker)",
                           sim_s=time.perf_counter() - t0)
    except Exception as exc:   # an evaluator bug is this candidate's failure
        return measurement("run_error", f"{type(exc).__name__}: {exc}")
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


# ---- the job ------------------------------------------------------------------------------------

class _FixedList:
    """The LayerSearch interface over a given list of knob sets (verification runs)."""

    def __init__(self, knob_sets, static_check):
        self._items = list(knob_sets)
        self._static_check = static_check
        self._next = 0

    def next(self):
        from ._inner import Proposal

        if self._next >= len(self._items):
            return None
        index, knobs = self._next, self._items[self._next]
        self._next += 1
        return Proposal(index, knobs, rejected=self._static_check(knobs))

    def report(self, proposal, latency) -> None:
        pass


def run_layer_job(evaluator, job: LayerJob, timeout: float | None):
    """Generator of messages (see the module docstring); evaluates candidates one at a time."""
    hw, workload = job.hw, job.workload
    flight = FlightRecorder(job.flight_key)

    where: dict = {}      # knob text -> the hardware it is measured on (the first of hw, fit_hws it fits)

    def static_check(knobs):
        reason = evaluator.static_check(workload, hw, knobs)
        for other in job.fit_hws if reason is not None else ():
            if evaluator.static_check(workload, other, knobs) is None:
                where[knob_text(knobs)] = other
                return None
        return reason

    try:
        if job.fixed is not None:
            search = _FixedList(job.fixed, static_check)
        else:
            space = evaluator.knob_space(workload, hw)
            fit_checks = [functools.partial(evaluator.static_check, workload, small) for small in job.refine_hws]
            search = LayerSearch(space, job.budget, job.sampler, job.search_seed, static_check, job.shard, job.shards,
                                 seeds=job.seeds, fit_checks=fit_checks, exhaustive_up_to=job.exhaustive_up_to)
    except Exception as exc:
        flight.close()
        yield {"rows": [], "end": True, "space_error": f"no schedule space on this hardware: "
                                                       f"{type(exc).__name__}: {exc}"}
        return
    rows: list = []
    sent = time.monotonic()
    while True:
        proposal = search.next()
        if proposal is None:
            break
        index, knobs = proposal.index, proposal.knobs
        if proposal.rejected is not None:       # LayerSearch has told its sampler already
            if index not in job.known:
                rows.append([index, knobs, measurement("infeasible", proposal.rejected), "static"])
            continue
        if index in job.known:
            search.report(proposal, job.known[index])
            continue
        hit = job.cached.get(knob_text(knobs))
        if hit is not None:
            rows.append([index, knobs, hit, "cached"])
            search.report(proposal, latency_of(hit))
            continue
        flight.record(index, knobs)
        task = make_task(where.get(knob_text(knobs), hw), workload, knobs, job.mode, job.seed)
        result = evaluate_with_timeout(evaluator, task, timeout)
        search.report(proposal, latency_of(result))
        rows.append([index, knobs, result, "eval"])
        now = time.monotonic()
        if now - sent >= MESSAGE_EVERY_S:
            yield {"rows": rows, "end": False, "space_error": None}
            rows, sent = [], now
    flight.close()
    yield {"rows": rows, "end": True, "space_error": None}
