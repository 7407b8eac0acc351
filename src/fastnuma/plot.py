"""Figures of a report (matplotlib, the optional extra ``pip install fastnuma[plot]``).

Every figure is drawn from the report's tables (view.py), so ``Report.plot()`` and
``fastnuma plot REPORT_DIR`` draw the same pictures. Figures are built with
``matplotlib.figure.Figure`` (no pyplot, no global state) and saved through Agg (PNG) or
the SVG backend. Node k has one colour in every figure (NODE_COLOURS: Okabe and Ito's
colour-blind-safe palette); continuous scales use cividis, readable with any colour vision.

Kinds (KINDS, docs/report.md): timeline (accesses and remote fraction per epoch), pages
(pages per node over time, stacked), balancing (hinting faults, migrations and, when the
report has them, promotions/demotions per epoch), matrix (CPU node x memory node
accesses), heat (address ranges x time coloured by the node holding most of the range's
pages; needs a replay with heat_buckets), threads (local/remote accesses per thread).
"""
import os

import numpy as np

from .view import view_of

KINDS = ("timeline", "pages", "balancing", "matrix", "heat", "threads")
# Okabe & Ito (2008), reordered so that nodes 0-3 get the most distinct hues
NODE_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7",
                "#F0E442", "#000000")
REMOTE_COLOUR = "#999999"
PAGE_KIB = 4
# epoch counters drawn by the balancing figure when the report has them (tiering adds
# the last four; Linux's names)
BALANCING_SERIES = ("numa_hint_faults", "numa_pages_migrated", "pgmigrate_success",
                    "pgpromote_success", "pgdemote_kswapd", "pgdemote_direct")
MAX_THREADS = 40


def node_colour(node):
    return NODE_COLOURS[node % len(NODE_COLOURS)]


def _figure(width=7.0, height=3.6):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'fastnuma[plot]'") from None
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def time_axis(view):
    """x values of the epochs and their label: simulated seconds when the trace carries
    time (end_ns never goes back and moves), else events replayed."""
    ep = view.tables["epochs"]
    ns = np.asarray(ep.column("end_ns").to_pylist(), np.int64)
    if ns.size > 1 and np.all(np.diff(ns) >= 0) and ns[-1] > ns[0]:
        return ns / 1e9, "simulated time (s)"
    return np.asarray(ep.column("end_row").to_pylist(), np.int64), "events replayed"


def plot_report(source, kinds=None):
    """{kind: Figure} for a Report, a report directory or a ReportView; ``kinds``: a
    subset of KINDS (default: all the report has data for; heat only when recorded)."""
    view = view_of(source)
    if kinds is None:
        kinds = [k for k in KINDS if k != "heat" or "heat" in view.tables]
    out = {}
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"figure kind {kind!r}: expected one of {', '.join(KINDS)}")
        out[kind] = _DRAW[kind](view)
    return out


def save_figures(figures, directory, formats=("png", "svg")):
    """Write each figure as ``directory/<kind>.<format>`` (through a temporary file renamed
    into place); returns the paths written."""
    from .outdir import write_file
    os.makedirs(directory, exist_ok=True)
    paths = []
    for kind, fig in figures.items():
        for fmt in formats:
            path = os.path.join(directory, f"{kind}.{fmt}")
            write_file(path, lambda f, fig=fig, fmt=fmt: fig.savefig(
                f, format=fmt, metadata=_METADATA.get(fmt)))
            paths.append(path)
    return paths


# reproducible files: no creation date in them
_METADATA = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}


def _title(fig, view, what):
    label = f" - {view.label}" if view.label else ""
    fig.suptitle(f"{what}{label}", fontsize=11)


def _timeline(view):
    ep = view.tables["epochs"]
    x, xlabel = time_axis(view)
    fig = _figure()
    ax = fig.add_subplot()
    acc = np.asarray(ep.column("accesses").to_pylist(), np.int64)
    ax.plot(x, acc, color="#000000", marker=".", label="accesses")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accesses per epoch (count)")
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    ax2.plot(x, 100 * np.asarray(ep.column("remote_fraction").to_pylist(), float),
             color=NODE_COLOURS[3], marker=".", label="remote fraction")
    ax2.set_ylabel("remote accesses (% of the epoch's)", color=NODE_COLOURS[3])
    ax2.set_ylim(0, 100)
    ax.legend(handles=ax.get_lines() + ax2.get_lines(), loc="upper left", fontsize=8)
    _title(fig, view, "Accesses and remote fraction per epoch")
    return fig


def pages_series(view):
    """Pages per node at each epoch: an int64 array [node, epoch] (the epochs table's
    pages_node<k> columns: every allocated page, all processes and the page cache)."""
    ep = view.tables["epochs"]
    return np.array([ep.column(f"pages_node{k}").to_pylist() for k in range(view.n_nodes)],
                    np.int64).reshape(view.n_nodes, ep.num_rows)


def _pages(view):
    x, xlabel = time_axis(view)
    ys = pages_series(view)
    fig = _figure()
    ax = fig.add_subplot()
    ax.stackplot(x, ys, colors=[node_colour(k) for k in range(len(ys))],
                 labels=[f"node {k}" for k in range(len(ys))])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"allocated pages ({PAGE_KIB} KiB each)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", fontsize=8, ncol=min(len(ys), 4))
    _title(fig, view, "Pages per node")
    return fig


def _balancing(view):
    ep = view.tables["epochs"]
    x, xlabel = time_axis(view)
    fig = _figure()
    ax = fig.add_subplot()
    styles = ("-", "--", ":", "-.", "-", "--")
    colours = ("#000000", NODE_COLOURS[1], NODE_COLOURS[0], NODE_COLOURS[2],
               NODE_COLOURS[5], NODE_COLOURS[3])
    for name, ls, c in zip(BALANCING_SERIES, styles, colours):
        if name in ep.column_names:
            ax.plot(x, ep.column(name).to_pylist(), ls, color=c, marker=".", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("per epoch (count)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", fontsize=8)
    _title(fig, view, "NUMA hinting faults and migrations per epoch")
    return fig


def access_matrix(view):
    """Accesses (reads + writes) as an int64 array [cpu node, memory node]."""
    t = view.tables["access_matrix"]
    n = view.n_nodes
    m = np.zeros((n, n), np.int64)
    np.add.at(m, (np.asarray(t.column("cpu_node").to_pylist(), np.int64),
                  np.asarray(t.column("mem_node").to_pylist(), np.int64)),
              np.asarray(t.column("reads").to_pylist(), np.int64)
              + np.asarray(t.column("writes").to_pylist(), np.int64))
    return m


def _matrix(view):
    m = access_matrix(view)
    n = len(m)
    fig = _figure(1.6 + 0.9 * n, 1.0 + 0.8 * n)
    ax = fig.add_subplot()
    im = ax.imshow(m, cmap="cividis", origin="upper", vmin=0)   # from 0: honest ratios
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{m[i, j]:,}", ha="center", va="center", fontsize=8,
                    color="white" if im.norm(m[i, j]) < 0.6 else "black")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("memory node")
    ax.set_ylabel("CPU node")
    fig.colorbar(im, ax=ax, label="accesses (count)")
    _title(fig, view, "Access matrix")
    return fig


def heat_cells(view, pid):
    """The heat table of ``pid`` as {(epoch, bucket): (start_addr, end_addr, pages per
    node int64 array)}."""
    t = view.tables["heat"].to_pydict()
    cells = {}
    for e, p, b, lo, hi, node, pages in zip(t["epoch"], t["pid"], t["bucket"],
                                            t["start_addr"], t["end_addr"], t["node"],
                                            t["pages"]):
        if p == pid:
            key = (e, b)
            if key not in cells:
                cells[key] = (lo, hi, np.zeros(view.n_nodes, np.int64))
            cells[key][2][node] += pages
    return cells


def _heat(view):
    from matplotlib.collections import PatchCollection
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Patch, Rectangle
    if "heat" not in view.tables:
        raise ValueError("the report has no placement heatmap: replay with --heat-buckets N "
                         "(Python: heat_buckets=N)")
    heat = view.tables["heat"]
    pids = sorted(set(heat.column("pid").to_pylist()))
    x, xlabel = time_axis(view)
    edges = np.concatenate([[0], x])         # epoch e spans (edges[e], edges[e + 1]]
    fig = _figure(7.0, 1.2 + 2.6 * max(len(pids), 1))
    axes = [fig.add_subplot(len(pids) or 1, 1, k + 1) for k in range(len(pids) or 1)]
    for ax, pid in zip(axes, pids):
        cells = heat_cells(view, pid)
        rects, colours = [], []
        lo_all, hi_all = min(c[0] for c in cells.values()), max(c[1] for c in cells.values())
        for (e, _), (lo, hi, per_node) in sorted(cells.items()):
            total = per_node.sum()
            top = int(per_node.argmax())
            # colour: the node with most of the range's pages; paler when the range is
            # split between nodes (alpha = that node's share)
            rects.append(Rectangle((edges[e], (lo - lo_all) / 2**20), edges[e + 1] - edges[e],
                                   (hi - lo) / 2**20))
            colours.append(to_rgba(node_colour(top), 0.25 + 0.75 * per_node[top] / total))
        ax.add_collection(PatchCollection(rects, facecolors=colours, edgecolors="none"))
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(0, (hi_all - lo_all) / 2**20)
        ax.set_ylabel(f"process {pid}\nMiB above {lo_all:#x}", fontsize=8)
        ax.set_xlabel(xlabel)
    fig.legend(handles=[Patch(color=node_colour(k), label=f"node {k}")
                        for k in range(view.n_nodes)], fontsize=7, loc="outside right upper")
    _title(fig, view, "Placement: address ranges x time, coloured by node")
    return fig


def _threads(view):
    from matplotlib.patches import Patch
    t = view.tables["threads"].to_pydict()
    order = sorted(range(len(t["tid"])), key=lambda i: -(t["local"][i] + t["remote"][i]))
    shown = order[:MAX_THREADS]
    fig = _figure(7.0, 1.4 + 0.25 * max(len(shown), 1))
    ax = fig.add_subplot()
    y = np.arange(len(shown))
    local = np.array([t["local"][i] for i in shown], np.int64)
    remote = np.array([t["remote"][i] for i in shown], np.int64)
    ax.barh(y, local, color=[node_colour(t["node"][i]) for i in shown])
    ax.barh(y, remote, left=local, color=REMOTE_COLOUR, hatch="//", edgecolor="white")
    ax.set_yticks(y, [f"tid {t['tid'][i]} (node {t['node'][i]})" for i in shown],
                  fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("accesses (count); local bar in the colour of the thread's node")
    nodes = sorted({t["node"][i] for i in shown})
    fig.legend(handles=[Patch(color=node_colour(k), label=f"local, node {k}") for k in nodes]
               + [Patch(facecolor=REMOTE_COLOUR, hatch="//", edgecolor="white",
                        label="remote")], loc="outside right upper", fontsize=7)
    more = f" (top {MAX_THREADS} of {len(order)})" if len(order) > MAX_THREADS else ""
    _title(fig, view, f"Local and remote accesses per thread{more}")
    return fig


_DRAW = {"timeline": _timeline, "pages": _pages, "balancing": _balancing,
         "matrix": _matrix, "heat": _heat, "threads": _threads}
