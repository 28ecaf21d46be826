"""What the hardware sampler is told about a hardware trial: one policy, decided from structured facts.

A trial ends in one of two ways. **Decided**: it is told COMPLETE with its objective values and
its constraint values, feasible or not, so that every sampler learns from it; an infeasible trial
is worst in every objective (±inf by direction), so that no consumer that ignores the constraints
(optuna-dashboard's best-trials list) ranks it on a front. **Abandoned**: its driver stopped or died
before every result was in; it is told FAIL with no values and its hardware is asked again.

Constraint values (feasible when every one is <= 0), in this order (:func:`constraint_names`):

- ``hardware_invalid``: 1 when VTA cannot be built with the point (``hwconfigs.ConfigError``);
- ``layers_without_schedule``: how many workloads have no schedule that compiled and ran on it;
- ``<resource>_over_budget``: per ``[constraints]`` key, the estimate's overrun as a fraction of
  the budget (``dse._samplers.overrun``).

Every input is a field the caller holds (whether the hardware was built, a count, the overruns,
the measured objectives), never the wording of an error message. The driver, the benchmarks'
replays and the tests' samplers all tell what :func:`decide` returns
(``dse._storage.TrialStore.finish`` tells it).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

COMPLETE, FAIL = "COMPLETE", "FAIL"       # optuna.trial.TrialState names


@dataclasses.dataclass(frozen=True)
class Outcome:
    state: str                             # COMPLETE (decided) or FAIL (abandoned)
    values: list[float] | None             # one per objective, in the study's order (None: FAIL)
    constraints: dict[str, float]          # name -> value, in :func:`constraint_names` order

    @property
    def feasible(self) -> bool:
        return self.state == COMPLETE and all(v <= 0 for v in self.constraints.values())


def constraint_names(constraint_keys: Sequence[str]) -> list[str]:
    """The names of a trial's constraint values, in the order they are stored."""
    return ["hardware_invalid", "layers_without_schedule", *(f"{key}_over_budget" for key in constraint_keys)]


def decide(objectives: Sequence[tuple[str, str]], constraint_keys: Sequence[str], *, buildable: bool,
           overruns: Sequence[float] = (), layers_without_schedule: int = 0,
           measured: Mapping[str, float] | None = None) -> Outcome:
    """The outcome of a trial whose every result is in.

    ``objectives``: (name, "minimize" | "maximize") per objective; ``constraint_keys``: the study's
    ``[constraints]`` keys; ``buildable``: VTA can be built with the point; ``overruns``: one per
    constraint key (empty when the point could not be built); ``layers_without_schedule``: workloads
    with no schedule that ran; ``measured``: objective name -> value, None when some objective
    was not measured. Feasible only when every constraint holds and every objective was measured;
    an infeasible trial always has a positive constraint (a sampler must not take it for feasible).
    """
    overruns = list(overruns) or [0.0] * len(constraint_keys)
    if len(overruns) != len(constraint_keys):
        raise ValueError(f"{len(overruns)} overruns for {len(constraint_keys)} constraints {list(constraint_keys)}")
    names = constraint_names(constraint_keys)
    constraints = dict(zip(names, [0.0 if buildable else 1.0, float(layers_without_schedule),
                                   *(float(v) for v in overruns)]))
    values = [None if measured is None else measured.get(name) for name, _ in objectives]
    feasible = all(v <= 0 for v in constraints.values()) and all(v is not None for v in values)
    if not feasible and all(v <= 0 for v in constraints.values()):
        constraints["layers_without_schedule"] = 1.0       # nothing ran that measured an objective
    if not feasible:
        values = [math.inf if direction == "minimize" else -math.inf for _, direction in objectives]
    return Outcome(COMPLETE, [float(v) for v in values], constraints)


def for_study(spec, **facts) -> Outcome:
    """:func:`decide` for a trial of the study ``spec`` (a ``dse._study.StudySpec``)."""
    return decide(spec.objectives, [key for key, _ in spec.constraints], **facts)


def abandoned() -> Outcome:
    """The outcome of a trial whose results will never all come in (its driver stopped or died)."""
    return Outcome(FAIL, None, {})
