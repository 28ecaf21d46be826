"""The driver's trial writes on SQLite and PostgreSQL in three SQL transactions per trial.

Through Optuna's storage API a hardware trial costs the driver ~35 ms of CPU (ten ORM sessions,
three of them reading back the trial it has just written): on a 2-core machine, time taken from
the two workers (``benchmarks/dse_throughput.py``). Here the same rows go into Optuna's own tables
(its ORM models' ``Table`` objects, its value and distribution encodings) with SQLAlchemy Core:

1. :meth:`TrialSQL.create_running` -- the RUNNING trial, its number, its owner (a system attribute)
   and its first heartbeat;
2. :meth:`TrialSQL.write_params` -- the sampled parameters, checked as Optuna checks them;
3. :meth:`TrialSQL.finish` -- user and system attributes, values and the final state.

A reader (another driver, optuna-dashboard, ``optuna.load_study``) sees exactly what Optuna's own
writes would leave (``tests/dse/test_trial_sql.py`` compares the two). The trial's state is
checked inside each write transaction: a trial another driver has failed meanwhile (stale
heartbeat) is refused with Optuna's ``UpdateFinishedTrialError``, never overwritten. Where
Optuna's internals differ, :meth:`TrialSQL.of` returns None and the caller uses the public API.
"""
from __future__ import annotations

import datetime
import json

DIALECTS = ("sqlite", "postgresql")


class TrialSQL:
    def __init__(self, storage, backend, models):
        from sqlalchemy import func, select

        self._storage, self._backend, self._models = storage, backend, models
        self._engine = backend.engine
        self._select, self._count = select, func.count
        self.trials = models.TrialModel.__table__
        self.params = models.TrialParamModel.__table__
        self.values = models.TrialValueModel.__table__
        self.user_attrs = models.TrialUserAttributeModel.__table__
        self.system_attrs = models.TrialSystemAttributeModel.__table__
        self.heartbeats = models.TrialHeartbeatModel.__table__
        self.studies = models.StudyModel.__table__
        if self._engine.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        # an attribute's upsert, built once (executed for many rows, compiled once)
        self._upserts = {}
        for table in (self.user_attrs, self.system_attrs):
            statement = insert(table)
            self._upserts[table.name] = statement.on_conflict_do_update(
                index_elements=[table.c.trial_id, table.c.key], set_={"value_json": statement.excluded.value_json})

    @classmethod
    def of(cls, storage) -> "TrialSQL | None":
        """The fast path for ``storage`` (Optuna's caching wrapper around an RDBStorage on SQLite
        >= 3.24 or PostgreSQL), or None."""
        try:
            import sqlite3

            from optuna.storages import RDBStorage
            from optuna.storages._cached_storage import _CachedStorage
            from optuna.storages._rdb import models
        except ImportError:
            return None
        backend = getattr(storage, "_backend", None)
        if not (isinstance(storage, _CachedStorage) and isinstance(backend, RDBStorage)):
            return None
        if backend.engine.name not in DIALECTS or (backend.engine.name == "sqlite"
                                                     and sqlite3.sqlite_version_info < (3, 24, 0)):
            return None
        needed = (hasattr(storage, "_add_trials_to_cache") and hasattr(storage, "_studies")
                  and hasattr(models.TrialValueModel, "value_to_stored_repr"))
        return cls(storage, backend, models) if needed else None

    # ---- reading -------------------------------------------------------------------------------
    def count_states(self, study_id: int) -> dict:
        """TrialState -> how many trials of the study are in it (one GROUP BY query)."""
        t = self.trials
        query = self._select(t.c.state, self._count()).where(t.c.study_id == study_id).group_by(t.c.state)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return {_trial_state(state): n for state, n in rows}

    def _state(self, conn, trial_id: int):
        state = conn.execute(self._select(self.trials.c.state).where(self.trials.c.trial_id == trial_id)).scalar()
        return None if state is None else _trial_state(state)

    def _check_running(self, conn, trial_id: int) -> None:
        """Optuna's refusal (``UpdateFinishedTrialError``) unless the trial is still RUNNING;
        called inside the write transaction, so no other writer can change it before the commit."""
        from optuna.trial import TrialState

        state = self._state(conn, trial_id)
        if state is None:
            raise KeyError(f"no trial with id {trial_id}")
        if state != TrialState.RUNNING:
            self._backend.check_trial_is_updatable(trial_id, state)
            raise RuntimeError(f"trial {trial_id} is {state.name}, not RUNNING")

    def _lock_study(self, conn, study_id: int) -> None:
        """What Optuna does before numbering a trial on a server database (SQLite has one writer)."""
        if self._engine.name != "sqlite":
            conn.execute(self._select(self.studies.c.study_id).where(self.studies.c.study_id == study_id)
                         .with_for_update())

    # ---- writing -------------------------------------------------------------------------------
    def create_running(self, study_id: int, system_attrs: dict):
        """A new RUNNING trial with ``system_attrs`` and a heartbeat, in one transaction; returns
        its FrozenTrial, also entered in Optuna's trial cache as ``create_new_trial`` does."""
        from optuna.storages._cached_storage import _StudyInfo
        from optuna.trial import FrozenTrial, TrialState

        t = self.trials
        start = datetime.datetime.now()
        with self._engine.begin() as conn:
            self._lock_study(conn, study_id)
            trial_id = conn.execute(t.insert().values(study_id=study_id, number=None, state=TrialState.RUNNING,
                                                      datetime_start=start)).inserted_primary_key[0]
            number = conn.execute(self._select(self._count(t.c.trial_id)).where(
                t.c.study_id == study_id, t.c.trial_id < trial_id)).scalar()
            conn.execute(t.update().where(t.c.trial_id == trial_id).values(number=number))
            if system_attrs:
                conn.execute(self.system_attrs.insert(), [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                                                          for key, value in system_attrs.items()])
            conn.execute(self.heartbeats.insert().values(trial_id=trial_id))
        frozen = FrozenTrial(number=number, state=TrialState.RUNNING, value=None, values=None, datetime_start=start,
                             datetime_complete=None, params={}, distributions={}, user_attrs={},
                             system_attrs=dict(system_attrs), intermediate_values={}, trial_id=trial_id)
        with self._storage._lock:
            self._storage._studies.setdefault(study_id, _StudyInfo())
            self._storage._add_trials_to_cache(study_id, [frozen])
        return frozen

    def write_params(self, study_id: int, trial_id: int, params) -> None:
        """``params``: [(name, value in Optuna's internal representation, distribution)]. Each
        distribution must be compatible with the one the study already has for that name (as
        ``Trial.suggest_*`` requires, ``ValueError`` otherwise); nothing is written if one is not."""
        from optuna import distributions

        known = self._storage._studies[study_id].param_distribution
        rows = []
        with self._engine.begin() as conn:
            for name, value, distribution in params:
                previous = known.get(name)
                if previous is None:
                    stored = conn.execute(
                        self._select(self.params.c.distribution_json).join(self.trials)
                        .where(self.trials.c.study_id == study_id, self.params.c.param_name == name).limit(1)).scalar()
                    previous = distributions.json_to_distribution(stored) if stored is not None else None
                if previous is not None:
                    distributions.check_distribution_compatibility(previous, distribution)
                rows.append({"trial_id": trial_id, "param_name": name, "param_value": value,
                             "distribution_json": distributions.distribution_to_json(distribution)})
            if rows:
                conn.execute(self.params.insert(), rows)
                self._check_running(conn, trial_id)
        with self._storage._lock:
            for name, _, distribution in params:
                known.setdefault(name, distribution)

    def finish(self, trial_id: int, state, values, user_attrs: dict, system_attrs: dict) -> None:
        """Attributes (upserted), values and ``state`` (a finished one) of a RUNNING trial, in one
        transaction that begins by taking the trial out of RUNNING (refused if it is not)."""
        from optuna.trial import TrialState

        t = self.trials
        value_type = self._models.TrialValueModel.value_to_stored_repr
        with self._engine.begin() as conn:
            done = conn.execute(t.update().where(t.c.trial_id == trial_id, t.c.state == TrialState.RUNNING)
                                .values(state=state, datetime_complete=datetime.datetime.now())).rowcount
            if done != 1:
                self._check_running(conn, trial_id)
            for table, attrs in ((self.user_attrs, user_attrs), (self.system_attrs, system_attrs)):
                if attrs:
                    conn.execute(self._upserts[table.name], [{"trial_id": trial_id, "key": key,
                                                              "value_json": json.dumps(value)}
                                                             for key, value in attrs.items()])
            if values:
                rows = []
                for objective, value in enumerate(values):
                    stored, kind = value_type(float(value))
                    rows.append({"trial_id": trial_id, "objective": objective, "value": stored, "value_type": kind})
                conn.execute(self.values.insert(), rows)


def _trial_state(stored):
    """A ``trials.state`` value as read back: SQLAlchemy's Enum column gives a TrialState, a raw
    value its name."""
    from optuna.trial import TrialState

    return stored if isinstance(stored, TrialState) else TrialState[stored]
