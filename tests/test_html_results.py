"""HTML pages of result tables: `fastnuma compare --html` (the runs' reports side by side,
ranked by estimated time) and `fastnuma sweep --html` (the results table, figures drawn
from it), checked against the tables, and rendered in a real headless Chromium."""
import base64
import re
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from fastnuma.cli import main
from tests.test_plot import _chromium

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
ZIPF = str(ROOT / "traces" / "zipf_4node.parquet")
POLICIES = ("default", "interleave:all", "membind:1")


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """`fastnuma compare` of three policies on two_socket, its table and its page."""
    d = tmp_path_factory.mktemp("cmp")
    assert main(["compare", ZIPF, "--topology", "two_socket", "--epoch", "5000",
                 "--vary", "policy=" + ",".join(POLICIES), "-o", str(d / "t.parquet"),
                 "--html", str(d / "cmp.html")]) == 0
    return pq.read_table(d / "t.parquet"), (d / "cmp.html").read_text()


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The issue's grid run combination by combination into a sweep table (no Dask: the
    table is the one run_sweep writes), plus a failing combination; and its page."""
    from fastnuma.html_results import read_sweep_table, sweep_html
    from fastnuma.sweep import combination_key, load_grid, run_combination
    from fastnuma.sweep.store import ResultStore
    d = tmp_path_factory.mktemp("sweep")
    grid = load_grid(ROOT / "examples" / "grid_policy.toml")
    store = ResultStore(d / "r.parquet", grid=grid.path)
    for t, p in grid.combinations():
        store.add(run_combination(t, p, combination_key(t, p)), ["trace"] + list(grid.axes))
    bad = {"topology": "uniform", "policy": "default", "numa_balancing": 0}
    store.add(run_combination(ZIPF, bad), ["trace"] + list(grid.axes))
    store.flush()
    table = read_sweep_table(d / "r.parquet")
    return table, sweep_html(table)


def _ranking(text):
    """The labels of the first table of the page (the ranking), in order."""
    first = text.split("<table>", 1)[1].split("</table>", 1)[0]
    return [re.sub(r"<[^>]+>", "", row.split("</td>")[1]) for row in first.split("<tr>")[2:]]


def test_compare_page_ranks_by_estimated_time_and_shows_each_run(compared):
    from fastnuma.plot import KINDS
    table, text = compared
    rows = table.to_pylist()
    expected = [r["config"] for r in sorted(rows, key=lambda r: r["est_stall_ms"])]
    assert _ranking(text) == expected
    assert "Ranking by estimated_s (lower first)" in text
    for r in rows:                        # each configuration's column: label and counters
        assert f"<h3>{r['config']}</h3>" in text
        assert f"numa_pages_migrated {r['numa_pages_migrated']}" in text
    # every figure kind of a what-if report (no heat: compare records none), per run
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(imgs) == len(rows) * (len(KINDS) - 1)
    assert all(base64.b64decode(i)[:4] == b"\x89PNG" for i in imgs)
    assert not re.search(r'(src|href)="(https?:)?//', text)


def test_compare_html_is_checked_before_anything_runs(tmp_path, capsys):
    assert main(["compare", ZIPF, "--vary", "policy=default,interleave:all",
                 "--html", str(tmp_path)]) == 1
    assert "is a directory" in capsys.readouterr().err


def test_sweep_page_ranks_each_trace_and_lists_failures(swept):
    table, text = swept
    ok = [r for r in table.to_pylist() if r["status"] == "ok"]
    assert len(ok) == 8
    order = sorted(ok, key=lambda r: r["estimated_time_ns"])
    first = text.split("<table>", 1)[1].split("</table>", 1)[0]
    cells = [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in first.split("<tr>")[2:]]
    # rank, topology, policy, numa_balancing, est_stall_ms ...
    assert [(c[1], c[2], int(c[3])) for c in cells] == \
        [(r["topology"], r["policy"], r["numa_balancing"]) for r in order]
    assert [c[0] for c in cells] == [str(k) for k in range(1, 9)]
    assert "<h2>Failed combinations</h2>" in text and "no such CPU" in text
    assert text.count("data:image/png;base64,") == 1      # one trace: one figure
    assert not re.search(r'(src|href)="(https?:)?//', text)


def test_sweep_figure_is_the_table(swept):
    """The bars are the table's values: estimated ms, pages per node (stacked, the report
    figures' node colours), remote %."""
    from matplotlib.colors import to_hex
    from fastnuma.html_results import _figure, config_columns
    from fastnuma.plot import NODE_COLOURS
    table, _ = swept
    assert config_columns(table) == ["trace", "topology", "policy", "numa_balancing"]
    rows = sorted((r for r in table.to_pylist() if r["status"] == "ok"),
                  key=lambda r: r["estimated_time_ns"])
    fig = _figure(rows, [str(k) for k in range(len(rows))], ZIPF)
    est, pages, remote = fig.axes[:3]
    assert [p.get_width() for p in est.patches] == [r["est_stall_ms"] for r in rows]
    assert [p.get_y() + p.get_height() / 2 for p in est.patches] == \
        list(range(len(rows)))[::-1]                    # best at the top
    bars = pages.patches
    for k in range(4):
        mine = bars[k * len(rows):(k + 1) * len(rows)]
        assert [p.get_width() for p in mine] == [r.get(f"pages_node{k}") or 0 for r in rows]
        assert {to_hex(p.get_facecolor()).upper() for p in mine} == {NODE_COLOURS[k]}
    ends = np.array([[p.get_x() + p.get_width() for p in bars[k * len(rows):(k + 1) *
                                                            len(rows)]] for k in range(4)])
    assert ends.max(axis=0).tolist() == [r["pages"] for r in rows]
    assert np.allclose([p.get_width() for p in remote.patches],
                       [100 * r["remote_fraction"] for r in rows])


def test_sweep_command_writes_the_page(tmp_path, capsys):
    """`fastnuma sweep --html` on a local cluster in this process (the Dask side of the
    command is in test_sweep_dask.py)."""
    distributed = pytest.importorskip("distributed")
    from fastnuma.sweep import local_cluster
    grid = tmp_path / "grid.toml"
    grid.write_text(f'traces = ["{ZIPF}"]\n[axes]\npolicy = ["default", "interleave:all"]\n'
                    f'[fixed]\ntopology = "two_socket"\n')
    out, page = tmp_path / "r.parquet", tmp_path / "r.html"
    with local_cluster(workers=1, memory_limit=2 << 30, processes=False) as cluster, \
            distributed.Client(cluster) as client:
        assert main(["sweep", str(grid), "-o", str(out), "--scheduler",
                     client.scheduler.address, "--no-progress", "--html", str(page)]) == 0
    assert f"HTML page written to {page}" in capsys.readouterr().out
    text = page.read_text()
    assert "ranking by estimated time" in text and text.count("data:image/png") == 1
    assert main(["sweep", str(grid), "-o", str(out), "--html", str(tmp_path)]) == 1
    assert "is a directory" in capsys.readouterr().err


def _screenshot(browser, page, tmp_path, size=(1300, 1800)):
    shot = tmp_path / (page.stem + ".png")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    f"--window-size={size[0]},{size[1]}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    from matplotlib.image import imread
    img = imread(shot)
    assert img.shape[:2] == size[::-1]
    return img[..., :3]


def _colour_pixels(rgb, colour):
    c = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    return int((np.abs(rgb - c).max(axis=2) < 0.02).sum())


@pytest.mark.browser
def test_pages_render_in_headless_chromium(compared, swept, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium); the HTML "
                    "pages were not rendered in a browser")
    from fastnuma.plot import NODE_COLOURS
    for name, text, nodes in (("compare", compared[1], 2), ("sweep", swept[1], 4)):
        page = tmp_path / f"{name}.html"
        page.write_text(text)
        rgb = _screenshot(browser, page, tmp_path, (1300, 5000 if name == "compare"
                                                    else 1300))
        assert len(np.unique((rgb * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 50
        for colour in NODE_COLOURS[:nodes]:   # the figures are drawn: each node's colour
            assert _colour_pixels(rgb, colour) > 300, (name, colour)
