"""Large JSON values kept in Optuna attributes, through the storage's public API.

A value is JSON, zlib'd and base64'd: one attribute ``KEY`` holding that text when it is at most
``PIECE`` characters (one write: most values), else cut into pieces, one attribute per piece
(``KEY#0``, ``KEY#1``, ...), then ``KEY`` itself holding the number of pieces. The count is
written last, so a reader never takes a value whose pieces are not all there (a driver killed
while writing it leaves no value). Pieces stay under MySQL's 64 kB ``TEXT`` column
(Optuna's ``value_json``); SQLite, PostgreSQL and the journal file have no limit of their own.

:func:`attributes` gives the attributes of a value in writing order; :func:`read` takes a
mapping of attributes (a trial's or a study's ``system_attrs``) and gives the value back, or
None when it is absent, incomplete or damaged (written by another version): a missing value
costs re-evaluation or a missing table row, never a wrong one.
"""
from __future__ import annotations

import base64
import json
import zlib

PIECE = 60_000


def encode(value) -> str:
    packed = zlib.compress(json.dumps(value, separators=(",", ":"), allow_nan=False).encode(), 6)
    return base64.b64encode(packed).decode("ascii")


def decode(text: str):
    """The value of ``encode``'s text; ValueError if it is not one."""
    try:
        return json.loads(zlib.decompress(base64.b64decode(text.encode("ascii"), validate=True)))
    except (ValueError, TypeError, AttributeError, UnicodeEncodeError, zlib.error) as exc:
        raise ValueError(f"not a stored value: {exc}") from None


def attributes(key: str, value) -> dict[str, object]:
    """{attribute: text} of ``value`` under ``key``: the text itself, or the pieces first and
    their count last."""
    text = encode(value)
    if len(text) <= PIECE:
        return {key: text}
    pieces = [text[i:i + PIECE] for i in range(0, len(text), PIECE)] or [""]
    out: dict[str, object] = {f"{key}#{i}": piece for i, piece in enumerate(pieces)}
    out[key] = len(pieces)
    return out


def read(attrs, key: str):
    """The value stored under ``key`` in ``attrs``, or None."""
    count = attrs.get(key)
    if isinstance(count, str):
        try:
            return decode(count)
        except ValueError:
            return None
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        return None
    pieces = [attrs.get(f"{key}#{i}") for i in range(count)]
    if not all(isinstance(piece, str) for piece in pieces):
        return None
    try:
        return decode("".join(pieces))
    except ValueError:
        return None


def is_piece(attr: str) -> bool:
    """Whether ``attr`` is one piece of a value (not worth showing or copying by itself)."""
    head, sep, tail = attr.rpartition("#")
    return bool(sep and head and tail.isdigit())
