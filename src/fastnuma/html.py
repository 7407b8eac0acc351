"""A self-contained HTML report: one file, figures embedded as base64 PNG, no script, no
network; it opens from disk in any browser.

``report_html(source)``: one report (a Report, a report directory or a ReportView):
configuration and provenance, the counters in vmstat and ``numastat -n`` shape, the
figures (plot.py, when matplotlib is installed), and the tables. ``compare_html(sources,
ranking=...)``: several reports side by side, one column per configuration, figures row
by row, and a ranking: by the ``rank_by`` column (default ``estimated_s``, seconds,
lower first) of a ``ranking`` table (rows with a ``label`` column, as a compare/sweep
result table gives), else by the remote fraction of accesses (lower first).
"""
import base64
import html
import io

from .formats import numastat_text, vmstat_lines
from .view import view_of

MAX_TABLE_ROWS = 200
_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1600px}
h1{font-size:1.4em}h2{font-size:1.15em;border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:2px 8px;text-align:right}th{background:#f2f2f2}
td.l,th.l{text-align:left}pre{background:#f7f7f7;padding:.6em;font-size:.85em;overflow:auto}
.figs{display:flex;flex-wrap:wrap;gap:1em}.figs img{max-width:100%;border:1px solid #eee}
.grid{display:grid;gap:1em}.grid img{width:100%}.grid>div{min-width:0}
.grid td+td{overflow-wrap:anywhere}.note{color:#666;font-size:.85em}"""


def _esc(x):
    return html.escape(str(x))


def _page(title, body):
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{_esc(title)}</h1>{body}</body></html>\n")


def _table(rows, columns, limit=MAX_TABLE_ROWS):
    head = "".join(f'<th class="l">{_esc(c)}</th>' if i == 0 else f"<th>{_esc(c)}</th>"
                   for i, c in enumerate(columns))
    body = []
    for r in rows[:limit]:
        cells = []
        for i, c in enumerate(columns):
            v = r.get(c)
            text = f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else (
                f"{v:.4g}" if isinstance(v, float) else v)
            cells.append(f'<td class="l">{_esc(text)}</td>' if i == 0 or isinstance(v, str)
                         else f"<td>{_esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (f'<p class="note">first {limit} of {len(rows):,} rows; all of them are in the '
            f"report's Parquet table</p>" if len(rows) > limit else "")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    return ("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())


def _figures(view):
    """{kind: data URI}; {} with a reason when matplotlib is missing."""
    try:
        from .plot import plot_report
        figs = plot_report(view)
    except ImportError as e:
        return {}, str(e)
    return {k: _png(f) for k, f in figs.items()}, ""


def _provenance(view):
    s = view.summary
    pairs = [("label", view.label)] if view.label else []
    pairs += [(k, v) for k, v in (s.get("provenance") or {}).items()]
    pairs += [("topology", s.get("topology")), ("events replayed", f"{s.get('rows', 0):,}"),
              ("simulated time", f"{s.get('now_ns', 0) / 1e9:.3f} s"),
              ("epochs", s.get("epochs"))]
    pairs += [(f"knob {k}", v) for k, v in (s.get("knobs") or {}).items()]
    return _table([{"what": k, "value": str(v)} for k, v in pairs], ("what", "value"),
                  limit=10_000)


def report_html(source, title=None):
    """The HTML page of one report (a string)."""
    view = view_of(source)
    title = title or f"fastnuma report{': ' + view.label if view.label else ''}"
    figs, why = _figures(view)
    parts = ["<h2>Configuration and provenance</h2>", _provenance(view),
             "<h2>Counters (/proc/vmstat names)</h2><pre>"
             + _esc("\n".join(vmstat_lines(view))) + "</pre>",
             "<h2>Per node (numastat -n)</h2><pre>" + _esc(numastat_text(view).strip("\n"))
             + "</pre>", "<h2>Figures</h2>"]
    if figs:
        parts.append('<div class="figs">' + "".join(
            f'<img alt="{k}" src="{uri}">' for k, uri in figs.items()) + "</div>")
    else:
        parts.append(f'<p class="note">no figures: {_esc(why)}</p>')
    parts.append('<p class="note">units and columns: docs/report.md of fastnuma</p>')
    for name, t in view.tables.items():
        if name in ("counters",):
            continue
        parts.append(f"<h2>Table {_esc(name)} ({t.num_rows:,} rows)</h2>")
        parts.append(_table(t.to_pylist(), t.column_names))
    return _page(title, "".join(parts))


def remote_fraction(view):
    t = view.tables["access_matrix"].to_pydict()
    total = sum(t["reads"]) + sum(t["writes"])
    remote = sum(r + w for c, m, r, w in zip(t["cpu_node"], t["mem_node"], t["reads"],
                                             t["writes"]) if c != m)
    return remote / total if total else 0.0


def ranking_rows(views, ranking=None, rank_by="estimated_s"):
    """[{rank, label, <metric>, remote_fraction, ...}] best first (lower is better)."""
    rf = {v.label: remote_fraction(v) for v in views}
    if ranking is not None:
        rows = ranking.to_pylist() if hasattr(ranking, "to_pylist") else list(ranking)
        for r in rows:
            if "label" not in r or rank_by not in r:
                raise ValueError(f"ranking table: every row needs 'label' and {rank_by!r}, "
                                 f"got {sorted(r)}")
        rows = [dict(r, remote_fraction=rf.get(r["label"])) for r in rows]
        key = rank_by
    else:
        rows = [{"label": v.label, "remote_fraction": rf[v.label],
                 "numa_pages_migrated": v.summary.get("vmstat", {}).get(
                     "numa_pages_migrated", 0)} for v in views]
        key = "remote_fraction"
    rows.sort(key=lambda r: r[key])
    return [dict(rank=k + 1, **r) for k, r in enumerate(rows)], key


def compare_html(sources, ranking=None, rank_by="estimated_s", labels=None,
                 title="fastnuma comparison"):
    """Several reports side by side (a string); see the module's docstring."""
    views = [view_of(s, None if labels is None else labels[k])
             for k, s in enumerate(sources)]
    for k, v in enumerate(views):
        v.label = v.label or f"config {k + 1}"
    if len({v.label for v in views}) != len(views):
        raise ValueError("compare: the reports' labels must differ (pass labels=...)")
    rows, key = ranking_rows(views, ranking, rank_by)
    by = ("by " + key + " (lower first)" if ranking is not None else
          "by the remote fraction of accesses (lower first; no time estimate was given)")
    cols = ["rank", "label"] + [c for c in rows[0] if c not in ("rank", "label")]
    parts = [f"<h2>Ranking {_esc(by)}</h2>", _table(rows, cols)]
    figs = [_figures(v)[0] for v in views]
    n = len(views)
    grid = f'<div class="grid" style="grid-template-columns:repeat({n},1fr)">'
    parts.append("<h2>Configurations</h2>" + grid + "".join(
        f"<div><h3>{_esc(v.label)}</h3>{_provenance(v)}</div>" for v in views) + "</div>")
    parts.append("<h2>Counters</h2>" + grid + "".join(
        f"<div><h3>{_esc(v.label)}</h3><pre>{_esc(chr(10).join(vmstat_lines(v)))}</pre></div>"
        for v in views) + "</div>")
    kinds = [k for k in dict.fromkeys(k for f in figs for k in f)]
    for kind in kinds:
        parts.append(f"<h2>{_esc(kind)}</h2>" + grid + "".join(
            f'<div><img alt="{_esc(v.label)}: {kind}" src="{f[kind]}"></div>' if kind in f
            else f'<div class="note">{_esc(v.label)}: not recorded</div>'
            for v, f in zip(views, figs)) + "</div>")
    return _page(title, "".join(parts))


def write_html(path, text):
    """Write ``text`` to ``path`` whole or not at all, with the umask's file mode."""
    from .outdir import write_file
    write_file(path, lambda f: f.write(text), text=True)


# the page and table builders, for the pages of result tables (html_results.py)
page = _page
esc = _esc
table_html = _table
png_uri = _png
