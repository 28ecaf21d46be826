"""Long fuzzing run of issue #16: bad input never crashes, never hangs, never corrupts.

    PYTHONPATH=. python benchmarks/fuzz.py                       # 10,000 cases per target
    PYTHONPATH=. python benchmarks/fuzz.py --cases 2000 --targets knobs,study --seed 7

Targets (generators and oracles in ``tests/fuzz_cases.py``, shared with the property tests):

    program   raw programs / Programs on Simulator.execute; after a refusal the machine must be
              exactly as before, and a valid Dense run on it must still match the reference
    modes     the same programs count-only and full: same counters or the same refusal
    config    hardware configs: overrides, specs, config files (binary, deep, huge numbers...)
              -> ConfigError, or an Env whose count-only run has a finite cycle count
    knobs     random knob sets (knob_space of ResNet-18 layers, small convs with stride/pad,
              dense with bias, elementwise) on 1x16, 2x8, 4x8, 1x32, int16 inputs, int16
              accumulators: check_knobs and build (without the check) must agree
    epilogue  layers with random epilogue constants: refused at construction, or the full run
              equals workloads.reference and simulator.run count-only gives the same counters
              and cycles
    study     mutated study files through the loader (with the evaluator's workload check)

Each case runs under a per-case timeout (SIGALRM); a case that exceeds it is a *hang*. Outcomes
per target: named (the project's own error), ok, crash (any other exception, grouped by the
site that raised it), hang, disagreement, mismatch. build costs 10-1000 ms, so the knobs target
verifies only ``--verify-refusals`` of the knob sets check_knobs refuses (the rest count as
named, unverified) — every accepted knob set is built.
"""
from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import fuzz_cases as F  # noqa: E402

OUTCOMES = ("named", "ok", "crash", "hang", "disagreement", "mismatch")
DEFAULT_TIMEOUT = 20.0
BUILD_TIMEOUT = 120.0


class Hang(BaseException):
    """Raised by the per-case alarm (a BaseException, so no ``except Exception`` swallows it)."""


def _alarm(signum, frame):
    raise Hang()


def _site(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "fuzz_cases.py" not in f.filename]
    f = frames[-1] if frames else traceback.extract_tb(exc.__traceback__)[-1]
    root = str(Path(__file__).resolve().parents[1]) + os.sep
    return f"{type(exc).__name__} at {f.filename.replace(root, '')}:{f.lineno}"


def run_target(name: str, cases: int, seed: int, timeout: float, verify_refusals: float, tmp_dir) -> dict:
    make, check = F.TARGETS[name]
    counts = collections.Counter()
    unverified = 0
    examples: dict[str, list] = collections.defaultdict(list)
    t0 = time.perf_counter()
    for index in range(cases):
        case_seed = (seed * 1_000_003 + index) & 0xFFFFFFFF
        rng = random.Random(case_seed)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            case = make(rng)
            if name == "knobs":
                verify = rng.random() < verify_refusals
                outcome = check(case, verify_refusals=verify)
                unverified += outcome == "named" and not verify
            elif name in ("config", "study"):
                outcome = check(case, tmp_dir=tmp_dir)
            else:
                outcome = check(case)
            detail = None
        except Hang:
            outcome, detail = "hang", f"> {timeout:g} s"
        except F.Disagreement as exc:
            outcome, detail = "disagreement", str(exc)[:300]
        except F.Mismatch as exc:
            outcome, detail = "mismatch", str(exc)[:300]
        except KeyboardInterrupt:
            raise
        except BaseException as exc:   # noqa: BLE001 — a crash is what we count
            outcome, detail = "crash", f"{_site(exc)}: {str(exc)[:200]}"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        counts[outcome] += 1
        if detail is not None:
            key = detail.split(":")[0] if outcome == "crash" else outcome
            if len(examples[key]) < 2:
                examples[key].append((case_seed, detail))
    return {"counts": counts, "unverified": unverified, "examples": examples,
            "seconds": time.perf_counter() - t0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="cases per target (default 10,000)")
    parser.add_argument("--targets", default=",".join(F.TARGETS), help=f"comma list of {', '.join(F.TARGETS)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=None,
                        help=f"seconds per case before it is a hang (default {DEFAULT_TIMEOUT:g}, knobs {BUILD_TIMEOUT:g}: "
                             f"a legal knob set of a ResNet-18 layer may build 300,000 instructions in ~20 s)")
    parser.add_argument("--verify-refusals", type=float, default=0.2,
                        help="fraction of check_knobs refusals also built to confirm them (default 0.2)")
    args = parser.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    unknown = [t for t in targets if t not in F.TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; targets: {', '.join(F.TARGETS)}")
    signal.signal(signal.SIGALRM, _alarm)
    import tempfile

    bad = 0
    print(f"{'target':<9} {'cases':>6} " + " ".join(f"{o:>12}" for o in OUTCOMES) + f" {'seconds':>8}")
    with tempfile.TemporaryDirectory() as tmp_dir:
        for name in targets:
            timeout = args.timeout or (BUILD_TIMEOUT if name == "knobs" else DEFAULT_TIMEOUT)
            result = run_target(name, args.cases, args.seed, timeout, args.verify_refusals, tmp_dir)
            c = result["counts"]
            print(f"{name:<9} {args.cases:>6} " + " ".join(f"{c.get(o, 0):>12}" for o in OUTCOMES)
                  + f" {result['seconds']:>8.1f}", flush=True)
            if result["unverified"]:
                print(f"{'':<9} (named includes {result['unverified']} check_knobs refusals not confirmed by a build)")
            for key, found in result["examples"].items():
                for case_seed, detail in found:
                    print(f"{'':<9} {key[:40]}: case seed {case_seed}: {detail}")
            bad += sum(c.get(o, 0) for o in ("crash", "hang", "disagreement", "mismatch"))
    print(f"cases: {args.cases} per target, seed {args.seed}, per-case timeout "
          f"{args.timeout or DEFAULT_TIMEOUT:g} s ({args.timeout or BUILD_TIMEOUT:g} s for knobs); "
          f"{bad} crash/hang/disagreement/mismatch outcomes")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
