"""The search driver end to end on the analytic test double (tests/dse/_toy.py), in one shared
Ray session: files and columns, counters, grid = brute force, determinism, failures, cache."""
import itertools
import json
import os
import signal
import threading
import time

import pandas as pd
import pytest

import hwconfigs
from dse import load_study
from dse._results import summary_of
from dse._columns import COUNTERS, LOG_KEYS, MEASUREMENT, RESOURCES
from dse._driver import RunOptions, run_study
from tests.dse._toy import ToyEvaluator, toy_figures
from tests.dse.conftest import stored_rows, write_study

TIMING = ["compile_s", "sim_s"]     # wall-clock measurements: the only columns that may differ


def study(tmp_path, body, name="s.toml", **kw):
    return load_study(write_study(tmp_path, body, name), ToyEvaluator.ops, **kw)


def run(spec, out, workers=2, **kw):
    return run_study(spec, ToyEvaluator(), RunOptions(out=out, workers=workers, progress=False, **kw))


CODESIGN = """
[study]
name = "codesign"
seed = 7
n_trials = 6
verify = "top"
verify_top_k = 2
[objectives]
latency = "minimize"
bram = "minimize"
[hardware]
LOG_BLOCK = [3, 4, 5]
LOG_ACC_BUFF_SIZE = { low = 15, high = 17 }
[schedule]
trials_per_layer = 5
[constraints]
board = "pynq"
[[workloads]]
name = "a"
op = "toy_gemm"
m = 4
n = 128
k = 256
[[workloads]]
name = "b"
op = "toy_gemm"
m = 1
n = 64
k = 512
count = 3
"""


def test_two_workers_end_to_end(ray_session, tmp_path):
    spec = study(tmp_path, CODESIGN)
    out = tmp_path / "out"
    summary = run(spec, out)
    for name in ("results.parquet", "results.csv", "study.db", "report.html", "trials.parquet", "best_config.json"):
        assert (out / name).is_file(), name
    df = pd.read_parquet(out / "results.parquet")
    for col in ["workload", *LOG_KEYS, "tile_m", "tile_n", "tile_k", "nthread", *MEASUREMENT, *RESOURCES]:
        assert col in df.columns, col
    # the sampler's trials, then every buffer point of each explored geometry scored from its
    # tables; the study ends once every buildable point within the budget is held
    assert 1 <= summary.complete - summary.filled <= 6 and set(df["trial"]) <= set(range(summary.complete))
    ok = df[df["status"] == "ok"]
    assert len(ok) > 0
    for _, r in ok.iterrows():    # every row's counters equal a direct evaluation of the candidate
        env = hwconfigs.get_env(**{k: int(r[k]) for k in LOG_KEYS})
        knobs = {k: int(r[k]) for k in ("tile_m", "tile_n", "tile_k", "nthread")}
        params = {"a": dict(m=4, n=128, k=256), "b": dict(m=1, n=64, k=512)}[r["workload"]]
        fig = toy_figures(env, params, knobs)
        assert {c: int(r[c]) for c in COUNTERS} == fig["stats"]
        assert int(r["cycles"]) == fig["cycles"]
    # the chosen configuration is a valid config file, the best feasible verified trial
    cfg = hwconfigs.HwConfig.load(out / "best_config.json")
    trials = pd.read_parquet(out / "trials.parquet")
    best = json.loads((out / "best.json").read_text())
    row = trials[trials["trial"] == best["trial"]].iloc[0]
    assert bool(row["feasible"]) and bool(row["verified"]) and cfg.LOG_BLOCK == row["LOG_BLOCK"]
    # the trial's latency is Σ count × the best schedule's latency per layer
    chosen = ok[(ok["trial"] == best["trial"]) & (ok["chosen"] == True) & (ok["mode"] == "count")]  # noqa: E712
    assert abs((chosen["layer_count"] * chosen["latency_s"]).sum() - best["latency_s"]) < 1e-12
    # verification re-ran the chosen schedules in full mode
    full = df[(df["mode"] == "full") & (df["trial"] == best["trial"])]
    assert len(full) == 2 and full["correct"].all()
    # infeasible hardware is a constraint violation in Optuna, not a crash
    import optuna
    st = optuna.load_study(study_name="codesign", storage=f"sqlite:///{out / 'study.db'}")
    for t in st.trials:
        assert t.state.name == "COMPLETE"
        assert (max(t.constraints.values()) <= 0) == bool(t.user_attrs["feasible"])
        # the trial's figures and rows are stored with it; the dashboard shows the main ones
        summary = summary_of(t)
        assert summary["feasible"] == t.user_attrs["feasible"]
        assert "inp_load_nbytes" in summary or not summary["feasible"]
        assert t.user_attrs.get("latency_s") == summary.get("latency_s")
    html = (out / "report.html").read_text()
    assert "<svg" in html and "Pareto front" in html


GRID = """
[study]
name = "grid"
sampler = "grid"
n_trials = 100
verify = "none"
[objectives]
latency = "minimize"
[hardware]
LOG_BLOCK = [3, 4]
LOG_ACC_BUFF_SIZE = [14, 15, 16]
LOG_INP_BUFF_SIZE = [13, 15]
[schedule]
sampler = "grid"
[[workloads]]
name = "a"
op = "toy_gemm"
m = 8
n = 64
k = 128
[[workloads]]
name = "b"
op = "toy_gemm"
m = 2
n = 128
k = 64
count = 2
"""


def brute_force(spec):
    ev = ToyEvaluator()
    best = None
    for values in itertools.product(*(k.values for k in spec.hardware)):
        try:
            hw = spec.hw_config(dict(zip([k.name for k in spec.hardware], values)))
        except hwconfigs.ConfigError:
            continue
        env = hwconfigs.get_env(hw)
        total = 0.0
        for w in spec.workloads:
            space = ev.knob_space(w, hw)
            lats = [toy_figures(env, w.param_dict, k)["seconds"]
                    for k in (dict(zip(space, v)) for v in itertools.product(*space.values()))
                    if ev.static_check(w, hw, k) is None]
            total += w.count * min(lats)
        if best is None or total < best[0]:
            best = (total, values)
    return best


def test_grid_study_finds_the_brute_force_optimum(ray_session, tmp_path):
    spec = study(tmp_path, GRID)
    assert spec.n_trials == 12
    summary = run(spec, tmp_path / "out")
    expected, values = brute_force(spec)
    assert summary.complete == 12
    assert summary.best["latency_s"] == pytest.approx(expected, rel=1e-12)
    trials = pd.read_parquet(tmp_path / "out" / "trials.parquet")
    assert sorted(map(tuple, trials[[k.name for k in spec.hardware]].values.tolist())) == \
        sorted(itertools.product(*(k.values for k in spec.hardware)))


def test_same_seed_one_worker_gives_identical_tables_with_or_without_isolation(ray_session, tmp_path):
    spec = study(tmp_path, CODESIGN.replace("n_trials = 6", "n_trials = 5"))
    tables = []
    for name, isolate in (("isolated", True), ("in_process", False)):
        run(spec, tmp_path / name, workers=1, isolate=isolate)
        df = pd.read_parquet(tmp_path / name / "results.parquet").drop(columns=TIMING)
        tables.append(df)
    assert len(tables[0]) > 10
    pd.testing.assert_frame_equal(tables[0], tables[1])


FAULTS = """
[study]
name = "faults"
sampler = "random"
n_trials = 2
candidate_timeout = 2
verify = "none"
[hardware]
LOG_BLOCK = [4]
[schedule]
sampler = "grid"
[[workloads]]
name = "hangs"
op = "toy_gemm"
m = 1
n = 32
k = 48
fault = "hang:2"
[[workloads]]
name = "segv"
op = "toy_gemm"
m = 1
n = 32
k = 16
fault = "segfault:2"
[[workloads]]
name = "exits"
op = "toy_gemm"
m = 1
n = 32
k = 16
fault = "exit:2"
[[workloads]]
name = "broken"
op = "toy_gemm"
m = 1
n = 16
k = 32
fault = "compile_error:2"
"""


def test_crashes_timeouts_and_failures_of_candidates_become_rows(ray_session, tmp_path):
    spec = study(tmp_path, FAULTS)
    summary = run(spec, tmp_path / "out")
    df = pd.read_parquet(tmp_path / "out" / "results.parquet")
    first = df[df["trial"] == 0]
    hangs = first[first["workload"] == "hangs"]
    timeouts = hangs[hangs["tile_n"] == 2]
    assert len(timeouts) == 4 and set(timeouts["status"]) == {"timeout"}
    assert timeouts["error"].str.contains("its process was killed").all()
    assert (timeouts["sim_s"] < 2 + 1).all()         # the timeout, plus the kill
    assert set(hangs[hangs["tile_n"] == 1]["status"]) == {"ok"}
    for name, cause in (("segv", "was killed by SIGSEGV"), ("exits", "exited with code 17")):
        rows = first[first["workload"] == name]
        crashed = rows[rows["tile_n"] == 2]
        assert len(crashed) == 2 and set(crashed["status"]) == {"run_error"}
        assert crashed["error"].str.contains(cause).all(), crashed["error"].tolist()
        assert set(rows[rows["tile_n"] == 1]["status"]) == {"ok"}
    broken = first[first["workload"] == "broken"]
    assert set(broken[broken["tile_k"] == 2]["status"]) == {"compile_error"}
    assert set(first["attempt"]) == {1} and first["candidate"].notna().all()     # no worker was lost
    assert summary.complete == 1 and summary.best is not None    # one point: the space is exhausted
    assert summary.candidates == len(first)
    assert not (df["mode"] == "static").any()        # refused knob sets are in rejected.parquet


LOST_WORKER = """
[study]
name = "lost"
n_trials = 1
verify = "none"
[hardware]
LOG_BLOCK = [4]
[schedule]
sampler = "grid"
[[workloads]]
name = "lost"
op = "toy_gemm"
m = 1
n = 16
k = 16
fault = "kill_worker_once:{marks}"
"""


@pytest.mark.parametrize("isolate", [True, False])
def test_a_lost_worker_is_replaced_and_its_job_replayed(ray_session, tmp_path, isolate):
    marks = tmp_path / "marks"
    marks.mkdir()
    summary = run(study(tmp_path, LOST_WORKER.format(marks=marks)), tmp_path / "out", workers=1, max_attempts=3,
                  isolate=isolate)
    df = pd.read_parquet(tmp_path / "out" / "results.parquet")
    lost = df[df["candidate"].isna()]
    # each of the two candidates took its worker down once: a row per lost worker, then every
    # candidate once, from the job that got through
    assert len(lost) == 2 and lost["error"].str.contains("worker died").all()
    ok = df[df["candidate"].notna()]
    assert sorted(ok["candidate"]) == [0, 1] and set(ok["status"]) == {"ok"} and set(ok["attempt"]) == {3}
    assert summary.complete == 1 and summary.best is not None


def test_budget_increase_resumes_the_same_study(ray_session, tmp_path):
    grid = CODESIGN.replace('seed = 7', 'seed = 7\nsampler = "grid"')
    spec = study(tmp_path, grid.replace("n_trials = 6", "n_trials = 3"))
    out = tmp_path / "out"
    run(spec, out)
    first = pd.read_parquet(out / "results.parquet")
    run(study(tmp_path, grid, trials=5), out)
    second = pd.read_parquet(out / "results.parquet")
    assert sorted(pd.read_parquet(out / "trials.parquet")["trial"]) == [0, 1, 2, 3, 4]
    pd.testing.assert_frame_equal(first.drop(columns=["verified"]),
                                  second[second["trial"] < 3].drop(columns=["verified"]).reset_index(drop=True),
                                  check_like=True)


STUCK = """
[study]
name = "stuck"
n_trials = 1
candidate_timeout = 1
verify = "none"
[hardware]
LOG_BLOCK = [4]
[schedule]
sampler = "grid"
[[workloads]]
name = "stuck"
op = "toy_gemm"
m = 1
n = 32
k = 32
fault = "{fault}"
"""


def test_a_candidate_deaf_to_signals_is_killed_at_its_timeout(ray_session, tmp_path):
    summary = run(study(tmp_path, STUCK.format(fault="stuck:2")), tmp_path / "out")
    df = pd.read_parquet(tmp_path / "out" / "results.parquet")
    stuck = df[df["tile_n"] == 2]
    assert len(stuck) == 4 and set(stuck["status"]) == {"timeout"}
    assert stuck["error"].str.contains("its process was killed").all()
    assert set(df[df["tile_n"] == 1]["status"]) == {"ok"} and (df["tile_n"] == 1).sum() == 4
    assert summary.complete == 1 and summary.best is not None


def test_killing_the_candidate_process_from_outside_yields_a_row_and_the_study_completes(ray_session, tmp_path):
    """The acceptance test of crash isolation: a kill by process id, mid-candidate."""
    pids = tmp_path / "pids"
    pids.mkdir()
    killed: list[dict] = []
    done = threading.Event()

    def killer():                       # kills each candidate process that announces itself
        seen = set()
        while not done.is_set():
            for path in pids.iterdir():
                if path.name not in seen:
                    seen.add(path.name)
                    os.kill(int(path.name), signal.SIGKILL)
                    killed.append(json.loads(path.read_text()))
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        # a timeout far beyond the test: only the kill ends these candidates
        spec = study(tmp_path, STUCK.format(fault=f"await_kill:2:{pids}").replace("candidate_timeout = 1",
                                                                                  "candidate_timeout = 600"))
        summary = run(spec, tmp_path / "out")
    finally:
        done.set()
        thread.join()
    df = pd.read_parquet(tmp_path / "out" / "results.parquet")
    victims = df[df["tile_n"] == 2]
    assert len(killed) == 4 and len(victims) == 4
    assert set(victims["status"]) == {"run_error"} and victims["error"].str.contains("killed by SIGKILL").all()
    assert sorted(map(json.dumps, killed)) == sorted(json.dumps({k: int(r[k]) for k in sorted(killed[0])})
                                                     for _, r in victims.iterrows())
    assert set(df[df["tile_n"] == 1]["status"]) == {"ok"} and (df["tile_n"] == 1).sum() == 4
    assert summary.complete == 1 and summary.best is not None


def test_a_study_whose_candidate_process_cannot_start_stops_with_the_reason(ray_session, tmp_path):
    from dse import StudyError
    from tests.dse._toy import UnloadableInChild

    spec = study(tmp_path, STUCK.format(fault=""))
    with pytest.raises(StudyError, match="candidates cannot be evaluated.*failed to start 3 times in a row.*"
                                         "cannot be loaded outside a Ray worker"):
        run_study(spec, UnloadableInChild(), RunOptions(out=tmp_path / "out", workers=1, progress=False))
    import optuna
    st = optuna.load_study(study_name="stuck", storage=f"sqlite:///{tmp_path / 'out' / 'study.db'}")
    assert [t.state.name for t in st.trials] == ["FAIL", "WAITING"]     # given back: a rerun resumes it


ONE_POINT = """
[study]
name = "one_point"
n_trials = 1
verify = "none"
[hardware]
LOG_BLOCK = [4]
[schedule]
sampler = "grid"
[[workloads]]
name = "a"
op = "toy_gemm"
m = 4
n = 128
k = 256
sleep_ms = 20
"""


class _WhereEvaluated(ToyEvaluator):
    def evaluate(self, task):
        import os
        return dict(super().evaluate(task), pid=os.getpid())


def test_one_layer_on_one_hardware_point_uses_every_worker(ray_session, tmp_path):
    """A schedule search with nothing else to run beside it is split across the workers; the
    split search evaluates exactly what one worker does, and picks the same best schedule."""
    spec = study(tmp_path, ONE_POINT)
    nap = ray_session.remote(num_cpus=1)(lambda: __import__("time").sleep(0.5))
    ray_session.get([nap.remote() for _ in range(2)])     # two worker processes up, as in a real run
    tables = {}
    for workers in (2, 1):
        out = tmp_path / f"w{workers}"
        run_study(spec, _WhereEvaluated(), RunOptions(out=out, workers=workers, progress=False))
        tables[workers] = stored_rows(out)
    one, two = tables[1], tables[2]
    assert two.loc[two["status"] == "ok", "pid"].nunique() == 2
    assert one.loc[one["status"] == "ok", "pid"].nunique() == 1
    key = lambda df: sorted(zip(df["knobs"].map(lambda k: json.dumps(k, sort_keys=True)),  # noqa: E731
                                df["status"], df["cycles"].astype(str)))
    assert key(one) == key(two) and len(one) > 8
    best = [json.loads((tmp_path / f"w{w}" / "best.json").read_text())["latency_s"] for w in (1, 2)]
    assert best[0] == best[1]
