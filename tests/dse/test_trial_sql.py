"""The driver's SQL trial writes leave what Optuna's own API leaves, and refuse what it refuses."""
import math

import optuna
import pytest

from dse import _storage
from dse._storage import ask_owned, finish_trial, open_storage
from dse._trial_sql import TrialSQL

DISTS = {"x": optuna.distributions.IntDistribution(0, 7),
         "b": optuna.distributions.CategoricalDistribution([16, 32, 64]),
         "f": optuna.distributions.FloatDistribution(0.5, 2.0, log=True)}
ATTRS = {"latency_s": 0.001, "feasible": True, "layers": [{"knobs": {"tile": 4}}], "reason": ""}


def _study(url, sampler=None):
    return optuna.create_study(study_name="s", storage=open_storage(url), directions=["minimize", "minimize"],
                               sampler=sampler or optuna.samplers.RandomSampler(seed=3), load_if_exists=True)


def _comparable(trial):
    return (trial.number, trial.state, trial.params, trial.distributions, trial.values, trial.user_attrs,
            trial.system_attrs, trial.datetime_start is not None, trial.datetime_complete is not None)


def _run(study, fast: bool, monkeypatch):
    """Five trials: ask (one of them enqueued), attributes, tell; one left running."""
    if not fast:
        monkeypatch.setattr(_storage, "trial_sql", lambda storage: None)
    study.enqueue_trial({"x": 5, "b": 32, "f": 1.0})
    trials = [ask_owned(study, DISTS, "dse:driver", {"host": "h", "pid": 7}) for _ in range(5)]
    for i, trial in enumerate(trials[:4]):
        finish_trial(study, trial, [0.5 * i, math.inf if i == 2 else 3.0],
                     {**ATTRS, "i": i}, {"constraints": [0.0, float(i == 2)]})
    monkeypatch.undo()
    return trials


def test_a_study_written_by_sql_reads_back_as_one_written_through_optuna(tmp_path, monkeypatch):
    fast_url, slow_url = f"sqlite:///{tmp_path / 'fast.db'}", f"sqlite:///{tmp_path / 'slow.db'}"
    assert TrialSQL.of(_study(fast_url)._storage) is not None
    _run(_study(fast_url), True, monkeypatch)
    _run(_study(slow_url), False, monkeypatch)
    fast = optuna.load_study(study_name="s", storage=fast_url).get_trials()    # a fresh reader
    slow = optuna.load_study(study_name="s", storage=slow_url).get_trials()
    assert [t.state.name for t in fast] == ["COMPLETE"] * 4 + ["RUNNING"]
    assert [_comparable(t) for t in fast] == [_comparable(t) for t in slow]
    assert fast[0].params == {"x": 5, "b": 32, "f": 1.0}          # the enqueued trial came first
    assert fast[2].values == [1.0, math.inf]


def test_the_writing_process_sees_its_trials_as_a_fresh_reader_does(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = _study(url)
    _run(study, True, monkeypatch)
    mine = study.get_trials()               # through Optuna's cache in the writing process
    assert [_comparable(t) for t in mine] == [_comparable(t) for t in optuna.load_study(study_name="s",
                                                                                         storage=url).get_trials()]
    assert _storage.count_states(study._storage, study._study_id) == {optuna.trial.TrialState.COMPLETE: 4,
                                                                      optuna.trial.TrialState.RUNNING: 1}


def test_heartbeats_are_recorded_from_creation_so_another_host_can_recover_the_trial(tmp_path, monkeypatch):
    study = _study(f"sqlite:///{tmp_path / 's.db'}")
    trial = ask_owned(study, DISTS, "dse:driver", {"host": "elsewhere"})
    backend = study._storage._backend
    monkeypatch.setattr(backend, "grace_period", -1)          # every heartbeat is already stale
    assert study._storage._get_stale_trial_ids(study._study_id) == [trial._trial_id]


def test_a_trial_failed_by_another_driver_is_not_overwritten(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = _study(url)
    trial = ask_owned(study, DISTS, "dse:driver", "me")
    other = optuna.load_study(study_name="s", storage=url)
    other._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        finish_trial(study, trial, [1.0, 1.0], ATTRS, {"constraints": [0.0]})
    [frozen] = optuna.load_study(study_name="s", storage=url).get_trials()
    assert frozen.state.name == "FAIL" and frozen.values is None and frozen.user_attrs == {}


def test_telling_twice_is_refused_before_the_sampler_hears_of_it(tmp_path):
    told = []

    class Recording(optuna.samplers.RandomSampler):
        def after_trial(self, study, trial, state, values):
            told.append((trial.number, state.name, values, trial.user_attrs["i"]))

    study = _study(f"sqlite:///{tmp_path / 's.db'}", Recording(seed=0))
    trial = ask_owned(study, DISTS, "dse:driver", "me")
    finish_trial(study, trial, [1.5, math.inf], {"i": 1}, {})
    with pytest.raises(ValueError, match="Cannot tell a COMPLETE trial"):
        finish_trial(study, trial, [1.0, 1.0], {"i": 2}, {})
    assert told == [(0, "COMPLETE", [1.5, math.inf], 1)]


def test_values_optuna_would_refuse_fail_the_trial(tmp_path):
    study = _study(f"sqlite:///{tmp_path / 's.db'}")
    trial = ask_owned(study, DISTS, "dse:driver", "me")
    with pytest.warns(UserWarning, match="not acceptable"):
        finish_trial(study, trial, [float("nan"), 1.0], ATTRS, {})
    [frozen] = study.get_trials()
    assert frozen.state.name == "FAIL" and frozen.values is None and frozen.user_attrs == ATTRS


def test_a_parameter_of_another_kind_is_refused_and_nothing_is_written(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = _study(url)
    ask_owned(study, DISTS, "dse:driver", "me")
    fresh = _study(url)                     # a process that has not seen the distributions yet
    with pytest.raises(ValueError):
        ask_owned(fresh, {"x": optuna.distributions.CategoricalDistribution(["p", "q"])}, "dse:driver", "me")
    reread = optuna.load_study(study_name="s", storage=url).get_trials()
    assert [t.params for t in reread][1:] == [{}]      # the refused trial has no parameters


@pytest.fixture
def postgres_schemas():
    """URLs of two fresh, empty PostgreSQL schemas (dropped afterwards)."""
    import os
    import time

    import sqlalchemy

    from tests.dse.test_shared import _postgres_url

    url = _postgres_url()
    engine = sqlalchemy.create_engine(url)
    names = [f"sql_{kind}_{os.getpid()}_{int(time.time() * 1000)}" for kind in ("fast", "slow")]
    with engine.begin() as conn:
        for name in names:
            conn.execute(sqlalchemy.text(f"CREATE SCHEMA {name}"))
    try:
        yield [f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{name}" for name in names]
    finally:
        with engine.begin() as conn:
            for name in names:
                conn.execute(sqlalchemy.text(f"DROP SCHEMA {name} CASCADE"))
        engine.dispose()


NUMBERING = """
import sys
import optuna
from dse._storage import ask_owned, finish_trial, open_storage
from tests.dse.test_trial_sql import ATTRS, DISTS
study = optuna.load_study(study_name="s", storage=open_storage(sys.argv[1]))
for i in range(15):
    finish_trial(study, ask_owned(study, DISTS, "dse:driver", sys.argv[2]), [float(i), 1.0], ATTRS, {})
"""


@pytest.mark.slow
def test_on_postgresql_too_and_drivers_writing_at_once_number_their_trials_apart(postgres_schemas, monkeypatch):
    import subprocess
    import sys

    from tests.dse.conftest import REPO, subprocess_env

    fast_url, slow_url = postgres_schemas
    study = _study(fast_url)
    assert TrialSQL.of(study._storage) is not None
    _run(study, True, monkeypatch)
    _run(_study(slow_url), False, monkeypatch)
    fast = optuna.load_study(study_name="s", storage=fast_url).get_trials()
    slow = optuna.load_study(study_name="s", storage=slow_url).get_trials()
    assert [_comparable(t) for t in fast] == [_comparable(t) for t in slow]
    procs = [subprocess.Popen([sys.executable, "-c", NUMBERING, fast_url, f"p{i}"], env=subprocess_env(), cwd=REPO,
                              stderr=subprocess.PIPE, text=True) for i in range(3)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    trials = optuna.load_study(study_name="s", storage=fast_url).get_trials()
    assert sorted(t.number for t in trials) == list(range(5 + 45))
    assert sum(t.state.name == "COMPLETE" for t in trials) == 4 + 45
