"""Opening the Optuna storage: SQLite in the output folder by default, any RDB URL otherwise.

A URL that cannot work is refused with the reason (not a database URL, unknown backend,
missing driver, server unreachable), with the password hidden.
"""
from __future__ import annotations

import contextlib
import copy
import time
import warnings
import weakref
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


def trial_sql(storage):
    """The fast SQL path for the driver's trial writes on ``storage`` (``dse._trial_sql``), or None."""
    from ._trial_sql import TrialSQL

    try:
        return _TRIAL_SQL[storage]
    except (KeyError, TypeError):
        pass
    sql = TrialSQL.of(storage)
    try:
        _TRIAL_SQL[storage] = sql
    except TypeError:
        pass
    return sql


_TRIAL_SQL: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def count_states(storage, study_id: int) -> dict:
    """TrialState -> how many trials of the study are in it: one GROUP BY query on SQLite and
    PostgreSQL (the driver asks before every new trial; Optuna's own count loads every trial)."""
    sql = trial_sql(storage)
    if sql is not None:
        return sql.count_states(study_id)
    counts: dict = {}
    for trial in storage.get_all_trials(study_id, deepcopy=False):
        counts[trial.state] = counts.get(trial.state, 0) + 1
    return counts


def set_user_attrs(trial, attrs: dict, system_attrs: dict | None = None) -> None:
    """A trial's user attributes (and ``system_attrs``) through Optuna's API, one at a time: the
    path of storages the SQL writes of ``dse._trial_sql`` do not cover."""
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    for key, value in (system_attrs or {}).items():
        trial.storage.set_trial_system_attr(trial._trial_id, key, value)


def ask_owned(study, distributions: dict, owner_attr: str, owner, waiting: int | None = None) -> "optuna.Trial":
    """``study.ask(distributions)``, with ``owner`` stored in the trial's system attribute
    ``owner_attr`` before the sampler runs: a driver killed while its sampler proposes (TPE with
    the static filter takes a while) leaves a RUNNING trial that names it, which the next run
    recovers, instead of an anonymous one that holds a slot of the budget for good. ``waiting``:
    how many trials wait in the queue (enqueued by a resumed run), if the caller has just counted.
    Falls back to ``study.ask`` (owner stored after sampling) where Optuna's internals moved."""
    import optuna

    pop = getattr(study, "_pop_waiting_trial_id", None)
    if pop is None or not hasattr(optuna.Trial, "_suggest"):
        trial = study.ask(distributions)
        study._storage.set_trial_system_attr(trial._trial_id, owner_attr, owner)
        return trial
    study._thread_local.cached_all_trials = None
    storage, sql = study._storage, trial_sql(study._storage)
    # Optuna's pop reads every unfinished trial of the study (~5 ms per ask); a count says first
    # whether there is a WAITING one to pop at all.
    if waiting is None:
        waiting = count_states(storage, study._study_id).get(optuna.trial.TrialState.WAITING, 0)
    trial_id = pop() if waiting else None
    if trial_id is None and sql is not None:      # created with its owner and heartbeat, nothing read back
        trial = _trial_of(study, sql.create_running(study._study_id, {owner_attr: owner}))
    else:
        if trial_id is None:       # created with its owner in one transaction
            template = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING,
                                                 system_attrs={owner_attr: owner})
            trial_id = storage.create_new_trial(study._study_id, template_trial=template)
        else:
            storage.set_trial_system_attr(trial_id, owner_attr, owner)
        storage.record_heartbeat(trial_id)
        trial = optuna.Trial(study, trial_id)
    with _params_in_one_transaction(storage, trial._trial_id, sql):
        for name, distribution in distributions.items():
            trial._suggest(name, distribution)
    return trial


def _trial_of(study, frozen) -> "optuna.Trial":
    """``optuna.Trial(study, id)`` for a trial just created as ``frozen``, without the storage
    read its constructor makes (a RUNNING trial is not in Optuna's cache: ~3 ms)."""
    import optuna

    storage = study._storage
    storage.get_trial = lambda trial_id: (copy.deepcopy(frozen) if trial_id == frozen._trial_id
                                          else type(storage).get_trial(storage, trial_id))
    try:
        return optuna.Trial(study, frozen._trial_id)
    finally:
        del storage.get_trial                # the class's method again


@contextlib.contextmanager
def _params_in_one_transaction(storage, trial_id: int, sql=None):
    """``Trial._suggest`` writes each parameter in a transaction of its own (~2 ms of the busy
    driver's CPU each on SQLite); inside this block the parameters are collected, and written
    together when it ends, with the same checks. A sampler interrupted midway writes none (the
    trial stays RUNNING with its owner, and is recovered as any other). Optuna's internals
    moved, or another kind of storage: one at a time, as Optuna does."""
    ids = getattr(storage, "_trial_id_to_study_id_and_number", None)
    if sql is None or ids is None or trial_id not in ids:
        yield
        return
    pending = []
    storage.set_trial_param = lambda _trial_id, name, value, distribution: pending.append((name, value, distribution))
    try:
        yield
    finally:
        del storage.set_trial_param          # the class's method again
    if pending:
        sql.write_params(ids[trial_id][0], trial_id, pending)


def finish_trial(study, trial, values, user_attrs: dict, system_attrs: dict) -> None:
    """``trial.set_user_attr`` for each of ``user_attrs``, the same for ``system_attrs``, then
    ``study.tell(trial, values)``: on SQLite and PostgreSQL in one transaction, without reading the
    trial back (the sampler's ``after_trial`` gets the trial as the driver holds it)."""
    import optuna

    sql = trial_sql(study._storage)
    try:
        from optuna import pruners
        from optuna.study._tell import _check_values_are_feasible
    except ImportError:        # Optuna's internals moved: the public way
        sql = None
    if sql is None or not hasattr(trial, "_cached_frozen_trial"):
        set_user_attrs(trial, user_attrs, system_attrs)
        tell(study, trial, values)
        return
    study._thread_local.cached_all_trials = None
    frozen = copy.copy(trial._cached_frozen_trial)
    if frozen.state != optuna.trial.TrialState.RUNNING:
        raise ValueError(f"Cannot tell a {frozen.state.name} trial.")
    values = [float(v) for v in values]
    state = optuna.trial.TrialState.COMPLETE
    problem = _check_values_are_feasible(study, values)
    if problem is not None:                  # as study.tell: a warning, and the trial fails
        warnings.warn(f"{problem}; trial {trial.number} is failed")
        state, values = optuna.trial.TrialState.FAIL, None
    frozen.user_attrs = {**frozen.user_attrs, **user_attrs}
    frozen.system_attrs = {**frozen.system_attrs, **system_attrs}
    try:
        study.sampler.after_trial(pruners._filter_study(study, frozen), frozen, state, values)
    finally:
        sql.finish(trial._trial_id, state, values, user_attrs, system_attrs)
    trial._cached_frozen_trial.user_attrs.update(user_attrs)
    trial._cached_frozen_trial.state = state
def tell(study, trial, values) -> None:
    """``study.tell(trial, values)`` without reading the finished trial back for a return value
    the driver does not use (one storage read and a deep copy, ~3 ms per hardware trial)."""
    try:
        from optuna.study._tell import _tell_with_warning
    except ImportError:        # Optuna's internals moved: the public way
        study.tell(trial, values)
        return
    _tell_with_warning(study=study, trial=trial, value_or_values=values)
