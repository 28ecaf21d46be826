"""``vta-dse board serve``: the board's side of the protocol.

One request per connection. Each connection has its own thread and a read timeout, so a slow,
silent or half-open client holds only its own thread; at most ``max_connections`` are served at
once (more are told ``busy``). A request is checked in stages — prefix and sizes (the cap is
enforced before anything is read), header, token (constant-time comparison, before the payload
is read), payload, fields — and every refusal is a reply naming the reason, never a crash. Runs
are serialized on the one device.
"""
from __future__ import annotations

import hmac
import logging
import socket
import socketserver
import threading
import time

from . import _wire
from ._errors import DeviceError, ProtocolError
from ._program import execute, parse_request

log = logging.getLogger("vta-dse.board")

READ_TIMEOUT_S = 30.0         # a client that sends nothing for this long is dropped
MAX_CONNECTIONS = 32
_DRAIN_S = 1.0                # after refusing, read (and drop) what the client still sends, this long


class _Refusal(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


_WIRE_REASONS = {"malformed": "bad_request", "version": "bad_request", "too_large": "too_large"}


class BoardServer:
    """Serve ``device`` to clients holding ``token`` on ``host:port`` (port 0: any free port)."""

    def __init__(self, device, token: str, host: str = "127.0.0.1", port: int = 9091,
                 max_message_bytes: int = _wire.MAX_MESSAGE_BYTES, read_timeout_s: float = READ_TIMEOUT_S,
                 max_connections: int = MAX_CONNECTIONS):
        if not token:
            raise ValueError("the board server needs a non-empty token")
        self.device = device
        self._token = token.encode()
        self.max_message_bytes = int(max_message_bytes)
        self.read_timeout_s = float(read_timeout_s)
        self.max_connections = int(max_connections)
        self._slots = threading.BoundedSemaphore(self.max_connections)
        self._device_lock = threading.Lock()
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                server._handle(self.request, self.client_address)

        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        class TCPServer(socketserver.ThreadingTCPServer):
            address_family = family
            allow_reuse_address = True
            daemon_threads = True
            request_queue_size = 64

        self._server = TCPServer((host, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def start(self) -> "BoardServer":
        """Serve from a background thread (tests, benchmarks)."""
        self._thread = threading.Thread(target=self.serve_forever, name="board-server", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- one connection --------------------------------------------------------------------
    def _check_token(self, header: dict) -> None:
        token = header.get("token")
        given = token.encode() if isinstance(token, str) else b""
        if not hmac.compare_digest(given, self._token):
            raise _Refusal("auth", "wrong or missing token")

    def _handle(self, sock, peer) -> None:
        if not self._slots.acquire(blocking=False):
            self._reply_error(sock, "busy", f"the board already serves {self.max_connections} connections")
            return
        try:
            sock.settimeout(self.read_timeout_s)
            try:
                header, blobs = _wire.read_message(sock, self.max_message_bytes, self._check_token)
            except ProtocolError as exc:
                self._reply_error(sock, _WIRE_REASONS[exc.reason], str(exc))
                return
            except _Refusal as exc:
                self._reply_error(sock, exc.reason, str(exc))
                return
            except EOFError as exc:                     # the client closed its side early
                self._reply_error(sock, "bad_request", f"truncated request: {exc}")
                return
            except socket.timeout:
                self._reply_error(sock, "timeout", f"no complete request within {self.read_timeout_s:g} s")
                return
            except OSError as exc:                      # reset: nobody to answer
                log.info("dropped %s: %s", peer, exc)
                return
            log.info("%s from %s: %s", header.get("kind"), peer, str(header.get("module"))[:60])
            reply, blobs = self._dispatch(header, blobs)
            log.info("%s from %s: %s", header.get("kind"), peer,
                     "ok" if reply["ok"] else f"{reply['reason']}: {reply['error'][:200]}")
            self._reply(sock, reply, blobs)
        finally:
            self._slots.release()

    def _dispatch(self, header: dict, blobs: dict) -> tuple[dict, dict]:
        kind = header.get("kind")
        try:
            if kind == "info":
                return {"ok": True, "device": self.device.kind, "target": self.device.regs.target,
                        "config": None if getattr(self.device, "env", None) is None
                        else self.device.env.cfg.to_dict()}, {}
            if kind != "run":
                raise ProtocolError("malformed", f"unknown request kind {str(kind)[:40]!r} (expected 'run' or 'info')")
            request = parse_request(header, blobs)
            with self._device_lock:
                result = execute(self.device, request)
        except ProtocolError as exc:
            return self._error(_WIRE_REASONS[exc.reason], str(exc)), {}
        except DeviceError as exc:
            return self._error(exc.reason, str(exc)), {}
        except Exception as exc:   # the server outlives any request: a failure is a reply
            log.exception("request failed")
            return self._error("device_error", f"{type(exc).__name__}: {exc}"), {}
        reply = {"ok": True, "stats": result["stats"], "cycles": result["cycles"], "wall_s": result["wall_s"],
                 "outputs": sorted(result["outputs"])}
        return reply, result["outputs"]

    @staticmethod
    def _error(reason: str, message: str) -> dict:
        return {"ok": False, "reason": reason, "error": message}

    def _reply(self, sock, header: dict, blobs: dict) -> None:
        try:
            _wire.send_message(sock, header, blobs)
        except OSError as exc:
            log.info("could not reply: %s", exc)

    def _reply_error(self, sock, reason: str, message: str) -> None:
        """Answer a refused request, then drain what the client is still sending for a moment, so
        that closing does not reset the connection before the client has read the answer."""
        self._reply(sock, self._error(reason, message), {})
        try:
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + _DRAIN_S
            while time.monotonic() < deadline:
                sock.settimeout(max(deadline - time.monotonic(), 0.01))
                if not sock.recv(1 << 16):
                    break
        except OSError:
            pass
