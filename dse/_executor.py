"""Ray execution of layer jobs: streaming tasks, asynchronous waits, hard timeouts, dead workers.

Each job (``dse._layer_job``: one layer's schedule search on one hardware point, or a few
candidates to verify) is one Ray task that streams a message per evaluated candidate. The pool
never holds more jobs than it has CPUs (plus an optional prefetch), so with FIFO scheduling the
first ``capacity`` outstanding jobs are the running ones. A candidate past its timeout is stopped
twice over: a SIGALRM inside the worker turns it into a ``timeout`` measurement, and if the worker
is stuck in native code the driver kills it (``ray.cancel(force=True)``) after a grace period,
reading from the job's flight record which candidate it was stuck on.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
import uuid
from typing import Any

from ._flight import clear_flight, read_flight
from ._layer_job import LayerJob, run_layer_job

KILL_GRACE_S = 5.0    # past the candidate timeout, before the driver kills a worker deaf to its alarm


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


@dataclasses.dataclass
class Event:
    """What came back from a job: one of its messages, or the end of its worker."""

    key: Any
    job: LayerJob
    message: dict | None = None          # a message of the job (``dse._layer_job``)
    crashed: str | None = None           # the worker died (or the task failed): why
    timed_out: bool = False              # the driver killed the worker, stuck past timeout + grace
    flight: tuple | None = None          # (index, knobs) the worker was evaluating (None: not a candidate)


@dataclasses.dataclass
class _Running:
    key: Any
    job: LayerJob
    stream: Any                          # ray.ObjectRefGenerator
    heard: float | None = None           # start (as far as the driver can tell), then the last message
    spoke: bool = False                  # the job has sent a message
    stuck_on: tuple | None = None        # (flight index, since) of a silent job


class RayPool:
    """Layer jobs as streaming Ray tasks. ``workers``: local Ray with that many CPUs; ``address``:
    join a running cluster. Joins an already initialised Ray session (tests share one) and leaves
    it up."""

    def __init__(self, evaluator, *, workers: int | None = None, address: str | None = None,
                 timeout: float | None = None, prefetch: int = 0, runtime_env: dict | None = None,
                 in_order: bool = False, kill_grace: float = KILL_GRACE_S):
        import ray

        self._ray = ray
        self.started_ray = False
        self._watchdog = None
        if not ray.is_initialized():
            kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
            if runtime_env:
                kwargs["runtime_env"] = runtime_env
            with _keep_sigterm_handler():
                if address:
                    ray.init(address=address, **kwargs)
                else:
                    from ._watchdog import Watchdog
                    self._watchdog = Watchdog()     # a local Ray dies with this driver, even by SIGKILL
                    with quiet_auth_banner():
                        ray.init(address="local", num_cpus=workers or os.cpu_count(), **kwargs)
            self.started_ray = True
        self.capacity = max(1, int(ray.cluster_resources().get("CPU", 1)))
        if workers and not address and not self.started_ray:
            self.capacity = min(self.capacity, workers)
        self.slots = self.capacity + prefetch
        # in_order: take messages strictly from the oldest job (what the driver decides next then
        # never depends on which of two jobs happened to report first).
        self.in_order = in_order
        self.timeout = timeout
        self.kill_grace = kill_grace
        self._evaluator_ref = ray.put(evaluator)
        # no task events: Ray's per-task record for its dashboard state API, CPU of the GCS server
        # on the workers' cores that nothing of ours reads
        self._remote = ray.remote(num_cpus=1, max_retries=0, num_returns="streaming",
                                  enable_task_events=False)(run_layer_job)
        self._running: dict = {}            # ObjectRefGenerator -> _Running, in submission order
        self._run_id = uuid.uuid4().hex[:12]
        self.submitted = 0
        # What the throughput benchmark reads: the span from the first submission to the last
        # message.
        self.first_submit: float | None = None
        self.last_result: float | None = None

    # ---- submission ----------------------------------------------------------------------
    def free_slots(self) -> int:
        return self.slots - len(self._running)

    def in_flight(self) -> int:
        return len(self._running)

    def submit(self, key, job: LayerJob) -> None:
        self.submitted += 1
        job.flight_key = f"{self._run_id}:{self.submitted}"
        stream = self._remote.remote(self._evaluator_ref, job, self.timeout)
        self._running[stream] = _Running(key, job, stream)
        if self.first_submit is None:
            self.first_submit = time.monotonic()

    # ---- completion ----------------------------------------------------------------------
    def _mark_started(self, now: float) -> None:
        for index, running in enumerate(self._running.values()):
            if index >= self.capacity:
                break
            if running.heard is None:
                running.heard = now

    def wait(self, timeout: float = 0.5) -> list[Event]:
        """Events of the jobs that reported within ``timeout`` s (maybe none), oldest job first,
        plus the kills the driver had to enforce."""
        ray = self._ray
        if not self._running:
            return []
        now = time.monotonic()
        self._mark_started(now)
        streams = list(self._running)[:1] if self.in_order else list(self._running)
        wait_for = timeout
        if self.timeout:
            deadlines = [r.heard + self.timeout + self.kill_grace for r in self._running.values() if r.heard]
            if deadlines:
                wait_for = max(0.0, min(timeout, min(deadlines) - now))
        ready, _ = ray.wait(streams, num_returns=1, timeout=wait_for)
        if ready and not self.in_order:   # everything else that has a message waiting, too
            ready, _ = ray.wait(streams, num_returns=len(streams), timeout=0)
        ready = set(ready)
        events = [self._take(stream) for stream in streams if stream in ready]
        events.extend(self._enforce_timeouts())
        if events:
            self.last_result = time.monotonic()
        self._mark_started(time.monotonic())
        return events

    def _take(self, stream) -> Event:
        ray = self._ray
        running = self._running[stream]
        running.heard, running.stuck_on, running.spoke = time.monotonic(), None, True
        try:
            message = ray.get(next(stream))
        except StopIteration:           # a stream always ends with an ``end`` message first
            del self._running[stream]
            return Event(running.key, running.job, crashed="the job ended without its last message")
        except ray.exceptions.RayTaskError as exc:   # raised inside the job: a bug, not a candidate
            del self._running[stream]
            return Event(running.key, running.job, crashed=f"job failed: {_first_line(exc)}",
                         flight=_candidate(read_flight(running.job.flight_key)))
        except ray.exceptions.RayError as exc:       # the worker or its node died, the task was lost
            del self._running[stream]
            return Event(running.key, running.job, crashed=f"worker died: {type(exc).__name__}: {_first_line(exc)}",
                         flight=_candidate(read_flight(running.job.flight_key)))
        if message.get("end"):
            del self._running[stream]
        return Event(running.key, running.job, message=message)

    def _enforce_timeouts(self) -> list[Event]:
        """Kill jobs silent for longer than timeout + grace on one and the same candidate."""
        if not self.timeout:
            return []
        now = time.monotonic()
        limit = self.timeout + self.kill_grace
        events = []
        for stream, running in list(self._running.items()):
            if running.heard is None or now - running.heard <= limit:
                continue
            flight = read_flight(running.job.flight_key)
            if flight is None:
                continue          # not started yet: still queued, or its worker process starting
            index = flight[0]
            if running.stuck_on is None or running.stuck_on[0] != index:
                # first seen on this candidate: if the job has sent a message, the candidate started
                # within MESSAGE_EVERY_S of it (a longer spell ends in a message), so count from the
                # message (at most that much early, against a limit of seconds); otherwise the
                # job's start is unknown: count from now
                running.stuck_on = (index, running.heard if running.stuck_on is None and running.spoke else now)
            if now - running.stuck_on[1] <= limit:
                continue
            self._ray.cancel(stream, force=True)
            del self._running[stream]
            events.append(Event(running.key, running.job, timed_out=True, flight=_candidate(flight)))
        return events

    def cancel_all(self) -> None:
        for stream, running in list(self._running.items()):
            try:
                self._ray.cancel(stream, force=True)
            except Exception:
                pass
            clear_flight(running.job.flight_key)
        self._running.clear()

    def shutdown(self) -> None:
        self.cancel_all()
        if self.started_ray:
            self._ray.shutdown()
        if self._watchdog is not None:
            self._watchdog.done()
            self._watchdog = None


@contextlib.contextmanager
def _keep_sigterm_handler():
    """``ray.init`` replaces the process's SIGTERM handler (a Python one calling sys.exit, then
    its core worker's, which prints a native stack dump and dies); a handler the caller installed
    (``vta-dse run``: SIGTERM as Ctrl-C) is put back."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if main and callable(previous):
            signal.signal(signal.SIGTERM, previous)


def _candidate(flight):
    """The flight record if it names a candidate (not the job's preparation)."""
    return flight if flight is not None and flight[0] >= 0 else None


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:500] if text else type(exc).__name__
