"""The Optuna storage of a study and the driver's trials in it, through Optuna's public API only.

:func:`open_storage`: SQLite in the output folder by default, any RDB URL otherwise; a URL that
cannot work is refused with the reason (not a database URL, unknown backend, missing driver,
server unreachable), with the password hidden. :class:`TrialStore`: asking a trial that names its
driver and beats from the start, finishing it with what ``dse._outcome`` decided, failing and
asking again the trials of dead drivers. Several drivers (processes, hosts) may share a study: the
storage numbers their trials, and a trial one of them failed is never overwritten by another.
"""
from __future__ import annotations

import datetime
import sqlite3
import time
import warnings
from pathlib import Path

from ._study import StudyError

HEARTBEAT_S = 10      # a running trial's driver proves it is alive this often
GRACE_S = 60          # after this long without a heartbeat, another driver may fail the trial
SCHEMA_ATTEMPTS = 5   # opening a storage whose tables another process is creating at that moment
BACKENDS = ("sqlite", "postgresql", "mysql", "mariadb", "oracle", "mssql")


def default_url(out: Path) -> str:
    return f"sqlite:///{Path(out).resolve() / 'study.db'}"


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


JOURNAL = "journal:"  # --storage journal:PATH: Optuna's journal file (no heartbeats: one host)


def open_storage(url: str):
    """An ``optuna.storages.RDBStorage`` with heartbeats on, whose stale trials (a driver that
    stopped beating for ``GRACE_S``) ``optuna.storages.fail_stale_trials`` fails and asks again
    (:func:`ask_again`); for ``journal:PATH``, an ``optuna.storages.JournalStorage`` on that file
    (appending a line per write: a fraction of an RDB write's CPU; drivers sharing it must run on
    one host, which recovers their orphans by the owner check). Raises :class:`StudyError`."""
    import optuna
    from sqlalchemy.engine import make_url

    if url.startswith(JOURNAL):
        return _open_journal(url[len(JOURNAL):])
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise StudyError(f"--storage {url!r} is not a database URL ({_first_line(exc)}); expected e.g. "
                         f"sqlite:///path/to/study.db or postgresql://user:password@host:5432/db") from None
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    if backend not in BACKENDS:
        raise StudyError(f"--storage {shown!r}: unknown database backend {backend!r}; "
                         f"Optuna storages are one of {', '.join(BACKENDS)}")
    try:
        dialect = parsed.get_dialect()
        getattr(dialect, "import_dbapi", getattr(dialect, "dbapi", lambda: None))()
    except NoSuchModuleError as exc:
        raise StudyError(f"--storage {shown!r}: no SQLAlchemy dialect for {parsed.drivername!r} "
                         f"({_first_line(exc)})") from None
    except ImportError as exc:
        raise StudyError(f"--storage {shown!r}: the database driver is not installed ({_first_line(exc)}); "
                         f"for PostgreSQL: pip install 'psycopg[binary]'") from None
    engine_kwargs = {}
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            raise StudyError(f"--storage {shown!r}: an in-memory SQLite database cannot be resumed; "
                             f"give a file, e.g. sqlite:///study.db")
        parent = Path(database).expanduser().resolve().parent
        if not parent.is_dir():
            raise StudyError(f"--storage {shown!r}: folder {str(parent)!r} does not exist")
        engine_kwargs = {"creator": lambda: _sqlite_connect(database)}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            with warnings.catch_warnings():      # heartbeats are "experimental" in Optuna: used on purpose
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S,
                                                     grace_period=GRACE_S, heartbeat_stale_trial_callback=ask_again)
            break
        except Exception as exc:
            if attempt + 1 < SCHEMA_ATTEMPTS and _lost_schema_race(exc):
                time.sleep(0.2 * (attempt + 1))
                continue
            raise StudyError(f"cannot open storage {shown!r}: {type(exc).__name__}: {_first_line(exc)}") from None
    return storage


def load_study(url: str, study_name: str | None = None):
    """(study, storage) of the study ``study_name`` in the storage at ``url`` (the only study
    there when not named); raises :class:`StudyError` naming what the storage holds instead."""
    import optuna

    storage = open_storage(url)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage=storage)]
    if study_name is None:
        if len(names) != 1:
            raise StudyError(f"{url} holds {len(names)} studies; name one of them: {', '.join(map(repr, names))}")
        study_name = names[0]
    elif study_name not in names:
        raise StudyError(f"{url} holds no study {study_name!r}; it holds {', '.join(map(repr, names)) or 'none'}")
    return optuna.load_study(study_name=study_name, storage=storage), storage


def _open_journal(path: str):
    import optuna
    from optuna.storages.journal import JournalFileBackend

    if not path:
        raise StudyError(f"--storage {JOURNAL!r} names no file; expected e.g. journal:path/to/study.log")
    file = Path(path).expanduser().resolve()
    if not file.parent.is_dir():
        raise StudyError(f"--storage {JOURNAL}{path!r}: folder {str(file.parent)!r} does not exist")
    try:
        return optuna.storages.JournalStorage(JournalFileBackend(str(file)))
    except Exception as exc:
        raise StudyError(f"cannot open storage {JOURNAL}{path!r}: {type(exc).__name__}: {_first_line(exc)}") from None


def _lost_schema_race(exc: BaseException) -> bool:
    """Whether ``exc`` comes from another process creating Optuna's tables at the same moment: two
    drivers started together on an empty PostgreSQL database both run CREATE TABLE, and one of
    them fails (a duplicate type, table or version row). By the next attempt the tables exist."""
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    text = str(getattr(exc, "orig", None) or exc).lower()
    return isinstance(exc, IntegrityError) or (
        isinstance(exc, (ProgrammingError, OperationalError)) and "already exists" in text)




def _sqlite_connect(database: str):
    """A connection with a write-ahead log, synced at checkpoints: a commit costs no fsync, so the
    driver's per-trial writes stop stalling the loop that feeds the workers. A committed trial
    still survives the driver being killed (only an OS crash can lose the last commits); other
    processes on this host (a second driver, optuna-dashboard) read it as before. WAL mode is
    stored in the file, and SQLite falls back by itself where it cannot be used."""
    connection = sqlite3.connect(database, timeout=60, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


CONSTRAINTS_ATTR = "constraints"    # a trial's constraint values: the list Optuna's samplers and optuna-dashboard read
RETRY_OF_ATTR = "dse:retry_of"      # on a trial enqueued again: the number of the trial it replaces


def ask_again(study, trial) -> None:
    """Enqueue the hardware of ``trial`` (a FrozenTrial just failed: abandoned, orphaned or stale)
    so that the budget of COMPLETE trials is still met; the sampler's next ask pops it."""
    study.enqueue_trial(dict(trial.params), user_attrs={RETRY_OF_ATTR: trial.number})


def suggest(trial, name: str, distribution):
    """``trial.suggest_*`` for ``distribution`` (what ``study.ask(distributions)`` does for each)."""
    import optuna

    d = optuna.distributions
    if isinstance(distribution, d.IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, step=distribution.step,
                                 log=distribution.log)
    if isinstance(distribution, d.FloatDistribution):
        return trial.suggest_float(name, distribution.low, distribution.high, step=distribution.step,
                                   log=distribution.log)
    if isinstance(distribution, d.CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    raise TypeError(f"parameter {name!r}: no suggest_* call for {type(distribution).__name__}")


class TrialStore:
    """The driver's reads and writes of one study's trials, through Optuna's public API only.

    ``storage`` is the storage object the study was created on (``create_study(storage=...)``):
    its public methods (``record_heartbeat``, ``set_trial_system_attr``, ``set_trial_state_values``)
    take a trial id, which :meth:`trial_id` looks up once per trial number.
    """

    def __init__(self, study, storage):
        self.study, self.storage = study, storage
        self.study_id = storage.get_study_id_from_name(study.study_name)
        self._ids: dict[int, int] = {}
        interval = getattr(storage, "get_heartbeat_interval", lambda: None)
        self.heartbeats = interval() is not None

    def trial_id(self, number: int) -> int:
        if number not in self._ids:
            self._ids[number] = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)
        return self._ids[number]

    # ---- reading -----------------------------------------------------------------------------
    def counts(self) -> dict:
        """TrialState -> how many trials of the study are in it (every driver's)."""
        counts: dict = {}
        for trial in self.study.get_trials(deepcopy=False):
            counts[trial.state] = counts.get(trial.state, 0) + 1
        return counts

    # ---- writing -----------------------------------------------------------------------------
    def ask(self, distributions: dict, owner_attr: str, owner):
        """``study.ask(distributions)``, with ``owner`` stored in the trial's system attribute
        ``owner_attr`` and its first heartbeat recorded before the sampler runs: ``study.ask()``
        creates (or pops an enqueued) trial without sampling, the ``suggest_*`` calls sample. A
        driver killed while its sampler proposes (TPE with the static filter takes a while)
        leaves a RUNNING trial that names it, which the next run recovers."""
        trial = self.study.ask()
        trial_id = self.trial_id(trial.number)
        self.storage.set_trial_system_attr(trial_id, owner_attr, owner)
        self.beat(trial.number)
        for name, distribution in distributions.items():
            suggest(trial, name, distribution)
        return trial

    def beat(self, number: int) -> None:
        """The heartbeat of a running trial (where the storage keeps them)."""
        if self.heartbeats:
            self.storage.record_heartbeat(self.trial_id(number))

    def finish(self, trial, outcome, user_attrs: dict, system_attrs: dict | None = None) -> bool:
        """Store ``system_attrs`` (in their order), ``user_attrs`` and the outcome's constraint
        values (``dse._outcome.Outcome``; as the list ``CONSTRAINTS_ATTR``: optuna-dashboard does
        not read Optuna 5's per-name ``set_constraint`` records), then tell the outcome. False,
        with nothing told, when the trial is no longer RUNNING (another driver failed it as stale:
        it has been asked again)."""
        import optuna

        trial_id = self.trial_id(trial.number)
        try:
            for key, value in (system_attrs or {}).items():
                self.storage.set_trial_system_attr(trial_id, key, value)
            for key, value in user_attrs.items():
                trial.set_user_attr(key, value)
            if outcome.constraints:
                self.storage.set_trial_system_attr(trial_id, CONSTRAINTS_ATTR, list(outcome.constraints.values()))
        except optuna.exceptions.UpdateFinishedTrialError:
            return False
        state = optuna.trial.TrialState[outcome.state]
        self.study.tell(trial, outcome.values, state=state, skip_if_finished=True)
        return True

    def fail(self, number: int) -> bool:
        """Fail a RUNNING trial (any driver's); False when it is not RUNNING any more (another
        driver was first)."""
        import optuna

        try:
            return self.storage.set_trial_state_values(self.trial_id(number), state=optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            return False

    def recover_orphans(self, owner_attr: str, owner_is_dead) -> int:
        """Fail the RUNNING trials of dead drivers and ask their hardware again; how many.

        Dead: a driver that stopped beating for ``GRACE_S`` (``optuna.storages.fail_stale_trials``,
        on any host), one whose owner attribute names a process of this host that is gone
        (``owner_is_dead(owner)``), or a trial that has had no owner for ``GRACE_S`` (its driver died
        between creating it and naming itself, milliseconds)."""
        import optuna

        before = self.counts().get(optuna.trial.TrialState.FAIL, 0)
        if self.heartbeats:
            optuna.storages.fail_stale_trials(self.study)     # each through ask_again
        recovered = self.counts().get(optuna.trial.TrialState.FAIL, 0) - before
        now = datetime.datetime.now()
        for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            owner = t.system_attrs.get(owner_attr)
            anonymous = owner is None and t.datetime_start is not None and \
                now - t.datetime_start > datetime.timedelta(seconds=GRACE_S)
            if (anonymous or owner_is_dead(owner)) and self.fail(t.number):
                ask_again(self.study, t)
                recovered += 1
        return recovered
