"""``vta-dse compile`` / ``vta-dse simulate``: one candidate (layer, hardware, knobs) by hand.

The layer is named as a study names a workload (``--op conv2d --param height=14 ...``), or taken
from a study file (``--study FILE --workload NAME``) or a finished run (``--run DIR --workload
NAME``: its chosen hardware and schedule unless overridden). ``compile`` prints the lowered IR and
the disassembly of every program; ``simulate`` runs it (count-only, or bit-exact against numpy
with ``--full``) and prints the seven counters, the cycles and the cycle model's breakdown.

Exit status: 0 done; 1 the candidate itself fails (knobs refused, compile or run error, output
mismatch); 2 bad input (unknown op or parameter, bad JSON, unknown hardware key).

Like ``demo``, it imports compiler and simulator (lazily): a tool over one candidate, not the search.
"""
from __future__ import annotations

import json
from pathlib import Path

from ._study import StudyError

EXIT_CANDIDATE_FAILED = 1


class CandidateFailed(Exception):
    """The candidate was understood but does not compile or run (exit status 1)."""


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def _pairs(items, what: str) -> dict:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise StudyError(f"{what} {item!r}: expected KEY=VALUE")
        out[key.strip()] = _value(value.strip())
    return out


def _knobs(text: str | None):
    if text is None:
        return None
    source = text
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            raise StudyError(f"--knobs {source}: cannot read it ({exc.strerror})") from None
    try:
        knobs = json.loads(text)
    except ValueError as exc:
        raise StudyError(f"--knobs {source!r}: not JSON ({exc})") from None
    if not isinstance(knobs, dict):
        raise StudyError(f"--knobs must be a JSON object of knob name to value, got {type(knobs).__name__}")
    return knobs


def resolve_candidate(args):
    """(workload name, layer, HwConfig, knobs or None) of the command line's candidate."""
    import compiler
    import hwconfigs

    from ._study import _workloads, load_study
    from .evaluate import OPS, SimulatorEvaluator, _layer

    evaluator = SimulatorEvaluator()
    sources = [s for s in ("op", "study", "run") if getattr(args, s)]
    if len(sources) != 1:
        raise StudyError("name the layer with exactly one of --op (with --param KEY=VALUE ...), "
                         "--study FILE --workload NAME or --run DIR --workload NAME")
    base, knobs = None, None
    if args.op:
        item = {"op": args.op, "name": args.op, **_pairs(args.param, "--param")}
        try:
            workloads = evaluator.resolve(list(_workloads([item], "--op", OPS)))
        except compiler.CompileError as exc:   # a layer the op library refuses (as load_study says it)
            raise StudyError(f"--op {args.op}: {exc}") from None
        if len(workloads) != 1:
            raise StudyError(f"--op {args.op} names {len(workloads)} layers ({', '.join(w.name for w in workloads)}); "
                             f"name one (e.g. --param layers='[\"{workloads[0].name}\"]')")
        workload = workloads[0]
    elif args.study:
        spec = load_study(Path(args.study), OPS, resolve=evaluator.resolve)
        workload = _pick(spec.workloads, args.workload, args.study)
        base = spec.base
    else:
        from ._export import run_workloads
        from ._report import load_run

        run = load_run(args.run)
        workload = _pick(run_workloads(run), args.workload, args.run)
        if run.best:
            base = hwconfigs.HwConfig.from_dict(run.best["config"])
            knobs = (run.best.get("schedules") or {}).get(workload.name)
        elif run.baseline:
            base = hwconfigs.HwConfig.from_dict(run.baseline["hardware"])
    if args.param and not args.op:
        raise StudyError("--param goes with --op")
    try:
        if args.hw:
            spec = args.hw
            base = hwconfigs.HwConfig.load(spec) if Path(spec).suffix == ".json" else hwconfigs.HwConfig.preset(spec)
        base = base or hwconfigs.HwConfig.preset("default")
        overrides = _pairs(args.set, "--set")
        hw = base.replace(**overrides) if overrides else base
    except hwconfigs.ConfigError as exc:
        raise StudyError(f"hardware: {exc}") from None
    except (OSError, TypeError) as exc:
        raise StudyError(f"hardware: {exc}") from None
    if args.knobs is not None:
        knobs = _knobs(args.knobs)
    return workload.name, _layer(workload.op, workload.params), hw, knobs


def _pick(workloads, name, where):
    names = [w.name for w in workloads]
    if not name:
        if len(workloads) == 1:
            return workloads[0]
        raise StudyError(f"{where} has {len(names)} workloads; choose one with --workload ({', '.join(names)})")
    for w in workloads:
        if w.name == name or w.name.endswith(f".{name}"):
            return w
    import difflib

    close = difflib.get_close_matches(name, names, n=1)
    raise StudyError(f"{where} has no workload {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                     + f"; workloads: {', '.join(names)}")


def _header(stream, name, layer, env, knobs) -> None:
    from compiler import workloads

    stream.write(f"layer {name}: {layer!r}\nhardware {env.MODEL} ({env.cfg.TARGET})\n")
    full = workloads.normalize_knobs(layer, env, knobs)
    stream.write("knobs " + json.dumps(full) + (" (AutoTVM's fallback)" if not knobs else "") + "\n")


def _build(layer, env, knobs):
    import compiler
    from compiler import workloads

    try:
        workloads.check_knobs(layer, env, knobs)
        return workloads.build(layer, env=env, knobs=knobs)
    except compiler.CompileError as exc:
        raise CandidateFailed(f"knobs refused or compile error: {exc}") from None


def _prepare(args, stream):
    """(name, layer, env, knobs, built module) of the candidate the arguments name, its header
    written to ``stream``."""
    import compiler
    import hwconfigs

    name, layer, hw, knobs = resolve_candidate(args)
    env = hwconfigs.get_env(hw)
    try:
        _header(stream, name, layer, env, knobs)
    except compiler.CompileError as exc:
        raise CandidateFailed(f"knobs refused: {exc}") from None
    return name, layer, env, knobs, _build(layer, env, knobs)


def compile_command(args, stream) -> int:
    import compiler
    from compiler import workloads

    name, layer, env, knobs, mod = _prepare(args, stream)
    s, tensors = workloads.schedule(layer, env, knobs)
    stream.write("\n== lowered IR ==\n")
    stream.write(str(compiler.lower(s, tensors)).rstrip() + "\n")
    for i, program in enumerate(mod.programs):
        stream.write(f"\n== program {i + 1} of {len(mod.programs)}: {len(program.instructions)} instructions ==\n")
        stream.write(program.disassemble() + "\n")
    return 0


def simulate_command(args, stream) -> int:
    import numpy as np

    import simulator
    from compiler import workloads

    from .evaluate import timing_columns

    name, layer, env, knobs, mod = _prepare(args, stream)
    correct = None
    try:
        if args.full:
            inputs = workloads.random_inputs(layer, env, args.seed, knobs)
            out = workloads.empty_output(layer, env)
            res = simulator.run(mod, *inputs, out)
            correct = bool(np.array_equal(out, workloads.reference(layer, *inputs, env=env)))
        else:
            res = simulator.run(mod, count_only=True)
    except Exception as exc:
        raise CandidateFailed(f"run error: {type(exc).__name__}: {exc}") from None
    t = timing_columns(res.timing)
    w = stream.write
    w(f"\nmode {'full (bit-exact, seed ' + str(args.seed) + ')' if args.full else 'count-only'}; "
      f"{len(mod.programs)} program(s), {sum(len(p.instructions) for p in mod.programs)} instructions\n")
    w("\n== counters ==\n")
    for key, value in res.stats.items():
        w(f"{key:<18} {value:>14,}\n")
    w(f"\n== cycles ==\ncycles             {res.cycles:>14,}\nlatency            {res.seconds * 1e3:>14.6g} ms "
      f"at {env.timing.clock_mhz:g} MHz\nbound by           {t['bound_by']:>14}\n"
      f"GEMM utilisation   {t['gemm_utilization'] * 100:>13.2f}%\n")
    w("\n== modules ==\nmodule        busy cycles   stall cycles   DRAM bytes\n")
    for m in ("fetch", "load", "compute", "store"):
        w(f"{m:<10} {t[f'{m}_busy_cycles']:>14,} {t[f'{m}_stall_cycles']:>14,} {t[f'dram_{m}_bytes']:>12,}\n")
    w("\ncompute busy cycles by kind: " + ", ".join(
        f"{k} {t[f'compute_{k}_cycles']:,}" for k in ("gemm", "alu", "uop_load", "acc_load", "other")) + "\n")
    if correct is not None:
        w(f"\noutput equals the numpy reference: {'yes' if correct else 'NO'}\n")
        if not correct:
            return EXIT_CANDIDATE_FAILED
    return 0
