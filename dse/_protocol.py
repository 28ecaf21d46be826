"""The evaluator interface: everything the driver asks of the op library and the runners, and nothing else.

Two roles (AutoTVM's Builder/Runner split): the op library side says what can be built and builds
candidates; a runner (``dse.runners``: ``count``, ``full``, ``board``) measures one. The product's
evaluator is :class:`dse.evaluate.SimulatorEvaluator`; tests inject doubles. An evaluator must be
picklable (it is shipped to Ray workers once per study).

- ``name``: identifies the evaluator in cache keys (a double's numbers never answer for the
  simulator's); it names the code that measures (``dse._identity``);
- ``ops``: the operators a study file may name, each ``{param: default}`` (``dse._study.REQUIRED``
  for a mandatory one);
- ``resolve(workloads)``: expand/complete the study's workloads (e.g. ``resnet18`` into its
  layers); raises :class:`dse.StudyError` for a workload that does not exist;
- ``knob_space(workload, hw)``: every legal value of every schedule knob on this hardware;
  raises on a layer the hardware cannot run at all;
- ``static_check(workload, hw, knobs)``: ``None``, or why the knob set cannot fit (no compile);
- ``evaluate(task)``: the :func:`measurement` of the runner ``task.mode`` names; a failing
  candidate is a status, never a raise.

Optional: ``seed_knobs``/``baseline_knobs`` (upstream's schedules of a layer), ``shares_cache``
(measurements shared with other studies), ``with_runners(runners, timeout_s)`` (a copy measuring
with a study's runners too, e.g. its ``board``).

``hw`` is always a :class:`hwconfigs.HwConfig`.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Protocol

from ._columns import MEASUREMENT


@dataclasses.dataclass(frozen=True)
class Task:
    """One candidate to evaluate: hardware × workload × schedule knobs, and the runner that measures it."""

    hw: tuple                    # sorted (key, value) pairs of the HwConfig
    workload: Any                # dse._study.Workload
    knobs: tuple                 # sorted (name, json-text value) pairs
    mode: str = "count"          # the runner's name (dse.runners): "count", "full" or "board"
    seed: int = 0                # inputs of a bit-exact run (full, board)

    @property
    def hw_dict(self) -> dict:
        return dict(self.hw)

    @property
    def knob_dict(self) -> dict:
        return {k: json.loads(v) for k, v in self.knobs}

    def key(self, evaluator_name: str) -> str:
        """Cache key: identical candidates (hardware, workload, schedule, runner) evaluate once; a
        runner's measurement never answers for another's."""
        return json.dumps([evaluator_name, self.hw, self.workload.key(), self.knobs, self.mode, self._input_seed])

    def group_key(self, evaluator_name: str) -> str:
        """The key minus the schedule: every candidate of one layer search shares it."""
        return group_of_key(json.loads(self.key(evaluator_name)))

    @property
    def _input_seed(self) -> int:
        return 0 if self.mode == "count" else self.seed      # count computes no data


def group_of_key(parts: list) -> str:
    """``Task.group_key`` from the parsed parts of a ``Task.key``."""
    evaluator, hw, workload, _knobs, mode, seed = parts
    return json.dumps([evaluator, hw, workload, mode, seed])


def make_task(hw_config, workload, knobs: dict, mode: str = "count", seed: int = 0) -> Task:
    hw = tuple(sorted(hw_config.to_dict().items()))
    knob_items = tuple(sorted((k, json.dumps(v)) for k, v in knobs.items()))
    return Task(hw, workload, knob_items, mode, seed)


def measurement(status: str, error: str = "", **values) -> dict:
    """A measurement dict with every field present (missing numbers are None)."""
    out = dict.fromkeys(MEASUREMENT)
    out.update(status=status, error=error, **values)
    return out


class Evaluator(Protocol):
    name: str
    ops: dict

    def resolve(self, workloads) -> list: ...

    def knob_space(self, workload, hw) -> dict: ...

    def static_check(self, workload, hw, knobs: dict) -> str | None: ...

    def evaluate(self, task: Task) -> dict: ...
