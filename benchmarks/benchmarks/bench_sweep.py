"""Sweep throughput: replays per minute of one grid, run by ``fastnuma.sweep.run_sweep`` on
a LocalCluster of 2 worker processes, against the same combinations replayed one after
the other in this process by ``run_combination`` (no Dask).

The grid: one generated trace (uniform accesses, 4 threads) x 3 machines x 2
numa_balancing settings x 2 thp settings = 12 replays. Workers are started and warmed
(JIT cache loaded, trace in the page cache) in ``setup``; each timed run writes a new
results table, so nothing is skipped as already done.
"""
import os
import tempfile
import time

from fastnuma.sweep import parse_grid, run_combination
from fastnuma.trace.generate import write_trace

from .common import CACHE_ROOT, QUICK

EVENTS = 50_000 if QUICK else 1_000_000
PAGES = 1 << 12 if QUICK else 1 << 16
TRACE = CACHE_ROOT / "traces" / f"sweep_uniform_{EVENTS}_{PAGES}.arrow"
AXES = {"topology": ["two_socket", "four_socket", "cxl"], "numa_balancing": [0, 1],
        "thp": ["never", "always"]}


def _grid():
    return parse_grid({"traces": [str(TRACE)], "axes": AXES})


class SweepThroughput:
    params = ["one process", "2 workers"]
    param_names = ["runner"]
    timeout = 900
    number = 1
    repeat = 1 if QUICK else 3

    def setup_cache(self):
        if not TRACE.exists():
            TRACE.parent.mkdir(parents=True, exist_ok=True)
            write_trace(TRACE, "uniform", EVENTS, seed=5, nodes=2, cpus_per_node=4,
                        pages=PAGES, threads=4)

    def setup(self, runner):
        self.grid = _grid()
        self.client = self.cluster = None
        if runner == "2 workers":
            from distributed import Client
            from fastnuma.sweep import local_cluster
            self.cluster = local_cluster(workers=2, memory_limit=2 << 30)
            self.client = Client(self.cluster)
        self._run(runner)                            # warm-up: JIT, page cache

    def teardown(self, runner):
        if self.client is not None:
            self.client.close()
            self.cluster.close()

    def _run(self, runner):
        if runner == "one process":
            for trace, params in self.grid.combinations():
                row = run_combination(trace, params)
                assert row["status"] == "ok", row["error"]
            return
        from fastnuma.sweep import run_sweep
        with tempfile.TemporaryDirectory() as d:
            stats = run_sweep(self.grid, os.path.join(d, "r.parquet"), self.client,
                              progress=False)
        assert stats["failed"] == 0

    def track_replays_per_minute(self, runner):
        t0 = time.perf_counter()
        self._run(runner)
        return 60 * len(self.grid.combinations()) / (time.perf_counter() - t0)
    track_replays_per_minute.unit = "replays/min"
