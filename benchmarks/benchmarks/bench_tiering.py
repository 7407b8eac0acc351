"""Memory tiering (docs/tiering.md): replay of one trace on a CXL machine with
``numa_balancing=2`` and demotion, against ``numa_balancing=1`` on the same trace and
machine, in the same run. Issue 16's budget: tiering must not make the replay more than
10 % slower (``track_mode2_over_mode1``, a ratio of medians measured back to back).

The trace (``hotshift``: a working set larger than DRAM, its hot eighth moving in four
phases) is made once by ``setup_cache`` into ``$FASTNUMA_ASV_CACHE/traces``.
"""
import time

import numpy as np

import fastnuma as fn
from fastnuma.trace.generate import write_trace

from .common import CACHE_ROOT, QUICK

EVENTS = 200_000 if QUICK else 4_000_000
PAGES = 1 << 14 if QUICK else 1 << 18          # working set, 4 KiB pages
THREADS = 4
TRACE = CACHE_ROOT / "traces" / f"tiering_hotshift_{EVENTS}_{PAGES}.parquet"
GIB_PAGES = 1 << 18
# DRAM holds two thirds of the working set, the CXL card all of it
DRAM_GIB, CXL_GIB = (PAGES * 2 // 3) / GIB_PAGES, PAGES / GIB_PAGES
KNOBS = {"mode1": dict(numa_balancing=1),
         "mode2": dict(numa_balancing=2, demotion_enabled=True)}


def make_trace():
    if not TRACE.exists():
        TRACE.parent.mkdir(parents=True, exist_ok=True)
        write_trace(TRACE, "hotshift", EVENTS, seed=1, nodes=1, cpus_per_node=THREADS,
                    threads=THREADS, pages=PAGES, ns_per_event=100_000)


def replay(mode):
    topo = fn.Topology.cxl_one_socket(dram_gib=DRAM_GIB, cxl_gib=CXL_GIB, cpus=THREADS)
    sim = fn.Simulator(topo, **KNOBS[mode])
    t0 = time.perf_counter()
    report = sim.replay(TRACE)
    return time.perf_counter() - t0, report


class ReplayTiering:
    """Replay of the hotshift trace on ``cxl_one_socket`` in mode 1 and in mode 2."""
    params = ["mode1", "mode2"]
    param_names = ["mode"]
    timeout = 900

    def setup_cache(self):
        make_trace()

    def setup(self, mode):
        replay(mode)                               # JIT warm-up

    def time_replay(self, mode):
        replay(mode)

    def track_events_per_s(self, mode):
        return float(np.median([EVENTS / replay(mode)[0] for _ in range(3)]))
    track_events_per_s.unit = "events/s"


class TieringOverhead:
    """Mode 2 (promotion, kswapd, demotion, the LRU clock) over mode 1, same trace, same
    machine, same process, alternating runs: the median time ratio."""
    timeout = 900

    def setup_cache(self):
        make_trace()

    def setup(self):
        replay("mode1")
        replay("mode2")

    def track_mode2_over_mode1(self):
        one, two = [], []
        for _ in range(3):
            one.append(replay("mode1")[0])
            two.append(replay("mode2")[0])
        return float(np.median(two) / np.median(one))
    track_mode2_over_mode1.unit = "ratio"
