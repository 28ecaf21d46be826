"""The local Ray's undertaker: a small process that outlives a driver killed outright (SIGKILL,
the OOM killer), so that no Ray process the driver started outlives it.

Ray's own processes notice a dead driver only slowly (its raylet and GCS within seconds, its
dashboard and runtime-env agents not at all). The driver starts this watchdog before it starts Ray,
holding the write end of a pipe; the watchdog notes the driver's Ray descendants (and their
candidate processes) every ``POLL_S`` seconds. When the pipe closes (the driver died, or shut Ray down and closed it), it
terminates the noted processes that still run, then kills what ignores SIGTERM.

    python -m dse._watchdog DRIVER_PID     (stdin: the pipe)
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

POLL_S = 0.3
GRACE_S = 2.0


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return int(fields[1]), fields[19]
    except (OSError, IndexError, ValueError):
        return None


def _is_ray(pid: int) -> bool:
    """A Ray process, or a Ray worker's candidate process (``dse._isolation``: it dies with its
    worker by itself on Linux, and is noted too in case it cannot)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            line = fh.read()
    except OSError:
        return False
    return b"ray" in line.lower() or b"dse._isolation" in line


def ray_descendants(root: int, skip: int) -> dict[int, str]:
    """{pid: start time} of the Ray processes below ``root`` (not ``skip``, the watchdog itself)."""
    children: dict[int, list[int]] = {}
    starts = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = _stat(int(name))
            if info:
                children.setdefault(info[0], []).append(int(name))
                starts[int(name)] = info[1]
    found, todo = {}, [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            if pid != skip:
                todo.append(pid)
                if _is_ray(pid):
                    found[pid] = starts[pid]
    return found


def _signal_alive(noted: dict[int, str], sig) -> list[int]:
    alive = []
    for pid, start in noted.items():
        info = _stat(pid)
        if info and info[1] == start:        # the same process, not a reused pid
            alive.append(pid)
            if sig is not None:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
    return alive


def watch(driver: int, pipe) -> None:
    noted: dict[int, str] = {}
    while True:
        ready, _, _ = select.select([pipe], [], [], POLL_S)
        if ready and not os.read(pipe.fileno(), 64):
            break                              # EOF: the driver closed the pipe or died
        noted.update(ray_descendants(driver, os.getpid()))
    if not _signal_alive(noted, signal.SIGTERM):
        return
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline and _signal_alive(noted, None):
        time.sleep(0.1)
    _signal_alive(noted, signal.SIGKILL)


class Watchdog:
    """The driver's side: start before Ray, ``done()`` after ``ray.shutdown()``."""

    def __init__(self):
        self.proc = None
        if not sys.platform.startswith("linux"):
            return                   # /proc is how the tree is read
        # its own session: a signal to the driver's group (Ctrl-C, killpg) does not end the watch
        self.proc = subprocess.Popen([sys.executable, "-m", "dse._watchdog", str(os.getpid())],
                                     stdin=subprocess.PIPE, start_new_session=True, close_fds=True)

    def done(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()          # it reaps what ray.shutdown() left, on its own time
        except OSError:
            pass
        self.proc = None


if __name__ == "__main__":
    watch(int(sys.argv[1]), sys.stdin.buffer)
