"""What the hardware sampler is told (``dse._outcome``): from structured facts, one policy."""
import math

import pytest

from dse._outcome import COMPLETE, FAIL, abandoned, constraint_names, decide

OBJECTIVES = [("latency", "minimize"), ("throughput", "maximize")]
KEYS = ["bram", "lut"]


def test_a_measured_point_within_budget_is_feasible_with_its_values():
    o = decide(OBJECTIVES, KEYS, buildable=True, overruns=[-0.5, -0.1], measured={"latency": 2e-3, "throughput": 9.0})
    assert o.state == COMPLETE and o.feasible and o.values == [2e-3, 9.0]
    assert o.constraints == {"hardware_invalid": 0.0, "layers_without_schedule": 0.0,
                             "bram_over_budget": -0.5, "lut_over_budget": -0.1}
    assert list(o.constraints) == constraint_names(KEYS)


@pytest.mark.parametrize("facts, positive", [
    ({"buildable": False}, "hardware_invalid"),
    ({"buildable": True, "overruns": [0.25, -0.1]}, "bram_over_budget"),
    ({"buildable": True, "overruns": [-0.5, -0.1], "layers_without_schedule": 2}, "layers_without_schedule"),
    # nothing measured an objective although every constraint holds: still told infeasible
    ({"buildable": True, "overruns": [-0.5, -0.1], "measured": {"latency": 1e-3}}, "layers_without_schedule"),
])
def test_an_infeasible_point_is_worst_in_every_objective_with_a_positive_constraint(facts, positive):
    o = decide(OBJECTIVES, KEYS, **facts)
    assert o.state == COMPLETE and not o.feasible
    assert o.values == [math.inf, -math.inf]
    assert [name for name, value in o.constraints.items() if value > 0] == [positive]


def test_a_point_that_cannot_be_built_has_no_overruns_but_every_constraint_value():
    o = decide(OBJECTIVES, KEYS, buildable=False, overruns=[])
    assert o.constraints == {"hardware_invalid": 1.0, "layers_without_schedule": 0.0,
                             "bram_over_budget": 0.0, "lut_over_budget": 0.0}


def test_measured_values_count_only_when_feasible():
    o = decide(OBJECTIVES, KEYS, buildable=True, overruns=[0.5, 0.0], measured={"latency": 1e-3, "throughput": 9.0})
    assert o.values == [math.inf, -math.inf]


def test_overruns_must_match_the_constraints():
    with pytest.raises(ValueError, match="2 constraints"):
        decide(OBJECTIVES, KEYS, buildable=True, overruns=[0.1])


def test_an_abandoned_trial_is_failed_without_values():
    o = abandoned()
    assert o.state == FAIL and o.values is None and not o.feasible
