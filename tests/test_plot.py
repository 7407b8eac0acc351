"""Every figure kind drawn on small reports (Agg), its data checked against the report's
tables; the plot command; the HTML report, and in a real headless Chromium when installed."""
import base64
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import fastnuma as fn
from fastnuma.cli import main
from fastnuma.view import view_of
from fastnuma.plot import KINDS, NODE_COLOURS, access_matrix, pages_series, plot_report

pytest.importorskip("matplotlib")
from matplotlib.colors import to_hex  # noqa: E402

TRACES = os.path.join(os.path.dirname(__file__), os.pardir, "traces")


@pytest.fixture(scope="module")
def lazy():
    sim = fn.Simulator(fn.Topology.uniform(nodes=4, cpus_per_node=4))
    return sim.replay(os.path.join(TRACES, "lazy_4node.arrow"), epoch_events=500,
                      heat_buckets=8)


@pytest.fixture(scope="module")
def numa01():
    sim = fn.Simulator(fn.Topology.two_socket(), numa_balancing=1)
    return sim.replay(os.path.join(TRACES, "numa01_2node.arrows"), epoch_ns=250_000_000,
                      heat_buckets=32)


def test_every_kind_is_drawn(lazy, numa01):
    for r in (lazy, numa01):
        figs = r.plot()
        assert tuple(figs) == KINDS
        for kind, fig in figs.items():
            for ax in fig.axes:
                if ax.get_label() != "<colorbar>":
                    assert ax.get_xlabel() or ax.get_ylabel(), kind
            fig.canvas.draw()                        # Agg renders it


def test_timeline_and_balancing_data_are_the_epochs(numa01, lazy):
    ep = numa01.to_tables()["epochs"].to_pydict()
    figs = numa01.plot(["timeline", "balancing"])
    ax, ax2 = figs["timeline"].axes
    assert ax.get_lines()[0].get_ydata().tolist() == ep["accesses"]
    assert np.allclose(ax2.get_lines()[0].get_ydata(), 100 * np.array(ep["remote_fraction"]))
    assert np.allclose(ax.get_lines()[0].get_xdata(), np.array(ep["end_ns"]) / 1e9)
    assert "(s)" in ax.get_xlabel() and "%" in ax2.get_ylabel()
    lines = {ln.get_label(): ln.get_ydata().tolist() for ln in figs["balancing"].axes[0].lines}
    assert lines["numa_hint_faults"] == ep["numa_hint_faults"]
    assert lines["numa_pages_migrated"] == ep["numa_pages_migrated"]
    assert sum(ep["numa_pages_migrated"]) == numa01.vmstat["numa_pages_migrated"]
    ep = lazy.to_tables()["epochs"].to_pydict()
    lines = {ln.get_label(): ln.get_ydata().tolist()
             for ln in lazy.plot(["balancing"])["balancing"].axes[0].lines}
    assert lines["numa_pages_migrated"] == ep["numa_pages_migrated"]
    assert sum(ep["numa_pages_migrated"]) == lazy.vmstat["numa_pages_migrated"] == 384


def test_pages_per_node_sums_to_the_placement_at_each_epoch(lazy, numa01):
    for r in (lazy, numa01):
        tables = r.to_tables()
        series = pages_series(view_of(r))
        h = tables["heat"].to_pydict()
        per = np.zeros((len(r.epochs), len(r.node_pages)), np.int64)
        np.add.at(per, (np.array(h["epoch"]), np.array(h["node"])), np.array(h["pages"]))
        assert np.array_equal(series.T, per)          # the trace: no page cache, no sharing
        ax = r.plot(["pages"])["pages"].axes[0]
        polys = ax.collections                          # one band per node, stacked
        assert len(polys) == len(r.node_pages)
        for k, poly in enumerate(polys):
            assert to_hex(poly.get_facecolor()[0]) == NODE_COLOURS[k].lower()
        top = polys[-1].get_paths()[0].vertices[:, 1].max()
        assert top == series.sum(0).max()


def test_matrix_and_threads_are_the_tables(numa01):
    figs = numa01.plot(["matrix", "threads"])
    im = figs["matrix"].axes[0].get_images()[0]
    m = numa01.access_matrix.sum(axis=2)
    assert np.array_equal(np.asarray(im.get_array()), m)
    from fastnuma.view import view_of
    assert np.array_equal(access_matrix(view_of(numa01)), m)
    bars = figs["threads"].axes[0].patches
    th = sorted(numa01.threads, key=lambda t: -(t["local"] + t["remote"]))
    n = len(th)
    assert [b.get_width() for b in bars[:n]] == [t["local"] for t in th]
    assert [b.get_width() for b in bars[n:2 * n]] == [t["remote"] for t in th]
    assert [to_hex(b.get_facecolor()) for b in bars[:n]] == [
        NODE_COLOURS[t["node"]].lower() for t in th]


def test_heat_cells_are_coloured_by_their_majority_node(lazy):
    fig = lazy.plot(["heat"])["heat"]
    coll = fig.axes[0].collections[0]
    h = lazy.to_tables()["heat"].to_pydict()
    cells = {}
    for e, b, node, pages in zip(h["epoch"], h["bucket"], h["node"], h["pages"]):
        cells.setdefault((e, b), np.zeros(4, np.int64))[node] += pages
    colours = coll.get_facecolors()
    assert len(colours) == len(cells)
    for (key, per_node), rgba in zip(sorted(cells.items()), colours):
        top = int(per_node.argmax())
        assert to_hex(rgba[:3]) == NODE_COLOURS[top].lower()
        assert np.isclose(rgba[3], 0.25 + 0.75 * per_node[top] / per_node.sum())


def test_heat_needs_the_recording():
    r = fn.Simulator(fn.Topology.uniform(nodes=4, cpus_per_node=4)).replay(
        os.path.join(TRACES, "lazy_4node.arrow"))
    assert "heat" not in r.plot()
    with pytest.raises(ValueError, match="--heat-buckets"):
        r.plot(["heat"])
    with pytest.raises(ValueError, match="figure kind"):
        r.plot(["pie"])


def test_plot_command_and_html(tmp_path, capsys):
    rep = tmp_path / "rep"
    page = tmp_path / "replay.html"
    assert main(["replay", os.path.join(TRACES, "lazy_4node.arrow"), "--epoch", "500",
                 "--out", str(rep), "--heat-buckets", "8", "--quiet", "--html",
                 str(page)]) == 0
    assert "heat.parquet" in os.listdir(rep)
    mask = os.umask(0)
    os.umask(mask)
    for name in ("heat.parquet", "summary.json"):          # the umask's mode, not 0600
        assert os.stat(rep / name).st_mode & 0o777 == 0o666 & ~mask
    assert os.stat(page).st_mode & 0o777 == 0o666 & ~mask
    first = page.read_text()
    assert first.count("data:image/png;base64,") == len(KINDS)
    assert "lazy_4node.arrow" in first and "knob numa_balancing" in first
    figs = tmp_path / "figs"
    assert main(["plot", str(rep), "-o", str(figs), "--html"]) == 0
    names = sorted(os.listdir(figs))
    assert names == sorted([f"{k}.{e}" for k in KINDS for e in ("png", "svg")]
                           + ["report.html"])
    assert (figs / "heat.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (figs / "pages.svg").read_bytes()
    text = (figs / "report.html").read_text()
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(imgs) == len(KINDS)
    assert all(base64.b64decode(i)[:4] == b"\x89PNG" for i in imgs)
    assert not re.search(r'(src|href)="(https?:)?//', text)      # nothing from the network
    assert "numa_pages_migrated 384" in text and "Numa_Hit" in text
    assert main(["plot", str(tmp_path / "nowhere"), "-o", str(figs)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastnuma: error: ") and "not a report directory" in err


def test_comparison_ranks_and_puts_figures_side_by_side(lazy, numa01, tmp_path):
    from fastnuma.html import compare_html, ranking_rows
    from fastnuma.view import view_of
    text = compare_html([lazy, numa01], labels=["lazy", "numa01"])
    assert text.count("data:image/png;base64,") == 2 * len(KINDS)
    rows, key = ranking_rows([view_of(lazy, "a"), view_of(numa01, "b")])
    assert key == "remote_fraction" and [r["label"] for r in rows] == ["a", "b"]
    table = [{"label": "a", "estimated_s": 2.0}, {"label": "b", "estimated_s": 1.5}]
    rows, key = ranking_rows([view_of(lazy, "a"), view_of(numa01, "b")], table)
    assert [(r["rank"], r["label"]) for r in rows] == [(1, "b"), (2, "a")]
    assert "Ranking by estimated_s" in compare_html([lazy, numa01], table, labels=["a", "b"])


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.browser
def test_html_renders_in_headless_chromium(lazy, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium); the HTML "
                    "report was not rendered in a browser")
    from fastnuma.html import report_html, write_html
    page = tmp_path / "report.html"
    write_html(page, report_html(lazy))
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    "--window-size=1200,2400", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    from matplotlib.image import imread
    img = imread(shot)
    assert img.shape[:2] == (2400, 1200)
    rgb = img[..., :3]
    assert len(np.unique((rgb * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 50
    for colour in NODE_COLOURS[:4]:       # the figures are there: each node's colour shows
        c = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255
        assert (np.abs(rgb - c).max(axis=2) < 0.02).sum() > 500, colour
