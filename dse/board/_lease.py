"""One candidate per board at a time: leases on the boards.

Two layers. On each machine a lease is an exclusive ``flock`` on a lock file per board (in a
private directory under the temp dir): every process and thread of the machine takes turns —
Ray workers, the child processes they run candidates in, separate studies — and the operating
system releases the lock of a process that dies. When Ray is initialized, a named Ray actor
also keeps a book for every worker of the job across the cluster's machines (public Ray API
only: ``ray.remote``, ``.options(name=..., get_if_exists=True)``, ``ray.get``); its leases
expire after the time their holder asked for plus a margin, so a worker killed while holding
one does not lose the board. (A board serializes runs on its device anyway: leases spare the
waiting, they do not protect the measurement.)
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import sys
import tempfile
import time
import uuid

EXPIRY_MARGIN_S = 30.0
POLL_S = (0.005, 0.2)          # first and longest wait between tries when every board is leased
ACTOR_NAME = "vta-dse-board-leases"


def lock_dir() -> str:
    path = os.path.join(tempfile.gettempdir(), f"vta-dse-board-leases-{os.getuid()}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


class HostLeases:
    """A lease is an exclusive flock on the board's lock file; the lease id is the open fd."""

    def try_board(self, board: str):
        name = hashlib.sha1(board.encode()).hexdigest()[:20] + ".lock"
        fd = os.open(os.path.join(lock_dir(), name), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def release(self, fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class LeaseBook:
    """Which board is leased to whom until when (the Ray actor's state)."""

    def __init__(self):
        self._held: dict[str, tuple[str, float]] = {}    # board -> (lease id, monotonic expiry)

    def try_lease(self, board: str, ttl_s: float = 3600.0):
        now = time.monotonic()
        held = self._held.get(board)
        if held is not None and held[1] >= now:
            return None
        lease = uuid.uuid4().hex
        self._held[board] = (lease, now + ttl_s + EXPIRY_MARGIN_S)
        return lease

    def release(self, board: str, lease: str) -> None:
        if self._held.get(board, (None,))[0] == lease:
            del self._held[board]


class ClusterLeases:
    """The book in a named actor shared by the Ray job's workers."""

    def __init__(self, ray):
        self._ray = ray
        self._actor = None

    def _call(self, method: str, *args):
        for attempt in (1, 2):
            if self._actor is None:
                actor_class = self._ray.remote(num_cpus=0, max_concurrency=1)(LeaseBook)
                self._actor = actor_class.options(name=ACTOR_NAME, get_if_exists=True).remote()
            try:
                return self._ray.get(getattr(self._actor, method).remote(*args))
            except self._ray.exceptions.RayActorError:   # its owner went away: a new book
                self._actor = None
                if attempt == 2:
                    raise

    def try_board(self, board: str, ttl_s: float):
        return self._call("try_lease", board, ttl_s)

    def release(self, board: str, lease: str) -> None:
        try:
            self._call("release", board, lease)
        except self._ray.exceptions.RayActorError:
            pass                                           # the book is gone, and the lease with it


class Leases:
    """Both layers: a board is leased when its host lock and (under Ray) its cluster lease are."""

    def __init__(self):
        ray = sys.modules.get("ray")      # never import Ray just to learn it is not in use
        self.host = HostLeases()
        self.cluster = ClusterLeases(ray) if ray is not None and ray.is_initialized() else None

    def try_lease(self, boards, avoid=(), ttl_s: float = 3600.0):
        """(board, lease) of a free board, preferring ones not in ``avoid``; None if none is free."""
        for board in sorted(boards, key=lambda b: b in avoid):
            fd = self.host.try_board(board)
            if fd is None:
                continue
            token = None
            if self.cluster is not None:
                token = self.cluster.try_board(board, ttl_s)
                if token is None:
                    self.host.release(fd)
                    continue
            return board, (fd, token)
        return None

    def release(self, board: str, lease) -> None:
        fd, token = lease
        if token is not None:
            self.cluster.release(board, token)
        self.host.release(fd)


def acquire(leases: Leases, boards, avoid, ttl_s: float, deadline: float | None):
    """(board, lease) once one of ``boards`` is free; None when ``deadline`` (monotonic) passes first."""
    pause = POLL_S[0]
    while True:
        got = leases.try_lease(boards, avoid, ttl_s)
        if got is not None:
            return got
        if deadline is not None and time.monotonic() + pause > deadline:
            return None
        time.sleep(pause)
        pause = min(2 * pause, POLL_S[1])
