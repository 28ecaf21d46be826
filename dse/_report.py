"""``report.html``: one self-contained page (no scripts, no external files) with the chosen
configuration, the Pareto front, the top trials, two inline SVG plots (the design space and the
search's convergence) and the candidates' status counts."""
from __future__ import annotations

import html
import json
import math

W, H, PAD = 560, 340, 56


def _fmt(value) -> str:
    try:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
    except TypeError:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return "" if text in ("<NA>", "nan", "None") else text


def _table(df, columns, limit=20) -> str:
    if df is None or not len(df):
        return "<p><em>none</em></p>"
    cols = [c for c in columns if c in df.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for _, r in df.head(limit).iterrows():
        body.append("<tr>" + "".join(f"<td>{html.escape(_fmt(r[c]))}</td>" for c in cols) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _scale(values, lo_px, hi_px, log=False):
    vals = [math.log10(v) if log else v for v in values]
    lo, hi = min(vals), max(vals)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    span = hi - lo
    lo, hi = lo - 0.05 * span, hi + 0.05 * span
    return (lambda v: lo_px + ((math.log10(v) if log else v) - lo) / (hi - lo) * (hi_px - lo_px)), (lo, hi)


def _axes(title, xlabel, ylabel, xr, yr, xlog, ylog) -> list[str]:
    def tick(v, log):
        return f"{10 ** v:.3g}" if log else f"{v:.3g}"
    parts = [f'<rect x="{PAD}" y="{PAD // 2}" width="{W - PAD - 10}" height="{H - PAD - PAD // 2}" '
             f'fill="none" stroke="#888"/>',
             f'<text x="{W / 2}" y="16" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>',
             f'<text x="{W / 2}" y="{H - 6}" text-anchor="middle">{html.escape(xlabel)}</text>',
             f'<text x="14" y="{H / 2}" text-anchor="middle" transform="rotate(-90 14 {H / 2})">'
             f'{html.escape(ylabel)}</text>']
    for i in range(5):
        fx = xr[0] + (xr[1] - xr[0]) * i / 4
        px = PAD + (W - PAD - 10) * i / 4
        parts.append(f'<text x="{px:.1f}" y="{H - PAD + 16}" text-anchor="middle" font-size="10">{tick(fx, xlog)}</text>')
        fy = yr[0] + (yr[1] - yr[0]) * i / 4
        py = H - PAD - (H - PAD - PAD // 2) * i / 4
        parts.append(f'<text x="{PAD - 4}" y="{py + 3:.1f}" text-anchor="end" font-size="10">{tick(fy, ylog)}</text>')
    return parts


def scatter_svg(points, front, xlabel, ylabel, title) -> str:
    """points: [(x, y, label, feasible)]; front: labels on the Pareto front."""
    pts = [p for p in points if p[0] is not None and p[1] is not None and p[3]]
    if not pts:
        return "<p><em>no feasible trial to plot</em></p>"
    xlog = min(p[0] for p in pts) > 0 and max(p[0] for p in pts) / min(p[0] for p in pts) > 20
    sx, xr = _scale([p[0] for p in pts], PAD, W - 10, xlog)
    sy, yr = _scale([p[1] for p in pts], H - PAD, PAD // 2)
    parts = _axes(title, xlabel, ylabel, xr, yr, xlog, False)
    line = sorted((p for p in pts if p[2] in front), key=lambda p: p[0])
    if len(line) > 1:
        parts.append('<polyline fill="none" stroke="#d33" stroke-width="1.5" points="'
                     + " ".join(f"{sx(p[0]):.1f},{sy(p[1]):.1f}" for p in line) + '"/>')
    for x, y, label, _ in pts:
        on = label in front
        parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{5 if on else 3.5}" '
                     f'fill="{"#d33" if on else "#4a7bd0"}" fill-opacity="0.8"><title>trial {label}: '
                     f'{x:.4g}, {y:.4g}</title></circle>')
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" ' \
           f'font-size="12">{"".join(parts)}</svg>'


def convergence_svg(series, ylabel, title) -> str:
    """series: [(trial, value or None)] in trial order; draws values and the running best."""
    pts = [(n, v) for n, v in series if v is not None and math.isfinite(v)]
    if not pts:
        return "<p><em>no feasible trial to plot</em></p>"
    ylog = min(v for _, v in pts) > 0 and max(v for _, v in pts) / min(v for _, v in pts) > 20
    sx, xr = _scale([n for n, _ in pts], PAD, W - 10)
    sy, yr = _scale([v for _, v in pts], H - PAD, PAD // 2, ylog)
    parts = _axes(title, "trial", ylabel, xr, yr, False, ylog)
    best, line = math.inf, []
    for n, v in pts:
        best = min(best, v)
        line.append(f"{sx(n):.1f},{sy(best):.1f}")
        parts.append(f'<circle cx="{sx(n):.1f}" cy="{sy(v):.1f}" r="3" fill="#888"><title>trial {n}: {v:.4g}</title>'
                     f'</circle>')
    parts.append(f'<polyline fill="none" stroke="#2a2" stroke-width="2" points="{" ".join(line)}"/>')
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" ' \
           f'font-size="12">{"".join(parts)}</svg>'


CSS = """body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px;text-align:right}th{background:#eee}
.plots{display:flex;flex-wrap:wrap;gap:1em}code{background:#f4f4f4;padding:1px 4px}"""


def render(spec, results, trials, best, front, storage_url) -> str:
    first, direction = spec.objectives[0]
    hw_cols = [k.name for k in spec.hardware]
    trial_cols = ["trial", *hw_cols, "latency_s", "bram", "dsp", "lut", "feasible", "verified", "candidates"]
    complete = trials[trials["state"] == "COMPLETE"] if len(trials) else trials
    feasible = complete[complete["feasible"] == True] if len(complete) else complete  # noqa: E712
    value_col = f"value_{first}"
    top = feasible.sort_values(value_col, ascending=direction == "minimize") if len(feasible) else feasible
    front_labels = set(int(t) for t in front["trial"]) if front is not None and len(front) else set()
    plot_points = [(_f(r["latency_s"]), _f(r["bram"]), int(r["trial"]), True) for _, r in feasible.iterrows()]
    scatter = scatter_svg(plot_points, front_labels, "latency (s, all workloads)", "BRAM36 blocks",
                          "design space: latency vs BRAM (red: Pareto front)")
    conv = convergence_svg([(int(r["trial"]), _f(r["latency_s"])) for _, r in complete.sort_values("trial").iterrows()],
                           "latency (s)", "search progress: latency per trial, running best")
    status = results["status"].value_counts().to_dict() if len(results) else {}
    best_html = "<p><em>no feasible configuration found</em></p>"
    if best:
        best_html = (f"<p>trial {best['trial']}: latency {_fmt(best['latency_s'])} s, BRAM {_fmt(best['bram'])}, "
                     f"DSP {_fmt(best['dsp'])}, LUT {_fmt(best['lut'])}, verified {best['verified']}</p>"
                     f"<pre>{html.escape(json.dumps(best['config'], indent=2))}</pre>"
                     f"<h3>schedules</h3><pre>{html.escape(json.dumps(best['schedules'], indent=1))}</pre>")
    from ._tables import baseline_text
    text = baseline_text((best or {}).get("baseline"))
    if text:
        best_html = (f"<p><strong>Against the stock configuration:</strong> {html.escape(text)}. The chosen one is "
                     f"the fastest feasible configuration, ties broken by the next objectives.</p>") + best_html
    chosen = results[(results["chosen"] == True) & (results["mode"] != "full")] if len(results) else results  # noqa: E712
    if best and len(chosen):
        chosen = chosen[chosen["trial"] == best["trial"]]
    layer_cols = ["workload", "layer_count", "candidate", "cycles", "latency_s", "gemm_counter", "alu_counter",
                  "inp_load_nbytes", "wgt_load_nbytes", "out_store_nbytes", "verified"]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>vta-dse: {html.escape(spec.name)}</title>
<style>{CSS}</style></head><body>
<h1>Study {html.escape(spec.name)}</h1>
<p>sampler <code>{spec.sampler}</code>, seed {spec.seed}, objectives
{", ".join(f"{n} ({d})" for n, d in spec.objectives)}, {len(complete)} complete trials of {spec.n_trials},
{len(feasible)} feasible, {len(results)} candidate rows, storage <code>{html.escape(_hide(storage_url))}</code></p>
<h2>Chosen configuration</h2>{best_html}
<h3>its layers</h3>{_table(chosen, layer_cols, 100)}
<div class="plots">{scatter}{conv}</div>
<h2>Pareto front</h2>{_table(front, trial_cols, 50)}
<h2>Top trials by {first}</h2>{_table(top, trial_cols, 20)}
<h2>Candidates by status</h2><table>{"".join(f"<tr><th>{html.escape(str(k))}</th><td>{v}</td></tr>" for k, v in status.items())}</table>
</body></html>
"""


def _f(value):
    try:
        v = float(value)
        return v if math.isfinite(v) else None
    except (TypeError, ValueError):
        return None


def _hide(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url
