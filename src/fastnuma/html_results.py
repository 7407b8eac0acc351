"""HTML pages of result tables: ``fastnuma compare --html`` (the runs' reports side by
side, ranked by estimated time: :func:`compare_page`) and ``fastnuma sweep --html`` (a
sweep's result table: :func:`sweep_html`). One self-contained file each (figures as
base64 PNG, no script, nothing fetched), as the report's page (html.py).

A sweep's workers return rows, not reports, so its page draws its figures from the table:
per trace, the estimated time (ms), the pages per node at the end (4 KiB pages, stacked,
the report figures' node colours) and the remote fraction (%) of every combination, side
by side. docs/sweep.md describes the page.
"""
import json

from .html import compare_html, esc, page, png_uri, table_html

SWEEP_META = b"fastnuma.sweep"
#: the outcome columns the ranking shows, after the configuration columns
RANK_COLUMNS = ("est_stall_ms", "remote_fraction", "numa_hint_faults",
                "numa_pages_migrated", "pgmigrate_success", "memory_accesses")


def compare_page(table, reports, title="fastnuma compare"):
    """The page of a ``fastnuma.compare`` table and the reports of its rows (in order):
    figures side by side per configuration, ranked by estimated time (lower first)."""
    rows = table.to_pylist()
    if len(rows) != len(reports):
        raise ValueError(f"compare page: {len(rows)} rows but {len(reports)} reports")
    several = len({r["trace"] for r in rows}) > 1
    labels = [f"{r['config']} · {r['trace']}" if several else r["config"] for r in rows]
    ranking = [{"label": lab, "estimated_s": r["est_stall_ms"] / 1e3,
                **{k: v for k, v in r.items() if k not in ("config", "machine")}}
               for lab, r in zip(labels, rows)]
    return compare_html(reports, ranking=ranking, rank_by="estimated_s", labels=labels,
                        title=title)


def config_columns(table):
    """The sweep table's configuration columns (its metadata names them; the trace
    first), without those that hold one value in every row."""
    meta = json.loads((table.schema.metadata or {}).get(SWEEP_META, b"{}"))
    cols = [c for c in meta.get("config_columns", []) if c in table.column_names]
    return [c for c in cols if c == "trace" or len(set(map(str, table.column(c)
                                                           .to_pylist()))) > 1]


def _label(row, cols):
    return " ".join(f"{c}={row[c]}" for c in cols if c != "trace") or "(one combination)"


def _figure(rows, labels, trace):
    """Estimated time, pages per node and remote fraction of a trace's combinations, side
    by side, one horizontal bar each (best first, from the top)."""
    from .plot import REMOTE_COLOUR, node_colour
    from matplotlib.figure import Figure
    n = len(rows)
    fig = Figure(figsize=(13, 1.2 + 0.32 * n), dpi=100, layout="constrained")
    axes = fig.subplots(1, 3, sharey=True, width_ratios=(1.2, 1.2, 0.8))
    y = list(range(n))[::-1]
    axes[0].barh(y, [r["est_stall_ms"] for r in rows], color="#0072B2")
    axes[0].set_yticks(y, labels, fontsize=8)
    axes[0].set_xlabel("estimated memory stall (ms)")
    nodes = max(r["nodes"] for r in rows)
    left = [0] * n
    for k in range(nodes):
        vals = [r.get(f"pages_node{k}") or 0 for r in rows]
        axes[1].barh(y, vals, left=left, color=node_colour(k), label=f"node {k}")
        left = [a + b for a, b in zip(left, vals)]
    axes[1].set_xlabel("pages at the end (4 KiB)")
    axes[1].legend(fontsize=7, ncols=nodes, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                   frameon=False)
    axes[2].barh(y, [100 * r["remote_fraction"] for r in rows], color=REMOTE_COLOUR)
    axes[2].set_xlabel("remote accesses (%)")
    axes[2].set_xlim(0, 100)
    fig.suptitle(trace, fontsize=9)
    return fig


def _cells(rows):
    """Rows for display: no value as "-", counts held as floats as integers."""
    return [{k: "-" if v is None else int(v) if isinstance(v, float) and v.is_integer()
             and k != "remote_fraction" else v for k, v in r.items()} for r in rows]


def sweep_html(table, title="fastnuma sweep"):
    """The page of a sweep's result table (a pyarrow Table as ``fastnuma sweep`` writes
    it): per trace, the ranking by estimated time and the figures; the failures; the
    table."""
    cols = config_columns(table)
    rows = table.to_pylist()
    ok = [r for r in rows if r.get("status") == "ok"]
    failed = [r for r in rows if r.get("status") != "ok"]
    parts = [f'<p class="note">{len(rows)} combinations: {len(ok)} ran, {len(failed)} '
             f'failed. Ranked by the cost model\'s estimate (est_stall_ms, lower first; '
             f'docs/cost-model.md); units of every column: docs/sweep.md of fastnuma.</p>']
    nodes = max([r.get("nodes") or 0 for r in ok], default=0)
    shown = [c for c in cols if c != "trace"] + list(RANK_COLUMNS) + \
        [f"pages_node{k}" for k in range(nodes)]
    for trace in dict.fromkeys(r["trace"] for r in ok):
        mine = sorted((r for r in ok if r["trace"] == trace),
                      key=lambda r: r["estimated_time_ns"])
        ranked = [{"rank": k + 1, **{c: r.get(c) for c in shown}}
                  for k, r in enumerate(mine)]
        parts.append(f"<h2>{esc(trace)}: ranking by estimated time</h2>")
        parts.append(table_html(_cells(ranked), ["rank"] + shown))
        try:
            fig = _figure(mine, [_label(r, cols) for r in mine], trace)
        except ImportError as e:
            parts.append(f'<p class="note">no figures: {esc(e)}</p>')
        else:
            parts.append(f'<div class="figs"><img alt="{esc(trace)}: estimated time, '
                         f'pages per node, remote fraction" src="{png_uri(fig)}"></div>')
    if failed:
        parts.append("<h2>Failed combinations</h2>")
        parts.append(table_html(_cells(failed), cols + ["error"]))
    every = [c for c in table.column_names if c != "machine"]
    parts.append(f"<h2>The table ({table.num_rows:,} rows)</h2>")
    parts.append(table_html(_cells(rows), every))
    return page(title, "".join(parts))


def read_sweep_table(path):
    """A sweep's result table, refused when it is not one."""
    import pyarrow.parquet as pq
    t = pq.read_table(path)
    if SWEEP_META not in (t.schema.metadata or {}):
        raise ValueError(f"{path}: not a fastnuma sweep table")
    return t

