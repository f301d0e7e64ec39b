"""Draws bench.py's medians as an SVG bar chart (no plotting library needed):
messages per second as a ratio to direct delivery, and the proxy's CPU
seconds per 1000 messages, one group of bars per workload."""
from xml.sax.saxutils import escape

COLOURS = {"direct": "#9e9e9e", "haproxy": "#1f77b4", "nginx": "#2ca02c", "postfix": "#8c564b",
           "smtplb": "#d62728", "smtplb-tcp": "#ff7f0e", "smtplb-spool": "#9467bd"}
BAR, GAP, PANEL_H, TOP, LEFT = 22, 28, 220, 40, 60


def _panel(out, title, y0, workloads, configs, value, fmt):
    values = [value(w, c) for w in workloads for c in configs]
    top = max([v for v in values if v is not None] + [1e-9]) * 1.15
    out.append(f'<text x="{LEFT}" y="{y0 - 12}" font-weight="bold">{escape(title)}</text>')
    axis_end = LEFT + GAP + len(workloads) * (len(configs) * BAR + GAP)
    out.append(f'<line x1="{LEFT}" y1="{y0 + PANEL_H}" x2="{axis_end}" y2="{y0 + PANEL_H}" '
               'stroke="#333"/>')
    x = LEFT + GAP
    for w in workloads:
        group_x = x
        for c in configs:
            v = value(w, c)
            if v is not None:
                h = PANEL_H * v / top
                out.append(f'<rect x="{x}" y="{y0 + PANEL_H - h:.1f}" width="{BAR}" height="{h:.1f}" '
                           f'fill="{COLOURS.get(c, "#555")}"><title>{escape(c)}: {fmt(v)}</title></rect>')
                out.append(f'<text x="{x + BAR / 2}" y="{y0 + PANEL_H - h - 4:.1f}" font-size="10" '
                           f'text-anchor="middle">{fmt(v)}</text>')
            x += BAR
        out.append(f'<text x="{(group_x + x) / 2}" y="{y0 + PANEL_H + 16}" text-anchor="middle">'
                   f'{escape(w)}</text>')
        x += GAP


def _width(workloads, configs):
    return LEFT + GAP + len(workloads) * (len(configs) * BAR + GAP) + 230


def draw(summary, configs, workloads, idle, path):
    width = _width(workloads, configs)
    height = TOP + 2 * (PANEL_H + 70)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    _panel(out, "messages per second, × direct delivery", TOP, workloads, configs,
           lambda w, c: summary[f"{w}/{c}"]["x_direct"], lambda v: f"{v:.2f}")
    _panel(out, "proxy CPU seconds per 1000 messages", TOP + PANEL_H + 70, workloads,
           [c for c in configs if c != "direct"],
           lambda w, c: summary[f"{w}/{c}"]["cpu_per_1000"], lambda v: f"{v:.2f}")
    legend_x = width - 215
    for i, c in enumerate(configs):
        y = TOP + i * 18
        out.append(f'<rect x="{legend_x}" y="{y}" width="12" height="12" fill="{COLOURS.get(c, "#555")}"/>')
        idle_note = f" ({idle[c]:.1f} KiB idle)" if c in idle else ""
        out.append(f'<text x="{legend_x + 16}" y="{y + 10}" font-size="11">{escape(c + idle_note)}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
