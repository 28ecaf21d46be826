"""The board's wire format: one length-prefixed message per request and per reply.

A message is a fixed 20-byte prefix, a JSON header and a payload of raw array bytes:

    magic b"VTAB" | version u16 | flags u16 (0) | header_len u32 | payload_len u64   (little-endian)
    header:  header_len bytes of UTF-8 JSON, an object whose "blobs" lists the payload's arrays in
             order, each {"name": str, "dtype": one of DTYPES, "shape": [int, ...]}
    payload: the arrays' little-endian bytes, back to back (payload_len = the sum of their sizes)

Nothing from the network is ever unpickled: the header is JSON and the arrays are rebuilt with
``np.frombuffer`` from a dtype chosen among ``DTYPES``. Every size is checked against the caps
before a byte of the body is read, so a peer cannot make the reader allocate more than the cap.
"""
from __future__ import annotations

import json
import math
import struct

import numpy as np

from ._errors import ProtocolError

MAGIC = b"VTAB"
VERSION = 1
PREFIX = struct.Struct("<4sHHIQ")
MAX_HEADER_BYTES = 1 << 20             # 1 MiB of JSON: a header lists buffers, never data
MAX_MESSAGE_BYTES = 256 << 20          # 256 MiB, header and payload together (the documented cap)
MAX_BLOBS = 1024
MAX_NAME = 128
MAX_NDIM = 8
MAX_DIM = 1 << 40              # per dimension (the product is checked against the payload)
DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64")


def _dtype(name: str) -> np.dtype:
    return np.dtype(name).newbyteorder("<")


def encode(header: dict, blobs: dict[str, np.ndarray] | None = None) -> list:
    """The message as a list of byte chunks (prefix+header, then each array's buffer, not
    copied): ``sock.sendall`` each in turn. ``header`` must not hold "blobs": it is derived."""
    blobs = blobs or {}
    described, chunks, total = [], [], 0
    for name, array in blobs.items():
        array = np.asarray(array, order="C")          # (ascontiguousarray would make a 0-d array 1-d)
        dtype = array.dtype.newbyteorder("=").name
        if dtype not in DTYPES:
            raise ProtocolError("malformed", f"blob {name!r}: dtype {array.dtype} is not one of {', '.join(DTYPES)}")
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        described.append({"name": name, "dtype": dtype, "shape": list(array.shape)})
        chunks.append(memoryview(array.reshape(-1).view(np.uint8)))
        total += array.nbytes
    text = json.dumps({**header, "blobs": described}, separators=(",", ":")).encode()
    if len(text) > MAX_HEADER_BYTES:
        raise ProtocolError("too_large", f"message header of {len(text)} B exceeds the {MAX_HEADER_BYTES} B cap")
    return [PREFIX.pack(MAGIC, VERSION, 0, len(text), total) + text, *chunks]


def decode_prefix(prefix: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> tuple[int, int]:
    """(header_len, payload_len) of a message's first ``PREFIX.size`` bytes, checked against the caps."""
    if len(prefix) != PREFIX.size:
        raise ProtocolError("malformed", f"message prefix of {len(prefix)} B, expected {PREFIX.size}")
    magic, version, flags, header_len, payload_len = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError("malformed", f"not a board message (magic {magic!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise ProtocolError("version", f"protocol version {version}, this side speaks {VERSION}")
    if flags:
        raise ProtocolError("malformed", f"unknown flags {flags:#x} in the message prefix")
    if header_len == 0 or header_len > MAX_HEADER_BYTES:
        raise ProtocolError("too_large" if header_len else "malformed",
                            f"header of {header_len} B (must be 1 to {MAX_HEADER_BYTES} B)")
    if header_len + payload_len > max_bytes:
        raise ProtocolError("too_large", f"message of {header_len + payload_len} B exceeds the {max_bytes} B cap")
    return header_len, payload_len


def decode_header(raw: bytes, payload_len: int) -> tuple[dict, list[tuple[str, np.dtype, tuple, int]]]:
    """The header object and its blobs as (name, dtype, shape, nbytes), their sizes summing to
    ``payload_len``."""
    try:
        header = json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError("malformed", f"header is not UTF-8 JSON ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise ProtocolError("malformed", f"header is a JSON {type(header).__name__}, expected an object")
    described = header.get("blobs")
    if not isinstance(described, list) or len(described) > MAX_BLOBS:
        raise ProtocolError("malformed", f"header 'blobs' must be a list of at most {MAX_BLOBS} entries")
    blobs, names, total = [], set(), 0
    for index, entry in enumerate(described):
        what = f"blob {index}"
        if not isinstance(entry, dict) or set(entry) != {"name", "dtype", "shape"}:
            raise ProtocolError("malformed", f"{what}: expected an object with exactly name, dtype and shape")
        name, dtype, shape = entry["name"], entry["dtype"], entry["shape"]
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or name in names:
            raise ProtocolError("malformed", f"{what}: name must be a new string of 1 to {MAX_NAME} characters")
        if dtype not in DTYPES:
            raise ProtocolError("malformed", f"{what} ({name!r}): dtype {str(dtype)[:32]!r} is not one of "
                                             f"{', '.join(DTYPES)}")
        if (not isinstance(shape, list) or len(shape) > MAX_NDIM
                or not all(type(n) is int and 0 <= n <= MAX_DIM for n in shape)):
            raise ProtocolError("malformed", f"{what} ({name!r}): shape must be a list of at most {MAX_NDIM} "
                                             f"whole numbers up to {MAX_DIM}")
        nbytes = math.prod(shape) * _dtype(dtype).itemsize
        total += nbytes
        if total > payload_len:
            raise ProtocolError("malformed", f"{what} ({name!r}): the blobs need more than the {payload_len} B "
                                             f"payload")
        names.add(name)
        blobs.append((name, _dtype(dtype), tuple(shape), nbytes))
    if total != payload_len:
        raise ProtocolError("malformed", f"the blobs hold {total} B, the payload has {payload_len} B")
    return header, blobs


def decode_blobs(payload, blobs) -> dict[str, np.ndarray]:
    """Read-only arrays viewing ``payload``, one per described blob."""
    arrays, offset = {}, 0
    for name, dtype, shape, nbytes in blobs:
        arrays[name] = np.frombuffer(payload, dtype=dtype, count=nbytes // dtype.itemsize,
                                     offset=offset).reshape(shape)
        offset += nbytes
    return arrays


def decode(data: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> tuple[dict, dict[str, np.ndarray]]:
    """A whole message held in memory: (header, arrays). Raises only ProtocolError."""
    data = bytes(data)
    header_len, payload_len = decode_prefix(data[:PREFIX.size], max_bytes)
    end = PREFIX.size + header_len + payload_len
    if len(data) != end:
        raise ProtocolError("malformed", f"message of {len(data)} B, its prefix announces {end} B")
    header, blobs = decode_header(data[PREFIX.size:PREFIX.size + header_len], payload_len)
    return header, decode_blobs(data[PREFIX.size + header_len:], blobs)


# ---- sockets -----------------------------------------------------------------------------------

def recv_exact(sock, n: int) -> bytearray:
    """Exactly ``n`` bytes from ``sock``; EOFError when the peer closes first (socket timeouts
    and OSErrors propagate)."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = sock.recv_into(view[got:], min(n - got, 1 << 20))
        if k == 0:
            raise EOFError(f"connection closed after {got} of {n} bytes")
        got += k
    return buf


def read_message(sock, max_bytes: int = MAX_MESSAGE_BYTES, check_header=None) -> tuple[dict, dict[str, np.ndarray]]:
    """One message from ``sock``. ``check_header(header)`` runs before the payload is read (the
    server checks the token there, so an unauthenticated peer cannot make it read a payload)."""
    header_len, payload_len = decode_prefix(bytes(recv_exact(sock, PREFIX.size)), max_bytes)
    header, blobs = decode_header(recv_exact(sock, header_len), payload_len)
    if check_header is not None:
        check_header(header)
    return header, decode_blobs(recv_exact(sock, payload_len), blobs)


def send_message(sock, header: dict, blobs: dict[str, np.ndarray] | None = None) -> None:
    for chunk in encode(header, blobs):
        sock.sendall(chunk)
