"""The seven upstream fsim profiler counters (vta-spec §4), defined once."""
from __future__ import annotations

# Upstream ``profiler_status`` order; callers and the results table rely on it.
COUNTER_NAMES = ("inp_load_nbytes", "wgt_load_nbytes", "acc_load_nbytes", "uop_load_nbytes",
                 "out_store_nbytes", "gemm_counter", "alu_counter")
INP_LOAD, WGT_LOAD, ACC_LOAD, UOP_LOAD, OUT_STORE, GEMM_COUNT, ALU_COUNT = range(7)


def empty_counters() -> list[int]:
    return [0] * len(COUNTER_NAMES)


def as_dict(values) -> dict[str, int]:
    return {name: int(v) for name, v in zip(COUNTER_NAMES, values)}
