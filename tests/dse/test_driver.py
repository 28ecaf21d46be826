"""The search driver end to end on the analytic test double (tests/dse/_toy.py), in one shared
Ray session: files and columns, counters, grid = brute force, determinism, failures, cache."""
import itertools
import json

import pandas as pd
import pytest

import hwconfigs
from dse import load_study
from dse._columns import COUNTERS, LOG_KEYS, MEASUREMENT, RESOURCES
from dse._driver import RunOptions, run_study
from tests.dse._toy import ToyEvaluator, toy_figures
from tests.dse.conftest import write_study

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
        assert "inp_load_nbytes" in t.user_attrs or not t.user_attrs["feasible"]
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


def test_same_seed_one_worker_gives_identical_tables(ray_session, tmp_path):
    spec = study(tmp_path, CODESIGN.replace("n_trials = 6", "n_trials = 5"))
    tables = []
    for name in ("one", "two"):
        run(spec, tmp_path / name, workers=1)
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
name = "crashy"
op = "toy_gemm"
m = 1
n = 32
k = 32
fault = "crash_once:{marks}"
[[workloads]]
name = "hangs"
op = "toy_gemm"
m = 1
n = 32
k = 48
fault = "hang:2"
[[workloads]]
name = "broken"
op = "toy_gemm"
m = 1
n = 16
k = 32
fault = "compile_error:2"
"""


def test_dead_workers_timeouts_and_failures_become_rows(ray_session, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    spec = study(tmp_path, FAULTS.format(marks=marks))
    summary = run(spec, tmp_path / "out")
    df = pd.read_parquet(tmp_path / "out" / "results.parquet")
    first = df[df["trial"] == 0]
    crashy = first[first["workload"] == "crashy"]
    # each candidate's worker died once: a run_error row, then the resubmission's ok row
    assert (crashy["status"] == "run_error").sum() == 8 and (crashy["status"] == "ok").sum() == 8   # 2·2·2 knob sets
    assert crashy[crashy["status"] == "run_error"]["error"].str.contains("worker died").all()
    assert set(crashy[crashy["status"] == "ok"]["attempt"]) == {2}
    hangs = first[first["workload"] == "hangs"]
    assert set(hangs[hangs["tile_n"] == 2]["status"]) == {"timeout"}
    assert set(hangs[hangs["tile_n"] == 1]["status"]) == {"ok"}
    broken = first[first["workload"] == "broken"]
    assert set(broken[broken["tile_k"] == 2]["status"]) == {"compile_error"}
    assert summary.complete == 1 and summary.best is not None    # one point: the space is exhausted
    assert summary.candidates == (first["status"] != "run_error").sum()
    assert not (df["mode"] == "static").any()        # refused knob sets are in rejected.parquet


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
fault = "stuck:2"
"""


def test_a_worker_deaf_to_its_timeout_is_killed_and_the_search_goes_on(ray_session, tmp_path):
    summary = run(study(tmp_path, STUCK), tmp_path / "out", kill_grace=0.5)
    df = pd.read_parquet(tmp_path / "out" / "results.parquet")
    stuck = df[df["tile_n"] == 2]
    # the flight record names the candidate the killed worker was stuck on
    assert len(stuck) == 4 and set(stuck["status"]) == {"timeout"}
    assert stuck["error"].str.contains("worker killed").all()
    assert set(df[df["tile_n"] == 1]["status"]) == {"ok"} and (df["tile_n"] == 1).sum() == 4
    assert summary.complete == 1 and summary.best is not None


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
        rows = [r for line in (out / "rows.jsonl").open() for r in json.loads(line)["rows"]]
        tables[workers] = pd.DataFrame(rows)
    one, two = tables[1], tables[2]
    assert two.loc[two["status"] == "ok", "pid"].nunique() == 2
    assert one.loc[one["status"] == "ok", "pid"].nunique() == 1
    key = lambda df: sorted(zip(df["knobs"].map(lambda k: json.dumps(k, sort_keys=True)),  # noqa: E731
                                df["status"], df["cycles"].astype(str)))
    assert key(one) == key(two) and len(one) > 8
    best = [json.loads((tmp_path / f"w{w}" / "best.json").read_text())["latency_s"] for w in (1, 2)]
    assert best[0] == best[1]
