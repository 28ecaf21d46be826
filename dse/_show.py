"""``vta-dse show DIR``: the chosen configuration, the top trials and the Pareto front of a run."""
from __future__ import annotations

import json
from pathlib import Path

from ._read import read_results, read_trials
from ._study import StudyError


def show(out, top: int = 10, stream=None) -> int:
    import sys

    import pandas as pd

    stream = stream or sys.stdout
    out = Path(out)
    trials_path = out / "trials.parquet"
    if not trials_path.is_file():
        raise StudyError(f"{out} holds no study results (no trials.parquet); run `vta-dse run STUDY.toml --out {out}`")
    trials = read_trials(trials_path)
    meta_path = out / "study.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {"objectives": []}
    results = read_results(out)
    values = [c for c in trials.columns if c.startswith("value_")]
    hw = [c for c in trials.columns if c.startswith("LOG_")]
    cols = ["trial", *hw, *values, "bram", "dsp", "lut", "feasible", "verified"]
    complete = trials[trials["state"] == "COMPLETE"]
    feasible = complete[complete["feasible"] == True]  # noqa: E712
    w = stream.write
    w(f"{out}: {len(complete)} complete trials ({len(feasible)} feasible), {len(results)} candidate rows\n")
    w("candidates by status: " + ", ".join(f"{k} {v}" for k, v in results["status"].value_counts().items()) + "\n")
    best_path = out / "best.json"
    if best_path.is_file():
        best = json.loads(best_path.read_text())
        w(f"\nchosen: trial {best['trial']}  latency {best['latency_s']:.6g} s  bram {best['bram']:g}  "
          f"dsp {best['dsp']:g}  lut {best['lut']:g}  verified {best['verified']}  -> {out / 'best_config.json'}\n")
        from ._tables import baseline_text
        text = baseline_text(best.get("baseline"))
        if text:
            w(f"vs stock: {text}\n")
    else:
        w("\nno feasible configuration found\n")
    with pd.option_context("display.width", 200, "display.max_columns", 40):
        if values and len(feasible):
            w(f"\ntop {top} by {values[0][6:]}:\n")
            sign = {f"value_{o['name']}": (1 if o["direction"] == "minimize" else -1) for o in meta["objectives"]}
            w(feasible.sort_values(values[0], ascending=sign.get(values[0], 1) > 0)[cols].head(top).to_string(index=False) + "\n")
            if len(values) > 1:
                from ._tables import pareto
                vecs = {int(r.trial): tuple(sign.get(c, 1) * float(r[c]) for c in values) for _, r in feasible.iterrows()}
                front = feasible[feasible["trial"].isin(pareto(vecs))].sort_values(values[0])
                w(f"\nPareto front ({len(front)} trials):\n")
                w(front[cols].to_string(index=False) + "\n")
    return 0
