"""The search driver end to end on the product's evaluator (compiler.workloads + simulator), with
2 Ray workers: the files, the contract's columns, and every recorded candidate re-measured
directly — its counters and cycles must be exactly what `workloads.build` + `simulator.run` give
for the row's hardware and knobs."""
import json
import math

import pandas as pd

import hwconfigs
import simulator
from compiler import workloads
from dse import load_study
from dse._columns import COUNTERS, LOG_KEYS, RESOURCES
from dse._driver import RunOptions, run_study
from dse.evaluate import SimulatorEvaluator
from tests.dse.conftest import write_study

STUDY = """
[study]
name = "real"
sampler = "grid"
seed = 3
n_trials = 4
verify = "top"
verify_top_k = 2
[objectives]
latency = "minimize"
[hardware]
LOG_BLOCK = [4, 5]
LOG_ACC_BUFF_SIZE = [16, 17]
[schedule]
sampler = "random"
trials_per_layer = 3
[[workloads]]
name = "fc"
op = "dense"
in_features = 64
out_features = 64
[[workloads]]
name = "conv"
op = "conv2d"
height = 8
width = 8
in_channels = 32
out_channels = 32
kernel = 3
pad = 1
"""
LAYERS = {"fc": workloads.Dense(batch=1, in_features=64, out_features=64),
          "conv": workloads.Conv2D(batch=1, height=8, width=8, in_channels=32, out_channels=32, kernel=3,
                                   stride=1, pad=1)}
CONTRACT = ["workload", *LOG_KEYS, "status", "error", *COUNTERS, "cycles", "latency_s", "correct", "compile_s",
            "sim_s", *RESOURCES]


def _knobs(row, names) -> dict:
    """The row's schedule knobs (nested values are JSON text in the table)."""
    out = {}
    for name in names:
        value = row[name]
        out[name] = json.loads(value) if isinstance(value, str) and value[:1] in "[{" else \
            (int(value) if not isinstance(value, str) else value)
    return out


def test_real_study_rows_equal_a_direct_simulation(ray_session, tmp_path):
    spec = load_study(write_study(tmp_path, STUDY), SimulatorEvaluator.ops)
    out = tmp_path / "out"
    summary = run_study(spec, SimulatorEvaluator(), RunOptions(out=out, workers=2, progress=False))
    for name in ("results.parquet", "results.csv", "study.db", "report.html", "trials.parquet", "best_config.json"):
        assert (out / name).is_file(), name
    assert summary.complete == 4 and summary.best is not None
    df = pd.read_parquet(out / "results.parquet")
    assert len(pd.read_csv(out / "results.csv")) == len(df)
    space = {}
    for name, layer in LAYERS.items():
        space[name] = sorted(workloads.knob_space(layer, hwconfigs.get_env()))
    for col in [*CONTRACT, *space["fc"], *space["conv"]]:
        assert col in df.columns, col
    # every hardware point of the grid was a trial; the one VTA cannot build has only refused rows
    trials = pd.read_parquet(out / "trials.parquet")
    assert sorted(map(tuple, trials[["LOG_BLOCK", "LOG_ACC_BUFF_SIZE"]].values.tolist())) == \
        [(4, 16), (4, 17), (5, 16), (5, 17)]
    rejected = pd.read_parquet(out / "rejected.parquet")
    assert set(rejected["status"]) == {"infeasible"} and (rejected["mode"] == "static").all()
    assert sorted(map(tuple, df[["LOG_BLOCK", "LOG_ACC_BUFF_SIZE"]].drop_duplicates().values.tolist())) == \
        sorted(map(tuple, trials[trials["feasible"] == True][["LOG_BLOCK", "LOG_ACC_BUFF_SIZE"]].values.tolist()))  # noqa: E712
    ok = df[df["status"] == "ok"]
    assert set(ok["workload"]) == {"fc", "conv"} and len(ok[ok["mode"] == "count"]) >= 4 * 2 * 2

    for _, r in ok.iterrows():
        cfg = spec.base.replace(**{k: int(r[k]) for k in LOG_KEYS})
        env = hwconfigs.get_env(cfg)
        layer = LAYERS[r["workload"]]
        knobs = _knobs(r, sorted(workloads.knob_space(layer, env)))
        res = simulator.run(workloads.build(layer, env=env, knobs=knobs), count_only=True)
        where = f"trial {r['trial']} {r['workload']} candidate {r['candidate']} ({r['mode']}) {knobs}"
        assert {c: int(r[c]) for c in COUNTERS} == {c: int(res.stats[c]) for c in COUNTERS}, where
        assert int(r["cycles"]) == int(res.cycles), where
        assert math.isclose(float(r["latency_s"]), float(res.seconds), rel_tol=1e-12), where
        assert r["compile_s"] > 0 and r["sim_s"] >= 0
        est = hwconfigs.estimate_resources(cfg).as_row()
        assert all(math.isclose(float(r[k]), float(est[k])) for k in RESOURCES), where

    # the reported trials' chosen schedules were re-run bit-exactly, and matched numpy
    full = ok[ok["mode"] == "full"]
    assert len(full) >= 2 * 2 and full["correct"].all() and full["verified"].all()
    assert ok[ok["mode"] == "count"]["correct"].isna().all()      # count-only computes no data
    best = json.loads((out / "best.json").read_text())
    assert set(full[full["trial"] == best["trial"]]["workload"]) == {"fc", "conv"}
    chosen = ok[(ok["trial"] == best["trial"]) & (ok["chosen"] == True) & (ok["mode"] == "count")]  # noqa: E712
    assert math.isclose((chosen["layer_count"] * chosen["latency_s"]).sum(), best["latency_s"], rel_tol=1e-12)
    assert hwconfigs.HwConfig.load(out / "best_config.json").LOG_BLOCK == \
        int(chosen["LOG_BLOCK"].iloc[0])


BASELINE = """
[study]
name = "stock"
base = "pynq"
sampler = "tpe"
n_trials = 4
verify = "none"
[objectives]
latency = "minimize"
bram = "minimize"
[hardware]
LOG_ACC_BUFF_SIZE = [16, 17]
LOG_INP_BUFF_SIZE = [14, 15]
[schedule]
sampler = "random"
trials_per_layer = 4
[constraints]
board = "pynq"
[[workloads]]
op = "resnet18"
layers = ["C11", "R4"]
"""


def test_every_study_measures_its_stock_baseline_and_never_answers_slower(ray_session, tmp_path):
    spec = load_study(write_study(tmp_path, BASELINE), SimulatorEvaluator.ops)
    out = tmp_path / "out"
    summary = run_study(spec, SimulatorEvaluator(), RunOptions(out=out, workers=2, progress=False))
    base = json.loads((out / "baseline.json").read_text())
    pynq = hwconfigs.get_env("pynq")
    layers = workloads.resnet18(residual_adds=True)
    c11, r4 = base["layers"]
    # upstream's schedule where TopHub tuned the layer, measured exactly as the general path does
    assert c11["source"] == "upstream" and c11["knobs"] == workloads.tophub_knobs(layers["C11"], pynq)[0]
    res = simulator.run(workloads.build(layers["C11"], env=pynq, knobs=c11["knobs"]), count_only=True)
    assert c11["cycles"] == res.cycles and c11["count"] == 3
    assert r4["source"] == "table" and r4["count"] == 2
    assert math.isclose(base["latency_s"], sum(l["count"] * l["latency_s"] for l in base["layers"]), rel_tol=1e-12)
    assert base["hardware"]["LOG_ACC_BUFF_SIZE"] == 17 and base["feasible"]
    # the stock hardware was the first trial, scored from the tables that hold TopHub's schedule
    import optuna
    st = optuna.load_study(study_name="stock", storage=f"sqlite:///{out / 'study.db'}")
    assert st.trials[0].params == {"LOG_ACC_BUFF_SIZE": 17, "LOG_INP_BUFF_SIZE": 15}
    best = summary.best
    assert best["latency_s"] <= base["latency_s"] * (1 + 1e-12)
    assert best["baseline"]["speedup"] == base["latency_s"] / best["latency_s"]
    assert best["baseline"]["resource_change"]["bram"] == best["bram"] - base["bram"]
    from dse._show import show
    import io
    text = io.StringIO()
    show(out, stream=text)
    assert "vs stock:" in text.getvalue() and "x the speed of the stock configuration" in text.getvalue()
    assert "Against the stock configuration" in (out / "report.html").read_text()
