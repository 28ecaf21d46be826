"""The candidate cache of a run's output folder (the results themselves live in the study's
storage: ``dse._results``).

An append-only JSON-lines file; each record is one ``write`` of one line (atomic for an
``O_APPEND`` file on a local file system), so a SIGKILL loses at most the record being written,
and a torn last line is ignored on load.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ._protocol import group_of_key

# Outcomes that depend only on the candidate; timeouts and dead workers are worth retrying.
CACHEABLE = ("ok", "infeasible", "compile_error", "mismatch")


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class JsonLines:
    def __init__(self, path: Path):
        self.path = Path(path)

    def append(self, record: dict) -> None:
        line = (json.dumps(record, default=_clean, allow_nan=False, separators=(",", ":")) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
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


def _file_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:120]


class CandidateCache:
    """Measurements keyed by (evaluator, hardware, workload, knobs, mode), kept across runs, and
    grouped by everything but the knobs (what one layer job may be answered from)."""

    def __init__(self, path: Path, evaluator_name: str, shared: Path | None = None):
        # A lost cache record costs one re-evaluation, not a wrong result: no fsync per candidate.
        # ``shared``: a folder whose file for this evaluator (its name holds the code's identity)
        # every study of the user reads and appends to, so a layer tuned once is tuned for all.
        self._file = JsonLines(path)
        self._shared = None
        if shared is not None:
            try:
                Path(shared).mkdir(parents=True, exist_ok=True)
                self._shared = JsonLines(Path(shared) / f"{_file_name(evaluator_name)}.jsonl")
            except OSError:
                self._shared = None        # an unwritable cache folder only costs re-evaluations
        self._evaluator = evaluator_name
        self._data: dict[str, dict] = {}
        self._groups: dict[str, dict[str, dict]] = {}
        for source in (self._file, self._shared):
            for record in source.read() if source is not None else ():
                if "key" in record and record["key"] not in self._data:
                    self._add(record["key"], record["m"])
        self.hits = 0

    def _add(self, key: str, result: dict) -> None:
        parts = json.loads(key)
        self._data[key] = result
        knobs = {name: json.loads(value) for name, value in parts[3]}
        self._groups.setdefault(group_of_key(parts), {})[json.dumps(knobs, sort_keys=True)] = result

    def get(self, task) -> dict | None:
        found = self._data.get(task.key(self._evaluator))
        if found is not None:
            self.hits += 1
        return found

    def group(self, task) -> dict[str, dict]:
        """{knob text: measurement} of every cached candidate of ``task``'s layer search."""
        return dict(self._groups.get(task.group_key(self._evaluator), {}))

    def put(self, task, result: dict) -> None:
        key = task.key(self._evaluator)
        if result.get("status") in CACHEABLE and key not in self._data:
            self._add(key, result)
            self._file.append({"key": key, "m": result})
            if self._shared is not None:
                try:
                    self._shared.append({"key": key, "m": result})
                except OSError:
                    self._shared = None

    def __len__(self) -> int:
        return len(self._data)
