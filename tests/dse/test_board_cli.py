"""``vta-dse board serve``: bad input is one line and exit 2; a new token file is private."""
from __future__ import annotations

import socket
import stat

import pytest

from dse.cli import main


@pytest.fixture()
def token(tmp_path):
    path = tmp_path / "token"
    path.write_text("s3cret\n")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("options,message", [
    (["--device", "pynq"], "--device pynq needs --bitstream"),
    (["--device", "pynq", "--bitstream", "/no/such.bit"], "no such file"),
    (["--device", "fpga"], "--device 'fpga'"),
    (["--target", "zedboard"], "--target 'zedboard' is not one of pynq, ultra96, zcu104, de10nano"),
    (["--bitstream", "x.bit"], "--bitstream is for --device pynq"),
    (["--config", "no-such-preset"], "--config 'no-such-preset'"),
    (["--port", "70000"], "--port 70000"),
])
def test_bad_options(capsys, token, options, message):
    assert main(["board", "serve", "--token-file", str(token), *options]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_world_readable_token_file_is_refused(capsys, token):
    token.chmod(0o644)
    assert main(["board", "serve", "--token-file", str(token)]) == 2
    assert "readable by every user" in capsys.readouterr().err


def test_a_port_in_use(capsys, token):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["board", "serve", "--token-file", str(token), "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_a_missing_token_file_is_created_private(tmp_path):
    from dse.board._serve import ensure_token

    path = tmp_path / "dir" / "board.token"
    token, created = ensure_token(path)
    assert created and len(token) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_token(path) == (token, False)


def test_the_pynq_device_without_pynq(capsys, token, tmp_path):
    import importlib.util

    if importlib.util.find_spec("pynq") is not None:
        pytest.skip("pynq is installed here")
    bit = tmp_path / "vta.bit"
    bit.write_bytes(b"bits")
    assert main(["board", "serve", "--token-file", str(token), "--device", "pynq", "--bitstream", str(bit)]) == 2
    assert "needs the `pynq` package" in capsys.readouterr().err
