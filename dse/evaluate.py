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
    # ``epilogue`` (optional): the steps fused after the GEMM, as workloads.epilogue_text writes them
    "dense": {"batch": 1, "in_features": REQUIRED, "out_features": REQUIRED, "epilogue": None},
    "conv2d": {"batch": 1, "height": REQUIRED, "width": REQUIRED, "in_channels": REQUIRED,
               "out_channels": REQUIRED, "kernel": REQUIRED, "stride": 1, "pad": 0, "epilogue": None},
    # upstream's group_conv2d_packed (MobileNet-style): each group's channels whole VTA blocks
    "group_conv2d": {"batch": 1, "height": REQUIRED, "width": REQUIRED, "in_channels": REQUIRED,
                     "out_channels": REQUIRED, "kernel": REQUIRED, "stride": 1, "pad": 0, "groups": REQUIRED,
                     "epilogue": None},
    # upstream's conv2d_transpose_packed (DCGAN's generator); height/width are the undilated input's
    "conv2d_transpose": {"batch": 1, "height": REQUIRED, "width": REQUIRED, "in_channels": REQUIRED,
                         "out_channels": REQUIRED, "kernel": REQUIRED, "stride": 1, "pad": 0,
                         "output_padding": 0, "epilogue": None},
    # an ALU-only op of two int32 tensors (a residual add), upstream's schedule_alu_packed
    # (``alu``: the layer's op; a workload's ``op`` key names the workload's op)
    "elementwise": {"batch": 1, "channels": REQUIRED, "height": REQUIRED, "width": REQUIRED, "alu": "add",
                    "epilogue": None},
    # every op of ResNet-18 VTA offloads: the 19 convs and, with ``residual_adds``, the 8 residual
    # additions (or the layers named in ``layers``)
    "resnet18": {"batch": 1, "layers": [], "residual_adds": True},
    # every layer VTA offloads from a built-in network (workloads.NETWORKS), or those in ``layers``
    "network": {"name": REQUIRED, "batch": 1, "layers": []},
    # every layer VTA offloads from a quantized ONNX model (a path relative to the study file)
    # (``rounding``: "exact" refuses requantizations VTA rounds differently on ties, "half_up" accepts them)
    "onnx": {"path": REQUIRED, "layers": [], "rounding": "exact"},
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
    if op in workloads.LAYER_KINDS:
        if "epilogue" in p:
            p["epilogue"] = workloads.parse_epilogue(p["epilogue"])
        if op == "elementwise":
            p["op"] = p.pop("alu", "add")
        return workloads.LAYER_KINDS[op](**p)
    if op == "resnet18_layer":
        return workloads.resnet18(batch=p["batch"], residual_adds=True)[p["layer"]]
    raise StudyError(f"unknown op {op!r}")


def layer_workload(layer, name: str, count: int = 1):
    """The study workload of an op-library layer: its op and every field (the epilogue as text)."""
    import dataclasses

    from ._study import Workload

    workloads = _workloads_module()
    op = workloads.layer_kind(layer)
    params = {f.name: getattr(layer, f.name) for f in dataclasses.fields(layer) if f.name not in ("count", "name")}
    params["epilogue"] = workloads.epilogue_text(layer.epilogue)
    if op == "elementwise":
        params["alu"] = params.pop("op")
    return Workload(name, op, tuple(sorted(params.items())), count)


def _network_layers(workload) -> dict:
    """name -> layer of a workload that stands for a network (resnet18, network, onnx)."""
    workloads = _workloads_module()
    p = workload.param_dict
    if workload.op == "resnet18":
        return workloads.resnet18(batch=p["batch"], residual_adds=bool(p.get("residual_adds", True)))
    if workload.op == "network":
        return {layer.name: layer for layer in workloads.network(p["name"], batch=p["batch"])}
    return {layer.name: layer for layer in workloads.import_onnx(p["path"], rounding=p["rounding"]).layers}


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
            if w.op not in ("resnet18", "network", "onnx"):
                _layer(w.op, w.params)     # constructing it validates the parameters
                out.append(w)
                continue
            net = _network_layers(w)
            what = w.param_dict.get("name", w.op)
            names = list(w.param_dict.get("layers") or net)
            for name in names:
                if not isinstance(name, str):
                    raise StudyError(f"workload {w.name!r}: {what} layers are named by strings "
                                     f"({', '.join(net)}), got {name!r}")
                if name not in net:
                    import difflib
                    close = difflib.get_close_matches(name, list(net), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise StudyError(f"workload {w.name!r}: {what} has no layer {name!r}{hint}; "
                                     f"layers: {', '.join(net)}")
                count = getattr(net[name], "count", 1) * w.count
                full = name if len(workloads) == 1 else f"{w.name}.{name}"
                if w.op == "resnet18":   # the historical op: its tables and runs name the layer so
                    out.append(Workload(full, "resnet18_layer", (("batch", w.param_dict["batch"]), ("layer", name)),
                                        count))
                else:
                    out.append(layer_workload(net[name], full, count))
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
