"""Trials in Optuna storage: who owns a trial is known from the moment it exists."""
import optuna
import pytest

from dse._storage import ask_owned, open_storage


class _KilledWhileSampling(optuna.samplers.RandomSampler):
    def sample_independent(self, study, trial, param_name, param_distribution):
        raise KeyboardInterrupt     # stands for the driver being killed inside its sampler


def test_the_owner_is_recorded_before_the_sampler_runs(tmp_path):
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"),
                                sampler=_KilledWhileSampling())
    with pytest.raises(KeyboardInterrupt):
        ask_owned(study, {"x": optuna.distributions.IntDistribution(0, 3)}, "dse:driver", {"pid": 1})
    [trial] = study.get_trials()
    assert trial.state.name == "RUNNING" and trial.system_attrs["dse:driver"] == {"pid": 1}


def test_it_asks_like_study_ask(tmp_path):
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({"x": 2})
    dists = {"x": optuna.distributions.IntDistribution(0, 3), "y": optuna.distributions.CategoricalDistribution(["a"])}
    first = ask_owned(study, dists, "dse:driver", "me")
    second = ask_owned(study, dists, "dse:driver", "me")
    assert first.params == {"x": 2, "y": "a"} and set(second.params) == {"x", "y"}
    assert [t.number for t in study.get_trials()] == [0, 1]


def test_an_anonymous_running_trial_past_the_grace_period_is_recovered(tmp_path, monkeypatch):
    from dse import _storage
    from dse._driver import Driver

    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"))
    study._storage.create_new_trial(study._study_id)        # its driver died before naming itself
    assert Driver._recover_orphans(None, study) == 0          # it may be another driver's, mid-ask
    monkeypatch.setattr(_storage, "GRACE_S", 0)
    assert Driver._recover_orphans(None, study) == 1
    assert [t.state.name for t in study.get_trials()] == ["FAIL", "WAITING"]


def test_user_and_system_attributes_are_stored_the_last_value_standing(tmp_path):
    from dse._storage import set_user_attrs

    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"))
    trial = study.ask()
    set_user_attrs(trial, {"latency_s": 0.5, "layers": [{"knobs": {"a": 1}}]}, {"constraints": [0.0, -0.25]})
    set_user_attrs(trial, {"latency_s": 0.25})                 # an upsert: the last value stands
    [frozen] = study.get_trials()
    assert frozen.user_attrs == {"latency_s": 0.25, "layers": [{"knobs": {"a": 1}}]}
    assert frozen.system_attrs["constraints"] == [0.0, -0.25]


def test_tell_finishes_the_trial_and_informs_the_sampler(tmp_path):
    from dse._storage import tell

    told = []

    class Recording(optuna.samplers.RandomSampler):
        def after_trial(self, study, trial, state, values):
            told.append((trial.number, state.name, values))

    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"), sampler=Recording(seed=0),
                                directions=["minimize", "minimize"])
    trial = ask_owned(study, {"x": optuna.distributions.IntDistribution(0, 3)}, "dse:driver", "me")
    tell(study, trial, [1.5, float("inf")])
    [frozen] = study.get_trials()
    assert frozen.state.name == "COMPLETE" and frozen.values == [1.5, float("inf")]
    assert told == [(0, "COMPLETE", [1.5, float("inf")])]
    with pytest.raises(ValueError):                            # told twice: refused, as study.tell does
        tell(study, trial, [1.0, 1.0])


def test_parameters_written_together_are_stored_and_checked_as_optuna_does(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=open_storage(url), sampler=optuna.samplers.RandomSampler(seed=1))
    dists = {"x": optuna.distributions.IntDistribution(0, 3), "y": optuna.distributions.CategoricalDistribution(["a", "b"])}
    trial = ask_owned(study, dists, "dse:driver", "me")
    reread = optuna.load_study(study_name=study.study_name, storage=url).get_trials()[0]   # from the database
    assert reread.params == trial.params and reread.distributions == dists
    with pytest.raises(ValueError):             # a parameter cannot change its kind within a study
        ask_owned(study, {"x": optuna.distributions.CategoricalDistribution(["p", "q"])}, "dse:driver", "me")


def test_a_storage_whose_tables_another_process_is_creating_is_opened_again(tmp_path, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    from dse import _storage

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
