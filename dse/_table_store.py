"""Schedule tables kept with the study, in its Optuna storage.

A complete schedule table (every measured candidate of one layer on one table hardware, keyed by
its cache group: evaluator identity, hardware, workload, mode) is written once into the study's
system attributes, through the storage's public API. Every driver of the study reads them back:
a second driver on a shared PostgreSQL study, or a resume from another output folder, replays the
table's search from the stored measurements and evaluates nothing of it. The group key holds the
evaluator's name, a digest of the measuring code (``dse._identity``), so a changed compiler or
cycle model never reads an old table.

A table is one value of ``dse._blob`` (JSON of its field names and one row of values per
candidate, zlib'd and base64'd, in pieces: an exhaustive table of 17,000 candidates is about half
a megabyte). A value that does not decode (written by another version, or damaged) is ignored: it
costs the table's evaluations, never a wrong answer.
"""
from __future__ import annotations

import hashlib
import time

from . import _blob

PREFIX = "dse:table:"
# A missing table re-reads the study's attributes at most this often (each read fetches them
# all); a table another driver completes meanwhile is found at the next read.
REFRESH_S = 20.0
FORMAT = 1


def attr_key(group: str) -> str:
    return PREFIX + hashlib.sha256(group.encode()).hexdigest()[:32]


def body(group: str, rows: dict[str, dict]) -> dict:
    """The stored value of a table: ``rows`` is {knob text: measurement}."""
    fields = sorted({field for m in rows.values() for field in m})
    return {"format": FORMAT, "group": group, "fields": fields,
            "rows": [[text, *(m.get(f) for f in fields)] for text, m in sorted(rows.items())]}


def rows_of(value) -> tuple[str, dict[str, dict]]:
    """(group, {knob text: measurement}) of a stored value; ValueError if it is not a table."""
    try:
        if value.get("format") != FORMAT:
            raise ValueError(f"table format {value.get('format')!r}")
        fields = value["fields"]
        rows = {}
        for row in value["rows"]:
            if len(row) != len(fields) + 1 or not isinstance(row[0], str):
                raise ValueError("a row of the wrong length")
            rows[row[0]] = dict(zip(fields, row[1:]))
        return str(value["group"]), rows
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"not a stored schedule table: {exc}") from None


class TableStore:
    """The schedule tables of one study in its storage (``storage``: an Optuna storage)."""

    def __init__(self, storage, study_name: str, clock=time.monotonic):
        self.storage = storage
        self._study_id = storage.get_study_id_from_name(study_name)
        self._clock = clock
        self._attrs: dict[str, object] = {}
        self._read_at: float | None = None

    def _refresh(self) -> None:
        attrs = self.storage.get_study_system_attrs(self._study_id)
        self._attrs = {k: v for k, v in attrs.items() if k.startswith(PREFIX)}
        self._read_at = self._clock()

    def lookup(self, group: str) -> dict[str, dict] | None:
        """{knob text: measurement} of the stored table of ``group``, or None."""
        key = attr_key(group)
        if key not in self._attrs and (self._read_at is None or self._clock() - self._read_at >= REFRESH_S):
            self._refresh()
        value = _blob.read(self._attrs, key)
        if value is None:
            return None
        try:
            stored_group, rows = rows_of(value)
        except ValueError:
            return None
        return rows if stored_group == group else None

    def publish(self, group: str, rows: dict[str, dict]) -> None:
        """Store a complete table (once: a table already stored is the same measurements)."""
        key = attr_key(group)
        if key in self._attrs or not rows:
            return
        for attr, value in _blob.attributes(key, body(group, rows)).items():
            self.storage.set_study_system_attr(self._study_id, attr, value)
            self._attrs[attr] = value
