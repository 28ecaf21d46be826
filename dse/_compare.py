"""``vta-dse compare DIR DIR``: two studies' decisions side by side (chosen configuration,
latency, resources, speedup against each one's own stock baseline, per-layer latency)."""
from __future__ import annotations

from ._columns import RESOURCES
from ._report import Run, chosen_layers, load_run, ms


def _cell(v) -> str:
    return "—" if v in (None, "") else str(v)


def compare_rows(a: Run, b: Run) -> list[tuple[str, str, str]]:
    rows = []

    def add(label, fa, fb=None):
        rows.append((label, _cell(fa(a)), _cell((fb or fa)(b))))

    add("study", lambda r: r.meta.get("study"))
    add("objectives", lambda r: ", ".join(f"{n} ({d[:3]})" for n, d in r.objectives))
    add("trials complete (feasible)", lambda r: f"{len(r.complete)} ({len(r.feasible)})")
    add("chosen trial", lambda r: r.best["trial"] if r.best else "none feasible")
    add("latency (ms)", lambda r: ms(r.best["latency_s"]) if r.best else None)
    add("stock latency (ms)", lambda r: ms((r.baseline or {}).get("latency_s")))
    add("speedup vs its stock", lambda r: _speedup(r))
    for k in RESOURCES:
        add(f"{k.upper()} (estimate)", lambda r, k=k: _g((r.best or {}).get(k)))
        add(f"{k.upper()} change vs its stock", lambda r, k=k: _change(r, k))
    keys = []
    for r in (a, b):
        for key in ((r.best or {}).get("config") or (r.baseline or {}).get("hardware") or {}):
            if key.startswith("LOG_") and key not in keys:
                keys.append(key)
    for key in keys:
        va, vb = (((r.best or {}).get("config") or {}).get(key) for r in (a, b))
        rows.append((key + (" *" if va != vb else ""), _cell(va), _cell(vb)))
    la = {l["workload"]: l for l in chosen_layers(a)}
    lb = {l["workload"]: l for l in chosen_layers(b)}
    for name in list(dict.fromkeys([*la, *lb])):
        rows.append((f"layer {name} (ms, bound by)", _layer(la.get(name)), _layer(lb.get(name))))
    if a.best and b.best and a.best.get("latency_s") and b.best.get("latency_s"):
        rows.append(("B latency / A latency", "", f"{b.best['latency_s'] / a.best['latency_s']:.4g}"))
    return rows


def _g(v):
    return None if v is None else f"{float(v):g}"


def _speedup(r: Run):
    s = ((r.best or {}).get("baseline") or {}).get("speedup")
    return None if not s else f"{s:.3f}x"


def _change(r: Run, k: str):
    v = (((r.best or {}).get("baseline") or {}).get("resource_change") or {}).get(k)
    return None if v is None else f"{v:+g}"


def _layer(row):
    if not row:
        return "—"
    lat = row.get("latency_s")
    return f"{float(lat) * 1e3 * float(row.get('layer_count') or 1):.4g}, {row.get('bound_by') or '?'}" \
        if lat is not None else str(row.get("status"))


def compare(dir_a, dir_b, stream) -> int:
    a, b = load_run(dir_a), load_run(dir_b)
    rows = [("", f"A: {dir_a}", f"B: {dir_b}"), *compare_rows(a, b)]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    for label, va, vb in rows:
        stream.write(f"{label:<{w0}}  {va:>{w1}}  {vb}\n")
    stream.write("(* hardware keys that differ; resources are estimates; speedups are each study's own "
                 "chosen configuration against its own stock baseline)\n")
    return 0
