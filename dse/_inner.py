"""The inner search of co-design: tune one layer's schedule on one hardware trial, within a budget.

A space no larger than the budget or than ``exhaustive_up_to`` knob combinations (or any space with
``sampler = "grid"``) is enumerated exhaustively (:func:`is_exhaustive`), passing over the knob
sets the static check refuses; a larger one is searched by an in-memory Optuna study (TPE or
random) seeded from the study seed, the geometry and the layer, so a rerun proposes the same knobs.
Knob sets the static check rejects there cost no budget (up to ``REJECT_FACTOR`` × budget of them)
and become ``infeasible`` rows.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math

import optuna

# Only 10-25% of a conv layer's knob sets pass the static check (ResNet-18's C5/C8/C11 on Pynq-sized
# buffers); with 4 x budget rejections allowed, a budget of 4 ended without a single candidate on
# 5-15% of (hardware, layer) pairs, which made the whole hardware trial infeasible. A rejection
# costs a static check (~60 us) and an ask/tell of the in-memory study (a few ms).
REJECT_FACTOR = 32
DUPLICATE_TRIES = 50
# The last 1/REFINE_SHARE of a sampled search's budget goes to a local search: up to REFINE_ROUNDS
# rounds of one-step neighbours of the REFINE_TOP fastest knob sets (see LayerSearch._refine).
REFINE_TOP = 4
REFINE_SHARE = 3
REFINE_ROUNDS = 8
_INFEASIBLE = 1.0


@dataclasses.dataclass
class Proposal:
    index: int                    # candidate number within this layer search
    knobs: dict
    rejected: str | None = None   # why the static check refused it (no evaluation)
    handle: object = None         # inner Optuna trial


def is_exhaustive(size: int, budget: int, sampler: str, exhaustive_up_to: int = 0) -> bool:
    """Whether a schedule space of ``size`` knob combinations is enumerated whole rather than
    sampled: always with the grid sampler, and whenever it is no larger than the budget or than
    ``exhaustive_up_to`` (a space cheap enough to be exact)."""
    return sampler == "grid" or size <= max(budget, exhaustive_up_to)


def shard_seed(seed: int, shard: int, shards: int) -> int:
    """The inner sampler's seed of one shard of a layer search (the search's own seed if unsharded)."""
    return seed if shards == 1 else (seed * 7919 + shard + 1) % (2 ** 31)


class LayerSearch:
    """One layer's schedule search, or shard ``shard`` of ``shards`` of it: an exhaustive search
    takes every ``shards``-th knob set of the enumeration, a sampled one runs its own seeded
    sampler on its share of the budget. Candidate numbers are ``shard + shards * k`` (k counting
    this shard's proposals), so shards never share one; unsharded, they count 0, 1, 2, ..."""

    def __init__(self, space: dict, budget: int, sampler: str, seed: int, static_check, shard: int = 0,
                 shards: int = 1, seeds=(), fit_checks=(), exhaustive_up_to: int = 0):
        self.names = sorted(space)
        self.choices = {n: list(space[n]) for n in self.names}
        for name, values in self.choices.items():
            if not values:
                raise ValueError(f"schedule knob {name!r} has no legal value on this hardware")
        self.size = math.prod(len(v) for v in self.choices.values())
        self.exhaustive = is_exhaustive(self.size, budget, sampler, exhaustive_up_to)
        total = self.size if self.exhaustive else min(budget, self.size)
        self.budget = total if self.exhaustive else total // shards + (shard < total % shards)
        self.shard, self.shards = shard, shards
        self.static_check = static_check
        self.asked = 0            # proposals sent for evaluation
        self.told = 0
        self.rejected = 0
        self.exhausted = False
        self._next_index = 0
        self._seen: dict[str, int] = {}       # knob text -> candidate index
        self._refinements: list = []          # the last part of the budget: neighbours of the best
        self._refine_rounds = 0
        self._refine_done = False
        self._fit_checks = list(fit_checks)   # smaller hardware the refinement also aims at
        self.results: dict[int, tuple[dict, float | None]] = {}   # index -> (knobs, latency or None)
        # Warm starts (e.g. upstream's tuned schedules) are proposed first, by shard 0.
        starts = [p for p in (self._picks(k) for k in seeds) if p is not None] if shard == 0 else []
        if self.exhaustive:
            everything = itertools.product(*(range(len(self.choices[n])) for n in self.names))
            self._iter = itertools.chain(starts, itertools.islice(everything, shard, None, shards))
            self._study = None
        else:
            seed = shard_seed(seed, shard, shards)
            if sampler == "tpe":
                inner = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, self.budget // 3)))
            else:
                inner = optuna.samplers.RandomSampler(seed=seed)
            self._study = optuna.create_study(sampler=inner, direction="minimize")
            self._dists = {n: optuna.distributions.CategoricalDistribution(list(range(len(self.choices[n]))))
                           for n in self.names}
            for picks in starts:
                self._study.enqueue_trial(dict(zip(self.names, picks)))

    # ---- proposing -----------------------------------------------------------------------
    def _picks(self, knobs: dict):
        """The choice indices of a warm-start knob set, or None if it is not in the space. A knob
        it leaves out takes its first value (upstream's choice); a split written ``[-1, inner]``
        (AutoTVM's 'inferred outer') matches the value with that inner factor."""
        picks = []
        for name in self.names:
            values = self.choices[name]
            if name not in knobs:
                picks.append(0)
                continue
            want = knobs[name]
            if want in values:
                picks.append(values.index(want))
                continue
            if isinstance(want, (list, tuple)) and len(want) == 2 and want[0] == -1:
                inner = [i for i, v in enumerate(values) if isinstance(v, (list, tuple)) and v[1] == want[1]]
                if inner:
                    picks.append(inner[0])
                    continue
            return None
        if any(name not in self.names for name in knobs):
            return None
        return tuple(picks)

    def _knobs(self, picks) -> dict:
        return {n: self.choices[n][i] for n, i in zip(self.names, picks)}

    def _propose_raw(self):
        if self._study is None:
            picks = next(self._iter, None)
            return (None, None) if picks is None else (self._knobs(picks), None)
        trial = self._study.ask(self._dists)
        return self._knobs([trial.params[n] for n in self.names]), trial

    def next(self) -> Proposal | None:
        """The next knob set to evaluate (or a rejected one to record); after the budget, the
        refinement around the best ones; None when both are spent or the space exhausted."""
        if self.asked >= self.budget or self.exhausted:
            return None
        if self._study is not None and not self._refine_done and \
                self.asked >= self.budget - self.budget // REFINE_SHARE:
            proposal = self._refine()
            if proposal is not None:
                return proposal
            self._refine_done = True        # every neighbour tried: the sampler has the rest
        duplicates = 0
        while duplicates < DUPLICATE_TRIES:
            knobs, handle = self._propose_raw()
            if knobs is None:
                self.exhausted = True
                return None
            text = json.dumps(knobs, sort_keys=True)
            if text in self._seen:   # a sampler repeating itself gets its earlier answer
                self._tell(handle, self.results.get(self._seen[text], (None, None))[1])
                duplicates += 1
                continue
            self._seen[text] = index = self.shard + self.shards * self._next_index
            self._next_index += 1
            reason = self.static_check(knobs)
            if reason is not None:
                self.rejected += 1
                if self._study is None:
                    # An enumeration passes over what does not fit (most of a conv's space): the
                    # rows would be every combination the buffers refuse, not a finding.
                    continue
                self.results[index] = (knobs, None)
                self._tell(handle, None)
                if self.rejected >= REJECT_FACTOR * self.budget:
                    self.exhausted = True
                return Proposal(index, knobs, rejected=reason)
            self.asked += 1
            return Proposal(index, knobs, handle=handle)
        self.exhausted = True
        return None

    # ---- refinement ------------------------------------------------------------------------
    def _refine(self) -> Proposal | None:
        """The last third of a sampled search's budget: a local search around the fastest knob
        sets, in rounds. A round takes the ``REFINE_TOP`` fastest so far, and the fastest of those
        that fit each of ``fit_checks`` (smaller buffers the table also answers), and moves every
        knob of each to its neighbouring value, one at a time (a split's next smaller or larger
        factor, the other thread count, ...); the next round starts from what that found. The
        best schedule of a point with small buffers is mostly a few such steps from a good one,
        and the sampler, aiming at the unconstrained optimum, rarely proposes it. Deterministic:
        a job evaluates one candidate at a time, so every earlier result is in. None when a
        round finds no new neighbour, after ``REFINE_ROUNDS`` rounds, or for an exhaustive search."""
        if self._study is None:
            return None                  # an exhaustive search has every neighbour already
        while True:
            while self._refinements:
                knobs = self._refinements.pop(0)
                text = json.dumps(knobs, sort_keys=True)
                if text in self._seen:
                    continue
                self._seen[text] = index = self.shard + self.shards * self._next_index
                self._next_index += 1
                reason = self.static_check(knobs)
                if reason is not None:
                    self.results[index] = (knobs, None)
                    return Proposal(index, knobs, rejected=reason)
                self.asked += 1
                return Proposal(index, knobs)
            if self._refine_rounds >= REFINE_ROUNDS:
                return None
            self._refine_rounds += 1
            self._refinements = self._neighbours()
            if not self._refinements:
                return None

    def _neighbours(self) -> list[dict]:
        ranked = sorted((lat, i) for i, (_, lat) in self.results.items() if lat is not None)
        levels = [[i for _, i in ranked[:REFINE_TOP]]]
        for fits in self._fit_checks:
            levels.append([i for _, i in ranked if fits(self.results[i][0]) is None][:REFINE_TOP])
        # the best of each level first, then the second best of each, ...: the budget left may
        # not reach the end of the list
        checks = [None, *self._fit_checks]
        starts = [(level[k], checks[n]) for k in range(REFINE_TOP) for n, level in enumerate(levels) if k < len(level)]
        out, seen = [], set(self._seen)
        for index, fits in starts:
            picks = self._picks(self.results[index][0])
            if picks is None:
                continue
            for j, name in enumerate(self.names):
                for step in (-1, 1):
                    if 0 <= picks[j] + step < len(self.choices[name]):
                        knobs = self._knobs(picks[:j] + (picks[j] + step,) + picks[j + 1:])
                        text = json.dumps(knobs, sort_keys=True)
                        # a smaller level's walk stays on what fits it
                        if text not in seen and (fits is None or fits(knobs) is None):
                            seen.add(text)
                            out.append(knobs)
        return out

    # ---- results -------------------------------------------------------------------------
    def _tell(self, handle, latency: float | None) -> None:
        if handle is None:
            return
        handle.set_constraint("failed", 0.0 if latency is not None else _INFEASIBLE)
        self._study.tell(handle, latency if latency is not None else 0.0)

    def report(self, proposal: Proposal, latency: float | None) -> None:
        """The evaluated latency of a proposal (None: the candidate failed)."""
        self.results[proposal.index] = (proposal.knobs, latency)
        self.told += 1
        self._tell(proposal.handle, latency)

    @property
    def done(self) -> bool:
        return (self.asked >= self.budget or self.exhausted) and self.told >= self.asked

    def best(self) -> tuple[int, dict, float] | None:
        return best_result(self.results)


def best_result(results: dict) -> tuple[int, dict, float] | None:
    """(index, knobs, latency) of the fastest candidate of ``{index: (knobs, latency or None)}``,
    the earliest on a tie; None if none succeeded."""
    ok = [(lat, i, k) for i, (k, lat) in results.items() if lat is not None]
    if not ok:
        return None
    lat, index, knobs = min(ok, key=lambda x: (x[0], x[1]))
    return index, knobs, lat
