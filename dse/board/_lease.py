"""One candidate per board at a time: leases on the pool's boards.

Within a process, a lock-guarded book. When Ray is initialized (the study's workers), a named
Ray actor keeps the book for every worker of the job (public Ray API only: ``ray.remote``,
``.options(name=..., get_if_exists=True)``, ``ray.get``). A lease expires after the time its
holder asked for plus a margin, so a worker killed while holding one does not lose the board.
"""
from __future__ import annotations

import hashlib
import sys
import threading
import time
import uuid

EXPIRY_MARGIN_S = 30.0
POLL_S = (0.005, 0.2)          # first and longest wait between tries when every board is leased


class LeaseBook:
    """Which board is leased to whom until when; ``try_lease`` picks a free board, preferring
    ones not in ``avoid``."""

    def __init__(self, boards):
        self.boards = list(boards)
        self._held: dict[str, tuple[str, float]] = {}    # board -> (lease id, expiry, monotonic)

    def try_lease(self, avoid=(), ttl_s: float = 3600.0):
        now = time.monotonic()
        for board, (_lease, expiry) in list(self._held.items()):
            if expiry < now:
                del self._held[board]
        free = [b for b in self.boards if b not in self._held]
        if not free:
            return None
        board = next((b for b in free if b not in avoid), free[0])
        lease = uuid.uuid4().hex
        self._held[board] = (lease, now + ttl_s + EXPIRY_MARGIN_S)
        return board, lease

    def release(self, board: str, lease: str) -> None:
        if self._held.get(board, (None,))[0] == lease:
            del self._held[board]


class _LocalLeases:
    def __init__(self, boards):
        self._book = LeaseBook(boards)
        self._lock = threading.Lock()

    def try_lease(self, avoid, ttl_s):
        with self._lock:
            return self._book.try_lease(avoid, ttl_s)

    def release(self, board, lease):
        with self._lock:
            self._book.release(board, lease)


_LOCAL: dict[tuple, _LocalLeases] = {}
_LOCAL_LOCK = threading.Lock()


def _local(boards) -> _LocalLeases:
    key = tuple(boards)
    with _LOCAL_LOCK:
        if key not in _LOCAL:
            _LOCAL[key] = _LocalLeases(boards)
        return _LOCAL[key]


class _RayLeases:
    """The book in a named actor shared by the job's workers."""

    def __init__(self, boards):
        import ray

        self._ray = ray
        digest = hashlib.sha1("\n".join(boards).encode()).hexdigest()[:12]
        self._name = f"vta-dse-board-leases-{digest}"
        self._boards = list(boards)
        self._actor = None

    def _handle(self):
        if self._actor is None:
            actor_class = self._ray.remote(num_cpus=0, max_concurrency=1)(LeaseBook)
            self._actor = actor_class.options(name=self._name, get_if_exists=True).remote(self._boards)
        return self._actor

    def try_lease(self, avoid, ttl_s):
        try:
            return self._ray.get(self._handle().try_lease.remote(list(avoid), ttl_s))
        except self._ray.exceptions.RayActorError:      # its owner went away: a new book
            self._actor = None
            return self._ray.get(self._handle().try_lease.remote(list(avoid), ttl_s))

    def release(self, board, lease):
        try:
            self._ray.get(self._handle().release.remote(board, lease))
        except self._ray.exceptions.RayActorError:
            self._actor = None


def leases_for(boards):
    """The lease book for ``boards`` in this process: Ray's when Ray is initialized."""
    ray = sys.modules.get("ray")      # never import Ray just to learn it is not in use
    if ray is not None and ray.is_initialized():
        return _RayLeases(boards)
    return _local(boards)


def acquire(leases, avoid, ttl_s: float, deadline: float | None):
    """(board, lease) once one is free; None when ``deadline`` (monotonic) passes first."""
    pause = POLL_S[0]
    while True:
        got = leases.try_lease(tuple(avoid), ttl_s)
        if got is not None:
            return got
        if deadline is not None and time.monotonic() + pause > deadline:
            return None
        time.sleep(pause)
        pause = min(2 * pause, POLL_S[1])
