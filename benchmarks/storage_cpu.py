"""Driver CPU per hardware trial spent in the Optuna storage (``dse._storage.TrialStore``), by step.

    python benchmarks/storage_cpu.py                               # SQLite in a temporary folder
    python benchmarks/storage_cpu.py --storage postgresql://...    # any RDB URL (a new study each run)

What the driver does for one hardware trial, in its order: count the study's trials (the budget
check), ask (owner attribute, first heartbeat, the sampled parameters) and finish
(the user attributes the driver writes: the summary, one schedule per layer, then the constraint
values and the tell). The parameters, attributes and their number are those of a two-layer study
(``studies/default.toml``). CPU time of this process (``time.process_time``), so other load on the
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


def _attrs() -> dict:
    """A feasible trial's user attributes as the driver writes them (two layers)."""
    return {"feasible": True, "reason": "", "bram": 120.0, "dsp": 200.0, "lut": 40000.0, "candidates": 12,
            "statuses": {"ok": 12}, "latency_s": 0.0012, "cycles": 123456, **{c: 1000 for c in COUNTERS},
            "schedule:fc": {"tile_b": [1, 1], "tile_ci": [4, 4], "tile_co": [2, 8]},
            "schedule:conv": {"tile_h": [7, 2], "tile_w": [7, 2], "tile_ci": [4, 1], "tile_co": [4, 1]}}


def measure(url: str, trials: int) -> dict:
    """Milliseconds of CPU per trial, by step, for ``trials`` trials on a new study at ``url``."""
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
    attrs = _attrs()
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
        timed("finish", store.finish, trial, outcome, attrs)
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
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            url = args.storage or f"sqlite:///{Path(tmp) / f'r{r}.db'}"
            rounds.append(measure(url, args.trials))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in rounds[-1].items())
                  + f" = {sum(rounds[-1].values()):.1f} ms per trial")
    medians = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    print(f"medians over {args.rounds} rounds of {args.trials} trials: "
          + ", ".join(f"{k} {v:.1f}" for k, v in medians.items())
          + f"; total {statistics.median(sum(r.values()) for r in rounds):.1f} ms of driver CPU per hardware trial")


if __name__ == "__main__":
    main()
