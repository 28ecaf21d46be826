"""Column names of the results tables, defined once (ARCHITECTURE.md, "the contract")."""
from __future__ import annotations

from hwconfigs import FIELDS

# The seven upstream fsim counters, in upstream ``profiler_status`` order. ``dse/evaluate.py``
# checks at import that the simulator defines the same names (one source of truth, two packages
# that must not import each other's internals).
COUNTERS = ("inp_load_nbytes", "wgt_load_nbytes", "acc_load_nbytes", "uop_load_nbytes",
            "out_store_nbytes", "gemm_counter", "alu_counter")
LOG_KEYS = tuple(k for k in FIELDS if k.startswith("LOG_"))
HW_KEYS = ("TARGET", "HW_VER") + LOG_KEYS
RESOURCES = ("bram", "dsp", "lut")

STATUSES = ("ok", "infeasible", "compile_error", "run_error", "timeout", "mismatch")

# The cycle model's breakdown of a run (``simulator.timing.TimingReport.as_row()`` minus cycles
# and latency, summed over the module's programs): which module bounds it, how busy the GEMM core
# is, each module's busy and stalled cycles, compute's cycles by kind and the DRAM bytes per port.
# ``dse/evaluate.py`` checks at import that the simulator's row has exactly these keys.
TIMING_MODULES = ("fetch", "load", "compute", "store")
TIMING = ("bound_by", "gemm_utilization",
          *(f"{m}_{what}_cycles" for m in TIMING_MODULES for what in ("busy", "stall")),
          *(f"compute_{kind}_cycles" for kind in ("gemm", "alu", "uop_load", "acc_load", "other")),
          *(f"dram_{m}_bytes" for m in TIMING_MODULES))

# What a candidate's evaluation measures (the runner fills these, nothing else). ``wall_s``: the
# board's measured wall time of the run (the ``board`` runner; None on the simulator).
MEASUREMENT = ("status", "error", *COUNTERS, "cycles", "latency_s", *TIMING, "correct", "compile_s", "sim_s",
               "wall_s")

# Where the candidate sits in the study; then the hardware; then knobs (one column each, after
# these); then the measurement; then bookkeeping.
IDENTITY = ("trial", "workload", "layer_count", "candidate", "attempt", "mode")
TAIL = ("chosen", "cached", "verified")


def row_columns(knob_names) -> list[str]:
    return [*IDENTITY, *HW_KEYS, *sorted(knob_names), *MEASUREMENT, *RESOURCES, *TAIL]


def objective_attr(name: str) -> str:
    """The trial summary key (and Optuna metric name) holding an objective's value."""
    return "latency_s" if name == "latency" else name
