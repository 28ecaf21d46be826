"""Ray execution of candidates: asynchronous submit/wait, per-candidate timeouts, dead workers.

Each candidate is one Ray task. The pool never holds more tasks than it has CPUs (plus an
optional prefetch), so a task's clock can start when a CPU frees up: with FIFO scheduling the
first ``capacity`` outstanding tasks are the running ones. A candidate past its timeout is
stopped twice over: a SIGALRM inside the worker turns it into a ``timeout`` measurement, and if
the worker is stuck in native code the driver cancels it (``ray.cancel(force=True)`` kills the
worker process) after a grace period.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
from typing import Any

from ._protocol import measurement

GRACE_S = 5.0


class _AuthBanner(logging.Filter):
    def filter(self, record) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


@contextlib.contextmanager
def quiet_auth_banner():
    """Drop the WARNING Ray (>= 2.5x) logs on every new local cluster to say it turned token
    authentication on. Only the message goes: authentication stays as Ray sets it up (a user's
    RAY_AUTH_MODE included), and a cluster joined with --ray-address logs as it likes."""
    logger = logging.getLogger("ray._private.authentication.authentication_token_setup")
    banner = _AuthBanner()
    logger.addFilter(banner)
    try:
        yield
    finally:
        logger.removeFilter(banner)


class _CandidateTimeout(Exception):
    pass


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


@dataclasses.dataclass
class Outcome:
    """What came back for one submission: a measurement, or a failure of the execution itself."""

    key: Any
    task: Any
    result: dict | None           # the measurement
    crashed: str | None = None    # the worker died / the task was lost: retry-worthy


@dataclasses.dataclass
class _Pending:
    key: Any
    task: Any
    submitted: float
    started: float | None = None


class RayPool:
    """Candidates as Ray tasks. ``workers``: local Ray with that many CPUs; ``address``: join a
    running cluster. Joins an already initialised Ray session (tests share one) and leaves it up."""

    def __init__(self, evaluator, *, workers: int | None = None, address: str | None = None,
                 timeout: float | None = None, prefetch: int = 0, runtime_env: dict | None = None,
                 in_order: bool = False):
        import ray

        self._ray = ray
        self.started_ray = False
        if not ray.is_initialized():
            kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
            if runtime_env:
                kwargs["runtime_env"] = runtime_env
            if address:
                ray.init(address=address, **kwargs)
            else:
                with quiet_auth_banner():
                    ray.init(address="local", num_cpus=workers or os.cpu_count(), **kwargs)
            self.started_ray = True
        self.capacity = max(1, int(ray.cluster_resources().get("CPU", 1)))
        if workers and not address and not self.started_ray:
            self.capacity = min(self.capacity, workers)
        self.slots = self.capacity + prefetch
        # in_order: hand out results strictly in submission order, one per wait (what a caller
        # decides next then never depends on which of two tasks happened to finish first).
        self.in_order = in_order
        self.timeout = timeout
        self._evaluator_ref = ray.put(evaluator)
        self._remote = ray.remote(num_cpus=1, max_retries=0)(evaluate_with_timeout)
        self._pending: dict = {}            # ObjectRef -> _Pending, in submission order
        # What the throughput benchmark reads: the span from the first submission to the last
        # result, and how many tasks came back.
        self.first_submit: float | None = None
        self.last_result: float | None = None
        self.submitted = 0
        self.returned = 0

    # ---- submission ----------------------------------------------------------------------
    def free_slots(self) -> int:
        return self.slots - len(self._pending)

    def in_flight(self) -> int:
        return len(self._pending)

    def submit(self, key, task) -> None:
        ref = self._remote.remote(self._evaluator_ref, task, self.timeout)
        now = time.monotonic()
        self._pending[ref] = _Pending(key, task, now)
        self.submitted += 1
        if self.first_submit is None:
            self.first_submit = now

    # ---- completion ----------------------------------------------------------------------
    def _mark_started(self, now: float) -> None:
        for index, pending in enumerate(self._pending.values()):
            if index >= self.capacity:
                break
            if pending.started is None:
                pending.started = now

    def wait(self, timeout: float = 0.5) -> list[Outcome]:
        """Outcomes of the tasks that finished within ``timeout`` s (maybe none), in submission
        order, plus the timeouts the driver had to enforce."""
        ray = self._ray
        if not self._pending:
            return []
        now = time.monotonic()
        self._mark_started(now)
        refs = list(self._pending)[:1] if self.in_order else list(self._pending)
        wait_for = timeout
        if self.timeout:
            deadlines = [p.started + self.timeout + GRACE_S for p in self._pending.values() if p.started]
            if deadlines:
                wait_for = max(0.0, min(timeout, min(deadlines) - now))
        ready, _ = ray.wait(refs, num_returns=1, timeout=wait_for)
        if ready and not self.in_order:   # collect everything else that is already done, too
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
            ready = [r for r in refs if r in set(ready)]
        outcomes = [self._collect(ref) for ref in ready]
        outcomes.extend(self._enforce_timeouts())
        if outcomes:
            self.last_result = time.monotonic()
            self.returned += len(outcomes)
        self._mark_started(time.monotonic())
        return outcomes

    def _collect(self, ref) -> Outcome:
        ray = self._ray
        pending = self._pending.pop(ref)
        try:
            return Outcome(pending.key, pending.task, ray.get(ref))
        except ray.exceptions.RayTaskError as exc:   # raised inside the task (should not happen)
            return Outcome(pending.key, pending.task, measurement("run_error", _first_line(exc)))
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                ray.exceptions.ObjectLostError, ray.exceptions.RayError) as exc:
            return Outcome(pending.key, pending.task, None,
                           crashed=f"worker died: {type(exc).__name__}: {_first_line(exc)}")

    def _enforce_timeouts(self) -> list[Outcome]:
        if not self.timeout:
            return []
        now = time.monotonic()
        out = []
        for ref, pending in list(self._pending.items()):
            if pending.started is not None and now - pending.started > self.timeout + GRACE_S:
                self._ray.cancel(ref, force=True)
                del self._pending[ref]
                out.append(Outcome(pending.key, pending.task, measurement(
                    "timeout", f"candidate took longer than {self.timeout:g} s (worker killed)",
                    sim_s=now - pending.started)))
        return out

    def cancel_all(self) -> None:
        for ref in list(self._pending):
            try:
                self._ray.cancel(ref, force=True)
            except Exception:
                pass
        self._pending.clear()

    def shutdown(self) -> None:
        self.cancel_all()
        if self.started_ray:
            self._ray.shutdown()


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:500] if text else type(exc).__name__
