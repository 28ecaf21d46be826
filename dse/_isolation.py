"""Crash isolation: candidates run in a long-lived child process, so a crash or a hang costs one
candidate and never the process that searches.

``Isolated(fn)`` starts a Python child running this module on first use, ships it ``fn`` once (any
callable of one picklable argument that cloudpickle can ship: an evaluator's bound ``evaluate``,
a runner's ``measure`` wrapped to one argument) and then calls ``fn`` there for each
``run(item, timeout)``; the item and the answer cross a pipe. The child keeps whatever ``fn`` warms up (imports, numba's
compiled functions, plan caches) from one candidate to the next.

- Past ``timeout`` seconds the parent kills the child (SIGKILL) and answers ``timeout``: exact, and
  whatever the child is doing (native code deaf to signals included).
- A child that dies (a segfault, ``os._exit``, the OOM killer, a kill from outside) answers
  ``died``, naming the signal or the exit code.
- An exception ``fn`` raises answers ``raised`` with its text; the child lives on.

After a timeout or a death the next ``run`` starts a fresh child, and warms it up first with the
last item that was answered (so a first call that loads caches, e.g. numba's compiled functions, is
paid under the start timeout, not under the next candidate's). A child that cannot start (it
dies, raises or stays silent before it is ready) ``START_TRIES`` times in a row raises
``ChildStartError``: nothing can run, and trying on would loop.

Why a plain subprocess: a Ray worker has many threads, so ``fork`` without ``exec`` may copy a lock
another thread holds; multiprocessing's "spawn" re-imports the parent's ``__main__`` (a Ray
worker's: Ray itself) in every child; "forkserver" keeps a second process per worker. ``subprocess``
execs at once after the fork (no Python code runs in between), and its child runs only this module.
The child dies with its parent (``PR_SET_PDEATHSIG`` on Linux, end of file on the pipe elsewhere),
so no orphan is left hanging when a Ray worker is killed.

    python -c "...; dse._isolation.main()" READ_FD WRITE_FD PARENT_PID   (``Isolated`` starts it)
"""
from __future__ import annotations

import dataclasses
import math
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

START_TRIES = 3            # failed starts in a row before the child is given up
START_TIMEOUT_S = 120.0    # from start to ready: the interpreter, and the imports ``fn`` needs
CLOSE_GRACE_S = 2.0        # a child told to stop gets this long to exit before it is killed
_HEADER = struct.Struct("!Q")
_ROOT = str(Path(__file__).resolve().parents[1])     # the folder holding this dse package


class ChildStartError(RuntimeError):
    """The child process could not be started ``START_TRIES`` times in a row."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What became of one call: ``kind`` is ``ok`` (``value`` is ``fn``'s answer), ``raised``,
    ``timeout`` or ``died`` (``error`` says what happened)."""

    kind: str
    value: Any = None
    error: str = ""


# ---- framing: a length, then a pickle -----------------------------------------------------------

def _send(fd: int, obj) -> None:
    _write(fd, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _write(fd: int, data: bytes) -> None:
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _read_exactly(fd: int, n: int) -> bytes:
    parts, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _dumps_function(fn) -> bytes:
    """``fn`` as the child loads it: by value where it must be (a class of a script's
    ``__main__``, a local class: as Ray ships an evaluator to its workers), otherwise by name."""
    import cloudpickle

    return cloudpickle.dumps(fn, protocol=pickle.HIGHEST_PROTOCOL)


def _recv(fd: int):
    # One read takes a whole small message: at most one message is ever in flight each way
    # (a request, then its answer), so nothing read belongs to the next one.
    data = os.read(fd, 1 << 16)
    if not data:
        raise EOFError
    if len(data) < _HEADER.size:
        data += _read_exactly(fd, _HEADER.size - len(data))
    (size,) = _HEADER.unpack_from(data)
    body = data[_HEADER.size:]
    if len(body) < size:
        body += _read_exactly(fd, size - len(body))
    return pickle.loads(body)


def _ready(fd: int, timeout: float | None) -> bool:
    """Whether ``fd`` has something to read (or is at its end) within ``timeout`` seconds. poll,
    not select: a Ray worker holds many descriptors, and select takes none numbered past 1023."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    # retried on EINTR with the time left (PEP 475)
    return bool(poller.poll(None if timeout is None else max(0, math.ceil(timeout * 1000))))


def describe_exit(code: int) -> str:
    """A process's return code in words: ``was killed by SIGSEGV``, ``exited with code 17``."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


# ---- the parent's side --------------------------------------------------------------------------

class Isolated:
    """``fn`` run in a child process, one call at a time (see the module docstring)."""

    def __init__(self, fn, *, start_timeout: float = START_TIMEOUT_S, start_tries: int = START_TRIES):
        self._payload = _dumps_function(fn)
        self.start_timeout = start_timeout
        self.start_tries = start_tries
        self.starts = 0                  # children started, for the record (benchmarks, tests)
        self._proc: subprocess.Popen | None = None
        self._to = self._from = -1       # the parent's ends of the two pipes
        self._warm_up: bytes | None = None   # the last item answered, pickled: a new child's first call

    @property
    def pid(self) -> int | None:
        """The running child's process id (None before the first call or after a death)."""
        return self._proc.pid if self._proc is not None else None

    def run(self, item, timeout: float | None) -> Outcome:
        """``fn(item)`` in the child, within ``timeout`` seconds (None: no limit)."""
        if self._proc is not None and self._proc.poll() is not None:
            self._discard()              # died while idle (killed from outside): not this item's doing
        if self._proc is None:
            self._start()
        try:
            data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:   # noqa: BLE001 - nothing was sent: the child is as it was
            return Outcome("raised", error=f"the item cannot be sent to its process: {_first_line(exc)}")
        try:
            try:
                _write(self._to, data)
            except BrokenPipeError:
                return self._died()
            if not _ready(self._from, timeout):
                self._discard()
                return Outcome("timeout", error=f"took longer than {timeout:g} s")
            try:
                kind, value = _recv(self._from)
            except EOFError:
                return self._died()
        except BaseException:
            # interrupted between a request and its answer (Ctrl-C, a bad answer): a child whose
            # answer is still on its way must not answer the next request with it
            self._discard()
            raise
        if kind == "ok":
            self._warm_up = data
            return Outcome("ok", value)
        return Outcome("raised", error=value)

    def _died(self) -> Outcome:
        code = self._proc.wait()
        self._discard()
        return Outcome("died", error=describe_exit(code))

    def _start(self) -> None:
        why = ""
        for _ in range(self.start_tries):
            why = self._start_once()
            if not why:
                return
        raise ChildStartError(f"the candidate process failed to start {self.start_tries} times in a row; "
                              f"the last time: {why}")

    def _start_once(self) -> str:
        """Start a child and wait until it is ready: '' when it is, else why it is not."""
        to_child, self._to = os.pipe()
        self._from, from_child = os.pipe()
        # this very dse package, whatever the working directory (which ``-m`` would put first)
        code = f"import sys; sys.path.insert(0, {_ROOT!r}); from dse._isolation import main; main()"
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", code, str(to_child), str(from_child), str(os.getpid())],
                pass_fds=(to_child, from_child), stdin=subprocess.DEVNULL)
        except OSError as exc:
            self._proc = None
            self._close_pipes()
            return f"cannot start {sys.executable}: {exc}"
        finally:
            os.close(to_child)
            os.close(from_child)
        self.starts += 1
        try:
            _send(self._to, (list(sys.path), self._payload))
            if not _ready(self._from, self.start_timeout):
                why = f"not ready within {self.start_timeout:g} s"
            else:
                kind, value = _recv(self._from)
                why = "" if kind == "ready" else value
            if not why and self._warm_up is not None:
                _write(self._to, self._warm_up)
                why = "" if _ready(self._from, self.start_timeout) else \
                    f"its warm-up call did not end within {self.start_timeout:g} s"
                if not why:
                    _recv(self._from)        # whatever it answers: the child is warm
        except (EOFError, BrokenPipeError):
            why = f"it {describe_exit(self._proc.wait())}"
        if why:
            self._discard()
        return why

    def _discard(self) -> None:
        """Kill the child (if it still runs) and forget it."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None
        self._close_pipes()

    def _close_pipes(self) -> None:
        for fd in (self._to, self._from):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._to = self._from = -1

    def close(self) -> None:
        """Stop the child: it exits at the end of its pipe; killed if it does not within a grace."""
        if self._proc is None:
            return
        self._close_pipes()
        try:
            self._proc.wait(CLOSE_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        self._discard()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_SHARED: dict[bytes, Isolated] = {}


def shared(fn) -> Isolated:
    """This process's child for ``fn`` (equal pickles share one), started once and reused by every
    later job of the process: a Ray worker pays the child's imports and warm-up once. A child for
    another ``fn`` replaces it (a worker serves one study's evaluator at a time)."""
    key = _dumps_function(fn)
    child = _SHARED.get(key)
    if child is None:
        for other in _SHARED.values():
            other.close()
        _SHARED.clear()
        child = _SHARED[key] = Isolated(fn)
    return child


# ---- the child's side ---------------------------------------------------------------------------

def _die_with(parent: int) -> None:
    """Be killed when the parent dies, even mid-candidate in native code (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)     # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:       # it died before the line above
        os._exit(0)


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:2000] if str(exc) else type(exc).__name__


def serve(read_fd: int, write_fd: int, parent: int) -> None:
    _die_with(parent)
    try:
        path, payload = _recv(read_fd)
        sys.path[:0] = [p for p in path if p not in sys.path]     # where the parent found ``fn``'s code
        fn = pickle.loads(payload)
    except EOFError:
        return
    except BaseException as exc:     # noqa: BLE001 - the parent is told, by name
        _send(write_fd, ("failed", f"cannot load the function to run: {_first_line(exc)}"))
        return
    _send(write_fd, ("ready", os.getpid()))
    while True:
        try:
            item = _recv(read_fd)
        except EOFError:             # the parent closed the pipe or died
            return
        try:
            answer = ("ok", fn(item))
        except BaseException as exc:     # noqa: BLE001 - whatever ``fn`` raises is the item's outcome
            answer = ("raised", _first_line(exc))
        try:
            _send(write_fd, answer)
        except BrokenPipeError:
            return
        except Exception as exc:     # noqa: BLE001 - an answer that does not pickle
            _send(write_fd, ("raised", f"its answer cannot be sent back: {_first_line(exc)}"))


def main() -> None:
    serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
