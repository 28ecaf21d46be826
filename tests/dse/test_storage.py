"""The driver's trials in Optuna storage (``dse._storage``), through Optuna's public API: who owns a
trial and its heartbeat from the moment it exists, orphans failed and asked again, a trial another
driver failed never overwritten, trial numbers apart across drivers writing at once."""
import math
import os
import socket
import sqlite3
import subprocess
import sys
import time

import optuna
import pytest

from dse import _storage
from dse._driver import _driver_is_dead, _identity
from dse._outcome import abandoned, decide
from dse._storage import TrialStore, open_storage

from .conftest import REPO, subprocess_env

DISTS = {"x": optuna.distributions.IntDistribution(0, 7),
         "b": optuna.distributions.CategoricalDistribution([16, 32, 64]),
         "f": optuna.distributions.FloatDistribution(0.5, 2.0, log=True)}
OBJECTIVES = [("latency", "minimize"), ("bram", "minimize")]
ATTRS = {"latency_s": 0.001, "feasible": True, "reason": "", "schedule:conv": {"tile": [4, 2]}}


def _outcome(latency=1e-3, bram=10.0):
    return decide(OBJECTIVES, ["bram"], buildable=True, overruns=[-0.5], measured={"latency": latency, "bram": bram})


def _open(url, sampler=None):
    storage = open_storage(url)
    study = optuna.create_study(study_name="s", storage=storage, directions=["minimize", "minimize"],
                                sampler=sampler or optuna.samplers.RandomSampler(seed=3), load_if_exists=True)
    return study, TrialStore(study, storage)


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 's.db'}"


class _KilledWhileSampling(optuna.samplers.RandomSampler):
    def sample_independent(self, study, trial, param_name, param_distribution):
        raise KeyboardInterrupt     # stands for the driver being killed inside its sampler


def test_the_owner_and_a_heartbeat_are_recorded_before_the_sampler_runs(url):
    study, trials = _open(url, _KilledWhileSampling())
    with pytest.raises(KeyboardInterrupt):
        trials.ask(DISTS, "dse:driver", {"pid": 1})
    [trial] = optuna.load_study(study_name="s", storage=url).get_trials()
    assert trial.state.name == "RUNNING" and trial.system_attrs["dse:driver"] == {"pid": 1} and trial.params == {}
    assert trials.heartbeats


def test_it_asks_like_study_ask(url):
    study, trials = _open(url)
    study.enqueue_trial({"x": 5, "b": 32, "f": 1.0})
    first, second = trials.ask(DISTS, "dse:driver", "me"), trials.ask(DISTS, "dse:driver", "me")
    assert first.params == {"x": 5, "b": 32, "f": 1.0} and set(second.params) == set(DISTS)
    reread = optuna.load_study(study_name="s", storage=url).get_trials()     # from the database
    assert [t.number for t in reread] == [0, 1] and [t.params for t in reread] == [first.params, second.params]
    assert all(t.distributions == DISTS for t in reread)
    with pytest.raises(ValueError):             # a parameter cannot change its kind within a study
        trials.ask({"x": optuna.distributions.CategoricalDistribution(["p", "q"])}, "dse:driver", "me")


def test_finish_stores_attributes_and_constraints_and_tells_the_sampler_once(url):
    told = []

    class Recording(optuna.samplers.RandomSampler):
        def after_trial(self, study, trial, state, values):
            told.append((trial.number, state.name, values, trial.user_attrs.get("latency_s")))

    study, trials = _open(url, Recording(seed=0))
    trial = trials.ask(DISTS, "dse:driver", "me")
    stored = {"dse:summary": "text", "dse:rows#0": "a", "dse:rows": 1}
    assert trials.finish(trial, _outcome(), ATTRS, stored)
    assert not trials.finish(trial, _outcome(5.0), {**ATTRS, "latency_s": 5.0})    # told twice: refused
    [frozen] = optuna.load_study(study_name="s", storage=url).get_trials()
    assert frozen.state.name == "COMPLETE" and frozen.values == [1e-3, 10.0] and frozen.user_attrs == ATTRS
    assert frozen.system_attrs[_storage.CONSTRAINTS_ATTR] == [0.0, 0.0, -0.5]
    assert {k: frozen.system_attrs[k] for k in stored} == stored
    assert told == [(0, "COMPLETE", [1e-3, 10.0], 0.001)]
    infeasible = trials.ask(DISTS, "dse:driver", "me")
    trials.finish(infeasible, decide(OBJECTIVES, ["bram"], buildable=False), {"feasible": False})
    assert study.get_trials()[1].values == [math.inf, math.inf]
    assert max(study.get_trials()[1].constraints.values()) > 0


def test_a_trial_failed_by_another_driver_is_not_overwritten(url):
    study, trials = _open(url)
    trial = trials.ask(DISTS, "dse:driver", "me")
    _, other = _open(url)
    assert other.fail(trial.number) and not other.fail(trial.number)      # the second finds it failed
    assert not trials.finish(trial, _outcome(), ATTRS)
    [frozen] = optuna.load_study(study_name="s", storage=url).get_trials()
    assert frozen.state.name == "FAIL" and frozen.values is None and frozen.user_attrs == {}


def test_an_abandoned_trial_is_failed(url):
    study, trials = _open(url)
    trial = trials.ask(DISTS, "dse:driver", "me")
    assert trials.finish(trial, abandoned(), {})
    assert [t.state.name for t in study.get_trials()] == ["FAIL"]


def _dead_owner() -> dict:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return {"host": socket.gethostname(), "pid": int(proc.stdout), "start": "gone"}


def test_orphans_of_dead_drivers_on_this_host_are_failed_and_asked_again(url, monkeypatch):
    study, trials = _open(url)
    mine = trials.ask(DISTS, "dse:driver", _identity())
    dead = trials.ask(DISTS, "dse:driver", _dead_owner())
    elsewhere = trials.ask(DISTS, "dse:driver", {"host": "another-host", "pid": 1, "start": "0"})
    anonymous = study.ask(DISTS)              # its driver died before naming itself
    assert trials.recover_orphans("dse:driver", _driver_is_dead) == 1
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states == {mine.number: "RUNNING", dead.number: "FAIL", elsewhere.number: "RUNNING",
                      anonymous.number: "RUNNING", 4: "WAITING"}
    retry = study.get_trials()[4]
    assert retry.user_attrs[_storage.RETRY_OF_ATTR] == dead.number
    assert retry.system_attrs["fixed_params"] == dead.params
    monkeypatch.setattr(_storage, "GRACE_S", 0)     # past the grace period, a trial with no owner is an orphan
    assert trials.recover_orphans("dse:driver", _driver_is_dead) == 1
    assert study.get_trials()[anonymous.number].state.name == "FAIL"


def test_a_driver_elsewhere_that_stops_beating_loses_its_trials(tmp_path, monkeypatch):
    monkeypatch.setattr(_storage, "HEARTBEAT_S", 1)
    monkeypatch.setattr(_storage, "GRACE_S", 1)
    study, trials = _open(f"sqlite:///{tmp_path / 's.db'}")
    silent = trials.ask(DISTS, "dse:driver", {"host": "another-host", "pid": 1, "start": "0"})
    beating = trials.ask(DISTS, "dse:driver", {"host": "another-host", "pid": 2, "start": "0"})
    time.sleep(2.5)           # heartbeats are stored to the second; more than the grace period since either
    trials.beat(beating.number)
    assert trials.recover_orphans("dse:driver", _driver_is_dead) == 1
    states = [t.state.name for t in study.get_trials()]
    assert states == ["FAIL", "RUNNING", "WAITING"]
    assert study.get_trials()[2].user_attrs[_storage.RETRY_OF_ATTR] == silent.number


def test_sqlite_storage_writes_ahead(url):
    _open(url)
    path = url.removeprefix("sqlite:///")
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


DRIVER = """
import sys
from tests.dse.test_storage import ATTRS, DISTS, _open, _outcome
study, trials = _open(sys.argv[1])
for i in range(int(sys.argv[3])):
    trials.finish(trials.ask(DISTS, "dse:driver", sys.argv[2]), _outcome(float(i)), ATTRS)
"""


def _drivers_at_once(url: str, drivers: int, each: int) -> None:
    _open(url)
    procs = [subprocess.Popen([sys.executable, "-c", DRIVER, url, f"p{i}", str(each)], env=subprocess_env(),
                              cwd=REPO, stderr=subprocess.PIPE, text=True) for i in range(drivers)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * drivers, errors
    trials = optuna.load_study(study_name="s", storage=url).get_trials()
    assert sorted(t.number for t in trials) == list(range(drivers * each))
    assert all(t.state.name == "COMPLETE" and t.user_attrs == ATTRS for t in trials)
    assert sorted(t.system_attrs["dse:driver"] for t in trials) == sorted(f"p{i}" for i in range(drivers)
                                                                        for _ in range(each))


def test_drivers_writing_at_once_number_their_trials_apart(url):
    _drivers_at_once(url, 3, 8)


@pytest.fixture
def postgres_url():
    """The URL of a fresh, empty PostgreSQL schema (dropped afterwards)."""
    import sqlalchemy

    from tests.dse.test_shared import _postgres_url

    url = _postgres_url()
    engine = sqlalchemy.create_engine(url)
    name = f"storage_{os.getpid()}_{int(time.time() * 1000)}"
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f"CREATE SCHEMA {name}"))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{name}"
    finally:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP SCHEMA {name} CASCADE"))
        engine.dispose()


@pytest.mark.slow
def test_on_postgresql_drivers_writing_at_once_number_their_trials_apart(postgres_url):
    _drivers_at_once(postgres_url, 3, 15)


@pytest.mark.slow
def test_on_postgresql_a_trial_failed_by_another_driver_is_not_overwritten(postgres_url):
    test_a_trial_failed_by_another_driver_is_not_overwritten(postgres_url)


def test_a_storage_whose_tables_another_process_is_creating_is_opened_again(tmp_path, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    real, calls = optuna.storages.RDBStorage, []

    def racing(*args, **kwargs):          # the other process wins the first CREATE TABLE
        calls.append(1)
        if len(calls) == 1:
            raise IntegrityError("CREATE TABLE studies", {}, Exception('duplicate key value violates unique '
                                                                        'constraint "pg_type_typname_nsp_index"'))
        return real(*args, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    monkeypatch.setattr(_storage.time, "sleep", lambda s: None)
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    assert len(calls) == 2 and storage.get_all_studies() == []


def test_other_storage_errors_are_not_retried(tmp_path, monkeypatch):
    from dse._study import StudyError

    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("permission denied for schema public")

    monkeypatch.setattr(optuna.storages, "RDBStorage", broken)
    with pytest.raises(StudyError, match="permission denied"):
        open_storage(f"sqlite:///{tmp_path / 's.db'}")
    assert len(calls) == 1


def test_journal_storage_runs_and_resumes_a_study_as_sqlite_does(ray_session, tmp_path):
    """``--storage journal:PATH``: the same trials, values and tables as the default SQLite storage,
    resumed with a larger budget; a path in a missing folder is refused."""
    import pandas as pd

    from dse._study import StudyError
    from tests.dse.test_driver import CODESIGN, run, study

    grid = CODESIGN.replace('seed = 7', 'seed = 7\nsampler = "grid"')
    journal = f"journal:{tmp_path / 'study.log'}"
    run(study(tmp_path, grid.replace("n_trials = 6", "n_trials = 2")), tmp_path / "j", storage=journal)
    run(study(tmp_path, grid.replace("n_trials = 6", "n_trials = 3")), tmp_path / "j", storage=journal)
    run(study(tmp_path, grid.replace("n_trials = 6", "n_trials = 3")), tmp_path / "s")
    trials = [pd.read_parquet(tmp_path / out / "trials.parquet") for out in ("j", "s")]
    assert sorted(trials[0]["trial"]) == [0, 1, 2]
    pd.testing.assert_frame_equal(trials[0], trials[1])
    stored = optuna.load_study(study_name="codesign", storage=open_storage(journal)).get_trials()
    assert [t.state.name for t in stored] == ["COMPLETE"] * 3
    assert all(t.system_attrs[_storage.CONSTRAINTS_ATTR] == list(t.constraints.values()) for t in stored)
    with pytest.raises(StudyError, match="does not exist"):
        open_storage(f"journal:{tmp_path / 'missing' / 'study.log'}")
    # `vta-dse show` finds the run's storage in study.json: the tables when they are current,
    # the storage live when it holds trials the tables do not
    import io

    from dse._show import show
    shown = io.StringIO()
    show(tmp_path / "j", stream=shown)
    assert "3 complete trials" in shown.getvalue() and "running" not in shown.getvalue()
    (tmp_path / "j" / "trials.parquet").unlink()
    shown = io.StringIO()
    show(tmp_path / "j", stream=shown)
    assert "study 'codesign' running (live from its storage" in shown.getvalue() and "3 complete" in shown.getvalue()
