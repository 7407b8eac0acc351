"""Folios queued for a migration are off the LRU until they move (mm/migrate.c: the
caller isolated them; isolate_lru_folios never sees them): the direct reclaim of an
allocation for one of them cannot demote another. The program the slow tiering
differential found (seed 32044388896786974997830288344359884945), replayed on the engine
and the model: they disagreed when reclaim could take a queued folio."""
import fastnuma as fn

from tests.test_differential import DifferentialTiering

TIERING = {"numa_balancing": 1, "demotion_enabled": True, "memory_tiering": True,
           "numa_balancing_scan_delay_ms": 0, "numa_balancing_promote_rate_limit_MBps": 0,
           "numa_balancing_hot_threshold_ms": 1, "numa_balancing_scan_period_min_ms": 20,
           "numa_balancing_scan_size_mb": 4, "tiering_profile": "6.12", "thp": "never"}
# DRAM node 0 with the CPU, CPU-less node 3 below it; no watermarks
TOPOLOGY = {"node_pages": [600, 0, 0, 600], "node_cpus": [[0], [], [], []],
            "distance": [[10, 12, 12, 12], [12, 10, 12, 12], [12, 12, 10, 12],
                         [12, 12, 12, 10]],
            "wmark_min": [0] * 4, "wmark_low": [0] * 4, "wmark_high": [0] * 4}


def test_direct_reclaim_inside_mbind_move_skips_the_queued_folios():
    state = DifferentialTiering()
    state.build(targs=TOPOLOGY, opts=TIERING, workers=[0], fill=1536)   # 600 pages written
    state.mmap(i=0, first=0, n=1, shared=False, fixed=0, odd=0, prot=3)
    state.same_state()
    before = state.sim.vmstat()["pgmigrate_success"]
    # BIND to relative node 4 of the memory nodes {0, 3}: node 0, which is full
    state.mbind(i=0, first=31, n=97, mode=fn.MPOL_BIND, flag=fn.MPOL_F_RELATIVE_NODES,
                mask=1 << 4, mflags=fn.MPOL_MF_MOVE)
    state.same_state()
    state.same_tiering_state()
    assert state.sim.node_vmstat()[0]["pgdemote_direct"] > 0          # reclaim ran
    assert state.sim.vmstat()["pgmigrate_success"] > before
