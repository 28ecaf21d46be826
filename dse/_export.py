"""``vta-dse export DIR --format tophub``: the chosen schedules as AutoTVM log records.

One JSON line per layer that has an upstream AutoTVM template (``conv2d_packed.vta``,
``dense_packed.vta``), in the log format v0.2 upstream AutoTVM writes and TopHub ships
(``tophub/vta_v0.10.log``):

    {"input": [TARGET, TASK, ARGS, {}], "config": {"index": I, "code_hash": null, "entity": [...]},
     "result": [[SECONDS], 0, COST, TIMESTAMP], "version": 0.2, "tvm_version": "0.7.dev0"}

``TARGET`` names the bitstream (``-model={TARGET}_{BATCH}x{BLOCK}_i8w8a32_{LOG_UOP}_...``) as
upstream's ``pkg_config`` does, so ``autotvm.apply_history_best(file)`` picks a record only for
the chosen hardware. A split is written ``[outer, inner]`` (TopHub's form; AutoTVM reads ``-1``
too); ``index`` is the knob set's position in AutoTVM's ConfigSpace (knobs in template order, each
a mixed-radix digit). The result is our cycle model's latency for one run. Lines starting with
``#`` carry what a reader should know (AutoTVM's ``load_from_file`` skips them): knobs of ours
that the upstream template does not have, where the chosen value is not upstream's behaviour.

Like ``demo`` and ``evaluate``, a command-line tool over single candidates: it imports the op
library (lazily), which the search side of ``dse`` never does.
"""
from __future__ import annotations

import json
from pathlib import Path

from ._study import StudyError

LOG_VERSION = 0.2
TVM_VERSION = "0.7.dev0"          # as TopHub's VTA log
UPSTREAM_ORDER = {"conv2d": ("tile_b", "tile_h", "tile_w", "tile_ci", "tile_co", "oc_nthread", "h_nthread"),
                  "dense": ("tile_b", "tile_ci", "tile_co", "oc_nthread")}


def target_string(env) -> str:
    return f"ext_dev -device=vta -keys=cpu -model={env.MODEL}"


def task_of(layer, env) -> tuple[str, list] | None:
    """(task name, serialized task args) of upstream's template for the layer, None without one."""
    from compiler import workloads

    if isinstance(layer, (workloads.Conv2D, workloads.GroupConv2D, workloads.Conv2DTranspose)):
        groups = getattr(layer, "groups", 1)
        data = [layer.batch // env.BATCH, layer.in_channels // env.BLOCK_IN, layer.height, layer.width,
                env.BATCH, env.BLOCK_IN]
        kernel = [layer.out_channels // env.BLOCK_OUT, layer.in_channels // groups // env.BLOCK_IN, layer.kernel,
                  layer.kernel, env.BLOCK_OUT, env.BLOCK_IN]
        tensors = [["TENSOR", data, env.inp_dtype], ["TENSOR", kernel, env.wgt_dtype]]
        strides, pads = [layer.stride, layer.stride], [layer.pad] * 4
        if isinstance(layer, workloads.GroupConv2D):   # upstream's argument order per template
            return "group_conv2d_packed.vta", tensors + [strides, pads, [1, 1], groups, env.acc_dtype]
        if isinstance(layer, workloads.Conv2DTranspose):
            return "conv2d_transpose_packed.vta", tensors + [strides, pads, env.acc_dtype,
                                                             [layer.output_padding] * 2]
        return "conv2d_packed.vta", tensors + [strides, pads, [1, 1], f"NCHW{env.BATCH}n{env.BLOCK_IN}c",
                                               env.acc_dtype]
    if isinstance(layer, workloads.Dense):
        data = [layer.batch // env.BATCH, layer.in_features // env.BLOCK_IN, env.BATCH, env.BLOCK_IN]
        weight = [layer.out_features // env.BLOCK_OUT, layer.in_features // env.BLOCK_IN, env.BLOCK_OUT, env.BLOCK_IN]
        return "dense_packed.vta", [["TENSOR", data, env.inp_dtype], ["TENSOR", weight, env.wgt_dtype], None,
                                    env.acc_dtype]
    return None


def record(layer, env, knobs: dict, seconds: float, timestamp: float) -> tuple[str, list[str]]:
    """(the log line, notes) of one layer's knob set."""
    from compiler import workloads

    name, args = task_of(layer, env)
    kind = "dense" if name.startswith("dense") else "conv2d"
    space = workloads.knob_space(layer, env)
    full = workloads.normalize_knobs(layer, env, knobs)
    entity, index, radix = [], 0, 1
    for knob in UPSTREAM_ORDER[kind]:
        value = full.get(knob, knobs.get(knob))
        values = space[knob]
        if knob.startswith("tile_"):
            value = list(value)
            entity.append([knob, "sp", value])
        else:
            value = int(value)
            entity.append([knob, "ot", value])
        index += values.index(value) * radix
        radix *= len(values)
    notes = []
    from compiler.workloads._knobs import extra_knobs

    for knob, values in extra_knobs(layer).items():
        chosen = full.get(knob, values[0])
        if chosen != values[0]:
            notes.append(f"{knob} = {chosen!r} (upstream's template does {values[0]!r})")
    line = {"input": [target_string(env), name, args, {}],
            "config": {"index": index, "code_hash": None, "entity": entity},
            "result": [[float(seconds)], 0, 0.0, float(timestamp)],
            "version": LOG_VERSION, "tvm_version": TVM_VERSION}
    return json.dumps(line), notes


def run_workloads(run) -> list:
    """The run's layers (``study.json``'s workloads, resolved by the simulator evaluator: a
    ``resnet18`` entry of an older run becomes its layers), as ``dse.Workload``s."""
    from ._study import Workload
    from .evaluate import SimulatorEvaluator

    listed = [Workload(w["name"], w["op"], tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                                                        for k, v in w["params"].items())), w.get("count", 1))
              for w in run.meta.get("workloads") or []]
    if not listed:
        raise StudyError(f"{run.out}/study.json does not list the study's workloads (a run of an older vta-dse); "
                         f"rerun `vta-dse run` on it to rewrite its outputs")
    if all(w.op != "resnet18" for w in listed):
        return listed
    return SimulatorEvaluator().resolve(listed)


def export_tophub(out) -> tuple[list[str], list[str]]:
    """(lines of the log file, warnings) for a run folder's chosen configuration."""
    import hwconfigs

    from .evaluate import _layer
    from ._report import load_run

    run = load_run(out)
    if not run.best:
        raise NoChoice(f"{out}: no feasible configuration was chosen (no best.json): nothing to export")
    workloads = {w.name: w for w in run_workloads(run)}
    env = hwconfigs.get_env(hwconfigs.HwConfig.from_dict(run.best["config"]))
    latency = {l["workload"]: l.get("latency_s") for l in _chosen_rows(run)}
    stamp = (Path(out) / "best.json").stat().st_mtime
    lines = [f"# vta-dse export: study {run.meta.get('study')!r}, chosen trial {run.best['trial']}, "
             f"hardware {env.MODEL}; AutoTVM log format v{LOG_VERSION}; results are the cycle model's seconds"]
    warnings = []
    for name, knobs in run.best["schedules"].items():
        w = workloads.get(name)
        if w is None:
            warnings.append(f"{name}: not among study.json's workloads; skipped")
            continue
        layer = _layer(w.op, w.params)
        if task_of(layer, env) is None:
            warnings.append(f"{name}: {type(layer).__name__} has no upstream AutoTVM template; skipped")
            continue
        line, notes = record(layer, env, knobs, latency.get(name) or 0.0, stamp)
        if notes:
            text = f"{name}: upstream applies this record without our knobs " + ", ".join(notes)
            lines.append(f"# {text}")
            warnings.append(text)
        lines.append(line)
    return lines, warnings


def _chosen_rows(run) -> list[dict]:
    from ._report import chosen_layers

    return chosen_layers(run)


class NoChoice(StudyError):
    """The run chose nothing (no feasible configuration)."""
