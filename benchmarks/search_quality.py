"""Search quality of the driver on the real evaluator (compiler.workloads + simulator, count-only
mode with the cycle model):

1. Hypervolume of (latency, BRAM), both minimised, reached at equal budgets by the default
   multi-objective sampler (``tpe``) and by random search on a co-design space (hardware x every
   layer's schedule), median of 5 seeds (goal: >= 2x). Both samplers are scored against the same
   reference point, the usual one: 1.1 x the nadir of the Pareto front of all runs together (its
   worst latency and worst BRAM), which rewards what matters -- points near the front. A second,
   loose point is printed too: (1.1 x the largest feasible latency any run found, the Pynq-Z1's
   140 BRAM36 = the study's constraint), under which every feasible design counts; there the
   slow designs' big boxes dominate and the ratio tends to 1.
2. Hardware trials needed to come within 2% of the exhaustive optimum of a small space (latency
   only, every schedule of every hardware point tuned exhaustively). The optimum is computed by
   enumerating every (hardware, schedule) candidate directly on Ray workers, outside the driver;
   those measurements also seed each run's candidate cache, so the runs measure search, not
   simulation.

    python benchmarks/search_quality.py                      # ~ a few minutes on 2 cores
    python benchmarks/search_quality.py --seeds 3 --trials 16 --workers 2

Each run is a real ``run_study`` (Optuna storage, Ray, tables) in a temporary folder; one Ray
session serves all of them; a candidate cache shared across runs means a (hardware, layer,
schedule) point is simulated once. Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CODESIGN = """
[study]
name = "hv"
sampler = "{sampler}"
seed = {seed}
n_trials = {trials}
verify = "none"
[objectives]
latency = "minimize"
bram = "minimize"
[hardware]
LOG_BLOCK = [4, 5]
LOG_INP_BUFF_SIZE = {{ low = 13, high = 16 }}
LOG_WGT_BUFF_SIZE = {{ low = 15, high = 19 }}
LOG_ACC_BUFF_SIZE = {{ low = 14, high = 18 }}
[schedule]
sampler = "tpe"
trials_per_layer = {per_layer}
[constraints]
board = "pynq"
[[workloads]]
name = "fc"
op = "dense"
in_features = 256
out_features = 256
[[workloads]]
name = "conv"
op = "conv2d"
height = 14
width = 14
in_channels = 64
out_channels = 64
kernel = 3
pad = 1
"""

SMALL = """
[study]
name = "small"
sampler = "{sampler}"
seed = {seed}
n_trials = {trials}
verify = "none"
[objectives]
latency = "minimize"
[hardware]
LOG_BLOCK = [4, 5]
LOG_INP_BUFF_SIZE = [13, 14, 15]
LOG_ACC_BUFF_SIZE = [13, 15, 17]
[schedule]
sampler = "grid"
[[workloads]]
name = "fc"
op = "dense"
in_features = 128
out_features = 128
"""
BRAM_REF = 140.0   # the Pynq-Z1 (xc7z020) BRAM36 budget = the studies' constraint


def hypervolume_2d(points, ref) -> float:
    """Area dominated by ``points`` (both coordinates minimised) inside the box up to ``ref``."""
    front, best_y = [], ref[1]
    for x, y in sorted(p for p in points if p[0] < ref[0] and p[1] < ref[1]):
        if y < best_y:           # the staircase of the non-dominated points, left to right
            front.append((x, y))
            best_y = y
    return sum(((front[i + 1][0] if i + 1 < len(front) else ref[0]) - x) * (ref[1] - y)
               for i, (x, y) in enumerate(front))


class Runner:
    def __init__(self, evaluator, workers: int, tmp: Path):
        self.evaluator, self.workers, self.tmp = evaluator, workers, Path(tmp)
        self.cache = self.tmp / "shared-cache.jsonl"
        self.cache.touch()
        self.n = 0

    def run(self, template: str, **fields):
        from dse import load_study
        from dse._driver import RunOptions, run_study

        self.n += 1
        folder = self.tmp / f"run{self.n}"
        folder.mkdir()
        path = folder / "study.toml"
        path.write_text(template.format(**fields))
        spec = load_study(path, self.evaluator.ops)
        out = folder / "out"
        out.mkdir()
        shutil.copy(self.cache, out / "cache.jsonl")
        before = (out / "cache.jsonl").stat().st_size
        summary = run_study(spec, self.evaluator, RunOptions(out=out, workers=self.workers, progress=False))
        with open(out / "cache.jsonl", "rb") as src, open(self.cache, "ab") as dst:   # new measurements
            src.seek(before)
            dst.write(src.read())
        import pandas as pd
        return spec, summary, pd.read_parquet(out / "trials.parquet")


def enumerate_small(evaluator, runner: Runner, workers: int) -> tuple[float, dict, int]:
    """Every (hardware, schedule) candidate of the small space, evaluated on Ray outside the
    driver: (optimal latency, its hardware, candidates). Seeds the shared cache."""
    import ray

    from dse import load_study
    from dse._protocol import make_task

    path = runner.tmp / "small.toml"
    path.write_text(SMALL.format(sampler="grid", seed=0, trials=1))
    spec = load_study(path, evaluator.ops)
    (workload,) = evaluator.resolve(spec.workloads)
    tasks = []
    for values in itertools.product(*(k.values for k in spec.hardware)):
        params = {k.name: v for k, v in zip(spec.hardware, values)}
        try:
            hw = spec.hw_config(params)
        except Exception:
            continue
        space = evaluator.knob_space(workload, hw)
        names = sorted(space)
        for picks in itertools.product(*(space[n] for n in names)):
            knobs = dict(zip(names, picks))
            if evaluator.static_check(workload, hw, knobs) is None:
                tasks.append((params, make_task(hw, workload, knobs)))
    remote = ray.remote(num_cpus=1)(lambda ev, chunk: [ev.evaluate(t) for t in chunk])
    ev_ref = ray.put(evaluator)
    size = max(1, len(tasks) // (8 * workers))
    chunks = [tasks[i:i + size] for i in range(0, len(tasks), size)]
    results = [m for chunk in ray.get([remote.remote(ev_ref, [t for _, t in c]) for c in chunks]) for m in chunk]
    per_hw: dict = {}
    with open(runner.cache, "a") as f:
        for (params, task), m in zip(tasks, results):
            f.write(json.dumps({"key": task.key(evaluator.name), "m": m}) + "\n")
            if m["status"] == "ok":
                key = tuple(sorted(params.items()))
                per_hw[key] = min(per_hw.get(key, math.inf), m["latency_s"])
    best_key = min(per_hw, key=per_hw.get)
    return per_hw[best_key], dict(best_key), len(tasks), per_hw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--trials", type=int, default=24, help="hardware trials per co-design run (the budget)")
    ap.add_argument("--per-layer", type=int, default=6, help="schedule candidates per layer and hardware trial")
    ap.add_argument("--small-budget", type=int, default=18, help="trials per run on the small space (<= its size)")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--skip-hv", action="store_true")
    ap.add_argument("--skip-small", action="store_true")
    args = ap.parse_args()
    import ray

    from dse.evaluate import SimulatorEvaluator

    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    from dse._executor import quiet_auth_banner
    with quiet_auth_banner():
        ray.init(address="local", num_cpus=args.workers, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})
    evaluator = SimulatorEvaluator()
    seeds = list(range(args.seeds))
    t_all = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(evaluator, args.workers, Path(tmp))
        if not args.skip_hv:
            t0 = time.monotonic()
            fronts = {}
            for sampler in ("tpe", "random"):
                for seed in seeds:
                    _, _, trials = runner.run(CODESIGN, sampler=sampler, seed=seed, trials=args.trials,
                                              per_layer=args.per_layer)
                    ok = trials[(trials["state"] == "COMPLETE") & (trials["feasible"] == True)]  # noqa: E712
                    fronts[sampler, seed] = [(float(r.value_latency), float(r.value_bram)) for r in ok.itertuples()]
            print(f"\n== hypervolume (latency x BRAM), co-design of dense 256x256 + conv 14x14x64x64, "
                  f"{args.trials} hardware trials x {args.per_layer} schedules/layer, {len(seeds)} seeds "
                  f"[{time.monotonic() - t0:.0f} s]")
            union = [p for pts in fronts.values() for p in pts]
            front = [p for p in union if not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in union)]
            refs = {"nadir of the joint front x 1.1": (1.1 * max(x for x, _ in front), 1.1 * max(y for _, y in front)),
                    "loose: 1.1 x worst feasible latency, Pynq BRAM": (1.1 * max(x for x, _ in union), BRAM_REF)}
            for label, ref in refs.items():
                hv = {key: hypervolume_2d(pts, ref) for key, pts in fronts.items()}
                med = {s: statistics.median(hv[s, seed] for seed in seeds) for s in ("tpe", "random")}
                print(f"reference point ({label}): latency {ref[0] * 1e3:.4f} ms, BRAM {ref[1]:g}")
                for s in ("tpe", "random"):
                    per_seed = ", ".join(f"{hv[s, seed] * 1e3:.4g}" for seed in seeds)
                    feas = statistics.median(len(fronts[s, seed]) for seed in seeds)
                    print(f"  {s:6s}: median HV {med[s] * 1e3:.4g} ms*BRAM  (per seed: {per_seed}; "
                          f"median {feas:g} feasible trials of {args.trials})")
                ratio = med["tpe"] / med["random"] if med["random"] else math.inf
                print(f"  tpe / random (medians): {ratio:.2f}x  (goal >= 2x); per seed: "
                      + ", ".join(f"{hv['tpe', s] / hv['random', s]:.2f}" if hv["random", s] else "inf"
                                  for s in seeds))
        if not args.skip_small:
            t0 = time.monotonic()
            best, best_hw, n, per_hw = enumerate_small(evaluator, runner, args.workers)
            near = sum(1 for v in per_hw.values() if v <= 1.02 * best)
            print(f"\n== trials to within 2% of the exhaustive optimum: dense 128x128, 18 hardware points x "
                  f"every schedule ({n} candidates enumerated) [{time.monotonic() - t0:.0f} s to enumerate]")
            print(f"exhaustive optimum: {best * 1e3:.5f} ms at {best_hw}; {near} of the {len(per_hw)} feasible "
                  f"hardware points are within 2% of it (random search needs {len(per_hw) / near:.1f} trials on "
                  f"average)")
            for sampler in ("tpe", "random"):
                needed = []
                for seed in seeds:
                    _, _, trials = runner.run(SMALL, sampler=sampler, seed=seed, trials=args.small_budget)
                    ok = trials[trials["state"] == "COMPLETE"].sort_values("trial")
                    hit = [int(r.trial) + 1 for r in ok.itertuples()
                           if r.feasible and float(r.value_latency) <= 1.02 * best]
                    needed.append(min(hit) if hit else None)
                    if ok["value_latency"].min() < best * (1 - 1e-12):
                        print(f"  !! {sampler} seed {seed} found {ok['value_latency'].min()} below the enumerated "
                              f"optimum")
                got = [x for x in needed if x is not None]
                med = statistics.median(got) if len(got) == len(needed) else None
                shown = ", ".join("-" if x is None else str(x) for x in needed)
                print(f"  {sampler:6s}: median {med if med is not None else 'not reached by every seed'} trials "
                      f"(per seed: {shown}; budget {args.small_budget})")
            print(f"  (the driver's grid sampler needs at most {18} trials and finds it exactly)")
    ray.shutdown()
    print(f"\ntotal {time.monotonic() - t_all:.0f} s")


if __name__ == "__main__":
    main()
