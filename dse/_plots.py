"""Inline SVG plots for the report: no scripts, no external files, readable as printed.

Every plot reads the same way: axis titles with units, at most ~6 ticks a side, integer ticks
on integer axes (trials), a log axis where the values span decades, and on a linear axis the
few far outliers drawn as arrows on its edge (counted in a note) instead of squeezing the rest
into a corner. Legends sit under the plot, never over the points.
"""
from __future__ import annotations

import html
import math

W, H = 600, 380
LEFT, RIGHT, TOP, BOTTOM = 76, 18, 34, 58

COLORS = {"point": "#4a7bd0", "front": "#d33", "chosen": "#111", "stock": "#e08a00", "budget": "#7a2",
          "grey": "#999", "best": "#2a2"}


def fmt(v: float) -> str:
    """A tick label: short, no float noise."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        mant, exp = f"{v:.0e}".split("e")
        return f"{mant}e{int(exp)}"
    if float(v).is_integer():
        return f"{int(v):d}"
    return f"{v:.3g}"


class Axis:
    """One axis: its scale (linear or log), its range (outliers excluded) and its ticks."""

    def __init__(self, values, label, *, integer=False, log=None, include=(), clip=True):
        vals = [float(v) for v in values if v is not None and math.isfinite(v)]
        extra = [float(v) for v in include if v is not None and math.isfinite(v)]
        self.label, self.integer = label, integer
        both = vals + extra
        positive = both and min(both) > 0
        self.log = bool(positive and max(both) / min(both) >= 30) if log is None else bool(log and positive)
        lo, hi = (min(both), max(both)) if both else (0.0, 1.0)
        self.clipped_hi = None
        if clip and not self.log and len(vals) >= 6:
            s = sorted(vals)
            p90 = s[int(0.9 * (len(s) - 1))]
            if s[-1] - p90 > 3 * max(p90 - s[0], 1e-300):
                hi = max([p90 + 0.2 * (p90 - s[0])] + extra)
                self.clipped_hi = hi
        if self.log:
            lo, hi = math.log10(lo), math.log10(hi)
            pad = max((hi - lo) * 0.06, 0.05)
        else:
            pad = (hi - lo) * 0.06 or max(abs(hi) * 0.1, 0.5 if integer else 1e-9)
        self.lo, self.hi = lo - pad, hi + pad
        if not self.log and min(both or [0]) >= 0 and self.lo < 0 and lo - pad < 0 <= lo:
            self.lo = max(self.lo, 0 - (hi - lo) * 0.02) if lo > 0 else self.lo

    def frac(self, v: float) -> float:
        x = math.log10(v) if self.log else v
        return (x - self.lo) / (self.hi - self.lo)

    def outside(self, v: float) -> bool:
        return self.clipped_hi is not None and v > self.clipped_hi

    def ticks(self) -> list[float]:
        if self.log:
            a, b = math.floor(self.lo), math.ceil(self.hi)
            decades = [10.0 ** e for e in range(a, b + 1)]
            inside = [t for t in decades if self.lo <= math.log10(t) <= self.hi]
            if len(inside) < 3:
                inside = [t * m for t in decades for m in (1, 2, 5) if self.lo <= math.log10(t * m) <= self.hi]
            if len(inside) > 7:
                inside = inside[::math.ceil(len(inside) / 6)]
            return inside
        span = self.hi - self.lo
        raw = span / 5
        mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
        step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
        if self.integer:
            step = max(1, round(step))
        first = math.ceil(self.lo / step) * step
        out, t = [], first
        while t <= self.hi + 1e-12 * abs(step):
            out.append(round(t, 12))
            t += step
        return out


class Plot:
    """A plot area with two axes; ``x(v)``/``y(v)`` give pixel positions."""

    def __init__(self, xaxis: Axis, yaxis: Axis, title: str, width=W, height=H):
        self.xa, self.ya, self.title = xaxis, yaxis, title
        self.w, self.h = width, height
        self.parts: list[str] = []
        self.legend: list[tuple[str, str]] = []
        self.notes: list[str] = []

    def x(self, v):
        f = min(max(self.xa.frac(v), 0.0), 1.0)
        return LEFT + f * (self.w - LEFT - RIGHT)

    def y(self, v):
        f = min(max(self.ya.frac(v), 0.0), 1.0)
        return self.h - BOTTOM - f * (self.h - BOTTOM - TOP)

    def add(self, svg: str) -> None:
        self.parts.append(svg)

    def marker(self, x, y, kind, tip="", size=5):
        px, py = self.x(x), self.y(y)
        tip = f"<title>{html.escape(tip)}</title>" if tip else ""
        return marker_svg(px, py, kind, size, tip)

    def hline(self, value, color, label, dash="6,4"):
        if not math.isfinite(value) or (self.ya.log and value <= 0):
            return
        py = self.y(value)
        self.add(f'<line x1="{LEFT}" x2="{self.w - RIGHT}" y1="{py:.1f}" y2="{py:.1f}" stroke="{color}" '
                 f'stroke-width="1.5" stroke-dasharray="{dash}"/>')
        self.legend.append((f'<line x1="0" x2="18" y1="0" y2="0" stroke="{color}" stroke-width="1.5" '
                            f'stroke-dasharray="{dash}"/>', label))

    def vline(self, value, color, label, dash="6,4"):
        if not math.isfinite(value) or (self.xa.log and value <= 0):
            return
        px = self.x(value)
        self.add(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{TOP}" y2="{self.h - BOTTOM}" stroke="{color}" '
                 f'stroke-width="1.5" stroke-dasharray="{dash}"/>')
        self.legend.append((f'<line x1="0" x2="18" y1="0" y2="0" stroke="{color}" stroke-width="1.5" '
                            f'stroke-dasharray="{dash}"/>', label))

    def svg(self) -> str:
        x0, x1, y0, y1 = LEFT, self.w - RIGHT, TOP, self.h - BOTTOM
        out = [f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" fill="#fff" stroke="#888"/>']
        for t in self.xa.ticks():
            px = self.x(t)
            out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{y0}" y2="{y1}" stroke="#eee"/>'
                       f'<text x="{px:.1f}" y="{y1 + 15}" text-anchor="middle" font-size="11">{fmt(t)}</text>')
        for t in self.ya.ticks():
            py = self.y(t)
            out.append(f'<line x1="{x0}" x2="{x1}" y1="{py:.1f}" y2="{py:.1f}" stroke="#eee"/>'
                       f'<text x="{x0 - 5}" y="{py + 4:.1f}" text-anchor="end" font-size="11">{fmt(t)}</text>')
        xl = self.xa.label + (" (log scale)" if self.xa.log else "")
        yl = self.ya.label + (" (log scale)" if self.ya.log else "")
        out.append(f'<text x="{(x0 + x1) / 2:.0f}" y="{y1 + 34}" text-anchor="middle">{html.escape(xl)}</text>')
        out.append(f'<text x="16" y="{(y0 + y1) / 2:.0f}" text-anchor="middle" '
                   f'transform="rotate(-90 16 {(y0 + y1) / 2:.0f})">{html.escape(yl)}</text>')
        out.append(f'<text x="{x0}" y="20" font-weight="bold">{html.escape(self.title)}</text>')
        body = "".join(out) + "".join(self.parts)
        legend, height = _legend(self.legend, self.notes, self.h, self.w)
        return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{self.w}" height="{height}" '
                f'viewBox="0 0 {self.w} {height}" font-family="sans-serif" font-size="12">{body}{legend}</svg>')


def marker_svg(px, py, kind, size=5, tip=""):
    if kind == "chosen":
        s = size + 3
        pts = " ".join(f"{px + s * math.cos(math.pi / 2 + k * math.pi / 5) * (1 if k % 2 == 0 else 0.45):.1f},"
                       f"{py - s * math.sin(math.pi / 2 + k * math.pi / 5) * (1 if k % 2 == 0 else 0.45):.1f}"
                       for k in range(10))
        return f'<polygon points="{pts}" fill="{COLORS["chosen"]}" stroke="#fff" stroke-width="0.8">{tip}</polygon>'
    if kind == "stock":
        s = size + 2
        return (f'<polygon points="{px},{py - s} {px + s},{py} {px},{py + s} {px - s},{py}" fill="none" '
                f'stroke="{COLORS["stock"]}" stroke-width="2.5">{tip}</polygon>')
    if kind == "clipped":
        return (f'<polygon points="{px - 5},{py + 6} {px + 5},{py + 6} {px},{py - 2}" fill="{COLORS["grey"]}">'
                f'{tip}</polygon>')
    if kind == "infeasible":
        s = size - 1
        return (f'<path d="M{px - s},{py - s}L{px + s},{py + s}M{px - s},{py + s}L{px + s},{py - s}" '
                f'stroke="{COLORS["grey"]}" stroke-width="1.5">{tip}</path>')
    if kind == "front":
        return (f'<circle cx="{px:.1f}" cy="{py:.1f}" r="{size}" fill="{COLORS["front"]}" stroke="#fff" '
                f'stroke-width="0.8">{tip}</circle>')
    return (f'<circle cx="{px:.1f}" cy="{py:.1f}" r="{size - 1.5}" fill="{COLORS["point"]}" fill-opacity="0.75">'
            f'{tip}</circle>')


def _legend(items, notes, top, width):
    """Legend entries in rows under the plot (measured by a character-width estimate)."""
    parts, x, y = [], LEFT, top + 4
    for symbol, label in items:
        w = 26 + 6.6 * len(label) + 16
        if x + w > width - RIGHT and x > LEFT:
            x, y = LEFT, y + 18
        parts.append(f'<g transform="translate({x:.0f},{y:.0f})">{symbol}'
                     f'<text x="24" y="4">{html.escape(label)}</text></g>')
        x += w
    y += 18 if items else 0
    for note in notes:
        parts.append(f'<text x="{LEFT}" y="{y + 4:.0f}" font-size="11" fill="#555">{html.escape(note)}</text>')
        y += 16
    return "".join(parts), int(y + 4)


def legend_symbol(kind: str) -> str:
    if kind == "line":
        return f'<line x1="0" x2="18" y1="0" y2="0" stroke="{COLORS["best"]}" stroke-width="2"/>'
    return marker_svg(9, 0, kind, 5)


def scatter(points, xlabel, ylabel, title, *, chosen=None, stock=None, xbudget=None, ybudget=None,
            xlog=None, ylog=None, staircase=True) -> str:
    """points: [(x, y, kind, tip)] with kind 'point' or 'front'; chosen/stock: (x, y, tip) or None;
    budgets: [(value, label)] drawn as dashed lines."""
    xs = [p[0] for p in points] + [p[0] for p in (chosen, stock) if p]
    ys = [p[1] for p in points] + [p[1] for p in (chosen, stock) if p]
    xb = [v for v, _ in (xbudget or [])]
    yb = [v for v, _ in (ybudget or [])]
    # a budget far beyond every point would squeeze them: draw it only when it is near
    xa = Axis(xs, xlabel, log=xlog, include=[v for v in xb if xs and v <= 3 * max(xs)])
    ya = Axis(ys, ylabel, log=ylog, include=[v for v in yb if ys and v <= 3 * max(ys)])
    p = Plot(xa, ya, title)
    clipped = 0
    front = sorted((pt for pt in points if pt[2] == "front"), key=lambda pt: pt[0])
    if staircase and len(front) > 1:
        # the front as a staircase (both minimized): what is reachable, not an interpolation
        path = []
        for a, b in zip(front, front[1:]):
            path += [(a[0], a[1]), (b[0], a[1])]
        path.append((front[-1][0], front[-1][1]))
        p.add('<polyline fill="none" stroke="#d33" stroke-width="1.2" stroke-opacity="0.6" points="'
              + " ".join(f"{p.x(a):.1f},{p.y(b):.1f}" for a, b in path) + '"/>')
    for x, y, kind, tip in sorted(points, key=lambda pt: pt[2] == "front"):
        if xa.outside(x) or ya.outside(y):
            clipped += 1
            p.add(p.marker(min(x, xa.clipped_hi or x), min(y, ya.clipped_hi or y), "clipped", tip))
            continue
        p.add(p.marker(x, y, kind, tip))
    for value, label in xbudget or []:
        if value <= xa.hi if not xa.log else math.log10(value) <= xa.hi:
            p.vline(value, COLORS["budget"], label)
        else:
            p.notes.append(f"{label} = {fmt(value)}: beyond the plotted range")
    for value, label in ybudget or []:
        if value <= ya.hi if not ya.log else math.log10(value) <= ya.hi:
            p.hline(value, COLORS["budget"], label)
        else:
            p.notes.append(f"{label} = {fmt(value)}: beyond the plotted range")
    if stock:
        p.add(p.marker(stock[0], stock[1], "stock", stock[2]))
    if chosen:
        p.add(p.marker(chosen[0], chosen[1], "chosen", chosen[2]))
    p.legend[:0] = [(legend_symbol("point"), "feasible trial"),
                    (legend_symbol("front"), "Pareto front" if staircase else "best"),
                    *([(legend_symbol("chosen"), "chosen")] if chosen else []),
                    *([(legend_symbol("stock"), "stock baseline")] if stock else [])]
    if clipped:
        p.legend.append((legend_symbol("clipped"), f"{clipped} outlier(s) beyond the axis"))
    distinct = len({(x, y) for x, y, _, _ in points})
    if distinct < len(points):
        p.notes.append(f"{len(points)} trials at {distinct} distinct points: equal trials are drawn on top "
                       f"of each other (the table lists them)")
    return p.svg()


def convergence(series, ylabel, title, *, direction="minimize", stock=None) -> str:
    """series: [(trial, value or None)]; None = infeasible. Values, the running best, the stock line."""
    vals = [v for _, v in series if v is not None]
    trials = [n for n, _ in series]
    xa = Axis(trials, "trial", integer=True, clip=False)
    ya = Axis(vals, ylabel, include=[stock] if stock else [])
    if any(v is None for _, v in series):     # a strip under the data for the infeasible marks
        ya.lo -= 0.1 * (ya.hi - ya.lo)
    p = Plot(xa, ya, title)
    best, line, clipped, infeasible = None, [], 0, 0
    for n, v in series:
        if v is None:
            infeasible += 1
            p.add(marker_svg(p.x(n), p.h - BOTTOM - 7, "infeasible", 5, f"trial {n}: infeasible"))
            continue
        better = best is None or (v < best if direction == "minimize" else v > best)
        if better:
            if best is not None:
                line.append((n, best))
            best = v
        line.append((n, best))
        kind = "point"
        if ya.outside(v):
            clipped += 1
            kind = "clipped"
        p.add(p.marker(n, min(v, ya.clipped_hi or v), kind, f"trial {n}: {v:.4g}"))
    if line:
        line.append((trials[-1], best))
        p.add(f'<polyline fill="none" stroke="{COLORS["best"]}" stroke-width="2" points="'
              + " ".join(f"{p.x(n):.1f},{p.y(v):.1f}" for n, v in line) + '"/>')
    if stock:
        p.hline(stock, COLORS["stock"], "stock baseline")
    p.legend[:0] = [(legend_symbol("point"), "trial"), (legend_symbol("line"), "best so far")]
    if infeasible:
        p.legend.append((legend_symbol("infeasible"), f"infeasible ({infeasible})"))
    if clipped:
        p.legend.append((legend_symbol("clipped"), f"{clipped} outlier(s) beyond the axis"))
    return p.svg()


def bars(groups, series, xlabel, title, *, log=None, limit=None, errors=None, width=W) -> str:
    """Horizontal grouped bars. groups: row labels; series: [(name, color, [value or None per group])];
    errors: {(series index, group index): (low, high)}; limit: [(value, label, color)] vertical lines."""
    values = [v for _, _, vs in series for v in vs if v is not None]
    lim = [v for v, _, _ in (limit or [])] + [hi for _, hi in (errors or {}).values()]
    positive = [v for v in values if v > 0]
    if log is None:      # bars spanning decades: a log axis, else the small ones are invisible
        log = bool(positive) and len(positive) == len(values) and max(positive) / min(positive) >= 30
    xa = Axis(values + [0.0] if not log else values, xlabel, log=log, include=lim, clip=False)
    if xa.log:      # bars start half a decade below the shortest, so every bar has a visible length
        xa.lo = math.log10(min(positive)) - max(0.5, 0.15 * (xa.hi - math.log10(min(positive))))
    elif xa.lo < 0:
        xa.lo = 0.0
    label_w = max([7 * len(g) for g in groups] + [40]) + 12
    n = len(series)
    bar_h = 12
    row_h = n * bar_h + 10
    height = TOP + row_h * len(groups) + BOTTOM
    p = Plot(xa, Axis([0, 1], ""), title, width=width, height=height)
    global_left = LEFT
    left = max(label_w, LEFT)
    p_x = lambda v: left + min(max(xa.frac(v), 0.0), 1.0) * (width - left - RIGHT)  # noqa: E731
    out = [f'<rect x="{left}" y="{TOP}" width="{width - left - RIGHT}" height="{row_h * len(groups)}" '
           f'fill="#fff" stroke="#888"/>']
    for t in xa.ticks():
        px = p_x(t)
        out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{TOP}" y2="{TOP + row_h * len(groups)}" stroke="#eee"/>'
                   f'<text x="{px:.1f}" y="{TOP + row_h * len(groups) + 15}" text-anchor="middle" '
                   f'font-size="11">{fmt(t)}</text>')
    base = p_x(xa.lo if xa.log else 0.0) if not xa.log else left
    for g, name in enumerate(groups):
        y0 = TOP + g * row_h + 5
        out.append(f'<text x="{left - 6}" y="{y0 + n * bar_h / 2 + 4:.0f}" text-anchor="end">'
                   f'{html.escape(name)}</text>')
        for s, (sname, color, vs) in enumerate(series):
            v = vs[g]
            if v is None:
                continue
            x1 = p_x(v)
            out.append(f'<rect x="{base:.1f}" y="{y0 + s * bar_h}" width="{max(x1 - base, 1):.1f}" '
                       f'height="{bar_h - 2}" fill="{color}"><title>{html.escape(sname)} {html.escape(name)}: '
                       f'{v:.4g}</title></rect>')
            if errors and (s, g) in errors:
                lo, hi = errors[(s, g)]
                yc = y0 + s * bar_h + (bar_h - 2) / 2
                out.append(f'<path d="M{p_x(lo):.1f},{yc:.1f}H{p_x(hi):.1f}M{p_x(lo):.1f},{yc - 4:.1f}V{yc + 4:.1f}'
                           f'M{p_x(hi):.1f},{yc - 4:.1f}V{yc + 4:.1f}" stroke="#000" stroke-width="1.2"/>')
    for value, label, color in limit or []:
        px = p_x(value)
        out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{TOP}" y2="{TOP + row_h * len(groups)}" '
                   f'stroke="{color}" stroke-width="1.5" stroke-dasharray="6,4"/>')
        p.legend.append((f'<line x1="0" x2="18" y1="0" y2="0" stroke="{color}" stroke-width="1.5" '
                         f'stroke-dasharray="6,4"/>', label))
    xl = xlabel + (" (log scale)" if xa.log else "")
    bottom = TOP + row_h * len(groups)
    out.append(f'<text x="{(left + width - RIGHT) / 2:.0f}" y="{bottom + 34}" text-anchor="middle">'
               f'{html.escape(xl)}</text>')
    out.append(f'<text x="{global_left}" y="20" font-weight="bold">{html.escape(title)}</text>')
    items = [(f'<rect x="0" y="-5" width="18" height="10" fill="{color}"/>', sname) for sname, color, _ in series]
    items += p.legend
    if errors:
        items.append(('<path d="M0,0H18M0,-4V4M18,-4V4" stroke="#000" stroke-width="1.2"/>',
                      "model uncertainty"))
    legend, total = _legend(items, [], bottom + 42, width)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" height="{total}" '
            f'viewBox="0 0 {width} {total}" font-family="sans-serif" font-size="12">{"".join(out)}{legend}</svg>')
