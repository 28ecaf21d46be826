"""Opening the Optuna storage: SQLite in the output folder by default, any RDB URL otherwise.

A URL that cannot work is refused with the reason (not a database URL, unknown backend,
missing driver, server unreachable), with the password hidden.
"""
from __future__ import annotations

import contextlib
import json
import time
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


def open_storage(url: str):
    """An ``optuna.storages.RDBStorage`` with heartbeats on; raises :class:`StudyError`."""
    import optuna
    from sqlalchemy.engine import make_url
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
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S,
                                                 grace_period=GRACE_S)
            break
        except Exception as exc:
            if attempt + 1 < SCHEMA_ATTEMPTS and _lost_schema_race(exc):
                time.sleep(0.2 * (attempt + 1))
                continue
            raise StudyError(f"cannot open storage {shown!r}: {type(exc).__name__}: {_first_line(exc)}") from None
    if backend == "sqlite":
        _sqlite_wal(storage.engine)
    return storage


def _lost_schema_race(exc: BaseException) -> bool:
    """Whether ``exc`` comes from another process creating Optuna's tables at the same moment: two
    drivers started together on an empty PostgreSQL database both run CREATE TABLE, and one of
    them fails (a duplicate type, table or version row). By the next attempt the tables exist."""
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    text = str(getattr(exc, "orig", None) or exc).lower()
    return isinstance(exc, IntegrityError) or (
        isinstance(exc, (ProgrammingError, OperationalError)) and "already exists" in text)


def _sqlite_wal(engine) -> None:
    """Write-ahead log, synced at checkpoints: a commit costs no fsync, so the driver's per-trial
    writes (attributes, tell) stop stalling the loop that feeds the workers. A committed trial
    still survives the driver being killed (only an OS crash can lose the last commits), other
    processes on this host (a second driver, optuna-dashboard) read it as before; WAL mode is
    stored in the file and SQLite falls back by itself where it cannot be used."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    engine.dispose()      # connections opened while creating the tables get the pragmas too


def _rdb_backend(storage):
    """The RDBStorage behind Optuna's caching wrapper, or None (another kind of storage)."""
    from optuna.storages import RDBStorage

    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, RDBStorage) else None


def count_trials(storage, study_id: int, states) -> int:
    """How many trials of the study are in ``states``: one COUNT query on an RDB storage (the
    driver asks before every new trial; Optuna's own count loads every trial)."""
    backend = _rdb_backend(storage)
    try:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session
        from sqlalchemy import func
    except ImportError:        # Optuna's internals moved: the public, slower way
        backend = None
    if backend is None:
        return storage.get_n_trials(study_id, tuple(states))
    with _create_scoped_session(backend.scoped_session) as session:
        return session.query(func.count(models.TrialModel.trial_id)).filter(
            models.TrialModel.study_id == study_id, models.TrialModel.state.in_(list(states))).scalar()


def set_user_attrs(trial, attrs: dict, system_attrs: dict | None = None) -> None:
    """All of a trial's user attributes (and ``system_attrs``) in one transaction on SQLite and
    PostgreSQL (a trial carries ~20 of them; Optuna writes one at a time, ~1 ms of CPU each); any
    other storage gets them one by one."""
    system_attrs = system_attrs or {}
    backend = _rdb_backend(trial.storage)
    try:
        import sqlite3

        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session
        from sqlalchemy.dialects import postgresql, sqlite
    except ImportError:        # Optuna's internals moved: the public, slower way
        backend = None
    dialect = {"sqlite": sqlite, "postgresql": postgresql}.get(backend.engine.name) if backend else None
    if dialect is sqlite and sqlite3.sqlite_version_info < (3, 24, 0):
        dialect = None         # no upsert
    if dialect is None:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        for key, value in system_attrs.items():
            trial.storage.set_trial_system_attr(trial._trial_id, key, value)
        return
    with _create_scoped_session(backend.scoped_session, True) as session:
        row = models.TrialModel.find_or_raise_by_id(trial._trial_id, session)
        backend.check_trial_is_updatable(trial._trial_id, row.state)
        for model, values in ((models.TrialUserAttributeModel, attrs), (models.TrialSystemAttributeModel, system_attrs)):
            if not values:
                continue
            insert = dialect.insert(model).values([{"trial_id": trial._trial_id, "key": key,
                                                    "value_json": json.dumps(value)} for key, value in values.items()])
            session.execute(insert.on_conflict_do_update(index_elements=[model.trial_id, model.key],
                                                         set_={"value_json": insert.excluded.value_json}))
    cached = getattr(trial, "_cached_frozen_trial", None)
    if cached is not None:
        cached.user_attrs.update(attrs)


def ask_owned(study, distributions: dict, owner_attr: str, owner) -> "optuna.Trial":
    """``study.ask(distributions)``, with ``owner`` stored in the trial's system attribute
    ``owner_attr`` before the sampler runs: a driver killed while its sampler proposes (TPE with
    the static filter takes a while) leaves a RUNNING trial that names it, which the next run
    recovers, instead of an anonymous one that holds a slot of the budget for good. Falls back
    to ``study.ask`` (owner stored after sampling) where Optuna's internals moved."""
    import optuna

    pop = getattr(study, "_pop_waiting_trial_id", None)
    if pop is None or not hasattr(optuna.Trial, "_suggest"):
        trial = study.ask(distributions)
        study._storage.set_trial_system_attr(trial._trial_id, owner_attr, owner)
        return trial
    study._thread_local.cached_all_trials = None
    # Optuna's pop reads every unfinished trial of the study (~5 ms per ask); a COUNT says first
    # whether there is a WAITING one (enqueued by a resumed run) to pop at all.
    waiting = count_trials(study._storage, study._study_id, [optuna.trial.TrialState.WAITING])
    trial_id = pop() if waiting else None
    if trial_id is None:           # created with its owner in one transaction
        template = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, system_attrs={owner_attr: owner})
        trial_id = study._storage.create_new_trial(study._study_id, template_trial=template)
    else:
        study._storage.set_trial_system_attr(trial_id, owner_attr, owner)
    study._storage.record_heartbeat(trial_id)
    trial = optuna.Trial(study, trial_id)
    with _params_in_one_transaction(study._storage, trial_id):
        for name, distribution in distributions.items():
            trial._suggest(name, distribution)
    return trial


@contextlib.contextmanager
def _params_in_one_transaction(storage, trial_id: int):
    """``Trial._suggest`` writes each parameter in a transaction of its own (~2 ms of the busy
    driver's CPU each on SQLite); inside this block the parameters are collected, and written
    together when it ends, with the same checks. A sampler interrupted midway writes none (the
    trial stays RUNNING with its owner, and is recovered as any other). Optuna's internals
    moved, or another kind of storage: one at a time, as Optuna does."""
    backend = _rdb_backend(storage)
    write = getattr(backend, "_set_trial_param_without_commit", None)
    ids = getattr(storage, "_trial_id_to_study_id_and_number", None)
    if backend is None or storage is backend or write is None or ids is None or trial_id not in ids:
        yield
        return
    from optuna.storages._rdb.storage import _create_scoped_session

    pending = []
    storage.set_trial_param = lambda _trial_id, name, value, distribution: pending.append((name, value, distribution))
    try:
        yield
    finally:
        del storage.set_trial_param          # the class's method again
    if not pending:
        return
    with storage._lock:
        known = storage._studies[ids[trial_id][0]].param_distribution
        with _create_scoped_session(backend.scoped_session, True) as session:
            for name, value, distribution in pending:
                write(session, trial_id, name, value, distribution, known.get(name))
        for name, _, distribution in pending:
            known.setdefault(name, distribution)


def tell(study, trial, values) -> None:
    """``study.tell(trial, values)`` without reading the finished trial back for a return value
    the driver does not use (one storage read and a deep copy, ~3 ms per hardware trial)."""
    try:
        from optuna.study._tell import _tell_with_warning
    except ImportError:        # Optuna's internals moved: the public way
        study.tell(trial, values)
        return
    _tell_with_warning(study=study, trial=trial, value_or_values=values)
