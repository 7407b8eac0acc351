"""Programs the slow differential run (tests/test_differential.py, -m slow) found where
the engine and the model disagreed, cut down and replayed on both through the same
harness, so that the fast suite keeps them."""
import numpy as np

import fastnuma as fn
from fastnuma.dtypes import PTE_HUGE, PTE_NUMA

from tests.test_differential import ARENA, PAGE_SIZE, Differential, DifferentialTiering

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
    """Folios queued for a migration are off the LRU until they move (the caller
    isolated them; isolate_lru_folios never sees them): the direct reclaim of an
    allocation for one of them cannot demote another (seed
    32044388896786974997830288344359884945 of the tiering run)."""
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


def test_split_huge_zero_pmd_of_a_prot_none_vma_stays_inaccessible():
    """A huge zero page mapped, its VMA made PROT_NONE, then a mapping placed over part
    of its 2 MiB: the PMD splits, and the zero-page PTEs left take the VMA's protection
    (__split_huge_zero_page_pmd: vm_page_prot), protnone (seed
    238126444747617462771038750829031945866 of the plain run)."""
    state = Differential()
    state.build(targs={**TOPOLOGY, "node_pages": [64, 0, 0, 0]},
                opts={"thp": "always", "zero_page": True, "interleave_weights": None},
                lazy={}, workers=[2], fill=0)
    pid = state.pids[0]
    state.both("access", pid, ARENA + (512 + np.arange(4, dtype=np.int64)) * PAGE_SIZE, False)
    assert state.sim.page_flags(pid, ARENA + 512 * PAGE_SIZE, PAGE_SIZE)[0] & PTE_HUGE
    state.both("mprotect", pid, ARENA + 512 * PAGE_SIZE, 512 * PAGE_SIZE, fn.PROT_NONE)
    state.both("mmap", pid, 512 * PAGE_SIZE, fn.MAP_PRIVATE | fn.MAP_ANONYMOUS,
               ARENA + 558 * PAGE_SIZE)
    state.same_state()
    flags = np.asarray(state.sim.page_flags(pid, ARENA + 512 * PAGE_SIZE, 46 * PAGE_SIZE))
    assert (flags & PTE_NUMA).all() and not (flags & PTE_HUGE).any()
