"""Results tables (pandas), the chosen configuration, the Pareto front and the written outputs.

``results.parquet``/``results.csv``: one row per evaluated candidate (``_columns.row_columns``;
knob sets refused by the static check are in ``rejected.parquet``);
``trials.parquet``/``trials.csv``: one row per hardware trial; ``best_config.json``: the best
feasible (and, with ``verify = "top"``, verified) hardware as a config file; ``best.json``: its
figures and schedules; ``report.html``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ._columns import COUNTERS, HW_KEYS, RESOURCES, TIMING, objective_attr, row_columns
from .runners import RUNNERS


def _objective_vector(summary: dict, spec) -> tuple | None:
    out = []
    for name, direction in spec.objectives:
        value = summary.get(objective_attr(name))
        if value is None:
            return None
        out.append(value if direction == "minimize" else -value)
    return tuple(out)


def pareto(points: dict) -> list:
    """Keys of the non-dominated points (all coordinates minimized)."""
    front = []
    for key, p in points.items():
        dominated = any(all(a <= b for a, b in zip(q, p)) and any(a < b for a, b in zip(q, p))
                        for other, q in points.items() if other != key)
        if not dominated:
            front.append(key)
    return sorted(front)


def report_targets(trial_records: dict, spec, exclude=()) -> list[int]:
    """Trials reported to the user: the Pareto front (several objectives) and the top-k."""
    points = {}
    for number, rec in trial_records.items():
        summary = rec.get("summary", {})
        if number in exclude or not summary.get("feasible"):
            continue
        vec = _objective_vector(summary, spec)
        if vec is not None:
            points[number] = vec
    top = sorted(points, key=lambda n: (points[n], n))[:spec.verify_top_k]
    front = pareto(points) if len(spec.objectives) > 1 else []
    return sorted(set(top) | set(front))


def _knob_cells(rows: list[dict]) -> tuple[list[str], dict]:
    names = sorted({k for r in rows for k in (r.get("knobs") or {})})
    nested = {n for n in names if any(isinstance((r.get("knobs") or {}).get(n), (list, dict)) for r in rows)}
    return names, nested


def results_frame(rows: list[dict]):
    import pandas as pd

    names, nested = _knob_cells(rows)
    flat = []
    for r in rows:
        knobs = r.get("knobs") or {}
        out = {k: v for k, v in r.items() if k != "knobs"}
        for n in names:
            v = knobs.get(n)
            out[n] = json.dumps(v) if (n in nested and v is not None) else v
        flat.append(out)
    columns = row_columns(names)
    df = pd.DataFrame(flat, columns=columns)
    ints = [*COUNTERS, "cycles", "dsp", "lut", "candidate", "trial", "layer_count", "attempt",
            *[k for k in HW_KEYS if k.startswith("LOG_")], *[k for k in TIMING if k.endswith(("_cycles", "_bytes"))]]
    for col in ints:
        df[col] = df[col].astype("Int64")
    for col in ("latency_s", "compile_s", "sim_s", "bram", "gemm_utilization"):
        df[col] = df[col].astype("Float64")
    for col in ("correct", "chosen", "cached", "verified"):
        df[col] = df[col].astype("boolean")
    for col in ("workload", "mode", "status", "error", "TARGET", "HW_VER", "bound_by"):
        df[col] = df[col].astype("string")
    for n in names:
        values = [v for v in df[n] if v is not None and v == v]
        if n in nested:
            df[n] = df[n].astype("string")
        elif values and all(isinstance(v, (int, float)) and float(v).is_integer() for v in values):
            df[n] = df[n].astype("Int64")
    return df


def collect_rows(trials: dict, verifies: dict) -> list[dict]:
    rows = []
    for number in sorted(trials):
        verify = verifies.get(number)
        verdicts = {(r["workload"], r["candidate"]): r["verified"] for r in (verify or {}).get("rows", [])}
        for r in trials[number]["rows"]:
            r = dict(r)
            if r.get("chosen") and (r["workload"], r["candidate"]) in verdicts:
                r["verified"] = verdicts[(r["workload"], r["candidate"])]
            rows.append(r)
        if verify:
            rows.extend(dict(r) for r in verify["rows"])
    order = {"static": 0, **{runner: i + 1 for i, runner in enumerate(RUNNERS)}}
    workload_order = {}
    for r in rows:
        workload_order.setdefault(r["workload"], len(workload_order))
    rows.sort(key=lambda r: (r["trial"], workload_order[r["workload"]], order.get(r["mode"], 3),
                             -1 if r["candidate"] is None else r["candidate"], r["attempt"]))
    return rows


def trials_frame(study, spec, trials: dict, verifies: dict):
    import pandas as pd

    records = []
    for t in study.get_trials(deepcopy=False):
        summary = trials.get(t.number, {}).get("summary") or dict(t.user_attrs)
        rec = {"trial": t.number, "state": t.state.name}
        for i, (name, _) in enumerate(spec.objectives):
            rec[f"value_{name}"] = t.values[i] if t.values else None
        rec.update({k.name: t.params.get(k.name) for k in spec.hardware})
        rec.update({"feasible": summary.get("feasible"), "reason": summary.get("reason"),
                    "latency_s": summary.get("latency_s"), "cycles": summary.get("cycles"),
                    **{k: summary.get(k) for k in RESOURCES}, "candidates": summary.get("candidates")})
        if spec.verify == "top":
            v = verifies.get(t.number)
            rec["verified"] = None if v is None else bool(v["verified"])
        elif spec.verify == "all":
            rec["verified"] = summary.get("feasible") if t.state.name == "COMPLETE" else None
        else:
            rec["verified"] = None
        rec["schedules"] = json.dumps({l["workload"]: l["knobs"] for l in summary.get("layers", [])}) \
            if summary.get("layers") else None
        records.append(rec)
    df = pd.DataFrame(records)
    if len(df):
        for col in ("feasible", "verified"):
            df[col] = df[col].astype("boolean")
        for col in ("reason", "schedules", "state"):
            df[col] = df[col].astype("string")
        for col in ("latency_s", "bram", *[c for c in df.columns if c.startswith("value_")]):
            df[col] = df[col].astype("Float64")
        for col in ("cycles", "dsp", "lut", "candidates"):
            df[col] = df[col].astype("Int64")
    return df


def choose(trials_df, spec):
    """(best trial row, Pareto-front frame) among the trials that may be reported."""
    if not len(trials_df):
        return None, trials_df
    ok = trials_df[(trials_df["state"] == "COMPLETE") & (trials_df["feasible"] == True)]  # noqa: E712
    if spec.verify == "top":
        ok = ok[ok["verified"] == True]  # noqa: E712
    if not len(ok):
        return None, ok
    cols = [f"value_{n}" for n, _ in spec.objectives]
    sign = [1 if d == "minimize" else -1 for _, d in spec.objectives]
    vecs = {int(r.trial): tuple(s * float(r[c]) for s, c in zip(sign, cols)) for _, r in ok.iterrows()}
    best = min(vecs, key=lambda n: (vecs[n], n))
    front = pareto(vecs)
    return ok[ok["trial"] == best].iloc[0], ok[ok["trial"].isin(front)].sort_values(cols[0])


def against_baseline(best: dict, out: Path) -> dict | None:
    """The chosen configuration against the study's stock baseline (``baseline.json``): its
    latency, speedup and the change in each resource."""
    path = Path(out) / "baseline.json"
    if not path.is_file():
        return None
    base = json.loads(path.read_text())
    speedup = None
    if base.get("latency_s") and best.get("latency_s"):
        speedup = base["latency_s"] / best["latency_s"]
    change = {k: (best[k] - base[k]) if best.get(k) is not None and base.get(k) is not None else None
              for k in RESOURCES}
    return {"latency_s": base.get("latency_s"), "speedup": speedup, "feasible": base.get("feasible"),
            **{k: base.get(k) for k in RESOURCES}, "resource_change": change,
            "hardware": base.get("hardware"), "schedules": base.get("schedules")}


def baseline_text(base: dict | None) -> str | None:
    """One line: the chosen configuration against the stock baseline (None without one)."""
    if not base or not base.get("speedup"):
        return None
    change = ", ".join(f"{k.upper()} {v:+g}" for k, v in base["resource_change"].items() if v is not None)
    return (f"{base['speedup']:.4f}x the speed of the stock configuration ({base['hardware'].get('TARGET')} preset, "
            f"upstream's schedules: {base['latency_s'] * 1e3:.4g} ms, BRAM {base['bram']:g}); latency "
            f"{(1 / base['speedup'] - 1) * 100:+.2f}%, {change}")


def write_study_json(out: Path, spec, storage_url: str, workloads=None) -> None:
    """``study.json``: what `vta-dse report/export/compare/show` read back (the study, its budget,
    its board, its layers as the evaluator resolved them: ``workloads``, default the study
    file's), written when a run starts and again with its tables."""
    from ._report import _hide

    meta = {"study": spec.name, "study_file": spec.path, "sampler": spec.sampler, "seed": spec.seed,
            "objectives": [{"name": n, "direction": d} for n, d in spec.objectives], "n_trials": spec.n_trials,
            "verify": spec.verify, "storage": _hide(storage_url),
            "target": spec.base.TARGET, "constraints": {k: float(v) for k, v in spec.constraints},
            "workloads": [{"name": w.name, "op": w.op, "params": dict(w.params), "count": w.count}
                          for w in (workloads if workloads is not None else spec.workloads)]}
    (Path(out) / "study.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")


def write_outputs(out: Path, spec, study, results, storage_url: str, workloads=None) -> dict:
    """Write every output of a run from the study's storage (``results``: its
    ``dse._results.StudyResults``, every driver's trials)."""
    from . import _report

    out = Path(out)
    complete = {t.number for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"}
    trials, verifies = results.load(complete)
    rows = collect_rows(trials, verifies)
    everything = results_frame(rows)
    # Knob sets the static check refused (and hardware refused before any schedule) are not
    # measurements: they go to rejected.*, the reasons an architect may look up, not the results.
    refused = everything["mode"] == "static" if len(everything) else []
    results = everything[~refused].reset_index(drop=True) if len(everything) else everything
    results.to_parquet(out / "results.parquet", index=False)
    results.to_csv(out / "results.csv", index=False)
    rejected = everything[refused].reset_index(drop=True) if len(everything) else everything
    rejected.to_parquet(out / "rejected.parquet", index=False)
    tdf = trials_frame(study, spec, trials, verifies)
    tdf.to_parquet(out / "trials.parquet", index=False)
    tdf.to_csv(out / "trials.csv", index=False)
    best, front = choose(tdf, spec)
    best_info = None
    if best is not None:
        number = int(best["trial"])
        params = {k.name: int(best[k.name]) for k in spec.hardware}
        cfg = spec.hw_config(params)
        cfg.save(out / "best_config.json")
        summary = trials.get(number, {}).get("summary") or {}
        best_info = {"trial": number, "config": cfg.to_dict(),
                     "objectives": {n: _num(best[f"value_{n}"]) for n, _ in spec.objectives},
                     "latency_s": _num(best["latency_s"]), **{k: _num(best[k]) for k in RESOURCES},
                     "verified": None if _pd.isna(best["verified"]) else bool(best["verified"]),
                     "schedules": {l["workload"]: l["knobs"] for l in summary.get("layers", [])}}
        best_info["baseline"] = against_baseline(best_info, out)
        (out / "best.json").write_text(json.dumps(best_info, indent=2, default=str) + "\n")
    else:
        for name in ("best_config.json", "best.json"):
            (out / name).unlink(missing_ok=True)
    write_study_json(out, spec, storage_url, workloads)
    _report.write_report(out)
    feasible = int((tdf["feasible"] == True).sum()) if len(tdf) else 0  # noqa: E712
    return {"complete": len(complete), "feasible": feasible, "best": best_info}


try:
    import pandas as _pd
    _NA = _pd.NA
except ImportError:   # pragma: no cover
    _NA = None


def _num(value):
    try:
        if value is None or value is _NA or (isinstance(value, float) and math.isnan(value)):
            return None
        return float(value)
    except TypeError:
        return None


def load_trials(out: Path):
    import pandas as pd

    return pd.read_parquet(Path(out) / "trials.parquet")


