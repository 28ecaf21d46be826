"""How close the co-design answer is to exhaustion.

1. Per layer (ResNet-18's layers on the Pynq configuration): the best schedule of the default
   table search (the driver's own ``LayerSearch``, warm-started with TopHub's schedule and the
   fallback, ``--depth`` candidates, TPE) against the exhaustive optimum over every legal knob set.
   Goal: within 2 %.
2. A study's Pareto front (latency x BRAM) against the front computed by exhaustion: every
   hardware point of the space scored with every legal schedule of every layer. Goal: identical.
   Run on ``--study`` (a study file, e.g. ``studies/default.toml``; default: a two-geometry
   ResNet-18 tail on a Pynq: C9, C10, C11 and R4, so the exhaustive side takes minutes, not
   hours, with ``--depth`` schedules per table and ``[schedule] exhaustive_up_to =
   --exhaustive-up-to``: 0 measures the sampled table search alone).

Candidates are counted with ``dse.fastcount.count_candidate`` where it exists (the search's own
count path; it equals the general path), else ``workloads.build`` + ``simulator.run(count_only)``.

    python benchmarks/codesign_quality.py [--layers C9,C10,C11] [--depth 40] [--skip-front]
        [--study FILE | --exhaustive-up-to N]
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import hwconfigs  # noqa: E402
import simulator  # noqa: E402
from compiler import CompileError, workloads  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FRONT_STUDY = """
[study]
name = "codesign-quality"
base = "pynq"
sampler = "grid"
seed = 0
n_trials = 1000
verify = "none"
[objectives]
latency = "minimize"
bram = "minimize"
[hardware]
LOG_BLOCK = [3, 4]
LOG_INP_BUFF_SIZE = { low = 13, high = 15 }
LOG_ACC_BUFF_SIZE = { low = 15, high = 17 }
[schedule]
sampler = "tpe"
trials_per_layer = DEPTH
exhaustive_up_to = EXHAUSTIVE
[constraints]
board = "pynq"
[[workloads]]
op = "resnet18"
layers = ["C9", "C10", "C11", "R4"]
"""


def count_latency():
    """(layer, env, knobs) -> seconds, or None where the compiler refuses the knobs."""
    try:
        from dse.fastcount import count_candidate
    except ImportError:
        count_candidate = None

    def latency(layer, env, knobs):
        try:
            if count_candidate is not None:
                return count_candidate(layer, env, knobs).seconds
            return simulator.run(workloads.build(layer, env=env, knobs=knobs), count_only=True).seconds
        except CompileError:
            return None
    return latency, "fast count path" if count_candidate is not None else "general path"


def legal_knob_sets(layer, env):
    space = workloads.knob_space(layer, env)
    names = list(space)
    for combo in itertools.product(*space.values()):
        knobs = dict(zip(names, combo))
        try:
            workloads.check_knobs(layer, env, knobs)
        except CompileError:
            continue
        yield knobs


def exhaustive(layer, env, latency, table=None):
    """{knob text: latency} of every knob set legal on ``env`` (added to ``table``, which answers
    the ones it already holds)."""
    table = {} if table is None else table
    for knobs in legal_knob_sets(layer, env):
        text = json.dumps(knobs, sort_keys=True)
        if text not in table:
            table[text] = latency(layer, env, knobs)
    return table


def table_search(layer, env, latency, depth, seed=0):
    """The driver's table search of one layer: (best latency, candidates evaluated)."""
    from dse._inner import LayerSearch
    from dse._study import Workload
    from dse.evaluate import SimulatorEvaluator

    ev = SimulatorEvaluator()
    hw = env.cfg
    workload = Workload(layer.name, "resnet18_layer", (("batch", layer.batch), ("layer", layer.name)), layer.count)
    search = LayerSearch(workloads.knob_space(layer, env), depth, "tpe", seed,
                         lambda k: ev.static_check(workload, hw, k), seeds=ev.seed_knobs(workload, hw))
    best, evaluated = None, 0
    while (proposal := search.next()) is not None:
        if proposal.rejected is not None:
            continue
        value = latency(layer, env, proposal.knobs)
        evaluated += 1
        search.report(proposal, value)
        if value is not None and (best is None or value < best):
            best = value
    return best, evaluated


def per_layer(names, depth, latency):
    env = hwconfigs.get_env("pynq")
    layers = workloads.resnet18(residual_adds=True)
    print(f"1. table search (depth {depth}, TPE, TopHub + fallback first) vs exhaustive optimum, pynq")
    print(f"{'layer':<6} {'legal':>7} {'exhaustive s':>12} {'optimum ms':>10} {'search ms':>10} {'gap':>7} "
          f"{'TopHub ms':>9}")
    gaps = []
    for name in names:
        layer = layers[name]
        t0 = time.perf_counter()
        table = exhaustive(layer, env, latency)
        t_ex = time.perf_counter() - t0
        optimum = min(v for v in table.values() if v is not None)
        found, _ = table_search(layer, env, latency, depth)
        tophub = workloads.tophub_knobs(layer, env)
        upstream = latency(layer, env, tophub[0]) if tophub else None
        gap = found / optimum - 1
        gaps.append(gap)
        print(f"{name:<6} {len(table):>7} {t_ex:>12.1f} {optimum * 1e3:>10.4f} {found * 1e3:>10.4f} "
              f"{gap * 100:>6.2f}% {upstream * 1e3 if upstream else float('nan'):>9.4f}", flush=True)
    print(f"   worst gap {max(gaps) * 100:.2f}% (goal <= 2%)")


def exhaustive_front(spec, evaluator, latency):
    """{hardware point: (latency, bram)} of every feasible point, every layer at its exhaustive best."""
    from dse._driver import BUFFER_KEYS, table_hws
    from dse._samplers import static_check

    workloads_ = evaluator.resolve(spec.workloads)
    names = [k.name for k in spec.hardware]
    tables: dict = {}
    points = {}
    for values in itertools.product(*(k.values for k in spec.hardware)):
        params = dict(zip(names, values))
        check = static_check(spec, params)
        if check.reason:
            continue
        env = hwconfigs.get_env(check.hw)
        geometry = tuple(sorted((k, v) for k, v in check.hw.to_dict().items() if k not in BUFFER_KEYS))
        total = 0.0
        for w in workloads_:
            key = (geometry, w.name)
            if key not in tables:
                # every knob set legal on any buffer combination of the geometry: those of the
                # combinations no other buildable one exceeds (fitting is monotone in each buffer)
                layer = evaluator_layer(w)
                found: dict = {}
                for big in table_hws(spec, check.hw):
                    exhaustive(layer, hwconfigs.get_env(big), latency, found)
                tables[key] = sorted(((lat, json.loads(text)) for text, lat in found.items() if lat is not None),
                                     key=lambda item: item[0])
            layer = evaluator_layer(w)
            best = next((lat for lat, k in tables[key] if _fits(layer, env, k)), None)
            if best is None:
                total = None
                break
            total += w.count * best
        if total is not None:
            points[values] = (total, check.resources["bram"])
    return points


def evaluator_layer(workload):
    from dse.evaluate import _layer
    return _layer(workload.op, workload.params)


def _fits(layer, env, knobs):
    try:
        workloads.check_knobs(layer, env, knobs)
        return True
    except CompileError:
        return False


def pareto(points):
    return sorted(p for p, (lat, bram) in points.items()
                  if not any((l2 <= lat and b2 <= bram) and (l2, b2) != (lat, bram) for l2, b2 in points.values()))


def front_check(depth, latency, keep=None, study=None, exhaustive_up_to=0):
    from dse import load_study
    from dse._driver import RunOptions, run_study
    from dse.evaluate import SimulatorEvaluator
    import pandas as pd

    ev = SimulatorEvaluator()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = keep or tmp
        Path(tmp).mkdir(parents=True, exist_ok=True)
        path = Path(tmp) / "study.toml"
        path.write_text(Path(study).read_text() if study else
                        FRONT_STUDY.replace("DEPTH", str(depth)).replace("EXHAUSTIVE", str(exhaustive_up_to)))
        spec = load_study(path, ev.ops)
        t0 = time.perf_counter()
        run_study(spec, ev, RunOptions(out=Path(tmp) / "out", workers=2, progress=False))
        t_study = time.perf_counter() - t0
        trials = pd.read_parquet(Path(tmp) / "out" / "trials.parquet")
    names = [k.name for k in spec.hardware]
    ok = trials[trials["feasible"] == True]  # noqa: E712
    found = {tuple(int(r[n]) for n in names): (float(r["latency_s"]), float(r["bram"])) for _, r in ok.iterrows()}
    t0 = time.perf_counter()
    truth = exhaustive_front(spec, ev, latency)
    t_ex = time.perf_counter() - t0
    f_found, f_truth = pareto(found), pareto(truth)
    what = study or (f"ResNet-18 C9-C11 + R4, trials_per_layer {depth}, exhaustive_up_to {exhaustive_up_to}")
    print(f"2. study front vs exhaustive front on {what} ({len(truth)} feasible points; study {t_study:.0f} s, "
          f"exhaustion {t_ex:.0f} s)")
    print(f"   study front      {[(p, round(found[p][0] * 1e3, 4)) for p in f_found]}")
    print(f"   exhaustive front {[(p, round(truth[p][0] * 1e3, 4)) for p in f_truth]}")
    same = f_found == f_truth and all(abs(found[p][0] - truth[p][0]) <= 1e-12 for p in f_truth)
    worst = max(found[p][0] / truth[p][0] - 1 for p in truth if p in found)
    print(f"   identical: {same}; worst point latency gap {worst * 100:.2f}% (goal: identical)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", default="C9,C10,C11")
    ap.add_argument("--depth", type=int, default=40, help="candidates per table search (the study's trials_per_layer)")
    ap.add_argument("--skip-front", action="store_true")
    ap.add_argument("--keep", help="keep the study's output folder here")
    ap.add_argument("--study", help="the study file whose front to check (default: the built-in ResNet-18 tail)")
    ap.add_argument("--exhaustive-up-to", type=int, default=0,
                    help="the built-in study's [schedule] exhaustive_up_to (0: sampled tables only)")
    args = ap.parse_args(argv)
    latency, how = count_latency()
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"counting with the {how}")
    t0 = time.perf_counter()
    per_layer(args.layers.split(","), args.depth, latency)
    if not args.skip_front:
        front_check(args.depth, latency, args.keep, args.study, args.exhaustive_up_to)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
