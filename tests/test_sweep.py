"""fastnuma sweep: grid expansion, one combination = one replay, the results table
(resume, failures), progress, memory estimates, and real Dask clusters (a LocalCluster of
2 workers; a `dask scheduler` and a `dask worker` started as separate processes)."""
import json
import logging
import os
import pickle
import socket
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fastnuma.cli import main
from fastnuma.sweep import (combination_key, estimate_memory, parse_grid, run_combination,
                            survey_trace)
from fastnuma.sweep.progress import SweepProgress
from fastnuma.sweep.store import ResultStore

ROOT = Path(__file__).resolve().parents[1]
ZIPF = str(ROOT / "traces" / "zipf_4node.parquet")
UNIFORM = str(ROOT / "traces" / "uniform_2node.arrow")
LAZY = str(ROOT / "traces" / "lazy_4node.arrow")
#: columns that describe the run, not its outcome
RUN_COLUMNS = {"seconds", "worker", "memory_estimate_bytes", "fastnuma_version"}

distributed = pytest.importorskip("distributed")


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
    ({"traces": [ZIPF], "axes": {"policy": ["default", "interleave:all"]}}, "issue 14"),
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
def test_combination_equals_fastnuma_replay(tmp_path, capsys):
    """A sweep row holds what `fastnuma replay` reports for the same settings."""
    params = {"topology": "two_socket", "numa_balancing": 1, "epoch": "500ms"}
    row = run_combination(ZIPF, params)
    assert row["status"] == "ok", row["error"]
    out = tmp_path / "rep"
    assert main(["replay", ZIPF, "--topology", "two_socket", "--numa-balancing", "1",
                 "--epoch", "500ms", "--no-progress", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for name, value in summary["vmstat"].items():
        assert row[name] == value, name
    placement = [sum(v[k] for v in summary["placement"].values()) for k in range(2)]
    assert [row["pages_node0"], row["pages_node1"]] == placement
    assert row["events"] == summary["rows"] and row["simulated_ns"] == summary["now_ns"]
    assert row["epochs"] == summary["epochs"] and row["machine"] == summary["topology"]
    matrix = pq.read_table(out / "access_matrix.parquet").to_pylist()
    remote = sum(r["reads"] + r["writes"] for r in matrix if r["cpu_node"] != r["mem_node"])
    assert row["remote_accesses"] == remote
    assert row["remote_fraction"] == remote / row["accesses"]
    assert row["estimated_time_ns"] is None           # no cost model in this build


def test_url_trace_is_read_through_pyarrow_filesystems():
    by_path = run_combination(UNIFORM, {"numa_balancing": 1})
    by_url = run_combination(Path(UNIFORM).as_uri(), {"numa_balancing": 1})
    assert by_url["status"] == "ok", by_url["error"]
    differ = {k for k in _outcome(by_url) if by_url[k] != by_path[k]}
    assert differ == {"trace", "combination"}            # the identity, not the outcome
    assert survey_trace(Path(ZIPF).as_uri())["distinct_pages"] == 3482


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


def test_memory_estimate_bounds_the_replay():
    survey = survey_trace(ZIPF)
    assert (survey["rows"], survey["distinct_pages"]) == (50_000, 3482)
    tracemalloc.start()
    try:
        from fastnuma.sweep import replay_combination
        replay_combination(ZIPF, {"numa_balancing": 1})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= estimate_memory(survey)


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


# ---------------------------------------------------------------- on Dask
@pytest.fixture(scope="module")
def client():
    from fastnuma.sweep import local_cluster
    cluster = local_cluster(workers=2, memory_limit=2 << 30, processes=False)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def _grid(tmp_path, body):
    path = tmp_path / "grid.toml"
    path.write_text(body)
    from fastnuma.sweep import load_grid
    return load_grid(path)


GRID = f"""traces = ["{ZIPF}", "{UNIFORM}"]
[axes]
topology = ["two_socket", "four_socket", "uniform"]
numa_balancing = [0, 1]
[[exclude]]
trace = "{UNIFORM}"
topology = "uniform"
"""


def _outcome(row):
    return {k: v for k, v in row.items() if k not in RUN_COLUMNS}


def test_local_cluster_sweep_resume_and_failures(client, tmp_path):
    from fastnuma.sweep import run_sweep
    grid = _grid(tmp_path, GRID)
    assert client.scheduler_info()["workers"] and len(client.nthreads()) == 2
    out = tmp_path / "r.parquet"
    stats = run_sweep(grid, out, client, progress=False)
    assert stats == {"total": 10, "skipped": 0, "ran": 10, "failed": 2}
    table = pq.read_table(out)
    assert table.num_rows == 10 and oct(os.stat(out).st_mode & 0o777) != "0o600"
    rows = {r["combination"]: r for r in table.to_pylist()}
    workers = {r["worker"] for r in rows.values()}
    failed = [r for r in rows.values() if r["status"] == "failed"]
    assert {(r["topology"], r["trace"]) for r in failed} == {("uniform", ZIPF)}
    assert all("no such CPU" in r["error"] for r in failed)
    # every row is what the same combination gives alone (determinism)
    for trace, params in grid.combinations():
        row = rows[combination_key(trace, params)]
        alone = run_combination(trace, params)
        assert {k: v for k, v in _outcome(row).items() if v is not None} == \
            {k: v for k, v in _outcome(alone).items() if v is not None}
    assert workers                                       # each row names its worker
    # rerun: nothing finished runs again; the failed ones do (and fail again)
    stats = run_sweep(grid, out, client, progress=False)
    assert stats == {"total": 10, "skipped": 8, "ran": 2, "failed": 2}
    again = {r["combination"]: r for r in pq.read_table(out).to_pylist()}
    assert {k: r["seconds"] for k, r in again.items() if r["status"] == "ok"} == \
        {k: r["seconds"] for k, r in rows.items() if r["status"] == "ok"}


def test_resume_skips_rows_already_in_the_table(client, tmp_path):
    from fastnuma.sweep import run_sweep
    grid = _grid(tmp_path, f'traces = ["{LAZY}"]\n[axes]\nnuma_balancing = [0, 1]\n'
                           f'thp = ["never", "always"]\n')
    out = tmp_path / "r.parquet"
    store = ResultStore(out, grid=grid.path)
    trace, params = grid.combinations()[0]
    store.add(run_combination(trace, params, key=combination_key(trace, params)),
              ["trace", "numa_balancing", "thp"])
    store.flush()
    stats = run_sweep(grid, out, client, progress=False)
    assert stats == {"total": 4, "skipped": 1, "ran": 3, "failed": 0}
    assert pq.read_table(out).num_rows == 4


def test_output_that_is_not_a_sweep_table_is_refused(client, tmp_path):
    from fastnuma.sweep import run_sweep
    out = tmp_path / "r.parquet"
    out.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="not overwriting"):
        run_sweep(_grid(tmp_path, f'traces = ["{LAZY}"]\n'), out, client, progress=False)
    assert out.read_bytes() == b"not parquet"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_against_a_scheduler_and_a_worker_processes(tmp_path):
    """`dask scheduler` and `dask worker` as separate processes on 127.0.0.1; the sweep
    command connects with --scheduler and the workers read the traces themselves."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    dask = [sys.executable, "-m", "dask"]              # what the `dask` command runs
    procs = [subprocess.Popen(dask + ["scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=env, stderr=subprocess.DEVNULL)]
    try:
        procs.append(subprocess.Popen(
            dask + ["worker", address, "--nthreads", "1",
             "--host", "127.0.0.1", "--no-dashboard", "--memory-limit", "2GiB",
             "--resources", "MEMORY=1e9"], env=env, stderr=subprocess.DEVNULL))
        grid = tmp_path / "grid.toml"
        grid.write_text(f'traces = ["{UNIFORM}"]\n[axes]\nnuma_balancing = [0, 1]\n')
        out = tmp_path / "r.parquet"
        run = subprocess.run([sys.executable, "-m", "fastnuma", "sweep", str(grid), "-o",
                              str(out), "--scheduler", address, "--no-progress"], env=env,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        assert f"on scheduler {address} (1 workers)" in run.stdout
        rows = pq.read_table(out).to_pylist()
        assert [r["status"] for r in rows] == ["ok", "ok"]
        pids = {r["worker"].rsplit(":", 1)[1] for r in rows}
        assert len(pids) == 1 and str(os.getpid()) not in pids   # the worker ran them
        for r in rows:
            assert _outcome(r) == {k: v for k, v in _outcome(run_combination(
                UNIFORM, {"numa_balancing": r["numa_balancing"]})).items() if k in r}
        # the same command again, the scheduler named by Dask's environment variable:
        # everything is in the table already
        again = subprocess.run([sys.executable, "-m", "fastnuma", "sweep", str(grid), "-o",
                                str(out), "--no-progress"], capture_output=True, text=True,
                               env=dict(env, DASK_SCHEDULER_ADDRESS=address), timeout=300)
        assert again.returncode == 0, again.stderr
        assert f"on scheduler {address}" in again.stdout
        assert "0 ran (0 failed), 2 already in" in again.stdout
        assert pq.read_table(out).to_pylist() == rows
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    assert all(p.returncode is not None for p in procs)


class _MaxExecuting(distributed.WorkerPlugin):
    """Counts the worker's replays in its "executing" state (a task gets there only once
    its resources are acquired) and keeps the largest count seen."""
    name = "fastnuma-max-executing"

    def setup(self, worker):
        self.now = self.most = 0

    def transition(self, key, start, finish, **kwargs):
        if str(key).startswith("fastnuma-replay-"):
            self.now += (finish == "executing") - (start == "executing")
            self.most = max(self.most, self.now)


def test_memory_resource_keeps_a_worker_from_oversubscribing(tmp_path):
    """One worker with 2 threads whose MEMORY holds one replay of this trace (its
    estimate x 1.5): it never executes two replays at once."""
    from fastnuma.sweep import run_sweep
    need = estimate_memory(survey_trace(LAZY))
    grid = _grid(tmp_path, f'traces = ["{LAZY}"]\n[axes]\nnuma_balancing = [0, 1]\n'
                           f'thp = ["never", "always"]\n')
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  resources={"MEMORY": int(1.5 * need)},
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        c.register_plugin(_MaxExecuting())
        stats = run_sweep(grid, tmp_path / "r.parquet", c, progress=False)
        (worker,) = cluster.workers.values()
        most = worker.plugins[_MaxExecuting.name].most
    assert stats["ran"] == 4 and stats["failed"] == 0
    assert most == 1
    assert set(pq.read_table(tmp_path / "r.parquet").column("memory_estimate_bytes")
               .to_pylist()) == {need}


def test_a_replay_larger_than_every_worker_fails_at_once(tmp_path):
    from fastnuma.sweep import run_sweep
    grid = _grid(tmp_path, f'traces = ["{LAZY}"]\n[axes]\nnuma_balancing = [0, 1]\n')
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  resources={"MEMORY": 1 << 20},
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        stats = run_sweep(grid, tmp_path / "r.parquet", c, progress=False)
    assert stats == {"total": 2, "skipped": 0, "ran": 2, "failed": 2}
    errors = pq.read_table(tmp_path / "r.parquet").column("error").to_pylist()
    assert all(e.startswith("MemoryError: needs about") and "offers 1,048,576" in e
               for e in errors)


def test_missing_trace_is_a_failed_row(client, tmp_path):
    from fastnuma.sweep import run_sweep
    grid = _grid(tmp_path, 'traces = ["nowhere.parquet"]\n[axes]\nthp = ["never"]\n')
    stats = run_sweep(grid, tmp_path / "r.parquet", client, progress=False)
    assert stats["failed"] == 1
    (row,) = pq.read_table(tmp_path / "r.parquet").to_pylist()
    assert row["status"] == "failed" and row["error"].startswith("TraceError: no such trace")


def test_cli_exit_status_and_summary(client, tmp_path, capsys):
    """The command on the test's cluster (in-process, by its address): a failed
    combination makes the exit status 3, its row holds the error; a rerun skips the
    finished ones and runs the failed one again."""
    grid = tmp_path / "grid.toml"
    grid.write_text(f'traces = ["{ZIPF}"]\n[axes]\ntopology = ["two_socket", "uniform"]\n')
    out = tmp_path / "r.parquet"
    argv = ["sweep", str(grid), "-o", str(out), "--scheduler", client.scheduler.address,
            "--no-progress"]
    assert main(argv) == 3
    printed = capsys.readouterr().out
    assert "sweep: 2 combinations on scheduler" in printed
    assert "sweep: 2 ran (1 failed), 0 already in" in printed
    assert main(argv) == 3
    assert "sweep: 1 ran (1 failed), 1 already in" in capsys.readouterr().out
    statuses = sorted(pq.read_table(out).column("status").to_pylist())
    assert statuses == ["failed", "ok"]
    assert main(["sweep", str(grid), "-o", str(tmp_path / "r.csv")]) == 1
    assert "the results table is a .parquet file" in capsys.readouterr().err


def _dies(trace, params, key, memory_estimate):
    raise RuntimeError("the worker went away")


def test_a_task_that_dies_outside_the_replay_is_a_failed_row(client, tmp_path,
                                                              monkeypatch):
    """What Dask raises for a task (KilledWorker when its worker died, say) becomes the
    combination's row; the sweep goes on (the in-process workers run the patched task)."""
    import fastnuma.sweep.cluster as cluster
    from fastnuma.sweep import run_sweep
    monkeypatch.setattr(cluster, "run_combination", _dies)
    grid = _grid(tmp_path, f'traces = ["{LAZY}"]\n[axes]\nthp = ["never", "always"]\n')
    stats = run_sweep(grid, tmp_path / "r.parquet", client, progress=False)
    assert stats == {"total": 2, "skipped": 0, "ran": 2, "failed": 2}
    rows = pq.read_table(tmp_path / "r.parquet").to_pylist()
    assert {r["thp"] for r in rows} == {"never", "always"}
    assert all(r["error"] == "RuntimeError: the worker went away" for r in rows)
