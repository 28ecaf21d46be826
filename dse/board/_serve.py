"""``vta-dse board serve``: build the device the options name and serve it until stopped."""
from __future__ import annotations

import logging
import os
import secrets
import sys
from pathlib import Path

from ._errors import BoardError
from ._registers import TARGETS

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def default_token_file() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "vta-dse" / "board.token"


def ensure_token(path: Path) -> tuple[str, bool]:
    """(token, created): the token in ``path``, or a fresh random one written there (mode 600)
    when the file does not exist yet."""
    from ._client import read_token

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
        return read_token(path), True
    return read_token(path), False


def make_device(kind: str, target: str, config=None, bitstream=None):
    import hwconfigs

    if target not in TARGETS:
        raise BoardError("bad_request", f"--target {target!r} is not one of {', '.join(TARGETS)}")
    try:
        env = hwconfigs.get_env(config) if config is not None or kind == "pynq" else None
    except (ValueError, OSError) as exc:
        raise BoardError("bad_request", f"--config {config!r}: {exc}") from None
    if kind == "sim":
        if bitstream is not None:
            raise BoardError("bad_request", "--bitstream is for --device pynq (the simulated device has none)")
        from ._simdevice import SimDevice

        return SimDevice(target, env)
    if kind == "pynq":
        if bitstream is None:
            raise BoardError("bad_request", "--device pynq needs --bitstream PATH (the VTA .bit of --config)")
        if not Path(bitstream).is_file():
            raise BoardError("bad_request", f"--bitstream {bitstream}: no such file")
        from ._pynq import PynqDevice

        return PynqDevice(target, env, bitstream)
    raise BoardError("bad_request", f"--device {kind!r} is not 'sim' or 'pynq'")


def serve(args) -> int:
    """The body of ``vta-dse board serve`` (errors: BoardError/DeviceError, one line, exit 2)."""
    from ._server import BoardServer

    if not 0 <= args.port <= 65535:
        raise BoardError("bad_request", f"--port {args.port} is not in 0..65535")
    token_file = Path(args.token_file).expanduser() if args.token_file else default_token_file()
    token, created = ensure_token(token_file)
    device = make_device(args.device, args.target, args.config, args.bitstream)
    try:
        server = BoardServer(device, token, host=args.host, port=args.port)
    except (OSError, OverflowError) as exc:
        raise BoardError("refused", f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc})") from None
    out = sys.stdout
    config = "the request's configuration" if getattr(device, "env", None) is None else repr(device.env)
    print(f"vta-dse board: serving the {device.kind} device ({args.target}, {config}) on {server.address}", file=out)
    print(f"token: {token_file}{' (created; copy it to the machines that run studies)' if created else ''}",
          file=out)
    if args.host not in LOOPBACK:
        print("warning: listening beyond loopback; the protocol is not encrypted (prefer an ssh tunnel, "
              "see docs/board.md)", file=sys.stderr)
    out.flush()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log = logging.getLogger("vta-dse.board")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("vta-dse board: stopped", file=out)
    finally:
        server.close()
        device.close()
    return 0
