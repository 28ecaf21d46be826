"""One contract for every runner (``dse.runners``), as Optuna's ``StorageTestCase`` holds every
storage to one: each test below runs against ``count``, ``full`` and ``board`` (a board server on
loopback over the simulated device). A new runner joins by adding its name to ``RUNNERS`` and a
line to the ``runner`` fixture.

The contract: ``measure`` never raises on a bad candidate (a status instead), every measurement
field is present with its type, every runner gives the counters and cycles of the general path
(build + ``simulator.run(count_only=True)``) for random legal knob sets on several layers and
geometries, a runner pickles and measures the same after the round trip, its cache key is the
same in another process, and a timeout gives a ``timeout`` row instead of a wait."""
from __future__ import annotations

import json
import math
import pickle
import random
import subprocess
import sys

import pytest

import hwconfigs
import simulator
from compiler import CompileError
from compiler import workloads
from dse._columns import COUNTERS, MEASUREMENT, STATUSES, TIMING, TIMING_MODULES
from dse.runners import RUNNERS, BoardRunner, Candidate, make_runner
from tests.dse.conftest import REPO, subprocess_env

TOKEN = "conformance-token-0123456789"
HW = {"1x16": hwconfigs.resolve_config("default"),
      "4x8": hwconfigs.resolve_config("default").replace(LOG_BATCH=2, LOG_BLOCK=3)}
# Fields that measure how long the measurement took, not what it measured.
CLOCKS = ("compile_s", "sim_s", "wall_s")


@pytest.fixture(scope="module")
def board_server():
    from dse.board import BoardServer, SimDevice

    with BoardServer(SimDevice(), TOKEN, port=0).start() as server:
        yield server


@pytest.fixture(params=RUNNERS)
def runner(request):
    if request.param == "board":
        return BoardRunner([request.getfixturevalue("board_server").address], token=TOKEN)
    return make_runner(request.param)


def _layers(hw):
    env = hwconfigs.get_env(hw)
    b, bi, bo = env.BATCH, env.BLOCK_IN, env.BLOCK_OUT
    return {"conv": workloads.Conv2D(b, 8, 8, 2 * bi, 2 * bo, 3, 1, 1, epilogue=workloads.RESNET18_EPILOGUE),
            "conv_s2": workloads.Conv2D(b, 9, 9, bi, 2 * bo, 3, 2, 1),
            "dense": workloads.Dense(b, 4 * bi, 2 * bo),
            "add": workloads.Elementwise(b, 2 * bo, 4, 4, "add", epilogue=(("relu",),))}


def _fields_are_typed(m: dict) -> None:
    assert list(m) == list(MEASUREMENT) or set(m) == set(MEASUREMENT), sorted(set(m) ^ set(MEASUREMENT))
    json.dumps(m)                                    # the stored rows and the cache are JSON
    assert m["status"] in STATUSES and isinstance(m["error"], str)
    assert (m["error"] == "") == (m["status"] == "ok"), m
    whole = lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)   # noqa: E731
    real = lambda v: v is None or (isinstance(v, float) and math.isfinite(v) and v >= 0)        # noqa: E731
    assert all(whole(m[c]) for c in COUNTERS) and whole(m["cycles"]) and real(m["latency_s"])
    assert all(real(m[c]) for c in CLOCKS)
    assert m["correct"] is None or isinstance(m["correct"], bool)
    timing = {k: m[k] for k in TIMING}
    if any(v is not None for v in timing.values()):          # a breakdown is all there or absent
        assert timing["bound_by"] in TIMING_MODULES and real(timing["gemm_utilization"])
        assert all(whole(v) for k, v in timing.items() if k not in ("bound_by", "gemm_utilization"))
    if m["status"] == "ok":
        assert all(m[c] is not None for c in COUNTERS) and m["cycles"] is not None and m["latency_s"] > 0


# ---- never raises on a bad candidate -------------------------------------------------------------

def _refused_knobs(layer, hw):
    """A knob set of the layer's space that the static check refuses (cannot fit)."""
    env = hwconfigs.get_env(hw)
    space, rng = workloads.knob_space(layer, env), random.Random(0)
    for _ in range(2000):
        knobs = {k: rng.choice(v) for k, v in space.items()}
        try:
            workloads.check_knobs(layer, env, knobs)
        except CompileError:
            return knobs
    raise AssertionError("every draw fits")


CONV = workloads.Conv2D(1, 8, 8, 32, 32, 3, 1, 1)
BAD = {
    "impossible knobs": (CONV, HW["1x16"], _refused_knobs(CONV, HW["1x16"].replace(LOG_ACC_BUFF_SIZE=12))),
    "knobs on a smaller buffer": (CONV, HW["1x16"].replace(LOG_ACC_BUFF_SIZE=11),
                                  {"tile_h": [1, 8], "tile_w": [1, 8], "tile_co": [1, 2]}),
    "hardware that cannot build": (CONV, {**HW["1x16"].to_dict(), "LOG_BATCH": 8, "LOG_BLOCK": 8}, None),
    "hardware that is not a config": (CONV, {"LOG_BLOCK": "x"}, None),
    "layer too large (a 33x33 kernel overflows the weight buffer)": (
        workloads.Conv2D(1, 40, 40, 16, 16, 33, 1, 16), HW["1x16"], None),
    "layer the geometry cannot pack (batch 1 on 4x8)": (CONV, HW["4x8"], None),
    "garbage knob value": (CONV, HW["1x16"], {"tile_h": "x"}),
    "unknown knob": (CONV, HW["1x16"], {"no_such_knob": 1}),
    "knobs not a mapping": (CONV, HW["1x16"], 5),
    "split not dividing the axis": (CONV, HW["1x16"], {"tile_h": [1, 3]}),
    "thread knob out of range": (CONV, HW["1x16"], {"oc_nthread": 7}),
    "nested garbage": (CONV, HW["1x16"], {"tile_h": [[1], {"a": None}]}),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_candidate_is_a_row_not_a_raise(runner, case):
    layer, hw, knobs = BAD[case]
    m = runner.measure(Candidate(layer, hw, knobs, seed=1), timeout_s=60)
    _fields_are_typed(m)
    assert m["status"] in ("infeasible", "compile_error"), (case, m["status"], m["error"])
    assert m["error"]


# ---- every field, and the same counters and cycles everywhere --------------------------------------

def _general_count(layer, hw, knobs):
    return simulator.run(workloads.build(layer, env=hwconfigs.get_env(hw), knobs=knobs), count_only=True)


AGREEMENT = [(geometry, kind, draw) for geometry in HW for kind in ("conv", "conv_s2", "dense", "add")
             for draw in range(2)]


@pytest.mark.parametrize("geometry,kind,draw", AGREEMENT)
def test_counters_and_cycles_are_the_general_paths(runner, geometry, kind, draw):
    hw = HW[geometry]
    layer = _layers(hw)[kind]
    rng = random.Random(f"{geometry}-{kind}-{draw}")
    knobs = workloads.random_legal_knobs(layer, hwconfigs.get_env(hw), rng, 1, max_tries=1000)
    assert knobs, f"no legal knob set drawn for {layer}"
    m = runner.measure(Candidate(layer, hw, knobs[0], seed=draw), timeout_s=120)
    _fields_are_typed(m)
    assert m["status"] == "ok", m["error"]
    truth = _general_count(layer, hw, knobs[0])
    assert {c: m[c] for c in COUNTERS} == {c: int(truth.stats[c]) for c in COUNTERS}
    assert m["cycles"] == truth.cycles and m["latency_s"] == pytest.approx(truth.seconds, rel=1e-12)
    # the bit-exact runners computed the output and checked it; count computes no data
    assert m["correct"] is (None if runner.name == "count" else True)


def test_a_board_row_keeps_the_wall_time(board_server):
    runner = BoardRunner([board_server.address], token=TOKEN)
    hw = HW["1x16"]
    m = runner.measure(Candidate(_layers(hw)["add"], hw, None), timeout_s=60)
    assert m["status"] == "ok" and m["wall_s"] > 0 and m["correct"] is True


# ---- pickling, cache keys, timeouts ------------------------------------------------------------

def test_a_runner_measures_the_same_after_a_pickle_round_trip(runner):
    hw = HW["1x16"]
    candidate = Candidate(_layers(hw)["conv"], hw, None, seed=3)
    first = runner.measure(candidate, timeout_s=60)
    clone = pickle.loads(pickle.dumps(runner))
    assert clone.name == runner.name and type(clone) is type(runner)
    again = clone.measure(pickle.loads(pickle.dumps(candidate)), timeout_s=60)
    assert first["status"] == "ok"
    assert {k: v for k, v in again.items() if k not in CLOCKS} == {k: v for k, v in first.items() if k not in CLOCKS}


def cache_keys(runner_names) -> dict:
    """The cache key of one candidate measured by each named runner (the evaluator names the code)."""
    from dse import make_task
    from dse._study import Workload
    from dse.evaluate import SimulatorEvaluator

    workload = Workload("c", "conv2d", (("batch", 1), ("height", 8), ("in_channels", 32), ("kernel", 3),
                                        ("out_channels", 32), ("pad", 1), ("stride", 1), ("width", 8)))
    evaluator = SimulatorEvaluator().name
    knobs = {"tile_h": [2, 4], "oc_nthread": 2}
    return {r: make_task(HW["1x16"], workload, knobs, r, 7).key(evaluator) for r in runner_names}


@pytest.fixture(scope="module")
def keys_elsewhere():
    """The cache keys another process (another hash seed) gives, per runner."""
    code = ("import json, sys; from tests.dse.test_runner_conformance import cache_keys; "
            "print(json.dumps(cache_keys(sys.argv[1:])))")
    env = {**subprocess_env(), "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code, *RUNNERS], env=env, cwd=REPO, capture_output=True,
                         text=True, timeout=300, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_the_cache_key_is_stable_across_processes(runner, keys_elsewhere):
    clone = pickle.loads(pickle.dumps(runner))
    assert cache_keys([clone.name])[clone.name] == cache_keys([runner.name])[runner.name] == keys_elsewhere[runner.name]
    # the runner's name is in the key: no runner's measurement answers for another's
    assert len(set(keys_elsewhere.values())) == len(RUNNERS)


def test_a_tiny_timeout_gives_a_timeout_row(runner):
    # a build + run of seconds on every runner (count builds a dense layer: no fast path)
    hw = HW["1x16"]
    m = runner.measure(Candidate(workloads.Dense(1, 1024, 1024), hw, None), timeout_s=0.05)
    _fields_are_typed(m)
    assert m["status"] == "timeout", (m["status"], m["error"])
    assert "0.05 s" in m["error"]


def test_a_board_that_runs_out_of_time_is_a_timeout_row_and_other_failures_name_the_board():
    from dse.board import BoardError

    class _Pool:
        def __init__(self, reason):
            self.reason = reason

        def run_module(self, module, args, timeout_s):
            raise BoardError(self.reason, "no answer within the time allowed", "pynq-7:9091")

    hw = HW["1x16"]
    rows = {}
    for reason in ("timeout", "reset", "auth"):
        runner = BoardRunner(["pynq-7:9091"], token=TOKEN)
        runner._pool = _Pool(reason)
        rows[reason] = runner.measure(Candidate(_layers(hw)["add"], hw, None), timeout_s=60)
    assert rows["timeout"]["status"] == "timeout"
    for reason in ("reset", "auth"):
        assert rows[reason]["status"] == "run_error"
        assert rows[reason]["error"].startswith(f"{reason}: ") and "pynq-7:9091" in rows[reason]["error"]
