"""One source of truth: the study's storage holds every trial's rows and summary and every
verification, so each driver of a shared study writes tables holding every trial, and all of
them choose the same configuration. A driver whose budget is spoken for waits for the trials
other drivers hold open, and takes over one that fails."""
import json
import threading
import time

import optuna
import pandas as pd

from dse import load_study
from dse._driver import DRIVER_ATTR, RunOptions, _identity, run_study
from dse._results import StudyResults, summary_of
from dse._storage import TrialStore, ask_again, open_storage
from dse._samplers import distributions
from tests.dse._toy import ToyEvaluator
from tests.dse.conftest import TOY_LAYERS, sampled, stored_rows, write_study

STUDY = """
[study]
name = "shared-results"
seed = 4
n_trials = {trials}
verify = "top"
verify_top_k = 2
[objectives]
latency = "minimize"
[hardware]
LOG_BATCH = [0, 1]
LOG_BLOCK = [3, 4]
LOG_UOP_BUFF_SIZE = [13, 14, 15]
LOG_ACC_BUFF_SIZE = {{ low = 15, high = 17 }}
[schedule]
trials_per_layer = 4
""" + TOY_LAYERS

KEY = ["trial", "workload", "mode", "candidate", "attempt"]


def _spec(tmp_path, trials):
    return load_study(write_study(tmp_path, STUDY.format(trials=trials), f"s{trials}.toml"), ToyEvaluator.ops)


def _table(out, name):
    df = pd.read_parquet(out / f"{name}.parquet")
    return df.sort_values(KEY if name == "results" else ["trial"]).reset_index(drop=True)


def test_every_driver_of_a_shared_study_writes_every_trial_and_chooses_the_same_best(ray_session, tmp_path):
    """Driver A runs part of the budget, driver B (another output folder, no cache shared) the
    rest, then A runs again: both folders hold the same rows and trials, the verdicts B stored
    are A's too (A verifies nothing again), and both choose the same trial."""
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    a, b = tmp_path / "a", tmp_path / "b"
    first = run_study(_spec(tmp_path, 3), ToyEvaluator(), RunOptions(out=a, workers=2, progress=False, storage=storage))
    second = run_study(_spec(tmp_path, 6), ToyEvaluator(), RunOptions(out=b, workers=2, progress=False, storage=storage))
    assert first.complete >= 3 and second.complete > first.complete and second.candidates > 0
    again = run_study(_spec(tmp_path, 6), ToyEvaluator(), RunOptions(out=a, workers=2, progress=False, storage=storage))
    assert again.candidates == 0            # nothing measured or verified twice: the verdicts are stored
    for name in ("results", "trials", "rejected"):
        pd.testing.assert_frame_equal(_table(a, name), _table(b, name), check_like=True)
    results = _table(a, "results")
    study = optuna.load_study(study_name="shared-results", storage=storage)
    complete = {t.number for t in study.trials if t.state.name == "COMPLETE"}
    both = set(results["trial"]) | set(_table(a, "rejected")["trial"])
    assert both == complete and len(complete) == again.complete   # every trial, whoever ran it
    best_a, best_b = (json.loads((d / "best.json").read_text()) for d in (a, b))
    assert best_a == best_b and best_a["verified"] is True
    # the chosen trial was verified once, by whichever driver reported it first, with its rows
    full = results[(results["mode"] == "full") & (results["trial"] == best_a["trial"])]
    assert len(full) == 2 and full["verified"].all()
    # the rows stored with the study are the rows of the tables (with every field evaluate() gave)
    stored = stored_rows(a, storage)
    assert len(stored) == len(results[results["mode"] != "full"]) + len(_table(a, "rejected"))


def test_the_stored_rows_of_a_trial_are_the_rows_its_driver_measured(ray_session, tmp_path):
    out = tmp_path / "out"
    run_study(_spec(tmp_path, 3), ToyEvaluator(), RunOptions(out=out, workers=1, progress=False))
    storage = open_storage(f"sqlite:///{out / 'study.db'}")
    study = optuna.load_study(study_name="shared-results", storage=storage)
    trials, verifies = StudyResults(study, storage).load()
    assert set(trials) == {t.number for t in study.trials if t.state.name == "COMPLETE"} and verifies
    for number, record in trials.items():
        summary = record["summary"]
        assert summary == summary_of(study.trials[number])
        chosen = [r for r in record["rows"] if r["chosen"]]
        assert all(r["trial"] == number for r in record["rows"])
        if summary["feasible"]:
            assert sorted((r["workload"], r["candidate"]) for r in chosen) == \
                sorted((layer["workload"], layer["candidate"]) for layer in summary["layers"])
            assert summary["latency_s"] == sum(layer["count"] * layer["latency_s"] for layer in summary["layers"])


def test_a_driver_waits_for_another_drivers_open_trial_and_takes_it_over_when_it_fails(ray_session, tmp_path):
    """The budget is met by the COMPLETE trials plus one another (live) driver holds open: the
    driver does not return with its tables written without that trial; when the other driver
    gives the trial up (failed, its hardware asked again), this one runs it."""
    storage_url = f"sqlite:///{tmp_path / 'shared.db'}"
    run_study(_spec(tmp_path, 3), ToyEvaluator(), RunOptions(out=tmp_path / "a", workers=2, progress=False,
                                                              storage=storage_url))
    spec = _spec(tmp_path, 4)
    other = open_storage(storage_url)
    study = optuna.load_study(study_name="shared-results", storage=other)
    held = TrialStore(study, other).ask(distributions(spec), DRIVER_ATTR, _identity())   # a live owner: us
    done = len(sampled([t for t in study.trials if t.state.name == "COMPLETE"]))
    assert done == 3
    released = []

    def give_up():
        TrialStore(study, other).fail(held.number)
        ask_again(study, study.trials[held.number])
        released.append(time.monotonic())

    timer = threading.Timer(3.0, give_up)
    timer.start()
    try:
        summary = run_study(spec, ToyEvaluator(), RunOptions(out=tmp_path / "b", workers=2, progress=False,
                                                            storage=storage_url))
    finally:
        timer.join()
    assert released and time.monotonic() >= released[0]
    study = optuna.load_study(study_name="shared-results", storage=storage_url)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(sampled(complete)) == 4 and summary.complete == len(complete)
    retry = [t for t in complete if t.user_attrs.get("dse:retry_of") == held.number]
    assert len(retry) == 1 and retry[0].params == held.params
    assert not any(t.state.name == "RUNNING" for t in study.trials)
    trials = pd.read_parquet(tmp_path / "b" / "trials.parquet")
    assert retry[0].number in set(trials.loc[trials["state"] == "COMPLETE", "trial"])


def test_stored_rows_names_what_it_cannot_read(tmp_path):
    import pytest

    import dse

    with pytest.raises(dse.StudyError, match="holds 0 studies"):
        dse.stored_rows(f"sqlite:///{tmp_path / 'empty.db'}")
    url = f"sqlite:///{tmp_path / 'one.db'}"
    optuna.create_study(study_name="one", storage=url)
    assert dse.stored_rows(url) == [] == dse.stored_rows(url, "one")
    with pytest.raises(dse.StudyError, match="holds no study 'two'; it holds 'one'"):
        dse.stored_rows(url, "two")
    with pytest.raises(dse.StudyError, match="not a database URL"):
        dse.stored_rows("no-such-scheme")


def test_rows_an_earlier_version_journaled_in_the_output_folder_are_still_read(tmp_path):
    """Runs before the results moved into the storage kept them in ``OUT/rows.jsonl``: resuming
    such a run must not lose them (the storage's own records win where both exist)."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = open_storage(url)
    study = optuna.create_study(study_name="old", storage=storage)
    dist = {"x": optuna.distributions.IntDistribution(0, 9)}
    for x in (1, 2):
        study.add_trial(optuna.trial.create_trial(params={"x": x}, distributions=dist, value=float(x),
                                                  user_attrs={"feasible": True, "latency_s": float(x)}))
    row = {"trial": 0, "workload": "a", "candidate": 3, "mode": "count", "status": "ok", "chosen": True}
    records = [{"kind": "trial", "study": "old", "trial": 0, "rows": [row], "summary": {"feasible": True}},
               {"kind": "trial", "study": "other", "trial": 1, "rows": [row], "summary": {"feasible": False}},
               {"kind": "verify", "study": "old", "trial": 0, "rows": [dict(row, mode="full")], "verified": True},
               {"kind": "trial", "study": "old", "trial": 0, "rows": [], "summary": {"feasible": False}}]
    journal = tmp_path / "rows.jsonl"
    journal.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"kind": "tri')   # torn by a kill
    trials, verifies = StudyResults(study, storage, journal).load()
    assert set(trials) == {0} and trials[0]["rows"] == [row] and trials[0]["summary"] == {"feasible": True}
    assert verifies[0]["verified"] is True
    assert StudyResults(study, storage).load() == ({}, {})


def test_damaged_stored_results_cost_rows_never_a_crash(tmp_path):
    from dse import _blob

    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = open_storage(url)
    study = optuna.create_study(study_name="s", storage=storage)
    dist = {"x": optuna.distributions.IntDistribution(0, 9)}
    good = _blob.attributes("dse:summary", {"feasible": True})
    for x, system in enumerate([{**good, "dse:rows": "garbage"},                      # rows unreadable
                                {**good, "dse:rows": _blob.encode({"fields": 3})},     # rows of another shape
                                {"dse:summary": "garbage"},                            # summary unreadable
                                {**good, **_blob.attributes("dse:rows", {"fields": ["a"], "rows": [[1]]})}]):
        study.add_trial(optuna.trial.create_trial(params={"x": x}, distributions=dist, value=1.0,
                                                  system_attrs=system))
    study_id = storage.get_study_id_from_name("s")
    storage.set_study_system_attr(study_id, "dse:verify:0", "garbage")
    storage.set_study_system_attr(study_id, "dse:verify:3", 2)                   # pieces missing
    storage.set_study_system_attr(study_id, "dse:verify:x", _blob.encode({"rows": {}, "verified": True}))
    trials, verifies = StudyResults(study, storage).load()
    assert set(trials) == {0, 1, 3} and verifies == {}
    assert trials[0]["rows"] == [] and trials[1]["rows"] == [] and trials[3]["rows"] == [{"trial": 3, "a": 1}]


def test_without_heartbeats_a_driver_does_not_wait_for_a_trial_held_on_another_host(ray_session, tmp_path):
    """A journal file has no heartbeats: nothing could tell that a driver on another host died,
    so its open trial is not waited for (the driver would wait forever)."""
    storage_url = f"journal:{tmp_path / 'study.log'}"
    run_study(_spec(tmp_path, 3), ToyEvaluator(), RunOptions(out=tmp_path / "a", workers=2, progress=False,
                                                              storage=storage_url))
    storage = open_storage(storage_url)
    study = optuna.load_study(study_name="shared-results", storage=storage)
    held = TrialStore(study, storage).ask(distributions(_spec(tmp_path, 4)), DRIVER_ATTR,
                                          {"host": "elsewhere", "pid": 1, "start": "0"})
    done = []
    runner = threading.Thread(target=lambda: done.append(run_study(
        _spec(tmp_path, 4), ToyEvaluator(), RunOptions(out=tmp_path / "b", workers=2, progress=False,
                                                      storage=storage_url))), daemon=True)
    runner.start()
    runner.join(timeout=300)
    assert done, "the driver waited for a trial whose driver it cannot watch"
    study = optuna.load_study(study_name="shared-results", storage=open_storage(storage_url))
    assert study.trials[held.number].state.name == "RUNNING"
