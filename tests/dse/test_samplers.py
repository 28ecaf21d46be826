"""The outer sampler: the default TPE never spends a hardware trial on a point known infeasible
before anything runs, nor on a point already tried (no Ray, no evaluator: the samplers alone)."""
from __future__ import annotations

import itertools

import optuna
import pytest

from dse import load_study
from dse._outcome import for_study
from dse._samplers import (SCHEDULE_PROBE, StaticFilter, distributions, make_sampler, schedule_check, static_check,
                           static_violation)
from dse._storage import TrialStore
from dse._study import REQUIRED

from .conftest import write_study

SPACE = """
[study]
sampler = "{sampler}"
seed = 3
n_trials = {trials}
[objectives]
{objectives}
[hardware]
LOG_BATCH = [0, 1]
LOG_BLOCK = [3, 4, 5]
LOG_INP_BUFF_SIZE = {{ low = 13, high = 17 }}
LOG_ACC_BUFF_SIZE = {{ low = 14, high = 18 }}
[constraints]
board = "pynq"
[[workloads]]
op = "dense"
in_features = 64
out_features = 64
"""
OPS = {"dense": {"batch": 1, "in_features": REQUIRED, "out_features": REQUIRED}}
TWO = 'latency = "minimize"\nbram = "minimize"'


def _spec(tmp_path, sampler="tpe", trials=30, objectives=TWO):
    return load_study(write_study(tmp_path, SPACE.format(sampler=sampler, trials=trials, objectives=objectives)), OPS)


def _points(spec):
    names = [k.name for k in spec.hardware]
    return [dict(zip(names, v)) for v in itertools.product(*(k.values for k in spec.hardware))]


def _drive(spec, n, sampler=None):
    """n ask/tell rounds the way the driver does them (``dse._outcome``): statically infeasible
    points are told as constraint violations with infinite objectives; others get a made-up
    (latency, BRAM)."""
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(directions=spec.directions, storage=storage, sampler=sampler or make_sampler(spec))
    trials = TrialStore(study, storage)
    asked = []
    for _ in range(n):
        trial = study.ask(distributions(spec))
        asked.append(dict(trial.params))
        check = static_check(spec, trial.params)
        block, acc = trial.params["LOG_BLOCK"], trial.params["LOG_ACC_BUFF_SIZE"]
        made_up = {"latency": 1.0 / block + 0.1 / acc, "bram": float(acc)}
        trials.finish(trial, for_study(spec, buildable=check.hw is not None, overruns=check.overruns,
                                       measured=None if check.reason else made_up), {})
    return asked


def test_space_has_both_kinds_of_points(tmp_path):
    spec = _spec(tmp_path)
    verdicts = [static_violation(spec, p) for p in _points(spec)]
    assert any(v is None for v in verdicts)
    assert any(v and v.startswith("hardware cannot be built") for v in verdicts)
    # a core with more multiplies than the part's DSPs gets the rest in LUTs (the DSP estimate
    # stops at the part's count), so the big cores are over the LUT budget
    assert any(v and v.startswith("over the resource budget") and "lut" in v for v in verdicts)


@pytest.mark.parametrize("objectives", [TWO, 'latency = "minimize"'])
def test_default_proposes_new_statically_feasible_points_only(tmp_path, objectives):
    spec = _spec(tmp_path, objectives=objectives)
    assert isinstance(make_sampler(spec), StaticFilter)
    feasible = [p for p in _points(spec) if static_violation(spec, p) is None]
    asked = _drive(spec, 20)
    assert len(feasible) > 20
    assert all(static_violation(spec, p) is None for p in asked)
    keys = [tuple(sorted(p.items())) for p in asked]
    assert len(set(keys)) == len(keys)


def test_exhausted_space_repeats_instead_of_failing(tmp_path):
    spec = _spec(tmp_path)
    feasible = [p for p in _points(spec) if static_violation(spec, p) is None]
    asked = _drive(spec, len(feasible) + 3)
    assert {tuple(sorted(p.items())) for p in asked} == {tuple(sorted(p.items())) for p in feasible}


def test_random_stays_plain_uniform(tmp_path):
    spec = _spec(tmp_path, sampler="random", trials=40)
    asked = _drive(spec, 40)
    assert any(static_violation(spec, p) is not None for p in asked)


def test_constraint_values_are_overruns_as_a_fraction_of_the_budget(tmp_path):
    spec = _spec(tmp_path)
    over = next(p for p in _points(spec) if (static_violation(spec, p) or "").startswith("over the resource"))
    check = static_check(spec, over)
    for (key, limit), value in zip(spec.constraints, check.overruns):
        assert value == pytest.approx((check.resources[key] - limit) / limit)
    assert max(check.overruns) > 0 and all(v > -1 for v in check.overruns)


class _Evaluator:
    """A layer whose schedules fit only an accumulator buffer of at least 2**15 B; its knob space
    has ``size`` sets and none on a 2-row (LOG_BATCH 1) core."""

    def __init__(self, size=4):
        self.size = size

    def knob_space(self, workload, hw):
        if hw.LOG_BATCH == 1:
            raise ValueError("batch 1 is not a multiple of 2")
        return {"tile": list(range(self.size))}

    def static_check(self, workload, hw, knobs):
        return None if hw.LOG_ACC_BUFF_SIZE >= 15 else "acc buffer too small"


def _key(p):
    return tuple(sorted(p.items()))


def _has_schedule(spec, evaluator, p):
    hw = static_check(spec, p).hw
    try:
        space = evaluator.knob_space(None, hw)
    except Exception:
        return False
    return any(evaluator.static_check(None, hw, {"tile": t}) is None for t in space["tile"])


def test_default_never_proposes_hardware_where_a_layer_has_no_schedule(tmp_path):
    spec = _spec(tmp_path)
    evaluator = _Evaluator()
    workloads = list(spec.workloads)
    feasible = [p for p in _points(spec) if static_violation(spec, p) is None]
    good = [p for p in feasible if _has_schedule(spec, evaluator, p)]
    assert 10 <= len(good) < len(feasible)
    asked = _drive(spec, len(good), make_sampler(spec, evaluator, workloads))
    assert sorted(map(_key, asked)) == sorted(map(_key, good))      # each schedulable point once
    # without the evaluator the filter does not know, and some of its points have no schedule
    assert not all(_has_schedule(spec, evaluator, p) for p in _drive(spec, 40))


def test_schedule_check_reasons_and_large_spaces_count_as_schedulable(tmp_path):
    spec = _spec(tmp_path)
    workloads = list(spec.workloads)
    hw = static_check(spec, {"LOG_BATCH": 0, "LOG_BLOCK": 4, "LOG_INP_BUFF_SIZE": 15, "LOG_ACC_BUFF_SIZE": 14}).hw
    assert hw is not None
    assert "no knob set passes" in schedule_check(_Evaluator(), workloads)(hw)
    # too large to enumerate: never refused on a guess
    assert schedule_check(_Evaluator(SCHEDULE_PROBE + 1), workloads)(hw) is None
    batch2 = next(static_check(spec, p).hw for p in _points(spec)
                  if p["LOG_BATCH"] == 1 and static_check(spec, p).hw is not None)
    assert "no schedule space" in schedule_check(_Evaluator(), workloads)(batch2)


def test_real_evaluator_refuses_a_batch_1_layer_on_a_batch_2_core(tmp_path):
    from dse.evaluate import SimulatorEvaluator

    spec = _spec(tmp_path)
    evaluator = SimulatorEvaluator()
    check = schedule_check(evaluator, evaluator.resolve(spec.workloads))
    batch2 = [p for p in _points(spec) if p["LOG_BATCH"] == 1 and static_violation(spec, p) is None]
    batch1 = [p for p in _points(spec) if p["LOG_BATCH"] == 0 and static_violation(spec, p) is None]
    assert batch2 and batch1
    assert all("not a multiple of 2" in check(static_check(spec, p).hw) for p in batch2)
    assert check(static_check(spec, batch1[0]).hw) is None


def test_memoised_static_check_hands_out_independent_copies(tmp_path):
    spec = _spec(tmp_path)
    point = next(p for p in _points(spec) if static_violation(spec, p) is None)
    first = static_check(spec, point)
    first.resources["bram"] = -1.0
    first.overruns.append(99.0)
    again = static_check(spec, point)
    assert again.resources["bram"] != -1.0 and 99.0 not in again.overruns
