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
    if _storage_of(out) and (not trials_path.is_file() or _storage_is_ahead(out, trials_path)):
        return show_live(out, top, stream)      # a study still running (or stopped before its tables)
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


def _storage_of(out: Path) -> tuple[str, str | None] | None:
    """(storage URL, study name or None) of the run in ``out``: the storage ``study.json`` names
    (written when the run starts; not one whose password it hides), else ``out/study.db``."""
    try:
        meta = json.loads((out / "study.json").read_text())
        url, name = meta.get("storage"), meta.get("study")
        if isinstance(url, str) and url and "***" not in url:
            return url, name if isinstance(name, str) else None
    except (OSError, ValueError, AttributeError):
        pass
    if (out / "study.db").is_file():
        return f"sqlite:///{out / 'study.db'}", None
    return None


def _stored_trials(out: Path) -> tuple[str, list]:
    """(study name, trials) of the run's study, read from its storage."""
    from ._storage import load_study

    url, name = _storage_of(out) or (f"sqlite:///{out / 'study.db'}", None)
    try:
        study, _ = load_study(url, name)
        return study.study_name, study.get_trials(deepcopy=False)
    except StudyError:
        raise
    except Exception as exc:       # a storage being written: say so, do not crash
        raise StudyError(f"cannot read the running study in {url}: {exc}") from None


def _storage_is_ahead(out: Path, trials_path: Path) -> bool:
    """Whether the storage holds trials the written tables do not show as they are (a run still
    going, or stopped before it rewrote its tables)."""
    try:
        _, trials = _stored_trials(out)
        shown = read_trials(trials_path)
    except Exception:
        return False
    states = dict(zip(shown["trial"].astype(int), shown["state"].astype(str)))
    return any(states.get(t.number) != t.state.name for t in trials)


def show_live(out: Path, top: int, stream) -> int:
    """The trials a running study has told so far, read from its Optuna storage (the tables and
    the report are written when the run ends)."""
    import pandas as pd

    name, trials = _stored_trials(out)
    states = pd.Series([t.state.name for t in trials]).value_counts().to_dict() if trials else {}
    done = [t for t in trials if t.state.name == "COMPLETE"]
    rows = [{"trial": t.number, **t.params, "latency_s": t.user_attrs.get("latency_s"),
             **{k: t.user_attrs.get(k) for k in ("bram", "dsp", "lut")},
             "exact_fill": bool(t.user_attrs.get("dse:exact_fill"))}
            for t in done if t.user_attrs.get("feasible")]
    w = stream.write
    w(f"{out}: study {name!r} running (live from its storage; tables and report when it ends): "
      + ", ".join(f"{n} {k.lower()}" for k, n in sorted(states.items())) + f"; {len(rows)} feasible\n")
    if rows:
        frame = pd.DataFrame(rows).sort_values(["latency_s", "bram", "trial"])
        w(f"\nbest {top} so far by latency (exact_fill: scored from complete schedule tables):\n")
        with pd.option_context("display.width", 200, "display.max_columns", 40):
            w(frame.head(top).to_string(index=False) + "\n")
    return 0
