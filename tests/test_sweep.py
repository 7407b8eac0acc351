"""fastnuma sweep without a cluster: grid expansion, one combination = one replay (and
equal to `fastnuma replay`), failures as rows, Report pickling, memory estimates,
progress. The Dask side is in test_sweep_dask.py."""
import json
import logging
import pickle
import tracemalloc
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fastnuma.cli import main
from fastnuma.sweep import (combination_key, estimate_memory, parse_grid, run_combination,
                            survey_trace)
from fastnuma.sweep.progress import SweepProgress

ROOT = Path(__file__).resolve().parents[1]
ZIPF = str(ROOT / "traces" / "zipf_4node.parquet")
UNIFORM = str(ROOT / "traces" / "uniform_2node.arrow")
LAZY = str(ROOT / "traces" / "lazy_4node.arrow")
#: columns that describe the run, not its outcome
RUN_COLUMNS = {"seconds", "worker", "memory_estimate_bytes", "fastnuma_version"}


def _outcome(row):
    return {k: v for k, v in row.items() if k not in RUN_COLUMNS}

# ---------------------------------------------------------------- grid expansion
def test_grid_expands_in_order_without_exclusions():
    grid = parse_grid({"traces": [ZIPF, UNIFORM],
                       "axes": {"topology": ["two_socket", "four_socket"],
                                "numa_balancing": [0, 1], "thp": ["never", "always"]},
                       "fixed": {"epoch": "100ms"},
                       "exclude": [{"topology": "two_socket", "numa_balancing": 1},
                                   {"trace": UNIFORM, "thp": ["always"]}]})
    combos = grid.combinations()
    full = [(t, {"epoch": "100ms", "topology": topo, "numa_balancing": nb, "thp": thp})
            for t in (ZIPF, UNIFORM) for topo in ("two_socket", "four_socket")
            for nb in (0, 1) for thp in ("never", "always")]
    kept = [c for c in full if not (c[1]["topology"] == "two_socket" and
                                    c[1]["numa_balancing"] == 1)
            and not (c[0] == UNIFORM and c[1]["thp"] == "always")]
    assert combos == kept
    assert len(combos) == 16 - 4 - 3
    keys = [combination_key(t, p) for t, p in combos]
    assert len(set(keys)) == len(keys)
    assert combination_key(ZIPF, {"a": 1, "b": 2}) == combination_key(ZIPF, {"b": 2, "a": 1})


def test_grid_file_paths_are_relative_to_it(tmp_path):
    from fastnuma.sweep import load_grid
    (tmp_path / "sub").mkdir()
    grid_file = tmp_path / "sub" / "grid.toml"
    grid_file.write_text('traces = ["../t.parquet", "s3://bucket/t.parquet"]\n'
                         '[axes]\nnuma_balancing = [0, 1]\n')
    grid = load_grid(grid_file)
    assert grid.traces == [str(tmp_path / "t.parquet"), "s3://bucket/t.parquet"]
    assert len(grid.combinations()) == 4


@pytest.mark.parametrize("doc, message", [
    ({"axes": {"thp": ["never"]}}, "traces"),
    ({"traces": [ZIPF], "axes": {"thp": ["never", "sometimes"]}}, "axes.thp[1]: thp="),
    ({"traces": [ZIPF], "axes": {"numa_balancing": [0, 2]}}, "axes.numa_balancing[1]"),
    ({"traces": [ZIPF], "axes": {"policy": ["default", "interlave:all"]}},
     "axes.policy[1]: policy 'interlave:all': unknown mode"),
    ({"traces": [ZIPF], "axes": {"policy": ["membind"]}}, "needs a node list"),
    ({"traces": [ZIPF], "axes": {"cpu_map": ["spred"]}}, "not a mode"),
    ({"traces": [ZIPF], "axes": {"cost": [{"local_nss": 90}]}}, "local_nss"),
    ({"traces": [ZIPF], "axes": {"mlc": ["nowhere.txt"]}}, "nowhere.txt"),
    ({"traces": [ZIPF], "axes": {"topolgy": ["two_socket"]}}, "unknown run-configuration"),
    ({"traces": [ZIPF], "axes": {"topology": ["eight_socket"]}}, "not a preset"),
    ({"traces": [ZIPF], "axes": {"epoch": ["10 parsecs"]}}, "--epoch"),
    ({"traces": [ZIPF], "axes": {"thp": []}}, "non-empty list"),
    ({"traces": [ZIPF], "axes": {"thp": ["never", "never"]}}, "listed twice"),
    ({"traces": [ZIPF], "axes": {"thp": ["never"]}, "exclude": [{"numa_balancing": 1}]},
     "not an axis"),
    ({"traces": [ZIPF], "axes": {"thp": ["never"]}, "exclude": [{"thp": "always"}]},
     "not one of the values"),
    ({"traces": [ZIPF], "axis": {}}, "unknown top-level key 'axis'"),
])
def test_bad_grids_are_one_line_errors(doc, message):
    with pytest.raises(ValueError, match=None) as e:
        parse_grid(doc, "g.toml")
    text = str(e.value)
    assert message in text and text.startswith("g.toml") and "\n" not in text


def test_bad_grid_file_writes_nothing(tmp_path, capsys):
    grid = tmp_path / "grid.toml"
    grid.write_text(f'traces = ["{ZIPF}"]\n[axes]\nthp = ["nevr"]\n')
    out = tmp_path / "r.parquet"
    assert main(["sweep", str(grid), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("fastnuma: error: ") and "axes.thp[0]" in err and "\n" not in err
    assert not out.exists()


# ---------------------------------------------------------------- one combination
REPLAY_FLAGS = [  # (combination, the same as `fastnuma replay` flags)
    ({"topology": "two_socket", "numa_balancing": 1, "epoch": "500ms"},
     ["--topology", "two_socket", "--numa-balancing", "1", "--epoch", "500ms"]),
    ({"topology": "two_socket", "policy": "interleave:all", "numa_balancing": 1,
      "cpu_map": "pack", "epoch": "500ms"},
     ["--topology", "two_socket", "--interleave", "all", "--numa-balancing", "1",
      "--cpu-map", "pack", "--epoch", "500ms"]),
    ({"topology": "four_socket", "policy": "membind:1,3", "cpunodebind": "0-1",
      "cpu_map": "spread", "mlc": str(ROOT / "tests" / "data" / "mlc" /
                                      "icx_4s_default_run.txt"), "llc": "on"},
     ["--topology", "four_socket", "--membind", "1,3", "--cpunodebind", "0-1",
      "--cpu-map", "spread", "--mlc", str(ROOT / "tests" / "data" / "mlc" /
                                         "icx_4s_default_run.txt"), "--llc", "on"]),
]


@pytest.mark.parametrize("params, flags", REPLAY_FLAGS)
def test_combination_equals_fastnuma_replay(tmp_path, capsys, params, flags):
    """A sweep row holds what `fastnuma replay` reports given the same flags (policy, CPU
    placement and cost model included)."""
    row = run_combination(ZIPF, params)
    assert row["status"] == "ok", row["error"]
    out = tmp_path / "rep"
    assert main(["replay", ZIPF] + flags + ["--no-progress", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    n = len(summary["placement"]["1"])
    assert summary["provenance"]["config"]["policy"]["task"] == params.get("policy",
                                                                           "default")
    for name, value in summary["vmstat"].items():
        assert row[name] == value, name
    placement = [sum(v[k] for v in summary["placement"].values()) for k in range(n)]
    assert [row[f"pages_node{k}"] for k in range(n)] == placement
    assert row["events"] == summary["rows"] and row["simulated_ns"] == summary["now_ns"]
    assert row["epochs"] == summary["epochs"] and row["machine"] == summary["topology"]
    matrix = pq.read_table(out / "access_matrix.parquet").to_pylist()
    remote = sum(r["reads"] + r["writes"] for r in matrix if r["cpu_node"] != r["mem_node"])
    assert row["remote_accesses"] == remote
    assert row["remote_fraction"] == remote / row["accesses"]
    cost = summary["cost"]                            # the cost model's estimate
    assert row["estimated_time_ns"] == cost["estimated_ns"] > 0
    assert row["est_stall_ms"] == cost["estimated_ns"] / 1e6
    assert row["stall_thread_ns"] == cost["stall_thread_ns"]
    assert row["memory_accesses"] == cost["memory_accesses"]
    assert row["llc_filter"] == cost["llc_filter"] == (params.get("llc") == "on")
    epochs = pq.read_table(out / "cost_epochs.parquet").column("bound").to_pylist()
    assert row["bandwidth_bound_epochs"] == epochs.count("bandwidth")


@pytest.mark.parametrize("trace", [UNIFORM, ZIPF])
def test_url_trace_is_read_through_pyarrow_filesystems(trace):
    """A file:// URL (pyarrow's LocalFileSystem, as s3:// would be its S3FileSystem): the
    replay and the cost model's second pass both read through it; the row is the path's."""
    params = {"numa_balancing": 1, "policy": "interleave:all", "cpu_map": "spread"}
    by_path = run_combination(trace, params)
    by_url = run_combination(Path(trace).as_uri(), params)
    assert by_url["status"] == "ok", by_url["error"]
    assert by_url["estimated_time_ns"] > 0
    differ = {k for k in _outcome(by_url) if by_url[k] != by_path[k]}
    assert differ == {"trace", "combination"}            # the identity, not the outcome
    assert survey_trace(Path(ZIPF).as_uri())["distinct_pages"] == 3482


def test_url_errors_are_rows_naming_the_url(tmp_path):
    missing = (tmp_path / "gone.parquet").as_uri()
    row = run_combination(missing, {"numa_balancing": 0})
    assert row["status"] == "failed" and row["error"] == \
        f"ValueError: {missing}: no such trace file"
    row = run_combination("nosuchfs://bucket/t.parquet", {})
    assert row["status"] == "failed" and "nosuchfs://bucket/t.parquet: cannot open this " \
        "URL with pyarrow's filesystems" in row["error"]
    row = run_combination((tmp_path / "t.csv").as_uri(), {})
    assert row["status"] == "failed" and "unknown trace file type" in row["error"]


def test_the_issue_grid(tmp_path):
    """The grid of issue 15 (and examples/grid_policy.toml): traces x topology x policy x
    numa_balancing, 8 combinations, each one what `fastnuma replay` gives."""
    from fastnuma.sweep import load_grid
    example = ROOT / "examples" / "grid_policy.toml"
    grid = load_grid(example)
    assert grid.traces == [ZIPF] and list(grid.axes) == ["topology", "policy",
                                                          "numa_balancing"]
    combos = grid.combinations()
    assert len(combos) == 8
    assert combos[1][1] == {"topology": "two_socket", "policy": "default",
                            "numa_balancing": 1}
    rows = [run_combination(t, p) for t, p in combos]
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
    # interleaving over every node spreads the pages (within 5 %: each mapping starts its
    # own round robin); the policy changes the placement and the estimate
    by = {(r["topology"], r["policy"], r["numa_balancing"]): r for r in rows}
    for (topo, policy, nb), r in by.items():
        nodes = [r[f"pages_node{k}"] for k in range(r["nodes"])]
        assert r["nodes"] == (2 if topo == "two_socket" else 4)
        assert r["estimated_time_ns"] > 0 and sum(nodes) == r["pages"]
        if policy == "interleave:all":
            assert min(nodes) > 0 and max(nodes) - min(nodes) <= 0.05 * r["pages"], nodes
            first_touch = by[(topo, "default", nb)]
            assert [first_touch[f"pages_node{k}"] for k in range(r["nodes"])] != nodes
            assert first_touch["estimated_time_ns"] != r["estimated_time_ns"]


def test_failing_combination_is_a_row():
    """uniform has CPUs 0-3; the zipf trace runs threads on CPUs up to 15."""
    row = run_combination(ZIPF, {"topology": "uniform"})
    assert row["status"] == "failed"
    assert row["error"].startswith("TraceError: no such CPU") and "column 'cpu'" in row["error"]
    assert "events" not in row


def test_report_pickles():
    from fastnuma.sweep import replay_combination
    report = replay_combination(LAZY, {"numa_balancing": 1})
    again = pickle.loads(pickle.dumps(report))
    assert again.summary() == report.summary()
    for name, table in report.to_tables().items():
        assert again.to_tables()[name].equals(table), name


# ---------------------------------------------------------------- memory estimate
def test_memory_estimate_follows_pages_not_events():
    small = {"rows": 10_000, "distinct_pages": 1 << 16, "distinct_blocks": 128}
    long = dict(small, rows=10_000_000_000)
    wide = dict(small, distinct_pages=1 << 20, distinct_blocks=2048)
    assert estimate_memory(long) - estimate_memory(small) <= (1 << 20) * 96
    assert estimate_memory(wide) - estimate_memory(small) >= 15 * 128 * 512 * 8
    sparse = dict(small, distinct_pages=1 << 16, distinct_blocks=1 << 16)
    assert estimate_memory(sparse) > 64 * estimate_memory(small) // 8


def _traced_peak(trace, params):
    from fastnuma.sweep import replay_combination
    tracemalloc.start()
    try:
        replay_combination(trace, params)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_estimate_bounds_the_replay(tmp_path):
    """The estimate is above the replay's peak of traced allocations (numpy arrays, the
    trace's batches) on a bundled trace and on one of 2**18 distinct pages."""
    from fastnuma.trace.generate import write_trace
    survey = survey_trace(ZIPF)
    assert (survey["rows"], survey["distinct_pages"]) == (50_000, 3482)
    assert _traced_peak(ZIPF, {"numa_balancing": 1}) <= estimate_memory(survey)
    big = tmp_path / "wide.arrow"
    write_trace(big, "uniform", 300_000, seed=1, nodes=2, cpus_per_node=4, pages=1 << 18)
    survey = survey_trace(str(big))
    assert survey["distinct_pages"] > 150_000 and survey["distinct_blocks"] == 512
    assert _traced_peak(str(big), {"topology": "two_socket"}) <= estimate_memory(survey)


# ---------------------------------------------------------------- progress
class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_progress_log_lines():
    log, handler = logging.getLogger("fastnuma.sweep"), _Lines()
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        p = SweepProgress(4, bar=False, interval=0)
        p.update(0, 0, 2)
        p.update(2, 1, 2)
        p.close()
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    lines = handler.lines
    assert lines[0] == "sweep: 0/4 done (0 failed), 2 running, ETA ?"
    assert lines[1].startswith("sweep: 2/4 done (1 failed), 2 running, ETA 00:00:")
    assert lines[-1].startswith("sweep: 2/4 done")


def test_progress_bar_on_a_terminal():
    import io
    stream = io.StringIO()
    p = SweepProgress(3, bar=True, stream=stream)
    p.update(1, 1, 2)
    p.close()
    assert "1/3" in stream.getvalue() and "failed=1 running=2" in stream.getvalue()
