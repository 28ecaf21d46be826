"""A layer job in the worker (no Ray): its messages, deterministic replay and cache answers."""
import time

import pytest

import hwconfigs
from dse import _layer_job as layer_job
from dse._inner import LayerSearch
from dse._layer_job import LayerJob, evaluate_with_timeout, knob_text, latency_of, run_layer_job
from dse._protocol import measurement
from dse._study import Workload
from tests.dse._toy import ToyEvaluator

TIMING = ("compile_s", "sim_s")
WORKLOAD = Workload("a", "toy_gemm", (("fault", ""), ("k", 512), ("m", 16), ("n", 256), ("sleep_ms", 0)), 1)


def job(**kw):
    hw = hwconfigs.HwConfig.from_dict({**hwconfigs.resolve_config("default").to_dict(), "LOG_INP_BUFF_SIZE": 12})
    return LayerJob(hw, WORKLOAD, "count", 0, **{"budget": 8, "sampler": "tpe", "search_seed": 3, **kw})


def rows_of(j):
    """The rows of a job's messages, without the wall-clock measurements."""
    messages = list(run_layer_job(ToyEvaluator(), j, timeout=None))
    assert messages[-1]["end"] and not any(m["end"] for m in messages[:-1])
    return [[i, knobs, {k: v for k, v in m.items() if k not in TIMING}, how]
            for message in messages for i, knobs, m, how in message["rows"]]


@pytest.mark.parametrize("sampler", ["tpe", "random", "grid"])
def test_messages_end_with_an_evaluation_and_the_budget_is_kept(sampler, monkeypatch):
    monkeypatch.setattr(layer_job, "MESSAGE_EVERY_S", 0.0)        # every evaluation reported at once
    j = job(sampler=sampler)
    messages = list(run_layer_job(ToyEvaluator(), j, timeout=None))
    rows = [row for m in messages for row in m["rows"]]
    evaluated = [r for r in rows if r[3] == "eval"]
    assert len(messages) == len(evaluated) + 1
    assert len(evaluated) == (8 if sampler != "grid" else len(evaluated)) and len(evaluated) > 0
    assert all(m["rows"][-1][3] == "eval" for m in messages[:-1])
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)     # candidates in order
    # the small input buffer refuses some: a sampled search records them, an enumeration passes over them
    assert any(r[3] == "static" for r in rows) == (sampler != "grid")


@pytest.mark.parametrize("cut", [0, 1, 4, 7])
def test_a_replay_told_the_first_rows_sends_exactly_the_rest(cut):
    rows = rows_of(job())
    evaluated = [i for i, r in enumerate(rows) if r[3] == "eval"]
    head = rows[:evaluated[cut] + 1]
    known = {r[0]: latency_of(r[2]) for r in head}
    rest = rows_of(job(known=known))
    assert rest == rows[len(head):]


def test_cached_candidates_are_answered_without_evaluation():
    rows = rows_of(job())
    cached = {knob_text(r[1]): r[2] for r in rows if r[3] == "eval"}
    again = rows_of(job(cached=cached))
    assert [r[3] for r in again] == ["cached" if r[3] == "eval" else r[3] for r in rows]
    assert [r[:3] for r in again] == [r[:3] for r in rows]


def test_a_layer_without_a_schedule_space_ends_with_the_reason():
    class NoSpace(ToyEvaluator):
        def knob_space(self, w, hw):
            raise ValueError("the layer does not fit")

    (message,) = list(run_layer_job(NoSpace(), job(), timeout=None))
    assert message["end"] and "the layer does not fit" in message["space_error"]


def test_a_fixed_list_is_evaluated_in_order():
    knobs = [{"tile_m": 1, "tile_n": 1, "tile_k": 1, "nthread": 1}, {"tile_m": 1, "tile_n": 2, "tile_k": 2, "nthread": 2}]
    rows = rows_of(job(fixed=knobs))
    assert [(r[0], r[1], r[3]) for r in rows] == [(0, knobs[0], "eval"), (1, knobs[1], "eval")]


class _Swallowing:
    """An evaluator that turns every ``Exception`` of its own into a ``compile_error`` row."""

    def evaluate(self, task):
        try:
            time.sleep(5)
        except Exception as exc:   # noqa: BLE001 - the point of this evaluator
            return measurement("compile_error", repr(exc))
        return measurement("ok", "")


def test_a_timeout_is_not_caught_by_the_evaluators_own_error_handling():
    t = time.perf_counter()
    m = evaluate_with_timeout(_Swallowing(), None, timeout=0.2)
    assert m["status"] == "timeout" and time.perf_counter() - t < 2


def _proposals(search):
    out = []
    while (p := search.next()) is not None:
        out.append((p.index, knob_text(p.knobs)))
        if p.rejected is None:
            search.report(p, 1.0)
    return out


def test_shards_of_a_grid_search_split_it_exactly():
    space = {"a": [1, 2, 3], "b": [4, 5], "c": [6, 7, 8, 9]}
    whole = _proposals(LayerSearch(space, 0, "grid", 0, lambda k: None))
    parts = [_proposals(LayerSearch(space, 0, "grid", 0, lambda k: None, shard, 3)) for shard in range(3)]
    assert sorted(p for part in parts for p in part) == sorted(whole) and len(whole) == 24
    assert all(len(part) == 8 for part in parts)


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_shards_of_a_sampled_search_share_its_budget_and_never_a_candidate_number(sampler):
    space = {"a": list(range(10)), "b": list(range(10))}
    parts = [_proposals(LayerSearch(space, 11, sampler, 5, lambda k: None, shard, 3)) for shard in range(3)]
    assert [len(part) for part in parts] == [4, 4, 3]
    numbers = [i for part in parts for i, _ in part]
    assert len(set(numbers)) == len(numbers)
    assert _proposals(LayerSearch(space, 11, sampler, 5, lambda k: None, 0, 1)) == \
        _proposals(LayerSearch(space, 11, sampler, 5, lambda k: None))


def test_fast_candidates_share_a_message_and_the_rows_are_the_same():
    j = job(sampler="random")
    batched = list(run_layer_job(ToyEvaluator(), j, timeout=None))     # the toy takes microseconds
    evaluated = sum(1 for m in batched for r in m["rows"] if r[3] == "eval")
    assert len(batched) < evaluated and evaluated == 8
    assert rows_of(j) == [[i, k, {x: v for x, v in m.items() if x not in TIMING}, how]
                          for message in batched for i, k, m, how in message["rows"]]


def _best_fitting(fit_checks, budget=120, seed=4):
    """Run a sampled search on a synthetic space (latency -a*b*c, unconstrained best at the
    largest values) and return the best latency among its knob sets with a + b + c <= 12 (the
    'smallest buffers'; their best is 4, 4, 4 alone)."""
    space = {name: list(range(1, 13)) for name in ("a", "b", "c")}
    small = lambda k: None if sum(k.values()) <= 12 else "too big"   # noqa: E731
    search = LayerSearch(space, budget, "random", seed, lambda k: None,
                         fit_checks=[small] if fit_checks else [])
    while (proposal := search.next()) is not None:
        search.report(proposal, -float(proposal.knobs["a"] * proposal.knobs["b"] * proposal.knobs["c"]))
    return min(lat for k, lat in search.results.values() if lat is not None and small(k) is None)


def test_the_refinement_climbs_to_what_the_smallest_buffers_allow():
    """The last quarter of the budget walks from the best schedules that fit the smallest buffers
    to the best such schedule, which random draws and a refinement around the unconstrained best miss."""
    aimed = [_best_fitting(fit_checks=True, seed=seed) for seed in range(8)]
    plain = [_best_fitting(fit_checks=False, seed=seed) for seed in range(8)]
    assert all(a <= p for a, p in zip(aimed, plain)) and sum(aimed) < sum(plain)
    assert aimed.count(-64.0) >= 2 and plain.count(-64.0) == 0
