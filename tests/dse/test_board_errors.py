"""Every way a board call can fail becomes the documented BoardError on the client, and the
server keeps serving other clients afterwards."""
from __future__ import annotations

import dataclasses
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import hwconfigs
import simulator
from compiler import isa, workloads
from compiler.module import Module
from dse.board import BoardError, BoardPool, BoardServer, SimDevice, _wire
from tests.dse.conftest import subprocess_env

TOKEN = "test-token-0123456789"
ENV = hwconfigs.get_env()
LAYER = workloads.Dense(batch=1, in_features=64, out_features=32)


@pytest.fixture(scope="module")
def module():
    return workloads.build(LAYER, env=ENV)


def _args(module):
    return [*workloads.random_inputs(LAYER, ENV, seed=3), workloads.empty_output(LAYER, ENV)]


@pytest.fixture(scope="module")
def board():
    with BoardServer(SimDevice(), TOKEN, port=0, read_timeout_s=1.0, max_message_bytes=1 << 20).start() as server:
        yield server


def _still_serves(server, module):
    """A well-formed request after the misbehaviour gets the right answer."""
    args = _args(module)
    expected = workloads.empty_output(LAYER, ENV)
    simulator.run(module, *args[:-1], expected)
    run = BoardPool([server.address], TOKEN).run_module(module, args, timeout_s=30)
    np.testing.assert_array_equal(args[-1], expected)
    assert run.stats is not None


def _raw(server, data: bytes, half_close: bool = True) -> dict:
    """Send ``data`` on a fresh connection and read the server's reply header."""
    host, port = server.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        header, _ = _wire.read_message(sock)
    return header


def _request_bytes(module, token=TOKEN) -> bytes:
    from dse.board._program import module_request

    header, blobs = module_request(module, _args(module))
    return b"".join(bytes(chunk) for chunk in _wire.encode({**header, "token": token}, blobs))


def test_wrong_token(board, module):
    with pytest.raises(BoardError) as caught:
        BoardPool([board.address], "not-the-token").run_module(module, _args(module), timeout_s=10)
    assert caught.value.reason == "auth" and board.address in str(caught.value)
    assert "attempts" not in str(caught.value)          # a wrong token is not retried
    _still_serves(board, module)


def test_missing_token_is_refused_before_the_payload(board, module):
    data = _request_bytes(module)
    header_len = _wire.PREFIX.unpack(data[:_wire.PREFIX.size])[3]
    header = json.loads(data[_wire.PREFIX.size:_wire.PREFIX.size + header_len])
    del header["token"]
    text = json.dumps(header).encode()
    prefix = _wire.PREFIX.pack(_wire.MAGIC, _wire.VERSION, 0, len(text), _wire.PREFIX.unpack(data[:20])[4])
    reply = _raw(board, prefix + text, half_close=True)     # no payload sent at all
    assert reply["ok"] is False and reply["reason"] == "auth"
    _still_serves(board, module)


def test_truncated_request(board, module):
    data = _request_bytes(module)
    reply = _raw(board, data[:len(data) // 2])
    assert reply["reason"] == "bad_request" and "truncated" in reply["error"]
    _still_serves(board, module)


def test_oversized_request(board, module):
    prefix = _wire.PREFIX.pack(_wire.MAGIC, _wire.VERSION, 0, 2, 1 << 40)
    reply = _raw(board, prefix + b"{}", half_close=False)
    assert reply["reason"] == "too_large"
    with pytest.raises(BoardError) as caught:                # a real request over the board's 1 MiB cap
        big = workloads.Dense(batch=1, in_features=1024, out_features=1024)
        big_module = workloads.build(big, env=ENV)
        args = [*workloads.random_inputs(big, ENV), workloads.empty_output(big, ENV)]
        BoardPool([board.address], TOKEN).run_module(big_module, args, timeout_s=30)
    assert caught.value.reason == "too_large" and "cap" in str(caught.value)
    _still_serves(board, module)


def test_a_request_over_the_protocol_cap_is_not_sent(module, monkeypatch):
    monkeypatch.setattr(_wire, "MAX_MESSAGE_BYTES", 1000)
    with pytest.raises(BoardError) as caught:
        BoardPool(["127.0.0.1:9"], TOKEN).run_module(module, _args(module), timeout_s=10)
    assert caught.value.reason == "too_large" and caught.value.board == ""


@pytest.mark.parametrize("junk", [os.urandom(64), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00" * 20])
def test_garbage_bytes(board, module, junk):
    reply = _raw(board, junk)
    assert reply["reason"] == "bad_request"
    _still_serves(board, module)


@pytest.mark.parametrize("header", [bytes(range(256)) * 2, b"\xff\xfe" + "{}".encode("utf-16-le"), b"[" * 100_000,
                                   b'{"blobs": 7}', b"null"])
def test_binary_junk_in_the_header(board, module, header):
    prefix = _wire.PREFIX.pack(_wire.MAGIC, _wire.VERSION, 0, len(header), 0)
    reply = _raw(board, prefix + header)
    assert reply["reason"] == "bad_request"
    _still_serves(board, module)


def test_wrong_protocol_version(board, module):
    reply = _raw(board, _wire.PREFIX.pack(_wire.MAGIC, _wire.VERSION + 1, 0, 2, 0) + b"{}")
    assert reply["reason"] == "bad_request" and "version" in reply["error"]


def _with_program(module, edit) -> Module:
    program = module.program
    insns = [edit(i, insn) for i, insn in enumerate(program.instructions)]
    edited = isa.Program(module.env, insns, program.uops, program.uop_base)
    return Module(module.env, module.name, [edited], module.args, module.dram_size)


def test_a_program_reaching_outside_its_image_is_refused(board, module):
    first_load = next(i for i, insn in enumerate(module.program) if isinstance(insn, isa.MemInsn) and insn.x_size)

    def far(i, insn):
        return dataclasses.replace(insn, dram_base=1 << 24) if i == first_load else insn

    with pytest.raises(BoardError) as caught:
        BoardPool([board.address], TOKEN).run_module(_with_program(module, far), _args(module), timeout_s=10)
    assert caught.value.reason == "bad_request" and "outside" in str(caught.value)
    _still_serves(board, module)


def test_a_program_the_device_refuses(board, module):
    """A GEMM reading past the uop depth: relocation lets it through, the device refuses it."""
    def broken(i, insn):
        return dataclasses.replace(insn, uop_end=ENV.UOP_DEPTH + 1) if isinstance(insn, isa.GemmInsn) else insn

    with pytest.raises(BoardError) as caught:
        BoardPool([board.address], TOKEN).run_module(_with_program(module, broken), _args(module), timeout_s=10)
    assert caught.value.reason == "device_error" and "uop" in str(caught.value)
    _still_serves(board, module)


def test_a_silent_client_does_not_block_others(board, module):
    host, port = board.address.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as silent:
        silent.sendall(_wire.PREFIX.pack(_wire.MAGIC, _wire.VERSION, 0, 100, 0)[:10])   # and then nothing
        _still_serves(board, module)                       # served while the silent one is connected
        silent.settimeout(10)
        header, _ = _wire.read_message(silent)             # dropped after the read timeout, with a reason
    assert header["reason"] == "timeout"


def test_refused_connection(module):
    with socket.socket() as probe:                         # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(BoardError) as caught:
        BoardPool([address], TOKEN, retries=0).run_module(module, _args(module), timeout_s=10)
    assert caught.value.reason == "refused" and address in str(caught.value)


class _FakeBoard:
    """A listening socket that does ``behave(conn)`` with each connection."""

    def __init__(self, behave):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.behave = behave
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.behave(conn)

    def close(self):
        self.sock.close()


def _read_request(conn):
    _wire.read_message(conn)


@pytest.mark.parametrize("behave,reason", [
    (lambda conn: (_read_request(conn), time.sleep(3)), "timeout"),
    (lambda conn: (_read_request(conn), conn.sendall(b"\x13" * 64)), "malformed_reply"),
    (lambda conn: (_read_request(conn), conn.sendall(_wire.PREFIX.pack(_wire.MAGIC, 1, 0, 10, 0) + b"[1, 2, 3]x")),
     "malformed_reply"),
    (lambda conn: (_read_request(conn), conn.sendall(b"".join(_wire.encode({"ok": True, "wall_s": "soon"})))),
     "malformed_reply"),
    (lambda conn: (_read_request(conn), conn.sendall(b"".join(_wire.encode({"ok": False, "reason": "???"})))),
     "malformed_reply"),
    (lambda conn: (_read_request(conn), conn.sendall(b"".join(_wire.encode({"ok": True}))[:15])), "reset"),
    (lambda conn: _read_request(conn), "reset"),
])
def test_misbehaving_boards(module, behave, reason):
    fake = _FakeBoard(behave)
    try:
        start = time.monotonic()
        with pytest.raises(BoardError) as caught:
            BoardPool([fake.address], TOKEN, retries=0).run_module(module, _args(module), timeout_s=1.0)
        assert caught.value.reason == reason and fake.address in str(caught.value)
        assert time.monotonic() - start < 5
    finally:
        fake.close()


def test_a_failed_attempt_is_retried_on_another_board(board, module):
    fake = _FakeBoard(lambda conn: conn.close())
    try:
        args = _args(module)
        run = BoardPool([fake.address, board.address], TOKEN, retries=1).run_module(module, args, timeout_s=30)
        assert run.board == board.address and run.attempts == 2
        with pytest.raises(BoardError) as caught:          # no retries left: the failure, naming every attempt
            BoardPool([fake.address, fake.address], TOKEN, retries=1).run_module(module, args, timeout_s=30)
        assert caught.value.reason == "reset" and "attempts" in str(caught.value)
    finally:
        fake.close()


def test_config_mismatch_goes_to_a_board_with_that_config(board, module):
    other = hwconfigs.get_env(LOG_BATCH=2, LOG_BLOCK=3)
    with BoardServer(SimDevice(env=other), TOKEN, port=0).start() as fixed:
        with pytest.raises(BoardError) as caught:
            BoardPool([fixed.address], TOKEN, retries=0).run_module(module, _args(module), timeout_s=10)
        assert caught.value.reason == "config_mismatch" and "LOG_BATCH 2 vs 0" in str(caught.value)
        run = BoardPool([fixed.address, board.address], TOKEN).run_module(module, _args(module), timeout_s=10)
        assert run.board == board.address


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_server_killed_mid_run(tmp_path):
    """SIGKILL the server process while it runs a request: the client sees ``reset``."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "dse", "board", "serve", "--port", str(port),
                               "--token-file", str(token_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=subprocess_env())
    try:
        assert "serving" in server.stdout.readline()
        layer = workloads.Conv2D(batch=1, height=28, width=28, in_channels=64, out_channels=64, kernel=3,
                                 stride=1, pad=1)
        module = workloads.build(layer, env=ENV)
        args = [*workloads.random_inputs(layer, ENV), workloads.empty_output(layer, ENV)]
        outcome = {}

        def call():
            try:
                BoardPool([f"127.0.0.1:{port}"], TOKEN, retries=0).run_module(module, args, timeout_s=60)
            except BoardError as exc:
                outcome["error"] = exc

        started = queue.Queue()
        threading.Thread(target=lambda: [started.put(line) for line in server.stderr if "run from" in line],
                         daemon=True).start()
        client = threading.Thread(target=call)
        client.start()
        started.get(timeout=60)                            # the server logs each request as it starts
        server.send_signal(signal.SIGKILL)
        client.join(30)
        assert not client.is_alive()
        assert outcome["error"].reason == "reset", outcome
    finally:
        server.kill()
        server.wait()


def test_a_board_serves_every_config_with_its_log_parameters(module):
    """A board configured as the 'pynq' preset runs a module built for 'default' (same LOG_*
    parameters, another target name): same hardware, and the cycles of the module's own Env."""
    served = hwconfigs.get_env("pynq")
    assert served != ENV
    with BoardServer(SimDevice(env=served), TOKEN, port=0).start() as fixed:
        args = _args(module)
        run = BoardPool([fixed.address], TOKEN).run_module(module, args, timeout_s=30)
    assert run.cycles == simulator.run(module, *args).cycles


def test_arguments_that_do_not_fit_the_module(board, module):
    args = _args(module)
    with pytest.raises(BoardError) as caught:
        BoardPool([board.address], TOKEN).run_module(module, args[:-1], timeout_s=10)
    assert caught.value.reason == "bad_request" and "takes 3 arrays" in str(caught.value)


def test_info(board):
    info = BoardPool([board.address], TOKEN).info(board.address)
    assert info == {"device": "sim", "target": "pynq", "config": None}
    with pytest.raises(BoardError) as caught:
        BoardPool([board.address], "not-the-token").info(board.address)
    assert caught.value.reason == "auth"


def test_a_pool_pickles_and_shares_the_process_leases(board, module):
    import pickle

    pool = pickle.loads(pickle.dumps(BoardPool([board.address], TOKEN, retries=1)))
    assert pool.boards == [board.address] and pool.retries == 1
    assert pool.run_module(module, _args(module), timeout_s=30).board == board.address


def test_busy_when_every_connection_slot_is_taken(module):
    with BoardServer(SimDevice(), TOKEN, port=0, max_connections=1, read_timeout_s=5).start() as small:
        host, port = small.address.rsplit(":", 1)
        with socket.create_connection((host, int(port))):       # holds the only slot, silently
            time.sleep(0.2)
            with pytest.raises(BoardError) as caught:
                BoardPool([small.address], TOKEN, retries=0).run_module(module, _args(module), timeout_s=10)
        assert caught.value.reason == "busy" and "1 connections" in str(caught.value)
        _still_serves(small, module)
