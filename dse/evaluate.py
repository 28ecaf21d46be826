"""Candidate evaluation on our compiler and simulator: compile → run → verify → one measurement.

This is the only module of ``dse`` that imports ``compiler`` or ``simulator``; the rest of the
package sees them through the evaluator interface (``dse._protocol``). The pipeline is a list of
stages, each replaceable; a stage that fails ends the candidate with a classified status:

    build hardware   ConfigError          -> infeasible
    static check     CompileError         -> infeasible   (workloads.check_knobs: cannot fit)
    compile          CompileError, other  -> compile_error
    run              any exception        -> run_error    (count-only or full)
    verify           output != numpy      -> mismatch     (full mode only)
"""
from __future__ import annotations

import functools
import time

import numpy as np

import hwconfigs

from ._columns import COUNTERS, TIMING
from ._protocol import Task, measurement
from ._study import REQUIRED, StudyError

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


def _check_counter_names() -> None:
    import simulator

    if tuple(simulator.COUNTER_NAMES) != COUNTERS:
        raise RuntimeError(f"simulator counters {simulator.COUNTER_NAMES} differ from dse's {COUNTERS}")


def timing_columns(reports) -> dict:
    """The ``_columns.TIMING`` fields of a run from its programs' TimingReports: cycles, bytes
    and busy/stall cycles add up over the programs, the GEMM utilization is recomputed over the
    whole run and ``bound_by`` is the module with the most busy cycles (as ``fastcount``'s
    ``timing_row``)."""
    rows = [report.as_row() for report in reports]
    if not rows:
        return {}
    if set(rows[0]) - {"cycles", "latency_s"} != set(TIMING):
        raise RuntimeError(f"simulator timing row {sorted(rows[0])} differs from dse's {sorted(TIMING)}")
    if len(rows) == 1:
        return {k: rows[0][k] for k in TIMING}
    merged = {k: sum(r[k] for r in rows) for k in TIMING if k not in ("bound_by", "gemm_utilization")}
    cycles = sum(r["cycles"] for r in rows)
    merged["gemm_utilization"] = sum(r["gemm_utilization"] * r["cycles"] for r in rows) / cycles if cycles else 0.0
    merged["bound_by"] = max(("load", "compute", "store", "fetch"), key=lambda m: merged[f"{m}_busy_cycles"])
    return {k: merged[k] for k in TIMING}


def _timing_of(res) -> dict:
    """Plain Python values (the journal is JSON) of a run's timing fields."""
    row = getattr(res, "timing_row", None)
    row = {k: row[k] for k in TIMING} if row is not None else timing_columns(getattr(res, "timing", None) or [])
    return {k: str(v) if k == "bound_by" else float(v) if k == "gemm_utilization" else int(v) for k, v in row.items()}


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


def _env(hw) -> "hwconfigs.Env":
    cfg = hw if isinstance(hw, hwconfigs.HwConfig) else hwconfigs.HwConfig.from_dict(dict(hw))
    return hwconfigs.get_env(cfg)


@functools.lru_cache(maxsize=1)
def _fast_count():
    """``dse.fastcount.count_candidate`` (the count path of the search), or None without it."""
    try:
        from .fastcount import count_candidate
    except ImportError:
        return None
    return count_candidate


def _compile_error_types():
    import compiler

    return (getattr(compiler, "CompileError", ValueError),)


class SimulatorEvaluator:
    """Evaluates candidates with ``compiler.workloads`` and ``simulator.run``; the cycle model
    gives the latency (``res.cycles``; the timing model of ``simulator.timing`` when the run
    result does not carry cycles)."""

    # Cache keys carry the evaluator's name: it names the code that measures (dse._identity), and
    # measurements are shared between studies through the user's cache folder.
    shares_cache = True

    @property
    def name(self) -> str:
        from ._identity import code_identity

        return "simulator-" + code_identity("compiler", "simulator", "hwconfigs", "dse.evaluate",
                                            "dse.fastcount")[:16]
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
        return dict(_workloads_module().knob_space(_layer(workload.op, workload.params), _env(hw)))

    def seed_knobs(self, workload, hw) -> list[dict]:
        """Knob sets every schedule search on ``hw`` starts from: upstream's TopHub schedules for
        this layer and geometry (if TopHub tuned it), then AutoTVM's fallback."""
        workloads = _workloads_module()
        layer, env = _layer(workload.op, workload.params), _env(hw)
        return [*workloads.tophub_knobs(layer, env), workloads.fallback_knobs(layer, env)]

    def baseline_knobs(self, workload, hw) -> dict | None:
        """Upstream's tuned schedule of the layer on ``hw``'s geometry: TopHub's (its first record),
        or None where TopHub never tuned the layer."""
        found = _workloads_module().tophub_knobs(_layer(workload.op, workload.params), _env(hw))
        return found[0] if found else None

    def buffer_demand(self, workload, hw, knobs) -> dict:
        """Bytes of the inp, wgt and acc buffers a legal knob set's tiles need on ``hw``'s
        geometry (the static check refuses it on buffers smaller than any of them)."""
        env = _env(hw)
        need = _workloads_module().buffer_demand(_layer(workload.op, workload.params), env, knobs)
        return {"inp": need["inp"] * env.INP_ELEM_BYTES, "wgt": need["wgt"] * env.WGT_ELEM_BYTES,
                "acc": need["acc"] * env.ACC_ELEM_BYTES}

    def static_check(self, workload, hw, knobs) -> str | None:
        try:
            _workloads_module().check_knobs(_layer(workload.op, workload.params), _env(hw), knobs)
        except _compile_error_types() as exc:
            return str(exc)
        return None

    # ---- worker side ---------------------------------------------------------------------
    def evaluate(self, task: Task) -> dict:
        _check_counter_names()
        import simulator

        workloads = _workloads_module()
        compile_errors = _compile_error_types()
        try:
            env = _env(task.hw)
        except hwconfigs.ConfigError as exc:
            return measurement("infeasible", str(exc))
        layer = _layer(task.workload.op, task.workload.params)
        knobs = task.knob_dict
        t0 = time.perf_counter()
        try:
            workloads.check_knobs(layer, env, knobs)
        except compile_errors as exc:
            return measurement("infeasible", str(exc))
        count_candidate = _fast_count()
        if task.mode == "count" and count_candidate is not None:
            # The search's count path: counters, cycles and footprint equal to build + a count-only
            # run (tests/dse/test_fastcount.py); verify re-runs reported candidates on the general path.
            try:
                res = count_candidate(layer, env, knobs)
            except compile_errors as exc:
                return measurement("compile_error", str(exc), compile_s=time.perf_counter() - t0)
            except Exception as exc:
                return measurement("run_error", f"{type(exc).__name__}: {exc}", compile_s=time.perf_counter() - t0)
            return measurement("ok", "", **{c: int(res.stats[c]) for c in COUNTERS}, cycles=int(res.cycles),
                               latency_s=float(res.seconds), **_timing_of(res), correct=None,
                               compile_s=time.perf_counter() - t0, sim_s=0.0)
        try:
            mod = workloads.build(layer, env=env, knobs=knobs)
        except compile_errors as exc:
            return measurement("compile_error", str(exc), compile_s=time.perf_counter() - t0)
        except Exception as exc:   # a compiler bug is this candidate's failure, not the study's
            return measurement("compile_error", f"{type(exc).__name__}: {exc}", compile_s=time.perf_counter() - t0)
        compile_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        correct = None
        try:
            if task.mode == "full":
                inputs = workloads.random_inputs(layer, env, task.seed, knobs)
                expected = workloads.reference(layer, *inputs, env=env)
                out = workloads.empty_output(layer, env)
                res = simulator.run(mod, *inputs, out)
                correct = bool(np.array_equal(out, expected))
            else:
                res = simulator.run(mod, count_only=True)
            cycles, seconds = res.cycles, res.seconds
        except Exception as exc:
            return measurement("run_error", f"{type(exc).__name__}: {exc}", compile_s=compile_s,
                               sim_s=time.perf_counter() - t1)
        sim_s = time.perf_counter() - t1
        status, error = "ok", ""
        if correct is False:
            status, error = "mismatch", "simulator output differs from the numpy reference"
        return measurement(status, error, **{c: int(res.stats[c]) for c in COUNTERS}, cycles=int(cycles),
                           latency_s=float(seconds), **_timing_of(res), correct=correct, compile_s=compile_s,
                           sim_s=sim_s)

