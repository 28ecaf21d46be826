"""The message decoder never raises anything but ProtocolError and never hangs, whatever the
bytes; encode/decode round-trip; relocation moves exactly the DRAM accesses; token files."""
from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hwconfigs
from compiler import isa, workloads
from dse.board import BoardError, BoardPool, ProtocolError, _wire, parse_board, read_token
from dse.board._program import relocate

SMALL_CAP = 1 << 16


def _frame(header: bytes, payload: bytes = b"", *, magic=_wire.MAGIC, version=_wire.VERSION, flags=0,
           header_len=None, payload_len=None) -> bytes:
    return (_wire.PREFIX.pack(magic, version, flags, len(header) if header_len is None else header_len,
                              len(payload) if payload_len is None else payload_len) + header + payload)


def _decode_or_protocol_error(data: bytes):
    try:
        return _wire.decode(data, SMALL_CAP)
    except ProtocolError as exc:
        assert exc.reason in ("malformed", "too_large", "version")
        return None


class _BytesSocket:
    """``recv_into`` over fixed bytes, then end of stream (a peer that sent them and closed)."""

    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def recv_into(self, view, n):
        chunk = self.data[self.at:self.at + min(n, 7)]      # short reads, as a socket may give
        view[:len(chunk)] = chunk
        self.at += len(chunk)
        return len(chunk)


def _read_or_named_error(data: bytes):
    """The server's staged reader: ProtocolError for bad bytes, EOFError when they run out."""
    try:
        return _wire.read_message(_BytesSocket(data), SMALL_CAP)
    except ProtocolError as exc:
        assert exc.reason in ("malformed", "too_large", "version")
    except EOFError:
        pass


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    _decode_or_protocol_error(data)
    _read_or_named_error(data)
    _read_or_named_error(_wire.PREFIX.pack(_wire.MAGIC, _wire.VERSION, 0, len(data), 0) + data)


json_values = st.recursive(st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.floats()
                           | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                      max_size=4), max_leaves=20)
blob_entries = st.fixed_dictionaries({"name": st.one_of(st.text(max_size=4), st.integers()),
                                      "dtype": st.sampled_from(list(_wire.DTYPES) + ["float64", "object", "<i4"]),
                                      "shape": st.lists(st.one_of(st.integers(-2, 40), st.booleans(), st.floats()),
                                                        max_size=3)})


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(blobs=st.one_of(st.lists(blob_entries, max_size=4), json_values), extra=json_values,
       payload=st.binary(max_size=256), header_len_delta=st.integers(-3, 3),
       payload_len=st.one_of(st.none(), st.integers(0, 1 << 63)))
def test_structured_headers(blobs, extra, payload, header_len_delta, payload_len):
    """Well-framed messages whose header and sizes are almost right."""
    header = json.dumps({"blobs": blobs, "x": extra}).encode()
    data = _frame(header, payload, payload_len=payload_len)
    _decode_or_protocol_error(data)
    _read_or_named_error(data)
    _decode_or_protocol_error(_frame(header, payload, header_len=max(len(header) + header_len_delta, 0)))


@settings(max_examples=100, deadline=2000)
@given(st.lists(st.tuples(st.sampled_from(_wire.DTYPES), st.lists(st.integers(0, 5), max_size=3)), max_size=5),
       st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))
def test_round_trip(specs, fields):
    rng = np.random.default_rng(0)
    blobs = {f"b{i}": rng.integers(0, 100, size=shape).astype(dtype) for i, (dtype, shape) in enumerate(specs)}
    header, arrays = _wire.decode(b"".join(bytes(c) for c in _wire.encode(dict(fields), blobs)))
    assert {k: v for k, v in header.items() if k != "blobs"} == fields
    assert list(arrays) == list(blobs)
    for name, array in blobs.items():
        assert arrays[name].dtype == array.dtype and np.array_equal(arrays[name], array)


def test_caps_are_checked_before_reading():
    with pytest.raises(ProtocolError) as caught:
        _wire.decode_prefix(_wire.PREFIX.pack(_wire.MAGIC, _wire.VERSION, 0, 10, SMALL_CAP), SMALL_CAP)
    assert caught.value.reason == "too_large"
    with pytest.raises(ProtocolError) as caught:
        _wire.decode_prefix(_wire.PREFIX.pack(_wire.MAGIC, _wire.VERSION, 0, _wire.MAX_HEADER_BYTES + 1, 0))
    assert caught.value.reason == "too_large"


def test_relocation_moves_exactly_the_dram_accesses():
    env = hwconfigs.get_env()
    layer = workloads.Conv2D(batch=1, height=8, width=8, in_channels=32, out_channels=32, kernel=3, stride=1, pad=1)
    program = workloads.build(layer, env=env).program
    raw = np.frombuffer(program.to_bytes(), dtype=np.uint8)
    base = 0x1234_5000 - 0x1234_5000 % 4096
    moved = isa.Program.from_bytes(relocate(raw, env, base, 1 << 24).tobytes(), env).instructions
    count = 0
    for before, after in zip(program.instructions, moved):
        if isinstance(before, isa.MemInsn) and before.x_size and before.y_size:
            unit = env.OUT_ELEM_BYTES if before.opcode == isa.STORE else isa.elem_bytes(env, before.memory_type)
            assert after.dram_base == before.dram_base + base // unit
            assert str(after).replace(hex(after.dram_base), "") == str(before).replace(hex(before.dram_base), "")
            count += 1
        else:
            assert after == before
    assert count > 10


def test_token_file(tmp_path):
    path = tmp_path / "token"
    with pytest.raises(BoardError, match="does not exist"):
        read_token(path)
    path.write_text("  \n")
    path.chmod(0o600)
    with pytest.raises(BoardError, match="empty"):
        read_token(path)
    path.write_text("s3cret\n")
    path.chmod(0o644)
    with pytest.raises(BoardError, match="readable by every user") as caught:
        read_token(path)
    assert caught.value.reason == "token" and str(path) in str(caught.value)
    path.chmod(0o640)
    assert read_token(path) == "s3cret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


@pytest.mark.parametrize("board", ["localhost", "host:0", "host:port", ":9091", "host:70000", 9091])
def test_bad_board_addresses(board):
    with pytest.raises(BoardError) as caught:
        BoardPool([board], "token")
    assert caught.value.reason == "bad_board"


def test_board_addresses():
    assert parse_board("[::1]:9091") == ("::1", 9091)
    assert parse_board("pynq-3.lab:9091") == ("pynq-3.lab", 9091)
    assert "hidden-token" not in repr(BoardPool(["a:1"], "hidden-token"))


@pytest.mark.parametrize("env_name", ["1x16", "4x8"])
def test_stream_bytes_is_the_reference_encoding(env_name):
    import random

    from dse.board._program import stream_bytes

    env = hwconfigs.get_env() if env_name == "1x16" else hwconfigs.get_env(LOG_BATCH=2, LOG_BLOCK=3)
    b = env.BATCH
    layers = [workloads.Conv2D(batch=b, height=8, width=8, in_channels=2 * env.BLOCK_IN,
                               out_channels=2 * env.BLOCK_OUT, kernel=3, stride=1, pad=1),
              workloads.Dense(batch=b, in_features=4 * env.BLOCK_IN, out_features=2 * env.BLOCK_OUT),
              workloads.Elementwise(batch=b, channels=2 * env.BLOCK_OUT, height=4, width=4, op="add")]
    for layer in layers:
        for knobs in [None, *workloads.random_legal_knobs(layer, env, random.Random(7), 2, max_tries=400)]:
            for program in workloads.build(layer, env=env, knobs=knobs).programs:
                assert stream_bytes(program).tobytes() == program.to_bytes()
    negative = isa.Program(env, [isa.AluInsn(alu_opcode=isa.ALU_ADD, use_imm=1, imm=-5, uop_end=1, iter_out=1,
                                             iter_in=1), isa.FinishInsn(pop_prev=1)])
    assert stream_bytes(negative).tobytes() == negative.to_bytes()


def test_errors_pickle():
    import pickle

    from dse.board import DeviceError

    for error in (BoardError("reset", "connection closed", "h:1"), ProtocolError("malformed", "bad"),
                  DeviceError("no done", "device_error")):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error) and copy.reason == error.reason
    assert str(BoardError("reset", "connection closed", "h:1")) == "board h:1: connection closed"
