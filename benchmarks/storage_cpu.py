"""Driver CPU per hardware trial spent in the Optuna storage (``dse._storage.TrialStore``), by step.

    python benchmarks/storage_cpu.py                               # SQLite in a temporary folder
    python benchmarks/storage_cpu.py --storage postgresql://...    # any RDB URL (a new study each run)

What the driver does for one hardware trial, in its order: count the study's trials (the budget
check), ask (owner attribute, first heartbeat, the sampled parameters) and finish (the trial's
attributes, then the constraint values and the tell). The parameters and attributes are those of
a two-layer study (``studies/default.toml``) whose trial measured 32 candidates. Two layouts of
the finished trial's attributes, side by side in each round:

- ``stored``: what the driver writes (``dse._results``): the summary and the rows as two
  compressed values in system attributes, and the few figures optuna-dashboard shows as user
  attributes (feasibility, latency, resources, the schedules in one attribute);
- ``per-field``: the earlier layout, every figure of the summary and each layer's schedule a user
  attribute of its own, and the rows kept outside the storage (not counted). CPU time of this process (``time.process_time``), so other load on the
machine does not count; rounds alternate and the medians are printed. On a 2-core machine every
millisecond here is taken from the two workers (``benchmarks/dse_throughput.py``), and the
driver does this work between two trials, while the workers wait for the next one.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

COUNTERS = ("inp_load_nbytes", "wgt_load_nbytes", "acc_load_nbytes", "uop_load_nbytes", "out_store_nbytes",
            "gemm_counter", "alu_counter")


def _summary() -> dict:
    """A feasible two-layer trial's summary, as ``dse._driver`` aggregates it."""
    layers = [{"workload": name, "count": 1, "candidate": 3, "knobs": knobs, "latency_s": 0.0006, "cycles": 61728,
               **{c: 500 for c in COUNTERS}}
              for name, knobs in (("fc", {"tile_b": [1, 1], "tile_ci": [4, 4], "tile_co": [2, 8]}),
                                  ("conv", {"tile_h": [7, 2], "tile_w": [7, 2], "tile_ci": [4, 1], "tile_co": [4, 1]}))]
    return {"feasible": True, "reason": "", "bram": 120.0, "dsp": 200.0, "lut": 40000.0, "layers": layers,
            "candidates": 32, "statuses": {"ok": 32}, "latency_s": 0.0012, "cycles": 123456,
            **{c: 1000 for c in COUNTERS}}


def _rows(n: int = 32) -> list[dict]:
    """The rows of a trial that measured ``n`` candidates (fields as the count runner gives them)."""
    import random

    rng = random.Random(0)
    return [{"trial": 7, "workload": "fc" if i % 2 else "conv", "layer_count": 1, "candidate": i, "attempt": 1,
             "mode": "count", "LOG_BATCH": 0, "LOG_BLOCK": 4, "LOG_INP_BUFF_SIZE": 15, "LOG_WGT_BUFF_SIZE": 18,
             "LOG_ACC_BUFF_SIZE": 17, "LOG_UOP_BUFF_SIZE": 15, "TARGET": "pynq", "HW_VER": "0.0.2",
             "knobs": {"tile_h": [rng.choice([1, 2, 7, 14]), 2], "tile_ci": [rng.choice([1, 2, 4]), 1]},
             "status": "ok", "error": None, "cycles": rng.randrange(10**5, 10**7),
             "latency_s": rng.random() * 1e-3, "correct": None, "compile_s": rng.random() * 1e-3,
             "sim_s": rng.random() * 1e-3, **{c: rng.randrange(10**6) for c in COUNTERS},
             "bram": 120.0, "dsp": 200.0, "lut": 40000.0, "chosen": i == 3, "cached": False, "verified": None}
            for i in range(n)]


def layouts() -> dict[str, tuple[dict, dict]]:
    """Layout -> (user attributes, system attributes) of the finished trial."""
    from dse._results import shown_attrs, trial_attrs

    summary, rows = _summary(), _rows()
    per_field = {k: v for k, v in summary.items() if k != "layers"}
    per_field.update({f"schedule:{layer['workload']}": layer["knobs"] for layer in summary["layers"]})
    return {"stored": (shown_attrs(summary), trial_attrs(summary, rows)), "per-field": (per_field, {})}


def measure(url: str, trials: int, layout: str) -> dict:
    """Milliseconds of CPU per trial, by step, for ``trials`` trials on a new study at ``url``, the
    finished trials' attributes in ``layout``."""
    import optuna

    from dse._outcome import decide
    from dse._storage import TrialStore, open_storage

    d = optuna.distributions
    dists = {"LOG_BLOCK": d.CategoricalDistribution([3, 4]), "LOG_INP_BUFF_SIZE": d.IntDistribution(13, 15),
             "LOG_ACC_BUFF_SIZE": d.IntDistribution(14, 17)}
    storage = open_storage(url)
    study = optuna.create_study(study_name=f"storage-cpu-{uuid.uuid4().hex[:8]}", storage=storage,
                                directions=["minimize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    store = TrialStore(study, storage)
    outcome = decide([("latency", "minimize"), ("bram", "minimize")], ["bram", "dsp", "lut"], buildable=True,
                     overruns=[-0.1, -0.1, -0.2], measured={"latency": 0.0012, "bram": 120.0})
    spent = {"count": 0.0, "ask": 0.0, "finish": 0.0}

    def timed(step, fn, *args):
        t = time.process_time()
        result = fn(*args)
        spent[step] += time.process_time() - t
        return result

    for i in range(trials + 5):
        if i == 5:                                # the first trials warm the caches up
            spent = dict.fromkeys(spent, 0.0)
        timed("count", store.counts)
        trial = timed("ask", store.ask, dists, "dse:driver", {"host": "h", "pid": 1, "start": "0"})
        if layout == "stored":      # the driver encodes the summary and rows as it finishes the trial
            user, system = timed("finish", lambda: layouts()["stored"])
        else:
            user, system = layouts()[layout]
        timed("finish", store.finish, trial, outcome, user, system)
    return {step: seconds / trials * 1e3 for step, seconds in spent.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--storage", help="an RDB URL (default: SQLite in a temporary folder)")
    ap.add_argument("--trials", type=int, default=40, help="trials per round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore")            # experimental heartbeats, ask outside optimize
    names = list(layouts())
    for name, (user, system) in layouts().items():
        print(f"{name}: {len(user)} user attributes, {len(system)} system attributes "
              f"({sum(len(str(v)) for v in system.values())} characters) per finished trial")
    rounds = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name in names:
                url = args.storage or f"sqlite:///{Path(tmp) / f'r{r}-{name}.db'}"
                rounds[name].append(measure(url, args.trials, name))
                print(f"round {r + 1}, {name}: " + ", ".join(f"{k} {v:.1f}" for k, v in rounds[name][-1].items())
                      + f" = {sum(rounds[name][-1].values()):.1f} ms per trial")
    totals = {}
    for name in names:
        medians = {k: statistics.median(r[k] for r in rounds[name]) for k in rounds[name][0]}
        totals[name] = statistics.median(sum(r.values()) for r in rounds[name])
        print(f"{name}: medians over {args.rounds} rounds of {args.trials} trials: "
              + ", ".join(f"{k} {v:.1f}" for k, v in medians.items())
              + f"; total {totals[name]:.1f} ms of driver CPU per hardware trial")
    print(f"stored / per-field: {totals['stored'] / totals['per-field']:.2f}")


if __name__ == "__main__":
    main()
