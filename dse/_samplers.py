"""The outer (hardware) search: the Optuna sampler a study file names, and the search space it samples.

The default (``tpe``) is Optuna's multivariate TPE behind :class:`StaticFilter`: a hardware
point whose infeasibility is known before anything runs -- VTA cannot be built with it
(``hwconfigs.ConfigError``), or its resource estimate exceeds the study's ``[constraints]`` --
is never proposed, and neither is a point an earlier or running trial already holds. In a
realistic space most points are such (a Pynq sweep of LOG_BATCH/BLOCK and four buffer sizes:
three in four), and TPE alone learns them badly: the driver marks them with constraint values
in unrelated units (1 for "cannot be built", BRAM blocks/DSPs/LUTs over budget for the rest),
and with few feasible trials TPE models the "least violating" infeasible ones as the good
region. When the driver passes its evaluator and workloads, a point on which some workload has no
schedule at all (the evaluator has no knob space for it there, e.g. a batch-1 layer on a core of
BATCH 2, or a small knob space none of whose sets passes the evaluator's static check) counts as
statically infeasible too. ``random`` stays plain uniform search over the declared space (the
baseline).
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math

import numpy as np
import optuna

import hwconfigs

from ._study import ENUMERATE_LIMIT, StudyError, StudySpec

# Proposals of the model tried per trial before falling back to a uniform draw among the
# statically feasible points not yet tried.
MODEL_TRIES = 32
# Uniform draws tried per trial when the space is too large to enumerate.
UNIFORM_TRIES = 2000
# A knob space this small is enumerated to decide whether any of its sets passes the static check;
# a larger one is taken to have a schedule (the filter must never refuse a point that has one).
SCHEDULE_PROBE = 64
_STARTED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
            optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)


def n_startup_trials(n_trials: int) -> int:
    """Uniform trials before the model: a tenth of the budget, between 3 and 10. (Every startup
    point passes the static check, so few are needed: on the small space of
    ``benchmarks/search_quality.py``, 3-5 reached 2% of the optimum in a median of 6 trials over
    40 seeds, 10 in 11; on (latency, BRAM) over the same space 3-5 and 5-10 were alike.)"""
    return max(3, min(10, n_trials // 10))


def make_sampler(spec: StudySpec, evaluator=None, workloads=None):
    """The outer sampler the study names; ``evaluator`` and ``workloads`` (the resolved layers)
    let the default one also skip hardware on which some layer has no schedule."""
    s = optuna.samplers
    if spec.sampler == "tpe":
        # multivariate: the buffers and the GEMM shape act jointly (Optuna 5 defaults to the
        # independent TPE for several objectives). constant_liar (Optuna 5's default, kept on
        # purpose): the driver asks the next trial before the running ones are told; they count
        # as bad meanwhile, so TPE does not crowd around them.
        tpe = s.TPESampler(seed=spec.seed, multivariate=True, constant_liar=True,
                           n_startup_trials=n_startup_trials(spec.n_trials))
        layers = schedule_check(evaluator, workloads) if evaluator is not None and workloads else None
        return StaticFilter(tpe, spec, n_startup_trials(spec.n_trials), seed=spec.seed, schedule_check=layers)
    if spec.sampler == "nsga2":
        return s.NSGAIISampler(seed=spec.seed, population_size=max(4, min(50, spec.n_trials // 4)))
    if spec.sampler == "random":
        return s.RandomSampler(seed=spec.seed)
    if spec.sampler == "grid":
        return _GridSampler({k.name: list(k.values) for k in spec.hardware}, seed=spec.seed)
    if spec.sampler == "gp":
        return s.GPSampler(seed=spec.seed)
    if spec.sampler == "cmaes":
        return s.CmaEsSampler(seed=spec.seed, warn_independent_sampling=False)
    raise StudyError(f"unknown sampler {spec.sampler!r}")


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid, minus ``study.stop()`` when the grid is exhausted: that only works inside
    ``study.optimize``; this driver's ask/tell loop stops on its budget (capped at the grid size)."""

    def after_trial(self, study, trial, state, values) -> None:
        pass


def distributions(spec: StudySpec) -> dict:
    d = optuna.distributions
    return {k.name: (d.IntDistribution(k.low, k.high) if k.is_range else d.CategoricalDistribution(list(k.values)))
            for k in spec.hardware}


@dataclasses.dataclass
class StaticCheck:
    """What is known of a hardware point before anything runs."""
    hw: object = None                      # the HwConfig (None: it cannot be built)
    resources: dict = dataclasses.field(default_factory=dict)    # the resource estimate's row
    overruns: list = dataclasses.field(default_factory=list)     # one per [constraints] key: overrun()
    reason: str | None = None              # why it is infeasible (None: it may be feasible)


def overrun(value: float, limit: float) -> float:
    """A resource's constraint value: its excess as a fraction of the budget (<= 0 within it), so
    that BRAM blocks, DSPs and LUTs weigh alike in the samplers that read constraints."""
    return (value - limit) / limit if limit > 0 else value - limit


def static_check(spec: StudySpec, params: dict) -> StaticCheck:
    """Can VTA be built with ``params`` (on the study's base), and does it fit the study's
    ``[constraints]``? The driver checks every hardware trial with this; the sampler filters on it."""
    check = _static_check(spec.base, spec.constraints, tuple(sorted(params.items())))
    return dataclasses.replace(check, resources=dict(check.resources), overruns=list(check.overruns))


# Memoised per process: a refused geometry costs ~1 ms (its ConfigError message searches the
# largest buffer sizes that would fit), and the filter checks every point of a space once per study.
@functools.lru_cache(maxsize=1 << 17)
def _static_check(base, constraints: tuple, params: tuple) -> StaticCheck:
    try:
        hw = base.replace(**dict(params)) if params else base
    except hwconfigs.ConfigError as exc:
        return StaticCheck(reason=f"hardware cannot be built: {exc}")
    res = hwconfigs.estimate_resources(hw).as_row()
    over = [f"{key} {res[key]:g} > {limit:g}" for key, limit in constraints if res[key] > limit]
    return StaticCheck(hw, res, [overrun(res[key], limit) for key, limit in constraints],
                       "over the resource budget: " + ", ".join(over) if over else None)


def static_violation(spec: StudySpec, params: dict) -> str | None:
    """Why a hardware point is infeasible before anything runs (None: it may be feasible)."""
    return static_check(spec, params).reason


def schedule_check(evaluator, workloads):
    """``hw -> reason``: why some workload has no schedule at all on ``hw`` (None: each may have
    one). No knob space (``evaluator.knob_space`` raises, as the layer job's search would), a knob
    without a legal value, or a space of at most ``SCHEDULE_PROBE`` sets none of which passes
    ``evaluator.static_check``; a larger space is not searched and counts as schedulable."""
    workloads = list(workloads)

    def check(hw) -> str | None:
        for workload in workloads:
            try:
                space = evaluator.knob_space(workload, hw)
            except Exception as exc:
                return f"{workload.name}: no schedule space on this hardware: {type(exc).__name__}: {exc}"
            empty = [name for name, values in space.items() if not list(values)]
            if empty:
                return f"{workload.name}: schedule knob {empty[0]!r} has no legal value on this hardware"
            names = sorted(space)
            if math.prod(len(space[n]) for n in names) <= SCHEDULE_PROBE and not any(
                    evaluator.static_check(workload, hw, dict(zip(names, picks))) is None
                    for picks in itertools.product(*(space[n] for n in names))):
                return f"{workload.name}: no knob set passes the static check on this hardware"
        return None

    return check


def _key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


class StaticFilter(optuna.samplers.BaseSampler):
    """Wraps a model-based sampler so that every hardware trial is a new, statically feasible point.

    After ``n_startup`` trials the model proposes and a proposal is kept if it passes
    :func:`static_violation` (and ``schedule_check``, when given) and no started trial has it (up
    to ``MODEL_TRIES`` proposals); otherwise, and before the model starts, the point is drawn
    uniformly among the statically feasible points no trial holds yet. When every feasible point
    has been tried, repeats are allowed; when none exists, the model's (or a uniform) proposal is
    used as it is. The model still learns from every told trial, including those infeasible for
    reasons only a run reveals (a layer whose schedules all fail on that hardware).
    """

    def __init__(self, model: optuna.samplers.BaseSampler, spec: StudySpec, n_startup: int, seed: int | None = None,
                 schedule_check=None):
        self._model = model
        self._schedule_check = schedule_check    # hw -> reason a workload has no schedule (None: may have)
        self._spec = spec
        self._space = distributions(spec)
        self._n_startup = n_startup
        self._rng = np.random.RandomState(seed)
        self._feasible: list[dict] | None = None     # every statically feasible point, when enumerable
        self._checked: dict[str, bool] = {}

    # ---- the wrapped sampler's interface -----------------------------------------------
    def reseed_rng(self) -> None:
        self._rng.seed()
        self._model.reseed_rng()

    def before_trial(self, study, trial) -> None:
        self._model.before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self._model.after_trial(study, trial, state, values)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._model.sample_independent(study, trial, param_name, param_distribution)

    def infer_relative_search_space(self, study, trial) -> dict:
        # The driver asks every trial with exactly these distributions.
        return {name: dist for name, dist in self._space.items() if not dist.single()}

    def sample_relative(self, study, trial, search_space) -> dict:
        if not search_space:
            return {}
        trials = study.get_trials(deepcopy=False, states=_STARTED)
        taken = {_key(t.params) for t in trials if t.number != trial.number}
        told = sum(1 for t in trials if t.state.is_finished())
        fixed = {k.name: k.values[0] for k in self._spec.hardware if k.name not in search_space}
        proposal = None
        if told >= self._n_startup:
            for _ in range(MODEL_TRIES):
                proposal = self._model.sample_relative(study, trial, search_space)
                if not proposal:
                    break
                full = {**fixed, **proposal}
                if _key(full) not in taken and self._ok(full):
                    return proposal
        uniform = self._uniform(taken)
        if uniform is not None:
            return {name: uniform[name] for name in search_space}
        return proposal or {}

    # ---- static feasibility ----------------------------------------------------------------
    def _ok(self, params: dict) -> bool:
        key = _key(params)
        if key not in self._checked:
            check = static_check(self._spec, params)
            self._checked[key] = check.reason is None and (
                self._schedule_check is None or self._schedule_check(check.hw) is None)
        return self._checked[key]

    def _uniform(self, taken: set) -> dict | None:
        """A statically feasible point no trial holds, uniformly; an already tried one when all
        are; None when no feasible point is known."""
        knobs = self._spec.hardware
        if math.prod(len(k.values) for k in knobs) <= ENUMERATE_LIMIT:
            if self._feasible is None:
                points = ({k.name: v for k, v in zip(knobs, values)}
                          for values in itertools.product(*(k.values for k in knobs)))
                self._feasible = [p for p in points if self._ok(p)]
            fresh = [p for p in self._feasible if _key(p) not in taken]
            pool = fresh or self._feasible
            return pool[self._rng.randint(len(pool))] if pool else None
        seen_ok = None
        for _ in range(UNIFORM_TRIES):
            point = {k.name: k.values[self._rng.randint(len(k.values))] for k in knobs}
            if self._ok(point):
                if _key(point) not in taken:
                    return point
                seen_ok = seen_ok or point
        return seen_ok
