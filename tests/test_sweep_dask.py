"""fastnuma sweep on real Dask clusters: a LocalCluster of 2 workers (resume, failures,
determinism against single replays, the MEMORY resource), the command line, and a
`dask scheduler` and a `dask worker` started as separate processes on 127.0.0.1."""
import os
import socket
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from fastnuma.cli import main
from fastnuma.sweep import combination_key, estimate_memory, run_combination, survey_trace
from fastnuma.sweep.store import ResultStore
from tests.test_sweep import LAZY, ROOT, UNIFORM, ZIPF, _outcome

distributed = pytest.importorskip("distributed")


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
        assert f"on scheduler {address} (1 worker connected)" in run.stdout
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
