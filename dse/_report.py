"""The study report: ``report.html`` (one self-contained page, no scripts, no external files)
and ``report.md`` (the same argument for terminals and pull requests).

Both are rendered from a run folder's files alone (``study.json``, ``trials.parquet``,
``results.parquet``, ``rejected.parquet``, ``best.json``, ``baseline.json``), so ``vta-dse report
DIR`` re-renders them at any time. They argue the decision in order: what was chosen and by which
rule; its speedup and resource change against the stock configuration; where it sits on the
Pareto front of the study's own objectives and against the board's budget; how the latency
splits over the layers and what bounds each; the chosen schedules; why the other points were
infeasible; how the search converged.
"""
from __future__ import annotations

import dataclasses
import html
import json
import math
import re
from pathlib import Path

from . import _plots
from ._columns import RESOURCES

RESOURCE_LABEL = {"bram": "BRAM36 tiles", "dsp": "DSP slices", "lut": "LUTs"}
OBJ_LABEL = {"latency": "latency (ms)", **RESOURCE_LABEL}


# ---- reading a run ---------------------------------------------------------------------------

@dataclasses.dataclass
class Run:
    out: Path
    meta: dict
    trials: object          # DataFrame
    results: object         # DataFrame
    rejected: int
    best: dict | None
    baseline: dict | None

    @property
    def objectives(self) -> list[tuple[str, str]]:
        return [(o["name"], o["direction"]) for o in self.meta.get("objectives", [])] or [("latency", "minimize")]

    @property
    def complete(self):
        t = self.trials
        return t[t["state"] == "COMPLETE"] if len(t) else t

    @property
    def feasible(self):
        c = self.complete
        return c[c["feasible"] == True] if len(c) else c  # noqa: E712

    @property
    def target(self) -> str | None:
        for cfg in ((self.best or {}).get("config"), (self.baseline or {}).get("hardware")):
            if cfg and cfg.get("TARGET"):
                return cfg["TARGET"]
        return self.meta.get("target")

    @property
    def capacity(self):
        import hwconfigs

        fpga = hwconfigs.FPGA_TARGETS.get(self.target or "")
        return hwconfigs.CAPACITIES.get(fpga.part) if fpga is not None else None

    @property
    def limits(self) -> dict:
        """The study's [constraints] budget per resource (absent: none)."""
        return {k: float(v) for k, v in (self.meta.get("constraints") or {}).items()}


def load_run(out) -> Run:
    """Everything the report reads from a run folder; StudyError when it holds no study."""
    import pandas as pd

    from ._read import read_results, read_trials
    from ._study import StudyError

    out = Path(out)
    if not (out / "trials.parquet").is_file():
        raise StudyError(f"{out} holds no study results (no trials.parquet); run `vta-dse run STUDY.toml --out {out}`")
    meta = _json(out / "study.json") or {}
    trials = read_trials(out / "trials.parquet")
    results = read_results(out) if (out / "results.parquet").is_file() else pd.DataFrame()
    rejected = len(pd.read_parquet(out / "rejected.parquet")) if (out / "rejected.parquet").is_file() else 0
    return Run(out, meta, trials, results, rejected, _json(out / "best.json"), _json(out / "baseline.json"))


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ---- figures the report states --------------------------------------------------------------

def _num(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def objective_value(name: str, source: dict | None):
    """An objective's value of a trial row, best.json or baseline.json (latency in seconds)."""
    if source is None or (isinstance(source, dict) and not source):
        return None
    return _num(source.get("latency_s" if name == "latency" else name))


def rule_text(run: Run) -> str:
    objs = run.objectives
    first, direction = objs[0]
    what = {"minimize": "lowest", "maximize": "highest"}[direction]
    text = f"the feasible trial with the {what} {first}"
    if run.meta.get("verify") == "top":
        text += " whose schedules passed the bit-exact re-run"
    if len(objs) > 1:
        text += ", ties broken by " + ", then ".join(f"{n} ({d})" for n, d in objs[1:]) + ", then the earliest trial"
    else:
        text += " (ties: the earliest trial)"
    budget = ", ".join(f"{k.upper()} ≤ {v:g}" for k, v in run.limits.items())
    if budget:
        text += f"; feasible = every layer has a schedule that fits and the estimate is within the budget ({budget})"
    return text


def reason_class(reason: str) -> str:
    """A trial's infeasibility reason as a class: the counts the report gives."""
    reason = reason or ""
    if reason.startswith("hardware cannot be built"):
        return "hardware cannot be built (invalid configuration)"
    if reason.startswith("over the resource budget"):
        over = sorted(set(re.findall(r"\b(bram|dsp|lut)\b [\d.]+ >", reason)))
        return "over the resource budget: " + " and ".join(o.upper() for o in over) if over else \
            "over the resource budget"
    if ": " in reason:
        return "a layer has no schedule that fits and runs"
    return reason or "unknown"


def infeasible_counts(run: Run) -> list[tuple[str, int, str]]:
    """(class, number of trials, one example reason), most frequent first."""
    c = run.complete
    counts: dict[str, list] = {}
    for _, r in c.iterrows():
        if _true(r["feasible"]):
            if run.meta.get("verify") == "top" and not _missing(r.get("verified")) and not r["verified"]:
                counts.setdefault("failed the bit-exact re-run", [0, "simulator output or cycles differ"])[0] += 1
            continue
        reason = "" if _missing(r.get("reason")) else str(r["reason"])
        entry = counts.setdefault(reason_class(reason), [0, reason])
        entry[0] += 1
    return sorted(((k, n, ex) for k, (n, ex) in counts.items()), key=lambda t: (-t[1], t[0]))


def _true(v) -> bool:
    return not _missing(v) and bool(v)


def _missing(v) -> bool:
    try:
        import pandas as pd
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def chosen_layers(run: Run) -> list[dict]:
    """The chosen trial's layers: one measured row each (the search's runner first), with the timing fields."""
    if not run.best or not len(run.results):
        return []
    r = run.results
    rows = r[(r["trial"] == run.best["trial"]) & (r["chosen"] == True)]  # noqa: E712
    out, seen = [], set()
    from .runners import RUNNERS

    for mode in RUNNERS:            # the search's own measurement first, then the verification's
        for _, row in rows[rows["mode"] == mode].iterrows():
            if row["workload"] not in seen:
                seen.add(row["workload"])
                out.append(row.to_dict())
    return out


def stock_layers(run: Run) -> list[dict]:
    return [dict(layer) for layer in (run.baseline or {}).get("layers", [])]


def resources_of(config: dict | None):
    """The resource estimate of a config (None when it cannot be built)."""
    if not config:
        return None
    import hwconfigs
    try:
        return hwconfigs.estimate_resources(hwconfigs.HwConfig.from_dict(dict(config)))
    except Exception:
        return None


def knob_text(value) -> str:
    """A knob compactly: a split [outer, inner] as outer×inner."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}×{value[1]}"
    if isinstance(value, (list, tuple)):
        return "×".join(map(str, value))
    return "" if value is None else str(value)


def schedule_table(schedules: dict) -> tuple[list[str], list[list[str]]]:
    """One row per layer, one column per knob (the union over layers; blank where a layer's op
    has no such knob)."""
    knobs: list[str] = []
    for k in schedules.values():
        for name in (k or {}):
            if name not in knobs:
                knobs.append(name)
    order = ["tile_b", "tile_h", "tile_w", "tile_ci", "tile_co", "oc_nthread", "h_nthread"]
    knobs.sort(key=lambda n: (order.index(n) if n in order else len(order), n))
    rows = [[name, *(knob_text((k or {}).get(n)) for n in knobs)] for name, k in schedules.items()]
    return ["layer", *knobs], rows


def ms(seconds) -> str:
    v = _num(seconds)
    return "" if v is None else f"{v * 1e3:.4g}"


def kib(nbytes) -> str:
    v = _num(nbytes)
    return "" if v is None else f"{v / 1024:.4g}"


def pct(v) -> str:
    v = _num(v)
    return "" if v is None else f"{v * 100:.1f}%"


# ---- the report's content, once, for both formats -------------------------------------------

@dataclasses.dataclass
class Section:
    title: str
    paragraphs: list = dataclasses.field(default_factory=list)       # plain text
    tables: list = dataclasses.field(default_factory=list)           # (caption, header, rows)
    figures: list = dataclasses.field(default_factory=list)          # svg text (html only)


def sections(run: Run) -> tuple[str, list[Section]]:
    name = run.meta.get("study", run.out.name)
    objs = run.objectives
    complete, feasible = run.complete, run.feasible
    budget = run.meta.get("n_trials")
    trials = (f"{len(complete)} complete trials ({budget} sampled, the others scored exactly from the schedule "
              f"tables)" if isinstance(budget, int) and len(complete) > budget
              else f"{len(complete)} complete trials of {budget if budget is not None else '?'}")
    summary = (f"{trials}, {len(feasible)} feasible; "
               f"{len(run.results)} schedule candidates measured, {run.rejected} refused statically; sampler "
               f"{run.meta.get('sampler', '?')}, seed {run.meta.get('seed', '?')}; objectives "
               + ", ".join(f"{n} ({d})" for n, d in objs) + (f"; target {run.target}" if run.target else ""))
    out = [_decision(run), _utilisation(run), _layers(run), _schedules(run), _front(run), _convergence(run),
           _infeasible(run)]
    out[0].paragraphs.insert(0, summary)
    return name, [s for s in out if s is not None]


def _decision(run: Run) -> Section:
    s = Section("Decision")
    best, base = run.best, run.baseline
    if not best:
        counts = infeasible_counts(run)
        top = f" Most often: {counts[0][0]} ({counts[0][1]} of {len(run.complete)} trials)." if counts else ""
        s.paragraphs.append("NO FEASIBLE CONFIGURATION: none of the trials had every layer scheduled within the "
                            "budget, so nothing is recommended and no best_config.json was written." + top
                            + " The reasons are counted below.")
    else:
        s.paragraphs.append(f"Chosen: trial {best['trial']}, by the rule: {rule_text(run)}. Its hardware config is "
                            f"best_config.json.")
        b = best.get("baseline") or {}
        if b.get("speedup") and abs(b["speedup"] - 1) < 5e-4:
            change = ", ".join(f"{k.upper()} {v:+g}" for k, v in (b.get("resource_change") or {}).items()
                               if v)
            s.paragraphs.append(
                f"Against the stock configuration ({(b.get('hardware') or {}).get('TARGET', '?')} preset with "
                f"upstream's schedules): the same latency ({ms(best['latency_s'])} ms), "
                + (f"for less hardware: {change}." if change else "and the same resources: nothing to gain here."))
        elif b.get("speedup"):
            s.paragraphs.append(
                f"Against the stock configuration ({(b.get('hardware') or {}).get('TARGET', '?')} preset with "
                f"upstream's schedules): {b['speedup']:.3f}× the speed (latency {ms(base and base.get('latency_s'))} → "
                f"{ms(best['latency_s'])} ms), " + ", ".join(
                    f"{k.upper()} {v:+g}" for k, v in (b.get("resource_change") or {}).items() if v is not None) + ".")
    if base:
        if not base.get("feasible"):
            why = base.get("reason") or "; ".join(f"{l['workload']}: {l.get('error')}" for l in base.get("layers", [])
                                                  if l.get("status") != "ok")
            s.paragraphs.append(f"The stock configuration itself is not feasible here: {why}")
        header = ["", "stock", *(["chosen", "change"] if best else [])]
        rows = [["latency (ms)", ms(base.get("latency_s")), *([ms(best["latency_s"]),
                 _change(base.get("latency_s"), best["latency_s"], relative=True)] if best else [])]]
        for k in RESOURCES:
            rows.append([f"{k.upper()} (estimate)", _g(base.get(k)),
                         *([_g(best.get(k)), _change(base.get(k), best.get(k))] if best else [])])
        hw_b = base.get("hardware") or {}
        hw_c = (best or {}).get("config") or {}
        for key in [k for k in hw_b if k.startswith("LOG_")]:
            if not best or hw_b.get(key) != hw_c.get(key):
                rows.append([key, str(hw_b.get(key)), *([str(hw_c.get(key)), "changed"] if best else [])])
        s.tables.append(("chosen against stock (hardware keys listed where they differ)" if best
                         else "the stock configuration", header, rows))
    elif best:
        s.paragraphs.append("No stock baseline was measured in this run (no baseline.json).")
    return s


def _change(a, b, relative=False) -> str:
    a, b = _num(a), _num(b)
    if a is None or b is None:
        return ""
    if relative:
        return f"{(b / a - 1) * 100:+.1f}%" if a else ""
    return f"{b - a:+g}"


def _g(v) -> str:
    v = _num(v)
    return "" if v is None else f"{v:g}"


def _utilisation(run: Run) -> Section | None:
    cap = run.capacity
    if cap is None:
        return None
    s = Section("FPGA utilisation (estimates)")
    chosen = resources_of((run.best or {}).get("config"))
    stock = resources_of((run.baseline or {}).get("hardware"))
    s.paragraphs.append(f"Estimated by hwconfigs.estimate_resources (not a placed build) on the {cap.part} "
                        f"({run.target}); the error bars are the model's stated uncertainty "
                        + ", ".join(f"±{(chosen or stock).uncertainty.get(k, 0) * 100:.0f}% {k.upper()}"
                                    for k in RESOURCES if (chosen or stock)) + " (docs/resources.md).")
    header = ["resource", "part", "budget", *(["stock", "stock %"] if stock else []),
              *(["chosen", "chosen %", "chosen % range"] if chosen else [])]
    rows, series, errors = [], [], {}
    for k in RESOURCES:
        total = getattr(cap, k)
        limit = run.limits.get(k)
        row = [k.upper(), f"{total:g}", f"{limit:g}" if limit is not None else "none"]
        if stock:
            row += [f"{getattr(stock, k):g}", pct(getattr(stock, k) / total)]
        if chosen:
            lo, hi = chosen.band(k)
            row += [f"{getattr(chosen, k):g}", pct(getattr(chosen, k) / total),
                    f"{pct(lo / total)} – {pct(hi / total)}"]
        rows.append(row)
    s.tables.append(("estimated use of the part", header, rows))
    groups = [k.upper() for k in RESOURCES]
    for idx, (label, color, est) in enumerate((("stock", _plots.COLORS["stock"], stock),
                                               ("chosen", "#3a6fc4", chosen))):
        if est is None:
            continue
        values = [getattr(est, k) / getattr(cap, k) * 100 for k in RESOURCES]
        series.append((label, color, values))
        for g, k in enumerate(RESOURCES):
            lo, hi = est.band(k)
            errors[(len(series) - 1, g)] = (lo / getattr(cap, k) * 100, hi / getattr(cap, k) * 100)
    limits = [(100.0, "part capacity (100%)", "#c00")]
    margins = {round(v / getattr(cap, k) * 100, 3) for k, v in run.limits.items()}
    if len(margins) == 1 and next(iter(margins)) < 100:
        limits.append((next(iter(margins)), "study budget", _plots.COLORS["budget"]))
    if series:
        s.figures.append(_plots.bars(groups, series, "% of the part (estimate)",
                                     f"Utilisation of the {run.target} part", limit=limits, errors=errors, log=False))
    return s


def _layers(run: Run) -> Section | None:
    chosen, stock = chosen_layers(run), stock_layers(run)
    if not chosen and not stock:
        return None
    s = Section("Latency per layer and its bottleneck")
    s.paragraphs.append("Latency of one run of the layer × its count in the workload, from the cycle model; "
                        "'bound by' is the module with the most busy cycles (load, compute or store), GEMM util "
                        "the GEMM iterations per cycle (100% = peak; 0 for ALU-only layers); DRAM read is what "
                        "the load module (inputs, weights) and the compute module (micro-ops, accumulators) "
                        "fetch, DRAM write what the store module writes.")
    names = []
    for l in chosen + stock:
        if l["workload"] not in names:
            names.append(l["workload"])
    by_c = {l["workload"]: l for l in chosen}
    by_s = {l["workload"]: l for l in stock}

    def total(layer):
        lat, count = _num(layer.get("latency_s")), _num(layer.get("layer_count", layer.get("count", 1))) or 1
        return None if lat is None else lat * count * 1e3

    who = (["chosen"] if chosen else []) + (["stock"] if stock else [])
    header = ["layer", "count", *(f"{w} ms" for w in who), *(["change"] if len(who) == 2 else [])]
    for w in who:
        header += [f"{w}: bound by", "GEMM util", "DRAM read KiB", "DRAM write KiB"]
    rows = []
    for n in names:
        c, b = by_c.get(n), by_s.get(n)
        count = (c or {}).get("layer_count") or (b or {}).get("count") or 1
        layers = [layer for layer, present in ((c, bool(chosen)), (b, bool(stock))) if present]
        ok = [layer if layer and layer.get("status") in (None, "ok") else None for layer in layers]
        times = [total(layer) if layer else None for layer in ok]
        row = [n, str(int(count)), *(f"{t:.4g}" if t is not None else "—" for t in times)]
        if len(who) == 2:
            row.append(f"{(times[0] / times[1] - 1) * 100:+.1f}%" if None not in times and times[1] else "")
        for layer, raw in zip(ok, layers):
            if layer is None:
                row += [(raw or {}).get("status") or "", "", "", ""]
                continue
            ports = [_num(layer.get(f"dram_{p}_bytes")) for p in ("load", "compute")]
            read = None if None in ports else sum(ports)     # None: a run from before these columns
            row += [_text(layer.get("bound_by")), pct(layer.get("gemm_utilization")), kib(read),
                    kib(layer.get("dram_store_bytes"))]
        rows.append(row)
    s.tables.append(("per layer (ms = count × one run)", header, rows))
    series = []
    if chosen:
        series.append(("chosen", "#3a6fc4", [total(by_c[n]) if n in by_c else None for n in names]))
    if stock:
        series.append(("stock", _plots.COLORS["stock"], [total(by_s[n]) if n in by_s and by_s[n].get("status") == "ok"
                                                          else None for n in names]))
    if any(v for _, _, vs in series for v in vs if v):
        s.figures.append(_plots.bars(names, series, "latency × count (ms)", "Latency per layer"))
    return s


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n].rsplit(" ", 1)[0] + " …"


def _text(v) -> str:
    return "" if _missing(v) else str(v)


def _schedules(run: Run) -> Section | None:
    s = Section("Schedules")
    if run.best and run.best.get("schedules"):
        header, rows = schedule_table(run.best["schedules"])
        s.tables.append(("the chosen schedules (a split as outer×inner)", header, rows))
    stock = {l["workload"]: l.get("knobs") or _fallback(run, l["workload"]) for l in stock_layers(run)
             if l.get("knobs") is not None}
    if stock:
        header, rows = schedule_table(stock)
        sources = {l["workload"]: l.get("source") for l in stock_layers(run)}
        header.append("source")
        for row in rows:
            row.append({"upstream": "TopHub", "table": "best of the tables", "fallback": "AutoTVM fallback"}
                       .get(sources.get(row[0]), str(sources.get(row[0]) or "")))
        s.tables.append(("the stock baseline's schedules", header, rows))
    return s if s.tables else None


def _fallback(run: Run, name: str) -> dict:
    """The knob set an empty schedule stands for (AutoTVM's fallback), when the layer is known."""
    hw = (run.baseline or {}).get("hardware")
    try:
        import hwconfigs
        from compiler import workloads

        from ._export import run_workloads
        from .evaluate import _layer
        w = next((w for w in run_workloads(run) if w.name == name), None)
        if not w or not hw:
            return {}
        return workloads.fallback_knobs(_layer(w.op, w.params), hwconfigs.get_env(hwconfigs.HwConfig.from_dict(hw)))
    except Exception:       # no simulator evaluator (a test double's run), an older run: left blank
        return {}


def _front(run: Run) -> Section:
    objs = run.objectives
    s = Section("Pareto front of the study's objectives")
    feasible = run.feasible
    if not len(feasible):
        s.paragraphs.append("No feasible trial: there is no front to draw.")
        return s
    from ._tables import pareto

    sign = {n: (1 if d == "minimize" else -1) for n, d in objs}
    cols = [f"value_{n}" for n, _ in objs]
    vecs = {int(r["trial"]): tuple(sign[n] * float(r[f"value_{n}"]) for n, _ in objs) for _, r in feasible.iterrows()}
    front = set(pareto(vecs))
    best_trial = (run.best or {}).get("trial")
    if len(objs) == 1:
        pairs = [(objs[0][0], "bram" if objs[0][0] != "bram" else "latency")]
        s.paragraphs.append(f"One objective ({objs[0][0]}): its front is the best point; drawn against "
                            f"{pairs[0][1]} for context.")
    else:
        pairs = [(objs[0][0], other) for other, _ in objs[1:]]
        if len(objs) > 2:
            s.paragraphs.append(f"{len(objs)} objectives: each plot is a projection; red points are on the "
                                f"{len(objs)}-dimensional front.")
    scale = {"latency": 1e3}
    for xn, yn in pairs:
        pts = []
        for _, r in feasible.iterrows():
            x, y = objective_value(xn, r), objective_value(yn, r)
            if x is None or y is None:
                continue
            t = int(r["trial"])
            pts.append((x * scale.get(xn, 1), y * scale.get(yn, 1), "front" if t in front else "point",
                        f"trial {t}: {xn} {x:.4g}, {yn} {y:.4g}"))
        chosen = stock = None
        if run.best:
            x, y = objective_value(xn, run.best), objective_value(yn, run.best)
            if x is not None and y is not None:
                chosen = (x * scale.get(xn, 1), y * scale.get(yn, 1), f"chosen: trial {best_trial}")
        if run.baseline and run.baseline.get("latency_s") is not None:
            x, y = objective_value(xn, run.baseline), objective_value(yn, run.baseline)
            if x is not None and y is not None:
                stock = (x * scale.get(xn, 1), y * scale.get(yn, 1), "stock baseline")
        budgets = {}
        for axis_name in (xn, yn):
            if axis_name in RESOURCES:
                lines = []
                if run.capacity is not None:
                    lines.append((float(getattr(run.capacity, axis_name)), f"{run.target} {axis_name.upper()}"))
                limit = run.limits.get(axis_name)
                if limit is not None and (not lines or abs(limit - lines[0][0]) > 1e-9):
                    lines.append((limit, f"budget {axis_name.upper()}"))
                budgets[axis_name] = lines
        s.figures.append(_plots.scatter(pts, OBJ_LABEL.get(xn, xn), OBJ_LABEL.get(yn, yn),
                                        f"{xn} vs {yn}: {len(feasible)} feasible trials, {len(front)} on the front",
                                        chosen=chosen, stock=stock, xbudget=budgets.get(xn), ybudget=budgets.get(yn),
                                        staircase=len(objs) > 1))
    hw = [c for c in run.trials.columns if c.startswith("LOG_")]
    rows = []
    for _, r in feasible[feasible["trial"].isin(front)].sort_values(cols).iterrows():
        t = int(r["trial"])
        rows.append([f"{t}" + (" (chosen)" if t == best_trial else ""), *(_text(r[c]) for c in hw),
                     *(ms(r["value_latency"]) if n == "latency" else _g(r[f"value_{n}"]) for n, _ in objs),
                     *(_g(r[k]) for k in RESOURCES if k not in dict(objs))])
    header = ["trial", *hw, *(OBJ_LABEL.get(n, n) for n, _ in objs),
              *(k.upper() for k in RESOURCES if k not in dict(objs))]
    s.tables.append((f"the front ({len(front)} trials)", header, rows))
    return s


def _convergence(run: Run) -> Section | None:
    complete = run.complete
    if not len(complete):
        return None
    name, direction = run.objectives[0]
    scale = 1e3 if name == "latency" else 1
    series = []
    for _, r in complete.sort_values("trial").iterrows():
        v = objective_value(name, r) if _true(r["feasible"]) else None
        series.append((int(r["trial"]), None if v is None else v * scale))
    s = Section("Convergence")
    feasible = [v for _, v in series if v is not None]
    if feasible:
        best = min(feasible) if direction == "minimize" else max(feasible)
        first = next(n for n, v in series if v == best)
        s.paragraphs.append(f"The best {name} ({_g(best)}{' ms' if name == 'latency' else ''}) was first reached at "
                            f"trial {first} of {len(series)}.")
    else:
        s.paragraphs.append("No trial was feasible: nothing converged (the reasons are below).")
        return s
    stock = objective_value(name, run.baseline)
    s.figures.append(_plots.convergence(series, OBJ_LABEL.get(name, name), f"{name} per trial and the best so far",
                                        direction=direction, stock=stock * scale if stock is not None else None))
    return s


def _infeasible(run: Run) -> Section:
    s = Section("Why points were infeasible")
    counts = infeasible_counts(run)
    if not counts:
        s.paragraphs.append("Every complete trial was feasible.")
    else:
        s.tables.append(("trials by reason", ["reason", "trials", "example"],
                         [[k, str(n), _clip(ex, 240)] for k, n, ex in counts]))
    if len(run.results):
        status = run.results["status"].value_counts()
        s.tables.append(("schedule candidates by status", ["status", "candidates"],
                         [[str(k), str(v)] for k, v in status.items()] + [["refused statically (rejected.parquet)",
                                                                           str(run.rejected)]]))
    return s


# ---- the two formats ---------------------------------------------------------------------------

CSS = """body{font-family:sans-serif;margin:2em auto;max-width:1260px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.4em 0 1.2em}caption{text-align:left;font-style:italic;padding:2px 0;
white-space:nowrap}td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px;text-align:left}th{background:#eee}
td.n{text-align:right}.figs{display:flex;flex-wrap:wrap;gap:1em}
.none{background:#fee;border:1px solid #c66;padding:.6em}svg.plot{border:1px solid #ddd;background:#fff}
h2{border-bottom:1px solid #ccc;margin-top:1.6em}"""


def to_html(name: str, secs: list[Section]) -> str:
    parts = [f"<!doctype html><html><head><meta charset=\"utf-8\"><title>vta-dse: {html.escape(name)}</title>"
             f"<style>{CSS}</style></head><body><h1>Study {html.escape(name)}</h1>"]
    for s in secs:
        parts.append(f"<section><h2>{html.escape(s.title)}</h2>")
        for p in s.paragraphs:
            cls = ' class="none"' if p.startswith("NO FEASIBLE") else ""
            parts.append(f"<p{cls}>{html.escape(p)}</p>")
        if s.figures:
            parts.append('<div class="figs">' + "".join(f"<figure>{f}</figure>" for f in s.figures) + "</div>")
        for caption, header, rows in s.tables:
            numeric = _numeric_columns(header, rows)
            parts.append(f"<table><caption>{html.escape(caption)}</caption><tr>"
                         + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
                         + "".join("<tr>" + "".join(f"<td{RIGHT if numeric[i] else ''}>{html.escape(c)}</td>"
                                                    for i, c in enumerate(row)) + "</tr>"
                                   for row in rows) + "</table>")
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "".join(parts)


RIGHT = ' class="n"'
_NUMBER = re.compile(r"^[-+]?[\d.,]+(e[-+]?\d+)?(%|x|×)?$")


def _align(cell: str) -> bool:
    return bool(_NUMBER.match(cell.split(" – ")[0].split(" (")[0].strip()))


def _numeric_columns(header, rows) -> list[bool]:
    """A column of numbers is right-aligned (they compare down it), one of text left."""
    return [any(i < len(r) and r[i] for r in rows) and all(_align(r[i]) for r in rows if i < len(r) and r[i])
            for i in range(len(header))]


def to_markdown(name: str, secs: list[Section]) -> str:
    lines = [f"# Study {name}", ""]
    for s in secs:
        lines += [f"## {s.title}", ""]
        for p in s.paragraphs:
            lines += [f"**{p}**" if p.startswith("NO FEASIBLE") else p, ""]
        for caption, header, rows in s.tables:
            numeric = _numeric_columns(header, rows)
            lines += [f"*{caption}*", "", "| " + " | ".join(_md(h) for h in header) + " |",
                      "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
            lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
            lines.append("")
        if s.figures:
            lines += [f"({len(s.figures)} figure{'s' if len(s.figures) > 1 else ''} in report.html)", ""]
    return "\n".join(lines)


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_report(out) -> tuple[Path, Path]:
    """(Re)write ``report.html`` and ``report.md`` of a run folder from its files."""
    run = load_run(out)
    name, secs = sections(run)
    html_path, md_path = Path(out) / "report.html", Path(out) / "report.md"
    html_path.write_text(to_html(name, secs))
    md_path.write_text(to_markdown(name, secs))
    return html_path, md_path


def _hide(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url
