"""Random tiering programs on the reference model keep the invariants of docs/tiering.md
§8 and the page accounting (every allocated page belongs to exactly one live folio).
The engine-vs-model differential of phase 2 reuses strategies.tiering_knobs."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastnuma.constants import MADV_HUGEPAGE, MPOL_BIND, MPOL_DEFAULT
from tests.reference import RefMachine, RefTopology
from tests.strategies import tiering_knobs

PAGE, MS = 4096, 1_000_000
BASE, REGION = 1 << 32, 4 << 20          # two 4 MiB regions
TOPOLOGIES = [
    # DRAM + CXL (2880), small enough to fill
    dict(node_pages=[600, 900], node_cpus=[[0], []], distance=[[10, 14], [14, 10]],
         wmark_min=[20, 30], wmark_low=[60, 60], wmark_high=[100, 90]),
    # two sockets, one CXL node, a slower pool: three tiers
    dict(node_pages=[500, 500, 700, 400], node_cpus=[[0], [1], [], []],
         distance=[[10, 21, 14, 30], [21, 10, 24, 30], [14, 24, 10, 30], [30, 30, 30, 10]],
         wmark_min=[10, 10, 10, 10], wmark_low=[40, 40, 40, 40],
         wmark_high=[80, 80, 80, 80], adistance=[576, 576, 2880, 5000]),
]
OPS = st.lists(st.tuples(st.sampled_from(["touch", "touch_slow", "touch_slow", "arm", "hot",
                                          "hot", "advance", "sysctl", "cache", "sched"]),
                         st.integers(0, 1), st.sampled_from([0, 256, 512, 768]),
                         st.sampled_from([1, 64, 256, 700]),
                         st.sampled_from([1, 30, 600, 1100, 61_000])),
               min_size=1, max_size=25)


def check(m):
    held = {n: 0 for n in range(m.n_nodes)}
    for n in range(m.n_nodes):
        for f in m.node_folios(n):
            held[n] += f.nr
    for n in range(m.n_nodes):
        assert 0 <= m.free[n] <= m.node_pages[n]
        assert m.node_pages[n] - m.free[n] == held[n], n
    v, nv = m.vmstat(), m.node_vmstat()
    dem = {w: sum(nv[n].get(f"pgdemote_{w}", 0) for n in nv) for w in ("kswapd", "direct")}
    if m.tiering_profile == "6.12":
        assert v["pgsteal_kswapd"] >= dem["kswapd"] and v["pgsteal_direct"] >= dem["direct"]
        assert v["pgmigrate_success"] == v["numa_pages_migrated"] + sum(dem.values())
    if m.numa_balancing == 2:
        assert v["pgpromote_success"] <= v["numa_pages_migrated"]
    assert v["pgpromote_success"] <= 512 * v["numa_hint_faults"]
    for st_ in m.nbp:                          # no kswapd run left behind in the past
        assert st_.kswapd_wake_ns is None or st_.kswapd_wake_ns >= m.now_ns - MS


@pytest.mark.parametrize("topo", range(len(TOPOLOGIES)))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(knobs=tiering_knobs(), ops=OPS)
def test_random_tiering_programs_keep_the_invariants(topo, knobs, ops):
    targs = TOPOLOGIES[topo]
    m = RefMachine(RefTopology(**targs), **knobs)
    pid = m.spawn(cpu=0)
    slow = [n for n in range(m.n_nodes) if not m.node_is_toptier(n)] or [0]
    for r in range(2):
        m.mmap(pid, REGION, addr=BASE + r * 2 * REGION)
    m.madvise(pid, BASE, REGION, MADV_HUGEPAGE)
    mode_was = m.numa_balancing
    for op, r, first, n, ms in ops:
        addr = BASE + r * 2 * REGION + first * PAGE
        n = min(n, 1024 - first)
        pages = addr + PAGE * np.arange(n, dtype=np.int64)
        try:
            if op == "touch":
                m.access(pid, pages, write=True)
            elif op == "touch_slow":
                m.set_mempolicy(pid, MPOL_BIND, [slow[first % len(slow)]])
                m.access(pid, pages, write=True)
                m.set_mempolicy(pid, MPOL_DEFAULT)
            elif op == "arm":
                m.change_prot_numa(pid, addr, n * PAGE)
            elif op == "hot":                         # a scan, time, the accesses
                m.change_prot_numa(pid, addr, n * PAGE)
                m.advance(ms * MS // 10)
                m.access(pid, pages)
            elif op == "advance":
                m.advance(ms * MS)
            elif op == "sysctl":
                m.set_numa_balancing(mode_was if m.numa_balancing != mode_was else 1)
            elif op == "cache":
                m.page_cache_read(pid, n % 50)
            else:
                m.sched(pid, (first % 2) if m.n_nodes > 2 else 0)
        except (OSError, MemoryError):            # ENOMEM / an OOM kill ends the program
            if pid not in m.procs:
                return
            m.set_mempolicy(pid, MPOL_DEFAULT)
        check(m)
