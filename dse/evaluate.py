"""The product's evaluator: the op library side (``compiler.workloads``) and the runners that measure.

The workload side turns a study's workloads into layers, knob spaces, static checks and the
schedules searches start from, and a task into a :class:`dse.runners.Candidate`; the runner the
task names (``Task.mode``: ``count``, ``full`` or ``board``, ``dse.runners``) measures it. This is
the only module of ``dse`` besides ``dse.runners`` and ``dse.fastcount`` that imports ``compiler``;
the rest of the package sees it through the evaluator interface (``dse._protocol``).
"""
from __future__ import annotations

import copy
import functools

from ._study import REQUIRED, StudyError
from .runners import Candidate, CountRunner, FullRunner
from .runners._candidate import env_of

OPS = {
    "dense": {"batch": 1, "in_features": REQUIRED, "out_features": REQUIRED},
    "conv2d": {"batch": 1, "height": REQUIRED, "width": REQUIRED, "in_channels": REQUIRED,
               "out_channels": REQUIRED, "kernel": REQUIRED, "stride": 1, "pad": 0},
    # upstream's group_conv2d_packed (MobileNet-style): each group's channels whole VTA blocks
    "group_conv2d": {"batch": 1, "height": REQUIRED, "width": REQUIRED, "in_channels": REQUIRED,
                     "out_channels": REQUIRED, "kernel": REQUIRED, "stride": 1, "pad": 0, "groups": REQUIRED},
    # upstream's conv2d_transpose_packed (DCGAN's generator); height/width are the undilated input's
    "conv2d_transpose": {"batch": 1, "height": REQUIRED, "width": REQUIRED, "in_channels": REQUIRED,
                         "out_channels": REQUIRED, "kernel": REQUIRED, "stride": 1, "pad": 0,
                         "output_padding": 0},
    # an ALU-only op of two int32 tensors (a residual add), upstream's schedule_alu_packed
    "elementwise": {"batch": 1, "channels": REQUIRED, "height": REQUIRED, "width": REQUIRED, "op": "add"},
    # every op of ResNet-18 VTA offloads: the 19 convs and, with ``residual_adds``, the 8 residual
    # additions (or the layers named in ``layers``)
    "resnet18": {"batch": 1, "layers": [], "residual_adds": True},
}


def _workloads_module():
    try:
        from compiler import workloads
    except ImportError as exc:
        raise StudyError(f"the operator library compiler.workloads is not available ({exc}); "
                         f"the simulator evaluator cannot build layers") from None
    return workloads


@functools.lru_cache(maxsize=512)
def _layer(op: str, params: tuple):
    workloads = _workloads_module()
    p = dict(params)
    if op == "dense":
        return workloads.Dense(**p)
    if op == "conv2d":
        return workloads.Conv2D(**p)
    if op == "group_conv2d":
        return workloads.GroupConv2D(**p)
    if op == "conv2d_transpose":
        return workloads.Conv2DTranspose(**p)
    if op == "elementwise":
        return workloads.Elementwise(**p)
    if op == "resnet18_layer":
        return workloads.resnet18(batch=p["batch"], residual_adds=True)[p["layer"]]
    raise StudyError(f"unknown op {op!r}")


class SimulatorEvaluator:
    """The op library of ``compiler.workloads`` and the runners that measure its candidates:
    ``count`` and ``full`` on this machine's simulator, plus any the study adds (``with_runners``:
    ``board``). The cycle model gives the latency of the simulator's runs."""

    timeout_s: float | None = None     # per candidate, when the caller gives none

    def __init__(self, runners=None, timeout_s: float | None = None):
        if runners is not None:
            self.runners = dict(runners)
        self.timeout_s = timeout_s

    @functools.cached_property
    def runners(self) -> dict:
        """Runner name -> runner (a subclass that skips ``__init__`` still has these)."""
        return {r.name: r for r in (CountRunner(), FullRunner())}

    def with_runners(self, runners, timeout_s: float | None = None) -> "SimulatorEvaluator":
        """A copy (of a subclass too) that also measures with ``runners`` (by their names) within
        ``timeout_s`` per candidate."""
        clone = copy.copy(self)
        clone.runners = {**self.runners, **{r.name: r for r in runners}}
        clone.timeout_s = timeout_s
        return clone

    @property
    def shares_cache(self) -> bool:
        """Measurements are shared between studies through the user's cache folder (cache keys carry
        the evaluator's name, which names the code that measures: dse._identity) unless a runner's
        figures depend on more than the code (a board)."""
        return all(r.shares_cache for r in self.runners.values())

    @property
    def name(self) -> str:
        from ._identity import code_identity

        return "simulator-" + code_identity("compiler", "simulator", "hwconfigs", "dse.evaluate",
                                            "dse.fastcount", "dse.runners")[:16]
    ops = OPS

    # ---- driver side ---------------------------------------------------------------------
    def resolve(self, workloads) -> list:
        from ._study import Workload

        out = []
        for w in workloads:
            if w.op != "resnet18":
                _layer(w.op, w.params)     # constructing it validates the parameters
                out.append(w)
                continue
            p = w.param_dict
            net = _workloads_module().resnet18(batch=p["batch"], residual_adds=bool(p.get("residual_adds", True)))
            names = list(p.get("layers") or net)
            for name in names:
                if not isinstance(name, str):
                    raise StudyError(f"workload {w.name!r}: resnet18 layers are named by strings "
                                     f"({', '.join(net)}), got {name!r}")
                if name not in net:
                    import difflib
                    close = difflib.get_close_matches(name, list(net), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise StudyError(f"workload {w.name!r}: resnet18 has no layer {name!r}{hint}; "
                                     f"layers: {', '.join(net)}")
                count = getattr(net[name], "count", 1) * w.count
                out.append(Workload(name if len(workloads) == 1 else f"{w.name}.{name}", "resnet18_layer",
                                    (("batch", p["batch"]), ("layer", name)), count))
        return out

    def knob_space(self, workload, hw) -> dict:
        return dict(_workloads_module().knob_space(_layer(workload.op, workload.params), env_of(hw)))

    def seed_knobs(self, workload, hw) -> list[dict]:
        """Knob sets every schedule search on ``hw`` starts from: upstream's TopHub schedules for
        this layer and geometry (if TopHub tuned it), then AutoTVM's fallback."""
        workloads = _workloads_module()
        layer, env = _layer(workload.op, workload.params), env_of(hw)
        return [*workloads.tophub_knobs(layer, env), workloads.fallback_knobs(layer, env)]

    def baseline_knobs(self, workload, hw) -> dict | None:
        """Upstream's tuned schedule of the layer on ``hw``'s geometry: TopHub's (its first record),
        or None where TopHub never tuned the layer."""
        found = _workloads_module().tophub_knobs(_layer(workload.op, workload.params), env_of(hw))
        return found[0] if found else None

    def buffer_demand(self, workload, hw, knobs) -> dict:
        """Bytes of the inp, wgt and acc buffers a legal knob set's tiles need on ``hw``'s
        geometry (the static check refuses it on buffers smaller than any of them)."""
        env = env_of(hw)
        need = _workloads_module().buffer_demand(_layer(workload.op, workload.params), env, knobs)
        return {"inp": need["inp"] * env.INP_ELEM_BYTES, "wgt": need["wgt"] * env.WGT_ELEM_BYTES,
                "acc": need["acc"] * env.ACC_ELEM_BYTES}

    def static_check(self, workload, hw, knobs) -> str | None:
        from compiler import CompileError

        try:
            _workloads_module().check_knobs(_layer(workload.op, workload.params), env_of(hw), knobs)
        except CompileError as exc:
            return str(exc)
        return None

    # ---- worker side ---------------------------------------------------------------------
    def candidate(self, task) -> Candidate:
        """The task's layer, hardware, knobs and input seed, built lazily by the runner."""
        return Candidate(_layer(task.workload.op, task.workload.params), task.hw, task.knob_dict, task.seed)

    def evaluate(self, task, timeout_s: float | None = None) -> dict:
        """The measurement of the runner ``task.mode`` names; never raises on a bad candidate."""
        runner = self.runners.get(task.mode)
        if runner is None:
            from ._protocol import measurement

            return measurement("run_error", f"no runner {task.mode!r} in this evaluator "
                                            f"(runners: {', '.join(self.runners)})")
        return runner.measure(self.candidate(task), timeout_s if timeout_s is not None else self.timeout_s)
