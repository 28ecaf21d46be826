"""Speed of the simulator on the real ResNet-18 layers (C2..C11, TopHub knobs), on one core.

Per layer: build time, full bit-exact simulation (first run with a cold index-plan cache, then
best of N warm), count-only run, uop-iterations/s, count-only modules/s and build+count
candidates/s. Then the whole network (every layer x its ``.count``): the full simulation from a
cold plan cache, as one network evaluation would run it, and count-only. Every full run's output
is checked against ``workloads.reference`` once (outside the timings).

Then the fast count path (``dse.fastcount.count_candidate``) beside the general build + count-only
run: per layer with the TopHub knobs, and over random legal knob sets of C2..C11 (median, mean
and worst candidate; the same candidates through the search's ``count`` runner; the general path
on a subsample, it is slow).

Goals: (a) whole network bit-exact in <= 1 s; (b) >= 1000 count-only modules/s; (c) >= 1000
count-only candidates/s on the fast path over random legal knob sets.

    python benchmarks/resnet18_speed.py [--repeat N] [--fast-only] [--random N]
"""
from __future__ import annotations

import os

# One core: BLAS must not spread a matmul over threads (set before numpy is imported).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import hwconfigs  # noqa: E402
import simulator  # noqa: E402
from compiler import workloads  # noqa: E402
from simulator import _alu, _gemm  # noqa: E402

REFERENCE = simulator.reference_path("resnet18_pynq_1x16.json")


def _clear_plans() -> None:
    """Forget the cached GEMM/ALU index plans: the next run pays for them, as a first run does."""
    for module in (_gemm, _alu):
        getattr(module, "_PLANS", {}).clear()


def _best(fn, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _knobs():
    if not REFERENCE.is_file():
        sys.exit(f"reference file {REFERENCE} is missing (TopHub knobs of the layers)")
    return {e["layer"]: e["tophub_cfg"] for e in json.loads(REFERENCE.read_text())["layers"]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7, help="best of N for the per-layer figures")
    ap.add_argument("--fast-only", action="store_true", help="only the fast count path section")
    ap.add_argument("--random", type=int, default=400, help="random legal knob sets for the fast path")
    args = ap.parse_args(argv)
    env = hwconfigs.get_env()
    knobs = _knobs()
    layers = workloads.resnet18()
    if not args.fast_only:
        simulator_section(env, knobs, layers, args)
    fast_path_section(env, knobs, layers, args)


def _random_legal(layers, env, count, seed=0):
    """``count`` (layer, knobs) pairs, the layers taken in turn, each knob set a random legal one."""
    import random

    rng = random.Random(seed)
    names = list(layers)
    out = []
    while len(out) < count:
        layer = layers[names[len(out) % len(names)]]
        out.extend((layer, knobs) for knobs in workloads.random_legal_knobs(layer, env, rng, 1))
    return out


def fast_path_section(env, knobs, layers, args) -> None:
    import statistics

    from dse.fastcount import count_candidate

    def general(layer, k):
        return simulator.run(workloads.build(layer, env=env, knobs=k), count_only=True)

    t0 = time.perf_counter()
    count_candidate(layers["C2"], env, knobs["C2"])
    print(f"\nfast count path (dse.fastcount.count_candidate); first call {time.perf_counter() - t0:.2f} s "
          f"(numba compile or cache load)")
    print(f"{'layer':<5} {'insns':>6} {'fast':>9} {'general':>9} {'fast cand/s':>11} {'general cand/s':>14}")
    for name, layer in layers.items():
        t_fast, res = _best(lambda: count_candidate(layer, env, knobs[name]), args.repeat * 3)
        t_gen, ref = _best(lambda: general(layer, knobs[name]), 2)
        if res.stats != ref.stats or res.cycles != ref.cycles:
            sys.exit(f"{name}: fast path differs from the general path")
        print(f"{name:<5} {res.timing[0].modules['fetch'].instructions:>6} {t_fast * 1e3:7.2f}ms {t_gen * 1e3:7.1f}ms "
              f"{1 / t_fast:11.0f} {1 / t_gen:14.1f}   ({res.path})")
    cands = _random_legal(layers, env, args.random)
    passes, cpu = [], []
    for _ in range(2):   # the first pass also grows the reused output buffer to the largest stream
        times, paths, insns = [], [], []
        c0 = time.process_time()
        for layer, k in cands:
            t0 = time.perf_counter()
            res = count_candidate(layer, env, k)
            times.append(time.perf_counter() - t0)
            paths.append(res.path)
            insns.append(res.timing[0].modules["fetch"].instructions)
        cpu.append(time.process_time() - c0)
        passes.append(times)
    # the same candidates through the search's count runner (dse.runners: the static check, the
    # fast path and a measurement row): what a worker spends per candidate beyond the bare path
    from dse.runners import Candidate, CountRunner

    runner = CountRunner()
    runner_times = []
    c0 = time.process_time()
    for layer, k in cands:
        t0 = time.perf_counter()
        if runner.measure(Candidate(layer, env, k))["status"] != "ok":
            sys.exit(f"{layer}: the count runner refused a legal knob set {k}")
        runner_times.append(time.perf_counter() - t0)
    runner_cpu = time.process_time() - c0
    sample = cands[::max(1, len(cands) // 25)]
    gen_times = []
    for layer, k in sample:
        t0 = time.perf_counter()
        general(layer, k)
        gen_times.append(time.perf_counter() - t0)
    print(f"random legal knob sets of C2..C11: {len(cands)} candidates, mean {statistics.mean(insns):.0f} "
          f"instructions (max {max(insns)}), {paths.count('general')} on the general path")
    for label, times, spent in zip(("fast 1st", "fast 2nd"), passes, cpu):
        worst = max(range(len(times)), key=times.__getitem__)
        print(f"  {label:<8}: {len(times) / sum(times):7.0f} candidates/s ({len(times) / spent:5.0f} per CPU-second)   "
              f"median {statistics.median(times) * 1e3:6.2f} ms   worst {times[worst] * 1e3:6.1f} ms "
              f"({insns[worst]} instructions)   (goal >= 1000/s)")
    print(f"  runner  : {len(runner_times) / sum(runner_times):7.0f} candidates/s ({len(runner_times) / runner_cpu:5.0f} "
          f"per CPU-second)   median {statistics.median(runner_times) * 1e3:6.2f} ms   (dse.runners.CountRunner.measure)")
    print(f"  general : {len(gen_times) / sum(gen_times):7.1f} candidates/s   median "
          f"{statistics.median(gen_times) * 1e3:6.1f} ms   worst {max(gen_times) * 1e3:6.0f} ms   "
          f"({len(gen_times)} of the same candidates)")


def simulator_section(env, knobs, layers, args) -> None:
    print(f"ResNet-18 layers, TopHub knobs, {env!r}; BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}; "
          f"best of {args.repeat}")
    print(f"{'layer':<5} {'x':>2} {'insns':>5} {'uop-iters':>10} {'build':>8} {'full cold':>10} {'full':>8} "
          f"{'M iter/s':>8} {'count':>8} {'mod/s':>7} {'build+count/s':>13}")
    mods, inputs = {}, {}
    for name, layer in layers.items():
        mods[name] = workloads.build(layer, env=env, knobs=knobs[name])
        inputs[name] = workloads.random_inputs(layer, env, 1)
        out = workloads.empty_output(layer, env)
        simulator.run(mods[name], *inputs[name], out)
        if not np.array_equal(out, workloads.reference(layer, *inputs[name], env=env)):
            sys.exit(f"{name}: simulator output differs from workloads.reference")

    for name, layer in layers.items():
        mod, ins = mods[name], inputs[name]
        t_build, _ = _best(lambda: workloads.build(layer, env=env, knobs=knobs[name]), args.repeat)
        out = workloads.empty_output(layer, env)
        _clear_plans()
        t0 = time.perf_counter()
        res = simulator.run(mod, *ins, out)
        t_cold = time.perf_counter() - t0
        t_full, _ = _best(lambda: simulator.run(mod, *ins, out), args.repeat)
        t_count, _ = _best(lambda: simulator.run(mod, count_only=True), args.repeat * 5)
        t_cand, _ = _best(lambda: simulator.run(workloads.build(layer, env=env, knobs=knobs[name]), count_only=True),
                          args.repeat)
        iters = res.stats["gemm_counter"]
        n = sum(len(p) for p in mod.programs)
        print(f"{name:<5} {layer.count:>2} {n:>5} {iters:>10} {t_build * 1e3:6.1f}ms {t_cold * 1e3:8.1f}ms "
              f"{t_full * 1e3:6.1f}ms {iters / t_full / 1e6:8.2f} {t_count * 1e6:6.0f}us {1 / t_count:7.0f} "
              f"{1 / t_cand:13.0f}")

    def network_full():
        _clear_plans()      # a network evaluation as it would run the first time
        t0 = time.perf_counter()
        for name, layer in layers.items():
            out = workloads.empty_output(layer, env)
            for _ in range(layer.count):
                simulator.run(mods[name], *inputs[name], out)
        return time.perf_counter() - t0

    def network_count():
        t0 = time.perf_counter()
        for name, layer in layers.items():
            for _ in range(layer.count):
                simulator.run(mods[name], count_only=True)
        return time.perf_counter() - t0

    def network_build_count():
        t0 = time.perf_counter()
        for name, layer in layers.items():
            for _ in range(layer.count):
                simulator.run(workloads.build(layer, env=env, knobs=knobs[name]), count_only=True)
        return time.perf_counter() - t0

    runs = sum(layer.count for layer in layers.values())
    iters = sum(simulator.run(mods[name], count_only=True).stats["gemm_counter"] * layer.count
                for name, layer in layers.items())
    t_full = min(network_full() for _ in range(3))
    t_count = min(network_count() for _ in range(args.repeat))
    t_cand = min(network_build_count() for _ in range(3))
    print(f"network: {runs} layer runs, {iters / 1e6:.2f} M uop-iterations")
    print(f"  full bit-exact (cold plan cache) {t_full:7.3f} s   {iters / t_full / 1e6:6.2f} M uop-iter/s   "
          f"(goal <= 1 s)")
    print(f"  count-only                       {t_count * 1e3:7.1f} ms  {runs / t_count:6.0f} modules/s   "
          f"(goal >= 1000)")
    print(f"  build + count-only               {t_cand:7.3f} s   {runs / t_cand:6.0f} candidates/s")


if __name__ == "__main__":
    main()
