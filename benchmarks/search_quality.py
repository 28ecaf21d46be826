"""Search quality of the driver on the real evaluator (compiler.workloads + simulator, count-only
mode with the cycle model): the default sampler (``tpe``) against random search.

1. Hypervolume of (latency, BRAM), both minimised, at equal budgets, median of 5 seeds (goal:
   >= 2x). The space is the one ``studies/resnet18_codesign.toml`` sweeps for a Pynq-Z1:
   LOG_BATCH {0,1} x LOG_BLOCK {3,4,5} x LOG_INP_BUFF_SIZE 13-17 x LOG_WGT_BUFF_SIZE 15-19 x
   LOG_ACC_BUFF_SIZE 14-18 (750 points) within the board's BRAM/DSP/LUT, for two ResNet-18 layers
   as VTA offloads them: C5 (28x28x128, 3x3, activation-heavy) and C11 (7x7x512, 3x3, 2.4 MB of
   weights), the repeated 3x3 convolutions of the conv3_x and conv5_x stages (x3 each in the
   network), 4 schedules tuned per layer and hardware trial, 20 hardware trials. Most of the space
   is infeasible, as in any real sweep: 202 points cannot be built (the GEMM instruction's fields
   overflow), 374 exceed the board (LOG_BLOCK 5, or a 2x16 core, needs more than its 220 DSPs),
   and of the 174 left the 62 with LOG_BATCH 1 cannot run a batch-1 network. A candidate is
   stopped after 5 s (``candidate_timeout``): such schedules (tiny tiles, 10-100x slower than the
   layer's best) took half the time otherwise. Reference points, both printed, both from the tpe
   and random runs only:
   - nadir rule (the headline): 1.1 x the nadir of the Pareto front of all tpe and random runs
     together (its worst latency and worst BRAM), which scores points near the front;
   - fixed rule: (1.1 x the largest feasible latency any run found, the board's 140 BRAM36),
     under which every feasible design counts and the slow designs' big boxes dominate.
   Besides the ratio of medians it prints each sampler's share of the joint front's hypervolume
   (the ratio cannot exceed 1 / random's share) and the trials needed to reach 50% and 75% of it.
   ``--uniform-feasible`` adds a third sampler to the real runs, uniform over the points the
   default sampler's filter accepts, without repeats (the filter without its model).
   Two spaces, both printed: ``1c`` the study's space above; ``1w`` a wide one, the space an
   architect declares who does not know the feasible region beforehand: the same layers, board
   and budget, every buffer from 1/8 to 8x the Pynq-Z1's own (LOG_UOP_BUFF_SIZE 12-18,
   LOG_INP_BUFF_SIZE 12-18, LOG_WGT_BUFF_SIZE 15-21, LOG_ACC_BUFF_SIZE 14-20: the default +-3
   in log2, the rule fixed before any run) and every GEMM shape of the same
   families (LOG_BATCH 0-2, LOG_BLOCK 3-5): 21609 points, 1425 pass the static check, 614 can
   run the layers. On the study's space random search already finds 2-8 feasible points in 20
   trials and their hypervolume is 2/3 of the joint front's, so the ratio there is capped near
   1.5x whatever the sampler; on the wide space random search mostly finds none.
   In-memory replay (``--replay-seeds``, default 40), printed before each space's real runs: the
   space is enumerated once with the real evaluator -- every point's latency is the sum over the
   layers of the best schedule, among a pool of ``--pool`` schedules per layer and GEMM shape
   simulated once each, that fits the point (see ``enumerate_codesign``) -- and the samplers
   (``dse._samplers.make_sampler`` as the driver builds it, and the uniform filter) are replayed
   on it, told the values and constraint values the driver tells. Its reference points come from
   the exhaustive front (nadir rule) and the worst feasible latency of the whole space (fixed
   rule), so its shares are of the true optimum, not of what the runs found. Its latencies are
   lower than the runs' (a pool's best instead of 4 tuned schedules) and it has no inner-search
   noise; the runs are the check that the replay's ranking holds.
2. Hardware trials needed to come within 2% of the exhaustive optimum of a small space (latency
   only): a dense layer at batch 8 (256 -> 256, an MLP layer of batched inference) on LOG_BATCH
   {0..3} x LOG_BLOCK {2..5} x LOG_INP_BUFF_SIZE 12-14 x LOG_WGT_BUFF_SIZE 13-18 x
   LOG_ACC_BUFF_SIZE 14-16 (864 points) within the Pynq's resources. 27 points are within 2% (the
   GEMM core must be 8x4x4, the whole batch in one row block, and the weight buffer hold the
   whole 64 KB layer; the input and accumulator sizes do not matter to this layer), so random
   search needs 32 trials on average. Every point's schedules are searched exhaustively
   (``[schedule] sampler = "grid"``) over the dense template's tile splits tile_ci and tile_co,
   with one batch block per tile (tile_b [-1, 1]: within 0.3% of the best tile_b on every point)
   and oc_nthread 1, load_level ci_tile, gemm_order co_outer (the best on every (BATCH, BLOCK) of
   this layer in an exhaustive check of the full template). The optimum is computed outside the driver: a
   schedule's counters and cycles depend on the hardware only through LOG_BATCH and LOG_BLOCK
   (the buffer sizes decide only whether it fits, i.e. the static check), so each distinct
   (LOG_BATCH, LOG_BLOCK, schedule) is simulated once, on Ray, and every point takes the best
   schedule that fits it; a sample of (point, schedule) pairs is then simulated on its own point
   and the comparison printed. The runs' evaluator answers from those measurements (after the
   static check on the candidate's own hardware), so the runs measure search, not simulation.
   They start without a candidate cache: with every candidate of a trial cached, the driver asks
   the next trial before telling the last one, and would ask them all before telling any.
   Five seeds of a count whose mean is 32 tell little, so the samplers are also replayed in
   memory on the enumerated optima (``--replay-seeds``, default 40): the same ``make_sampler``,
   told the values and constraints the driver tells, one trial at a time.

    python benchmarks/search_quality.py                      # both spaces, both sections
    python benchmarks/search_quality.py --workers 1 --seeds 3 --skip-small

Each run is a real ``run_study`` (Optuna storage, Ray, tables) in a temporary folder; one Ray
session serves all of them; in section 1 a candidate cache shared across runs means a
(hardware, layer, schedule) point is simulated once. Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
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
base = "pynq"
sampler = "{sampler}"
seed = {seed}
n_trials = {trials}
verify = "none"
candidate_timeout = 5
[objectives]
latency = "minimize"
bram = "minimize"
[hardware]
LOG_BATCH = [0, 1]
LOG_BLOCK = [3, 4, 5]
LOG_INP_BUFF_SIZE = {{ low = 13, high = 17 }}
LOG_WGT_BUFF_SIZE = {{ low = 15, high = 19 }}
LOG_ACC_BUFF_SIZE = {{ low = 14, high = 18 }}
[schedule]
sampler = "tpe"
trials_per_layer = {per_layer}
[constraints]
board = "pynq"
[[workloads]]
op = "resnet18"
layers = ["C5", "C11"]
"""

# The wide co-design space (see the module docstring): the same study with every buffer from 1/8 to
# 8x the Pynq-Z1's own size and the GEMM shapes an architect would try.
WIDE = CODESIGN.replace("""LOG_BATCH = [0, 1]
LOG_BLOCK = [3, 4, 5]
LOG_INP_BUFF_SIZE = {{ low = 13, high = 17 }}
LOG_WGT_BUFF_SIZE = {{ low = 15, high = 19 }}
LOG_ACC_BUFF_SIZE = {{ low = 14, high = 18 }}""", """LOG_BATCH = {{ low = 0, high = 2 }}
LOG_BLOCK = {{ low = 3, high = 5 }}
LOG_UOP_BUFF_SIZE = {{ low = 12, high = 18 }}
LOG_INP_BUFF_SIZE = {{ low = 12, high = 18 }}
LOG_WGT_BUFF_SIZE = {{ low = 15, high = 21 }}
LOG_ACC_BUFF_SIZE = {{ low = 14, high = 20 }}""")
assert WIDE != CODESIGN

SMALL = """
[study]
name = "small"
base = "pynq"
sampler = "{sampler}"
seed = {seed}
n_trials = {trials}
verify = "none"
[objectives]
latency = "minimize"
[hardware]
LOG_BATCH = [0, 1, 2, 3]
LOG_BLOCK = [2, 3, 4, 5]
LOG_INP_BUFF_SIZE = [12, 13, 14]
LOG_WGT_BUFF_SIZE = {{ low = 13, high = 18 }}
LOG_ACC_BUFF_SIZE = [14, 15, 16]
[schedule]
sampler = "grid"
[constraints]
board = "pynq"
[[workloads]]
name = "mlp"
op = "dense"
batch = 8
in_features = 256
out_features = 256
"""
SPACES = {"codesign": (CODESIGN, "ResNet-18 C5 + C11 on a Pynq-Z1, the space of studies/resnet18_codesign.toml"),
          "wide": (WIDE, "ResNet-18 C5 + C11 on a Pynq-Z1, every buffer 1/8-8x the Pynq's, LOG_BATCH 0-2, "
                         "LOG_BLOCK 3-5")}
CANDIDATE_TIMEOUT = 5.0       # the studies' candidate_timeout
# The dense template's knobs besides the tile splits, pinned for the small space (see above).
PINNED = {"oc_nthread": 1, "load_level": "ci_tile", "gemm_order": "co_outer"}
DRAW_TRIES = 2000         # uniform knob sets drawn per pool schedule before giving up
SHORTCUT_CHECKS = 40          # (hardware, schedule) pairs of the small space simulated directly
NEAR = 1.02
SHARES = (0.5, 0.75)      # of the joint front's hypervolume: 'trials to reach' figures


def hypervolume_2d(points, ref) -> float:
    """Area dominated by ``points`` (both coordinates minimised) inside the box up to ``ref``."""
    front, best_y = [], ref[1]
    for x, y in sorted(p for p in points if p[0] < ref[0] and p[1] < ref[1]):
        if y < best_y:           # the staircase of the non-dominated points, left to right
            front.append((x, y))
            best_y = y
    return sum(((front[i + 1][0] if i + 1 < len(front) else ref[0]) - x) * (ref[1] - y)
               for i, (x, y) in enumerate(front))


def _tiling_evaluator(table: dict | None = None):
    """The simulator evaluator with the dense template's non-split knobs pinned; a schedule found
    in ``table`` ((LOG_BATCH, LOG_BLOCK, knobs) -> measurement) answers from it once the static
    check passes on the candidate's own hardware (see the module docstring)."""
    from dse.evaluate import SimulatorEvaluator

    class TilingTemplate(SimulatorEvaluator):
        def __init__(self, table):
            self.table = table

        def knob_space(self, workload, hw) -> dict:
            space = super().knob_space(workload, hw)
            space["tile_b"] = [v for v in space["tile_b"] if v[1] == 1]
            return {k: ([PINNED[k]] if k in PINNED else v) for k, v in space.items()}

        def evaluate(self, task) -> dict:
            import hwconfigs
            from dse._protocol import measurement

            hw = hwconfigs.HwConfig.from_dict(task.hw_dict)
            found = self.table.get(_shared_key(hw, task.knob_dict))
            if found is None:
                return super().evaluate(task)
            reason = self.static_check(task.workload, hw, task.knob_dict)
            return measurement("infeasible", reason) if reason else dict(found)

    return TilingTemplate(table or {})


def _shared_key(hw, knobs: dict) -> tuple:
    """What a schedule's measurement depends on besides the layer: the GEMM shape and the knobs."""
    return hw.LOG_BATCH, hw.LOG_BLOCK, json.dumps(knobs, sort_keys=True)


class Runner:
    def __init__(self, workers: int, tmp: Path):
        self.workers, self.tmp = workers, Path(tmp)
        self.n = 0

    def run(self, evaluator, cache: Path | None, template: str, make_sampler=None, **fields):
        """One ``run_study`` of ``template``; its new measurements go back into ``cache`` (None: the
        run starts without one). ``make_sampler`` replaces the study file's sampler (the
        --uniform-feasible baseline)."""
        import pandas as pd

        import dse._driver as driver
        from dse import load_study

        self.n += 1
        folder = self.tmp / f"run{self.n}"
        folder.mkdir()
        path = folder / "study.toml"
        path.write_text(template.format(**fields))
        spec = load_study(path, evaluator.ops)
        out = folder / "out"
        out.mkdir()
        if cache is not None:
            shutil.copy(cache, out / "cache.jsonl")
            before = (out / "cache.jsonl").stat().st_size
        default = driver.make_sampler
        driver.make_sampler = make_sampler or default
        try:
            driver.run_study(spec, evaluator, driver.RunOptions(out=out, workers=self.workers, progress=False))
        finally:
            driver.make_sampler = default
        if cache is not None:
            with open(out / "cache.jsonl", "rb") as src, open(cache, "ab") as dst:   # new measurements
                src.seek(before)
                dst.write(src.read())
        trials = pd.read_parquet(out / "trials.parquet")
        shutil.rmtree(folder)
        return spec, trials


def _ray_map(fn, items, workers: int) -> list:
    """``[fn(x) for x in items]`` on the Ray workers, in chunks."""
    import ray

    if not items:
        return []
    remote = ray.remote(num_cpus=1)(lambda chunk: [fn(x) for x in chunk])
    size = max(1, len(items) // (8 * workers))
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    return [r for part in ray.get([remote.remote(c) for c in chunks]) for r in part]


# ---- 1. hypervolume ------------------------------------------------------------------------------

def uniform_feasible(spec, evaluator=None, workloads=None):
    """The default sampler's filter without its model: uniform over the points it would accept."""
    import optuna

    from dse._samplers import StaticFilter, schedule_check

    layers = schedule_check(evaluator, workloads) if evaluator is not None and workloads else None
    return StaticFilter(optuna.samplers.RandomSampler(seed=spec.seed), spec, n_startup=spec.n_trials + 1,
                        seed=spec.seed, schedule_check=layers)


def hypervolume_section(runner: Runner, args, seeds, space: str) -> None:
    from dse.evaluate import SimulatorEvaluator

    template, label = SPACES[space]
    evaluator = SimulatorEvaluator()
    t0 = time.monotonic()
    e = enumerate_codesign(template, evaluator, runner.tmp, args.workers, args.pool, CANDIDATE_TIMEOUT)
    print(f"\n== 1{space[0]}. hypervolume (latency x BRAM), {label}: {e['declared']} hardware points, "
          f"{e['static_ok']} pass the static check, {e['static_ok'] - e['no_space']} of them have a schedule space "
          f"for both layers, {len(e['feasible'])} feasible in the enumeration [{time.monotonic() - t0:.0f} s to "
          f"enumerate: {e['simulated']} pool schedules simulated, {e['timeouts']} timed out]")
    print(f"shortcut check: {e['check']}")
    if args.replay_seeds:
        replay_hv(e, args)
    cache = runner.tmp / f"cache-{space}.jsonl"
    cache.touch()
    samplers = {"tpe": None, "random": None}
    if args.uniform_feasible:
        samplers["uniform-feasible"] = uniform_feasible
    t0 = time.monotonic()
    fronts, order = {}, {}
    for name, make in samplers.items():
        for seed in seeds:
            _, trials = runner.run(evaluator, cache, template, make_sampler=make,
                                   sampler="random" if name == "random" else "tpe",
                                   seed=seed, trials=args.trials, per_layer=args.per_layer)
            ok = trials[(trials["state"] == "COMPLETE") & (trials["feasible"] == True)]  # noqa: E712
            ok = ok.sort_values("trial")
            fronts[name, seed] = [(float(r.value_latency), float(r.value_bram)) for r in ok.itertuples()]
            order[name, seed] = [int(r.trial) for r in ok.itertuples()]
    print(f"real runs (run_study, {args.trials} hardware trials x {args.per_layer} schedules/layer, "
          f"{len(seeds)} seeds) [{time.monotonic() - t0:.0f} s]:")
    # The reference points come from the two compared samplers only, so --uniform-feasible does not
    # move the headline figures.
    union = [p for (name, _), pts in fronts.items() if name in ("tpe", "random") for p in pts]
    if not union:
        print("no run found a feasible design")
        return
    refs = reference_points(union, "all runs' joint front", "worst feasible latency of any run")
    for label, ref in refs.items():
        hv = {key: hypervolume_2d(pts, ref) for key, pts in fronts.items()}
        med = {s: statistics.median(hv[s, seed] for seed in seeds) for s in samplers}
        best = hypervolume_2d(union, ref)     # the joint front's: the most any run could have shown
        print(f"reference point ({label}): latency {ref[0] * 1e3:.4g} ms, BRAM {ref[1]:g}; "
              f"HV of the joint front {best * 1e3:.4g} ms*BRAM")
        for s in samplers:
            per_seed = ", ".join(f"{hv[s, seed] * 1e3:.4g}" for seed in seeds)
            feas = ", ".join(str(len(fronts[s, seed])) for seed in seeds)
            print(f"  {s:16s}: median HV {med[s] * 1e3:.4g} ms*BRAM = {med[s] / best:.0%} of the joint front's "
                  f"(per seed: {per_seed}; feasible trials per seed: {feas} of {args.trials})")
        for share in SHARES:
            need = {s: [_trials_to(fronts[s, seed], order[s, seed], ref, share * best) for seed in seeds]
                    for s in samplers}
            print(f"  trials to reach {share:.0%} of the joint front's HV, median (per seed, '-' = not within "
                  f"{args.trials}): " + "; ".join(f"{s} {_median_or_more(need[s], args.trials)} ({_shown(need[s])})"
                                                  for s in samplers))
        for s in samplers:
            if s == "random":
                continue
            ratio = f"{med[s] / med['random']:.2f}x" if med["random"] else "inf (random's median HV is 0)"
            print(f"  {s} / random (medians): {ratio}  (goal >= 2x); per seed: "
                  + ", ".join(f"{hv[s, seed] / hv['random', seed]:.2f}" if hv["random", seed] else "inf"
                              for seed in seeds))


def replay_hv(e: dict, args) -> None:
    """Section 1's samplers replayed in memory on the enumeration ``e`` over ``--replay-seeds``
    seeds; the reference points come from the enumerated (exhaustive) front."""
    t0 = time.monotonic()
    pts = list(e["feasible"].values())
    if not pts:
        print("replay: no feasible point")
        return
    refs = reference_points(pts, "the exhaustive front", "the worst feasible latency")
    samplers = {"tpe": None, "random": None, "uniform-feasible": uniform_feasible}
    seeds = range(args.replay_seeds)
    found = {(s, seed): replay_codesign(e, "random" if s == "random" else "tpe", seed, args.trials, make=make)
             for s, make in samplers.items() for seed in seeds}
    print(f"replayed in memory on the enumeration ({args.replay_seeds} seeds, {args.trials} trials; the samplers "
          f"alone, told what the driver would tell them) [{time.monotonic() - t0:.0f} s]; exhaustive front: "
          + ", ".join(f"({x * 1e3:.4g} ms, {y:g})" for x, y in sorted(set(pareto_front(pts)))))
    for label, ref in refs.items():
        best = hypervolume_2d(pts, ref)
        share = {k: hypervolume_2d([(a, b) for _, a, b in v], ref) / best for k, v in found.items()}
        med = {s: statistics.median(share[s, seed] for seed in seeds) for s in samplers}
        print(f"  reference point ({label}): latency {ref[0] * 1e3:.4g} ms, BRAM {ref[1]:g}")
        for s in samplers:
            zero = sum(1 for seed in seeds if share[s, seed] == 0)
            feas = statistics.median(len(found[s, seed]) for seed in seeds)
            need = {x: _median_or_more([_trials_to([(a, b) for _, a, b in found[s, seed]],
                                                   [i for i, _, _ in found[s, seed]], ref, x * best)
                                        for seed in seeds], args.trials) for x in SHARES}
            print(f"    {s:16s}: median {med[s]:.0%} of the exhaustive front's HV, mean "
                  f"{statistics.mean(share[s, seed] for seed in seeds):.0%}, HV 0 in {zero} seeds; median "
                  f"{feas:g} feasible trials; trials to {', '.join(f'{x:.0%}' for x in SHARES)}: "
                  f"{', '.join(need[x] for x in SHARES)}")
        for s in ("tpe", "uniform-feasible"):
            ratio = f"{med[s] / med['random']:.2f}x" if med["random"] else "inf (random's median HV is 0)"
            print(f"    {s} / random (medians): {ratio}  (goal >= 2x)")


def pareto_front(points) -> list:
    """The points no other point dominates (both coordinates minimised)."""
    return [p for p in points if not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points)]


def reference_points(points, front_name: str, worst_name: str) -> dict:
    """The two reference points of the hypervolume, labelled: the nadir rule (1.1 x the nadir of
    the Pareto front of ``points``) and the fixed rule (1.1 x their worst latency, the board's BRAM)."""
    front = pareto_front(points)
    return {f"nadir rule: 1.1 x the nadir of {front_name}": (1.1 * max(x for x, _ in front),
                                                             1.1 * max(y for _, y in front)),
            f"fixed rule: 1.1 x {worst_name}, the board's 140 BRAM36": (1.1 * max(x for x, _ in points), 140.0)}


def _trials_to(points, numbers, ref, target) -> int | None:
    """Hardware trials until the feasible points found so far dominate ``target`` (None: never)."""
    for i, number in enumerate(numbers):
        if hypervolume_2d(points[:i + 1], ref) >= target:
            return number + 1
    return None


def _median_or_more(values, budget: int) -> str:
    """The median, with a value not reached counted as more than the budget."""
    ordered = sorted(values, key=lambda x: math.inf if x is None else x)
    med = ordered[len(ordered) // 2]
    return f"> {budget}" if med is None else str(med)


def _shown(values) -> str:
    return ", ".join("-" if x is None else str(x) for x in values)


# ---- 1b. the co-design space enumerated, and the samplers replayed on it ------------------------

def _shared_conv_key(workload, hw, knobs: dict) -> tuple:
    return (workload.name, *_shared_key(hw, knobs))


def enumerate_codesign(template: str, evaluator, tmp: Path, workers: int, pool: int, timeout: float) -> dict:
    """Every hardware point of a co-design space with (latency, BRAM), or why it is infeasible.

    A point's latency is the sum over the layers (times their count in the network) of the best
    schedule, among a shared pool, that passes the point's own static check. The pool of a layer
    and GEMM shape (LOG_BATCH, LOG_BLOCK) holds ``pool`` schedules, each drawn uniformly from the
    layer's knob space among those that fit one point of that shape drawn at random, so small and
    large buffers are both represented and a larger buffer can only add candidates. Each pool
    schedule is simulated once (on Ray, with the study's candidate timeout) and its measurement
    shared by every point of its shape where it fits: the buffer sizes only decide whether a
    schedule fits (as in section 2); a sample is simulated again on another point to check that."""
    from functools import partial

    from dse import load_study
    from dse._protocol import make_task
    from dse._samplers import static_check

    path = tmp / f"enum{len(list(tmp.glob('enum*')))}.toml"
    path.write_text(template.format(sampler="grid", seed=0, trials=1, per_layer=1))
    spec = load_study(path, evaluator.ops)
    workloads = evaluator.resolve(spec.workloads)
    names = [k.name for k in spec.hardware]
    rng = random.Random(0)
    points, by_shape, static_ok = {}, {}, 0      # point key -> (hw, bram); (layer, shape) -> [(key, hw, space)]
    no_space: dict = {}                          # point key -> layers without a knob space
    for values in itertools.product(*(k.values for k in spec.hardware)):
        params = dict(zip(names, values))
        check = static_check(spec, params)
        if check.reason:
            continue
        static_ok += 1
        key = _key_of(params)
        points[key] = (check.hw, check.resources["bram"])
        for w in workloads:
            try:
                space = evaluator.knob_space(w, check.hw)
            except Exception:
                no_space[key] = no_space.get(key, 0) + 1
                continue
            by_shape.setdefault((w, check.hw.LOG_BATCH, check.hw.LOG_BLOCK), []).append((key, check.hw, space))
    tasks = {}                                   # shared key -> (workload, hw, knobs)
    for (w, _, _), members in by_shape.items():
        for _ in range(pool):
            _, hw, space = rng.choice(members)
            knob_names = sorted(space)
            for _ in range(DRAW_TRIES):
                knobs = {n: rng.choice(list(space[n])) for n in knob_names}
                if evaluator.static_check(w, hw, knobs) is None:
                    tasks.setdefault(_shared_conv_key(w, hw, knobs), (w, hw, knobs))
                    break
    keys = list(tasks)
    fn = partial(_timed_eval, evaluator, timeout)
    memo = dict(zip(keys, _ray_map(fn, [make_task(tasks[k][1], tasks[k][0], tasks[k][2]) for k in keys], workers)))
    good = {}                                    # (layer, shape) -> [(latency, knobs)], fastest first
    for k, (w, hw, knobs) in tasks.items():
        if memo[k]["status"] == "ok":
            good.setdefault((w, hw.LOG_BATCH, hw.LOG_BLOCK), []).append((memo[k]["latency_s"], knobs))
    for v in good.values():
        v.sort(key=lambda x: x[0])
    total = {key: [0.0, no_space.get(key, 0)] for key in points}
    for (w, batch, block), members in by_shape.items():
        for key, hw, _ in members:
            best = next((lat for lat, knobs in good.get((w, batch, block), [])
                         if evaluator.static_check(w, hw, knobs) is None), None)
            if best is None:
                total[key][1] += 1
            else:
                total[key][0] += w.count * best
    sample = []
    for k in rng.sample(keys, min(SHORTCUT_CHECKS, len(keys))):
        w, hw, knobs = tasks[k]
        others = [h for _, h, _ in by_shape[w, hw.LOG_BATCH, hw.LOG_BLOCK]
                  if h != hw and evaluator.static_check(w, h, knobs) is None]
        if others:
            sample.append((k, w, rng.choice(others), knobs))
    direct = _ray_map(fn, [make_task(h, w, kn) for _, w, h, kn in sample], workers)
    fields = ("status", "cycles", "inp_load_nbytes", "wgt_load_nbytes", "acc_load_nbytes", "uop_load_nbytes",
              "out_store_nbytes", "gemm_counter", "alu_counter")
    same = sum(1 for (k, *_), d in zip(sample, direct)
               if all(d.get(f) == memo[k].get(f) for f in fields) or "timeout" in (d["status"], memo[k]["status"]))
    feasible = {key: (v[0], points[key][1]) for key, v in total.items() if v[1] == 0}
    return {"spec": spec, "workloads": workloads, "evaluator": evaluator, "feasible": feasible,
            "static_ok": static_ok, "no_schedule": {key: v[1] for key, v in total.items() if v[1]},
            "no_space": len(no_space), "declared": spec.hardware_grid_size(), "simulated": len(memo),
            "timeouts": sum(1 for m in memo.values() if m["status"] == "timeout"),
            "check": f"{same} of {len(sample)} pool schedules simulated again on another point of the same "
                     f"(LOG_BATCH, LOG_BLOCK) match the shared measurement (status, cycles, counters)"}


def _timed_eval(evaluator, timeout, task) -> dict:
    from dse._layer_job import evaluate_with_timeout

    return evaluate_with_timeout(evaluator, task, timeout)


def _key_of(params: dict) -> tuple:
    return tuple(sorted(params.items()))


def replay_codesign(e: dict, sampler: str, seed: int, budget: int, make=None) -> list:
    """The feasible (trial number, latency, BRAM) an in-memory study of ``sampler`` finds on the
    enumerated space ``e`` within ``budget`` trials, told what the driver tells
    (``dse._outcome``), one trial at a time."""
    import dataclasses

    import optuna

    from dse._outcome import for_study
    from dse._samplers import distributions, make_sampler, static_check
    from dse._storage import TrialStore

    spec = dataclasses.replace(e["spec"], sampler=sampler, seed=seed, n_trials=budget)
    chosen = make or make_sampler
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(directions=spec.directions, storage=storage,
                                sampler=chosen(spec, evaluator=e.get("evaluator"), workloads=e["workloads"]))
    trials = TrialStore(study, storage)
    dists, found = distributions(spec), []
    for i in range(budget):
        trial = study.ask(dists)
        key = _key_of(trial.params)
        check = static_check(spec, trial.params)
        ok = key in e["feasible"]
        if ok:
            latency, bram = e["feasible"][key]
            found.append((i, latency, bram))
        outcome = for_study(spec, buildable=check.hw is not None, overruns=check.overruns,
                            layers_without_schedule=0 if check.reason else e["no_schedule"].get(key, 0),
                            measured={"latency": latency, "bram": bram} if ok else None)
        trials.finish(trial, outcome, {})
    return found


# ---- 2. trials to within 2% ---------------------------------------------------------------------

def enumerate_small(evaluator, tmp: Path, workers: int) -> dict:
    """Every hardware point of the small space with its best schedule. Each distinct (LOG_BATCH,
    LOG_BLOCK, schedule) that fits some point is simulated once (on the first point it fits);
    a sample of (point, schedule) pairs is then simulated on its own point and compared."""
    from dse import load_study
    from dse._protocol import make_task
    from dse._samplers import static_violation

    path = tmp / "small.toml"
    path.write_text(SMALL.format(sampler="grid", seed=0, trials=1))
    spec = load_study(path, evaluator.ops)
    (workload,) = evaluator.resolve(spec.workloads)
    pairs, first, static_ok = [], {}, 0          # (params, hw, knobs); shared key -> its first task
    for values in itertools.product(*(k.values for k in spec.hardware)):
        params = {k.name: v for k, v in zip(spec.hardware, values)}
        if static_violation(spec, params) is not None:
            continue
        static_ok += 1
        hw = spec.hw_config(params)
        try:
            space = evaluator.knob_space(workload, hw)
        except Exception:
            continue
        names = sorted(space)
        for picks in itertools.product(*(space[n] for n in names)):
            knobs = dict(zip(names, picks))
            if evaluator.static_check(workload, hw, knobs) is None:
                pairs.append((params, hw, knobs))
                first.setdefault(_shared_key(hw, knobs), make_task(hw, workload, knobs))
    keys = list(first)
    table = dict(zip(keys, _ray_map(evaluator.evaluate, [first[k] for k in keys], workers)))
    per_hw: dict = {}
    for params, hw, knobs in pairs:
        m = table[_shared_key(hw, knobs)]
        if m["status"] == "ok":
            key = tuple(sorted(params.items()))
            per_hw[key] = min(per_hw.get(key, math.inf), m["latency_s"])
    sample = random.Random(0).sample(pairs, min(SHORTCUT_CHECKS, len(pairs)))
    direct = _ray_map(evaluator.evaluate, [make_task(hw, workload, knobs) for _, hw, knobs in sample], workers)
    fields = ("status", "cycles", "inp_load_nbytes", "wgt_load_nbytes", "acc_load_nbytes", "uop_load_nbytes",
              "out_store_nbytes", "gemm_counter", "alu_counter")
    same = sum(1 for (_, hw, knobs), d in zip(sample, direct)
               if all(d[f] == table[_shared_key(hw, knobs)][f] for f in fields))
    return {"table": table, "per_hw": per_hw, "static_ok": static_ok, "declared": spec.hardware_grid_size(),
            "spec": spec,
            "pairs": len(pairs), "check": f"{same} of {len(sample)} (hardware, schedule) pairs simulated on "
                                          f"their own hardware match the shared measurement (status, cycles, counters)"}


def small_section(runner: Runner, args, seeds) -> None:
    t0 = time.monotonic()
    e = enumerate_small(_tiling_evaluator(), runner.tmp, args.workers)
    evaluator = _tiling_evaluator(e["table"])
    per_hw, declared, static_ok = e["per_hw"], e["declared"], e["static_ok"]
    best = min(per_hw.values())
    near = sum(1 for v in per_hw.values() if v <= NEAR * best)
    best_hw = dict(min(per_hw, key=per_hw.get))
    print(f"\n== 2. trials to within 2% of the exhaustive optimum: dense 8x256->256 on a Pynq-Z1, {declared} hardware "
          f"points x every tiling ({e['pairs']} (hardware, schedule) pairs from {len(e['table'])} simulations) "
          f"[{time.monotonic() - t0:.0f} s to enumerate]")
    print(f"shortcut check: {e['check']}")
    print(f"exhaustive optimum: {best * 1e6:.2f} us at {best_hw}; {near} of the {declared} points are within 2% "
          f"({len(per_hw)} feasible, {static_ok} pass the static hardware check)")
    print(f"expected trials: random search (uniform with repeats over the {declared} points) {declared / near:.1f}; "
          f"uniform without repeats over the {static_ok} statically feasible points {(static_ok + 1) / (near + 1):.1f}")
    t1 = time.monotonic()
    for sampler in ("tpe", "random"):
        needed = []
        for seed in seeds:
            # No cache: a trial whose candidates are all cached finishes before the driver asks the
            # next one, and the driver would then ask every trial before telling any.
            _, trials = runner.run(evaluator, None, SMALL, sampler=sampler, seed=seed, trials=args.small_budget)
            ok = trials[trials["state"] == "COMPLETE"].sort_values("trial")
            hit = [int(r.trial) + 1 for r in ok.itertuples()
                   if r.feasible and float(r.value_latency) <= NEAR * best]
            needed.append(min(hit) if hit else None)
            found = ok["value_latency"].min()
            if found < best * (1 - 1e-12):
                print(f"  !! {sampler} seed {seed} found {found} below the enumerated optimum")
        print(f"  {sampler:6s}: median {_median_or_more(needed, args.small_budget)} trials "
              f"(per seed: {_shown(needed)}; '-' = not within {args.small_budget} trials)")
    print(f"  [{time.monotonic() - t1:.0f} s for the runs]")
    if args.replay_seeds:
        t2 = time.monotonic()
        print(f"replayed in memory on the enumerated optima ({args.replay_seeds} seeds; the samplers alone, told "
              f"what the driver would tell them, one trial at a time):")
        for sampler in ("tpe", "random"):
            needed = [replay_small(e["spec"], per_hw, sampler, seed, args.small_budget, NEAR * best,
                                   evaluator, evaluator.resolve(e["spec"].workloads))
                      for seed in range(args.replay_seeds)]
            reached = sorted(x for x in needed if x is not None)
            mean = statistics.mean(min(x, args.small_budget + 1) if x else args.small_budget + 1 for x in needed)
            print(f"  {sampler:6s}: median {_median_or_more(needed, args.small_budget)} trials, mean {mean:.1f} "
                  f"(a miss counted as {args.small_budget + 1}); {len(needed) - len(reached)} of {len(needed)} "
                  f"not within {args.small_budget}")
        print(f"  [{time.monotonic() - t2:.0f} s]")


def replay_small(spec, per_hw: dict, sampler: str, seed: int, budget: int, target: float,
                 evaluator=None, workloads=None) -> int | None:
    """Trials an in-memory study of ``sampler`` needs to reach ``target`` on the enumerated
    optima, told the values and constraints the driver tells (None: not within ``budget``)."""
    import dataclasses

    import optuna

    from dse._outcome import for_study
    from dse._samplers import distributions, make_sampler, static_check
    from dse._storage import TrialStore

    spec = dataclasses.replace(spec, sampler=sampler, seed=seed, n_trials=budget)
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(direction="minimize", storage=storage, sampler=make_sampler(spec, evaluator, workloads))
    trials = TrialStore(study, storage)
    for i in range(budget):
        trial = study.ask(distributions(spec))
        latency = per_hw.get(tuple(sorted(trial.params.items())))
        check = static_check(spec, trial.params)
        trials.finish(trial, for_study(spec, buildable=check.hw is not None, overruns=check.overruns,
                                       measured=None if latency is None else {"latency": latency}), {})
        if latency is not None and latency <= target:
            return i + 1
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--trials", type=int, default=20, help="hardware trials per co-design run (the budget)")
    ap.add_argument("--per-layer", type=int, default=4, help="schedule candidates per layer and hardware trial")
    ap.add_argument("--small-budget", type=int, default=48, help="hardware trials per run on the small space")
    ap.add_argument("--replay-seeds", type=int, default=40,
                    help="seeds of the in-memory replays of sections 1 and 2 (0: none)")
    ap.add_argument("--pool", type=int, default=32,
                    help="schedules per layer and GEMM shape in section 1's enumeration")
    ap.add_argument("--spaces", default="codesign,wide", help="section 1's co-design spaces, in order")
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--uniform-feasible", action="store_true",
                    help="also run uniform search over the statically feasible points (section 1)")
    ap.add_argument("--skip-hv", action="store_true")
    ap.add_argument("--skip-small", action="store_true")
    args = ap.parse_args()
    import optuna
    import ray

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    from dse._executor import quiet_auth_banner
    with quiet_auth_banner():
        ray.init(address="local", num_cpus=args.workers, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})
    seeds = list(range(args.seeds))
    t_all = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(args.workers, Path(tmp))
        if not args.skip_hv:
            for space in args.spaces.split(","):
                hypervolume_section(runner, args, seeds, space)
        if not args.skip_small:
            small_section(runner, args, seeds)
    ray.shutdown()
    print(f"\ntotal {time.monotonic() - t_all:.0f} s ({args.workers} worker(s))")


if __name__ == "__main__":
    main()
