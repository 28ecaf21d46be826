"""Durable records of a study in its output folder: the candidate cache and the rows journal.

Both are append-only JSON-lines files; each record is one ``write`` of one line (atomic for an
``O_APPEND`` file on a local file system), flushed and fsynced before the driver goes on, so a
SIGKILL loses at most the record being written, and a torn last line is ignored on load.

The rows of a hardware trial are journaled *before* the trial is told to Optuna: a COMPLETE
trial therefore always has its rows, and rows whose trial never completed (the driver was killed
in between) are dropped on load, so resuming duplicates nothing.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

# Outcomes that depend only on the candidate; timeouts and dead workers are worth retrying.
CACHEABLE = ("ok", "infeasible", "compile_error", "mismatch")


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class JsonLines:
    def __init__(self, path: Path, durable: bool = True):
        self.path = Path(path)
        self.durable = durable    # fsync each record (the journal); a cache only needs the write

    def append(self, record: dict) -> None:
        line = (json.dumps(record, default=_clean, allow_nan=False, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            if self.durable:
                os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[dict]:
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_bytes().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:     # a line torn by a kill
                continue
        return out


class CandidateCache:
    """Measurements keyed by (evaluator, hardware, workload, knobs, mode), kept across runs."""

    def __init__(self, path: Path):
        # A lost cache record costs one re-evaluation, not a wrong result: no fsync per candidate.
        self._file = JsonLines(path, durable=False)
        self._data = {r["key"]: r["m"] for r in self._file.read() if "key" in r}
        self.hits = 0

    def get(self, key: str) -> dict | None:
        found = self._data.get(key)
        if found is not None:
            self.hits += 1
        return found

    def put(self, key: str, result: dict) -> None:
        if result.get("status") in CACHEABLE and key not in self._data:
            self._data[key] = result
            self._file.append({"key": key, "m": result})

    def __len__(self) -> int:
        return len(self._data)


class RowsJournal:
    """Results rows of finished hardware trials (``kind = "trial"``) and of verification runs
    (``kind = "verify"``), per study name."""

    def __init__(self, path: Path, study_name: str):
        self._file = JsonLines(path)
        self.study = study_name

    def write_trial(self, number: int, rows: list[dict], summary: dict) -> None:
        self._file.append({"kind": "trial", "study": self.study, "trial": number, "rows": rows,
                           "summary": summary})

    def write_verify(self, number: int, rows: list[dict], verified: bool) -> None:
        self._file.append({"kind": "verify", "study": self.study, "trial": number, "rows": rows,
                           "verified": verified})

    def load(self, complete_numbers: set[int]) -> tuple[dict, dict]:
        """({trial: record} of COMPLETE trials, {trial: verify record}); the first record of a
        trial wins, later duplicates (a second driver on the same folder) are ignored."""
        trials, verifies = {}, {}
        for rec in self._file.read():
            if rec.get("study") != self.study or rec.get("trial") not in complete_numbers:
                continue
            target = trials if rec.get("kind") == "trial" else verifies
            target.setdefault(rec["trial"], rec)
        return trials, verifies
