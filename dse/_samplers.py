"""The outer (hardware) search: the Optuna sampler a study file names, and the search space it samples."""
from __future__ import annotations

import optuna

from ._study import StudyError, StudySpec


def make_sampler(spec: StudySpec):
    s = optuna.samplers
    if spec.sampler == "tpe":
        return s.TPESampler(seed=spec.seed, multivariate=True,
                            n_startup_trials=max(3, min(10, spec.n_trials // 4)))
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
