"""The client side: ``BoardPool.run_module`` ships a built module to a free board and returns
its measurement, or raises ``BoardError`` naming the reason and the board."""
from __future__ import annotations

import dataclasses
import socket
import stat
import time
from pathlib import Path

from . import _wire
from ._errors import BoardError, ProtocolError
from ._lease import Leases, acquire
from ._program import module_request, unpack_outputs

DEFAULT_TIMEOUT_S = 600.0
# A failed attempt with one of these reasons is retried on another board; the others would fail
# the same way anywhere (a bad program, a wrong token, a request over the cap).
RETRIED = frozenset({"refused", "timeout", "reset", "malformed_reply", "busy", "config_mismatch"})
SERVER_REASONS = frozenset({"auth", "too_large", "bad_request", "config_mismatch", "busy", "device_error", "timeout"})


@dataclasses.dataclass
class BoardRun:
    """One measurement: the seven counters and cycles where the device has them (the simulated
    device does; a real board returns None), the device's wall time from start to done (summed
    over the module's programs), the board that ran it, the whole call's round trip and the
    attempts it took."""

    stats: dict | None
    cycles: int | None
    wall_s: float
    board: str
    roundtrip_s: float = 0.0
    attempts: int = 1


def read_token(path) -> str:
    """The shared token in ``path``: refuses a missing, empty or world-readable file."""
    path = Path(path).expanduser()
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise BoardError("token", f"token file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BoardError("token", f"token file {path}: cannot read it ({exc})") from None
    if mode & stat.S_IROTH:
        raise BoardError("token", f"token file {path} is readable by every user; chmod 600 {path}")
    if not text:
        raise BoardError("token", f"token file {path} is empty")
    return text


def parse_board(board: str) -> tuple[str, int]:
    """(host, port) of "host:port" (an IPv6 host in brackets: "[::1]:9091")."""
    if not isinstance(board, str):
        raise BoardError("bad_board", f"board address {board!r} is not a 'host:port' string")
    host, sep, port = board.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BoardError("bad_board", f"board address {board!r} is not 'host:port' with a port in 1..65535")
    return host, int(port)


class _Deadline:
    """A socket whose every read and write is bounded by one deadline (monotonic)."""

    def __init__(self, sock, deadline: float):
        self._sock, self._deadline = sock, deadline

    def _arm(self):
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline passed")
        self._sock.settimeout(left)

    def recv_into(self, view, n):
        self._arm()
        return self._sock.recv_into(view, n)

    def sendall(self, data):
        self._arm()
        return self._sock.sendall(data)


class BoardPool:
    """The boards of a study, shared among its workers one candidate per board at a time."""

    def __init__(self, boards, token: str, retries: int = 2, connect_timeout_s: float = 5.0):
        if isinstance(boards, str) or not list(boards):
            raise BoardError("bad_board", f"boards must be a non-empty list of 'host:port', got {boards!r}")
        self.boards = list(boards)
        for board in self.boards:
            parse_board(board)
        if not isinstance(token, str) or not token:
            raise BoardError("token", "the board token is empty")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a whole number >= 0, got {retries!r}")
        self.token = token
        self.retries = retries
        self.connect_timeout_s = float(connect_timeout_s)

    def __repr__(self) -> str:          # never shows the token
        return f"BoardPool({self.boards}, retries={self.retries})"

    def run_module(self, module, args, timeout_s: float | None = None) -> BoardRun:
        """Run ``module`` on ``args`` (as ``simulator.run(module, *args)``: the outputs are filled
        in place) on one free board; a failed attempt is retried on another board, up to
        ``retries`` times. ``timeout_s`` bounds the whole call (waiting for a free board too)."""
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive (or None), got {timeout_s!r}")
        try:
            header, blobs = module_request(module, list(args))
        except (ValueError, TypeError) as exc:   # SimulationError: arrays that do not fit the module
            raise BoardError("bad_request", str(exc)) from None
        header = {**header, "token": self.token, "timeout_s": timeout_s}
        chunks = _wire.encode(header, blobs)
        size = sum(len(chunk) for chunk in chunks) - _wire.PREFIX.size
        if size > _wire.MAX_MESSAGE_BYTES:          # no board takes it: say so without sending it
            raise BoardError("too_large", f"module {module.name!r} needs a {size} B request, over the protocol's "
                                          f"{_wire.MAX_MESSAGE_BYTES} B cap")
        budget = DEFAULT_TIMEOUT_S if timeout_s is None else float(timeout_s)
        start = time.monotonic()
        deadline = start + budget
        leases, tried, failures = Leases(), [], []
        for attempt in range(1, self.retries + 2):
            got = acquire(leases, self.boards, tried, budget, deadline)
            if got is None:
                error = BoardError("timeout", f"no board of {self.boards} was free within {budget:g} s")
                break
            board, lease = got
            try:
                reply, out = self._call(board, chunks, deadline)
            except BoardError as exc:
                error = exc
                tried.append(board)
                failures.append(f"{board}: {exc.reason}")
                if exc.reason not in RETRIED or time.monotonic() >= deadline:
                    break
                continue
            finally:
                leases.release(board, lease)
            try:
                unpack_outputs(module, args, out)
                run = _run_of(reply, board)
            except ProtocolError as exc:
                error = BoardError("malformed_reply", str(exc), board)
                tried.append(board)
                failures.append(f"{board}: malformed_reply")
                continue
            run.roundtrip_s, run.attempts = time.monotonic() - start, attempt
            return run
        if len(failures) > 1:
            error = BoardError(error.reason, f"{error.message} (attempts: {'; '.join(failures)})", error.board)
        raise error

    def info(self, board: str, timeout_s: float = 10.0) -> dict:
        """What ``board`` serves: {"device": "sim" | "pynq", "target", "config" (None: any)}."""
        chunks = _wire.encode({"kind": "info", "token": self.token})
        reply, _ = self._call(board, chunks, time.monotonic() + timeout_s)
        return {key: reply.get(key) for key in ("device", "target", "config")}

    def _call(self, board: str, chunks, deadline: float) -> tuple[dict, dict]:
        host, port = parse_board(board)
        left = deadline - time.monotonic()
        if left <= 0:
            raise BoardError("timeout", "no time left for this attempt", board)
        try:
            sock = socket.create_connection((host, port), timeout=min(self.connect_timeout_s, left))
        except ConnectionRefusedError:
            raise BoardError("refused", "connection refused (is `vta-dse board serve` running there?)", board) from None
        except socket.timeout:
            raise BoardError("timeout", f"no answer to the connection within {min(self.connect_timeout_s, left):g} s",
                             board) from None
        except OSError as exc:
            raise BoardError("refused", f"cannot connect ({exc})", board) from None
        with sock:
            timed = _Deadline(sock, deadline)
            sent = True
            try:
                for chunk in chunks:
                    timed.sendall(chunk)
            except socket.timeout:
                raise BoardError("timeout", "the board stopped reading the request", board) from None
            except OSError:
                sent = False       # it may have refused the request and closed: read its answer
            try:
                reply, blobs = _wire.read_message(timed, _wire.MAX_MESSAGE_BYTES)
            except socket.timeout:
                raise BoardError("timeout", "no reply within the time allowed", board) from None
            except (EOFError, ConnectionError) as exc:
                what = "while sending the request" if not sent else "before the whole reply arrived"
                raise BoardError("reset", f"connection closed {what} ({exc})", board) from None
            except ProtocolError as exc:
                raise BoardError("malformed_reply", str(exc), board) from None
            except OSError as exc:
                raise BoardError("reset", f"connection failed ({exc})", board) from None
        if reply.get("ok") is not True:
            reason, message = reply.get("reason"), reply.get("error")
            if reason not in SERVER_REASONS or not isinstance(message, str):
                raise BoardError("malformed_reply", f"an error reply without a known reason ({str(reason)[:40]!r})",
                                 board)
            raise BoardError(reason, message, board)
        return reply, blobs


def _run_of(reply: dict, board: str) -> BoardRun:
    from simulator import COUNTER_NAMES

    stats, cycles, wall = reply.get("stats"), reply.get("cycles"), reply.get("wall_s")
    if stats is not None and (not isinstance(stats, dict) or set(stats) != set(COUNTER_NAMES)
                              or not all(type(v) is int for v in stats.values())):
        raise ProtocolError("malformed", f"reply counters {str(stats)[:80]} are not the seven counters")
    if cycles is not None and type(cycles) is not int:
        raise ProtocolError("malformed", f"reply cycles {str(cycles)[:40]} is not a whole number")
    if type(wall) not in (int, float) or wall < 0:
        raise ProtocolError("malformed", f"reply wall_s {str(wall)[:40]} is not a time")
    return BoardRun(stats=stats, cycles=cycles, wall_s=float(wall), board=board)
