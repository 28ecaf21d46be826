"""A study's results, kept in its Optuna storage: the one source of truth every driver reads.

A hardware trial's summary (feasibility, figures, the chosen schedule of each layer) and its rows
(one per candidate of its layer searches) are written into the trial's system attributes before
the trial is told (``dse._blob`` values ``SUMMARY_ATTR`` and ``ROWS_ATTR``): a COMPLETE trial
always has them, and a trial whose driver died before telling it has none that count. A
verification of a reported trial (``verify = "top"``) goes into the study's system attributes
(``dse:verify:<trial>``), since a finished trial takes no more attributes. So every driver of a
shared study writes results tables holding every trial of the study, with the same verdicts, and
chooses the same configuration.

The user attributes (:func:`shown_attrs`) are the few figures optuna-dashboard shows and filters
on: feasibility and its reason, latency, resources, and the chosen schedules.
"""
from __future__ import annotations

import json
from pathlib import Path

from . import _blob

SUMMARY_ATTR = "dse:summary"
ROWS_ATTR = "dse:rows"
VERIFY_PREFIX = "dse:verify:"
SHOWN = ("feasible", "reason", "latency_s", "bram", "dsp", "lut")
SCHEDULES_ATTR = "schedules"
SHOWN_CHARS = 1000      # optuna-dashboard cuts a structured attribute at 1024 characters


def _pack_rows(rows: list[dict]) -> dict:
    """Rows as field names and one list of values per row (their trial number left out: it is
    the trial's own, and an exact fill's number is known only once it is stored)."""
    fields = sorted({field for row in rows for field in row if field != "trial"})
    return {"fields": fields, "rows": [[row.get(f) for f in fields] for row in rows]}


def _unpack_rows(value, number: int) -> list[dict]:
    fields = value["fields"]
    return [{"trial": number, **dict(zip(fields, row))} for row in value["rows"]]


def trial_attrs(summary: dict, rows: list[dict]) -> dict:
    """The system attributes of a finished trial: its summary and its rows."""
    return {**_blob.attributes(SUMMARY_ATTR, summary), **_blob.attributes(ROWS_ATTR, _pack_rows(rows))}


def shown_attrs(summary: dict) -> dict:
    """The user attributes of a finished trial: its scalar figures, and its layers' schedules in
    as few attributes as fit the dashboard whole (``schedules``, ``schedules:2``, ...)."""
    attrs = {key: summary[key] for key in SHOWN if summary.get(key) is not None}
    if summary.get("feasible"):
        attrs.pop("reason", None)
    packs: list[dict] = []
    for layer in summary.get("layers", []):
        entry = {layer["workload"]: layer["knobs"]}
        if packs and len(json.dumps({**packs[-1], **entry})) <= SHOWN_CHARS:
            packs[-1].update(entry)
        else:
            packs.append(entry)
    for i, pack in enumerate(packs):
        attrs[SCHEDULES_ATTR if i == 0 else f"{SCHEDULES_ATTR}:{i + 1}"] = pack
    return attrs


def summary_of(trial) -> dict | None:
    """The stored summary of a FrozenTrial, or None."""
    return _blob.read(trial.system_attrs, SUMMARY_ATTR)


class Record(dict):
    """A trial's record: ``summary`` at once, ``rows`` decoded when first asked for."""

    def __init__(self, trial, summary: dict):
        super().__init__(summary=summary)
        self._trial = trial

    def __missing__(self, key):
        if key != "rows":
            raise KeyError(key)
        value = _blob.read(self._trial.system_attrs, ROWS_ATTR)
        try:
            rows = _unpack_rows(value, self._trial.number) if value is not None else []
        except (KeyError, TypeError, ValueError):
            rows = []
        self["rows"] = rows
        return rows


def _journal(path: Path, study_name: str) -> tuple[dict, dict]:
    """({trial: record}, {trial: verification}) of the rows journal ``rows.jsonl`` that runs of
    vta-dse before the results moved into the storage kept in their output folder (the first
    record of a trial wins; a line torn by a kill is skipped)."""
    trials: dict = {}
    verifies: dict = {}
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError:
        return trials, verifies
    for line in lines:
        try:
            rec = json.loads(line)
            if rec.get("study") != study_name or not isinstance(rec.get("trial"), int):
                continue
        except (ValueError, AttributeError):
            continue
        (trials if rec.get("kind") == "trial" else verifies).setdefault(rec["trial"], rec)
    return trials, verifies


class StudyResults:
    """The results of one study in its storage (``storage``: the storage object the study was
    created on). ``journal``: the ``rows.jsonl`` of an output folder written by an earlier
    version, read for the trials and verifications the storage does not hold."""

    def __init__(self, study, storage, journal: Path | None = None):
        self.study, self.storage = study, storage
        self.study_id = storage.get_study_id_from_name(study.study_name)
        self.journal = journal

    def load(self, complete: set[int] | None = None) -> tuple[dict, dict]:
        """({trial: Record} of the COMPLETE trials with a stored summary, {trial: verification}),
        for the trials numbered in ``complete`` (default every COMPLETE trial)."""
        import optuna

        trials = {}
        for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if complete is not None and t.number not in complete:
                continue
            summary = summary_of(t)
            if summary is not None:
                trials[t.number] = Record(t, summary)
        verifies = {}
        attrs = self.storage.get_study_system_attrs(self.study_id)
        for key in attrs:
            if not key.startswith(VERIFY_PREFIX) or _blob.is_piece(key):
                continue
            number = key[len(VERIFY_PREFIX):]
            if not number.isdigit() or int(number) not in trials:
                continue
            value = _blob.read(attrs, key)
            try:
                verifies[int(number)] = {"rows": _unpack_rows(value["rows"], int(number)),
                                         "verified": bool(value["verified"])}
            except (KeyError, TypeError, ValueError):
                continue              # damaged: the trial is verified again
        if self.journal is not None and self.journal.is_file():
            numbers = complete if complete is not None else {t.number for t in self.study.get_trials(
                deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))}
            old_trials, old_verifies = _journal(self.journal, self.study.study_name)
            for number in numbers - set(trials):
                if number in old_trials:
                    trials[number] = old_trials[number]
            for number, rec in old_verifies.items():
                if number in trials and number not in verifies:
                    verifies[number] = rec
        return trials, verifies

    def write_verify(self, number: int, rows: list[dict], verified: bool) -> None:
        """Store the verification of trial ``number`` (its count written last: a driver killed
        part way leaves none)."""
        value = {"rows": _pack_rows(rows), "verified": bool(verified)}
        for attr, text in _blob.attributes(f"{VERIFY_PREFIX}{number}", value).items():
            self.storage.set_study_system_attr(self.study_id, attr, text)


def stored_rows(url: str, study_name: str | None = None) -> list[dict]:
    """Every row of the COMPLETE trials of a study (the only one in the storage unless named),
    read from its storage: e.g. ``stored_rows(f"sqlite:///{out}/study.db")`` while it runs.
    Raises ``StudyError`` for a storage that cannot be opened or a study it does not hold."""
    from ._storage import load_study

    trials, _ = StudyResults(*load_study(url, study_name)).load()
    return [row for number in sorted(trials) for row in trials[number]["rows"]]
