"""The event loop alone against bench-ref's C ``ref_replay``, on the hits-only streams of
``benchmarks/benchmarks/bench_vs_c.HitsVsC`` (issue 13): ns per event of ``run_events``
(no trace reading, no report) and of C, each the median of 5 calls alternated in one
process, timed in CPU time of the calling thread (``time.thread_time``), which a loaded
2-core host disturbs less than wall time.

    FASTNUMA_BENCH_REF=<bench-ref dir> PYTHONPATH=src python tools/event_loop_vs_c.py \\
        [sequential] [uniform] [zipf]

Needs bench-ref (a C compiler and its sources); ``HitsVsC.setup`` builds the machine
(1M pages, 10M events, 16 threads on 4 nodes, every page present and warmed).
"""
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("FASTNUMA_BENCH_REF", str(ROOT.parent / "shared" / "bench-ref"))

from benchmarks.bench_vs_c import HitsVsC  # noqa: E402

from fastnuma.constants import NEVER  # noqa: E402
from fastnuma.kernels.events import run_events  # noqa: E402
from fastnuma.memory import hit_scratch  # noqa: E402

COLUMNS = ["addr", "op", "cpu", "tid", "pid", "ts"]


def measure(pattern, repeat=5):
    b = HitsVsC()
    b.setup(pattern)
    m = b.sim.machine
    cols = {n: b.table.column(n).to_numpy() for n in COLUMNS}
    proc = next(iter(m.procs.values()))
    vmas = m.kernel_vmas(proc)
    m.vma_lo[proc.asid], m.vma_hi[proc.asid] = 0, len(vmas)
    pos, counts = np.zeros(1, np.int64), np.zeros_like(m.access_counts)
    n = cols["addr"].size
    args = (m.st, vmas, m.vma_lo, m.vma_hi, m.tid_keys, m.tid_vals, cols["addr"], cols["op"],
            cols["cpu"], cols["tid"], cols["pid"], cols["ts"].view(np.int64))
    ours, c = [], []
    for _ in range(repeat):
        t0 = time.thread_time()
        status = run_events(*args, 0, n, NEVER, pos, counts, 0, *hit_scratch())
        ours.append(time.thread_time() - t0)
        if status != 0 or pos[0] != n:
            raise RuntimeError(f"the hits-only stream stopped at {pos[0]} (status {status})")
        t0 = time.thread_time()
        b._c()
        c.append(time.thread_time() - t0)
    return float(np.median(ours)) / n * 1e9, float(np.median(c)) / n * 1e9


def main(patterns):
    for p in patterns or ["sequential", "uniform", "zipf"]:
        ours, c = measure(p)
        print(f"{p:10s} run_events {ours:6.2f} ns/event  C {c:6.2f} ns/event  "
              f"ratio {c / ours:.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
