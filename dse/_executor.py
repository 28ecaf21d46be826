"""Ray execution of layer jobs: streaming tasks, asynchronous waits, dead workers.

Each job (``dse._layer_job``: one layer's schedule search on one hardware point, or a few
candidates to verify) is one Ray task that streams a message per evaluated candidate. The pool
never holds more jobs than it has CPUs (plus an optional prefetch). Candidates run in a child
process of the worker (``dse._isolation``), so a candidate that crashes or hangs comes back as an
ordinary row; what reaches the driver as a crash is the worker itself or its node dying (or a bug
of the job), and the driver resubmits the job, which replays what it already holds.
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

from ._isolation import ChildStartError
from ._layer_job import LayerJob, run_layer_job


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
    cannot_start: bool = False           # no candidate process could start (ChildStartError)


@dataclasses.dataclass
class _Running:
    key: Any
    job: LayerJob
    stream: Any                          # ray.ObjectRefGenerator


class RayPool:
    """Layer jobs as streaming Ray tasks. ``workers``: local Ray with that many CPUs; ``address``:
    join a running cluster. Joins an already initialised Ray session (tests share one) and leaves
    it up."""

    def __init__(self, evaluator, *, workers: int | None = None, address: str | None = None,
                 timeout: float | None = None, prefetch: int = 0, runtime_env: dict | None = None,
                 in_order: bool = False, isolate: bool = True):
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
        self.isolate = isolate          # candidates in a child process of the worker (dse._isolation)
        self._evaluator_ref = ray.put(evaluator)
        # no task events: Ray's per-task record for its dashboard state API, CPU of the GCS server
        # on the workers' cores that nothing of ours reads
        self._remote = ray.remote(num_cpus=1, max_retries=0, num_returns="streaming",
                                  enable_task_events=False)(run_layer_job)
        self._running: dict = {}            # ObjectRefGenerator -> _Running, in submission order
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
        stream = self._remote.remote(self._evaluator_ref, job, self.timeout, self.isolate)
        self._running[stream] = _Running(key, job, stream)
        if self.first_submit is None:
            self.first_submit = time.monotonic()

    # ---- completion ----------------------------------------------------------------------
    def wait(self, timeout: float = 0.5) -> list[Event]:
        """Events of the jobs that reported within ``timeout`` s (maybe none), oldest job first."""
        ray = self._ray
        if not self._running:
            return []
        streams = list(self._running)[:1] if self.in_order else list(self._running)
        ready, _ = ray.wait(streams, num_returns=1, timeout=timeout)
        if ready and not self.in_order:   # everything else that has a message waiting, too
            ready, _ = ray.wait(streams, num_returns=len(streams), timeout=0)
        ready = set(ready)
        events = [self._take(stream) for stream in streams if stream in ready]
        if events:
            self.last_result = time.monotonic()
        return events

    def _take(self, stream) -> Event:
        ray = self._ray
        running = self._running[stream]
        try:
            message = ray.get(next(stream))
        except StopIteration:           # a stream always ends with an ``end`` message first
            del self._running[stream]
            return Event(running.key, running.job, crashed="the job ended without its last message")
        except ray.exceptions.RayTaskError as exc:   # raised inside the job: a bug, not a candidate
            del self._running[stream]
            # Ray's error is also an instance of the job's exception type
            return Event(running.key, running.job, crashed=f"job failed: {_first_line(exc)}",
                         cannot_start=isinstance(exc, ChildStartError))
        except ray.exceptions.RayError as exc:       # the worker or its node died, the task was lost
            del self._running[stream]
            return Event(running.key, running.job, crashed=f"worker died: {type(exc).__name__}: {_first_line(exc)}")
        if message.get("end"):
            del self._running[stream]
        return Event(running.key, running.job, message=message)

    def cancel_all(self) -> None:
        for stream in list(self._running):
            try:
                self._ray.cancel(stream, force=True)
            except Exception:
                pass
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


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:500] if text else type(exc).__name__
