"""docs/tiering.md §12: every scenario (X2-X12; X1 is in test_memory_tiers.py), on the
reference model now and on the engine once it models tiering (strict xfail until then).

Common setup (tiering_helpers.TOPO): node0 DRAM 4 GiB with CPUs 0-1, node1 CXL 8 GiB
CPU-less (adistance 2880), watermarks of W3, one single-threaded process on CPU 0,
anonymous private memory, no swap, base pages for the pages under test (the fillers are
THPs, to keep the tests fast), numa_balancing written at t = 0.
"""
import numpy as np
import pytest

from fastnuma.constants import MPOL_BIND

from tests.tiering_helpers import (HIGH, HP, LOW, MIN, MS, NO_SCAN, PROMO, ROOM, Space, arm,
                                   nodes, tmake, touch)

__all__ = ["tmake"]


def setup(tmake, **opts):
    m = tmake(**opts)
    pid = m.spawn(cpu=0)
    return m, pid, Space(m, pid)


def test_x2_scanner_skips_dram_in_mode_2(tmake):
    m, pid, sp = setup(tmake, numa_balancing=2)
    sp.region(4096)                                   # all on node0
    m.advance(10_000 * MS)
    v = m.vmstat()
    assert (v["numa_pte_updates"], v["numa_hint_faults"]) == (0, 0)
    m.set_numa_balancing(3)                           # mode 3: the single-thread local
    m.advance(10_000 * MS)                            # rule still skips node0 pages
    assert m.vmstat()["numa_pte_updates"] == 0


@pytest.mark.parametrize("n", [20_000, pytest.param(100_000, marks=pytest.mark.slow)])
def test_x3_room_promotion(tmake, n):
    m, pid, sp = setup(tmake, numa_balancing=2)
    a = sp.region(n, node=1)
    m.advance(1000 * MS + 2 * 1000 * MS)              # two full scan passes arm them all
    assert m.vmstat()["numa_pte_updates"] == n
    assert m.free_pages()[0] > ROOM
    touch(m, pid, a, n)
    v = m.vmstat()
    assert v["pgpromote_success"] == n and v["numa_pages_migrated"] == n
    assert v["pgpromote_candidate"] == 0
    assert (v["numa_hint_faults"], v["numa_hint_faults_local"]) == (n, 0)
    assert (nodes(m, pid, a, n) == 0).all()
    assert m.node_vmstat()[0]["pgpromote_success"] == n      # charged to the target


def hot_setup(tmake, **opts):
    """node0 filled so that high + 1 < free(0) <= promo + 1 GiB (no room, gate open)."""
    m, pid, sp = setup(tmake, numa_balancing=2, **NO_SCAN, **opts)
    sp.fill_to(0, 200_000, LOW[0])
    return m, pid, sp


def test_x4_hot_threshold_and_its_adjustment(tmake):
    m, pid, sp = hot_setup(tmake)
    a, b, c = (sp.region(100, node=1) for _ in range(3))
    m.advance(1000 * MS)
    for r in (a, b, c):
        arm(m, pid, r, 100)                           # t_s = 1000
    m.advance(500 * MS)
    touch(m, pid, a, 100)                             # latency 500 < 1000: hot
    m.advance(600 * MS)
    touch(m, pid, c, 100)                             # 1100 >= 1000: cold
    m.advance(400 * MS)
    touch(m, pid, b, 100)                             # 1500: cold
    v = m.vmstat()
    assert v["pgpromote_candidate"] == 100 and v["pgpromote_success"] == 100
    assert (nodes(m, pid, a, 100) == 0).all()
    assert (nodes(m, pid, b, 100) == 1).all() and (nodes(m, pid, c, 100) == 1).all()
    m.advance(60_000 * MS)                            # idle period, then a fault: 1125 ms
    arm(m, pid, c, 100)
    m.advance(1100 * MS)
    touch(m, pid, c, 100)
    assert (nodes(m, pid, c, 100) == 0).all()
    assert m.vmstat()["pgpromote_success"] == 200


def test_x5_rate_limit(tmake):
    m, pid, sp = hot_setup(tmake, numa_balancing_promote_rate_limit_MBps=1)
    a = sp.region(10_000, node=1)
    arm(m, pid, a, 10_000)
    m.advance(100 * MS)
    touch(m, pid, a, 10_000)                          # all within one second
    v = m.vmstat()
    assert v["pgpromote_success"] == 256              # the opener + 255
    assert v["pgpromote_candidate"] == 10_000
    assert (nodes(m, pid, a, 10_000) == 0).sum() == 256
    m.advance(500 * MS)
    arm(m, pid, a, 10_000)                            # the 9744 left on node1
    m.advance(600 * MS)                               # > 1000 ms after the window opened
    touch(m, pid, a, 10_000)                          # next window: 256 more
    assert m.vmstat()["pgpromote_success"] == 512


def test_x5_rate_limit_thp_one_per_window(tmake):
    m, pid, sp = hot_setup(tmake, numa_balancing_promote_rate_limit_MBps=1)
    a = sp.region(4 * 512, node=1, thp=True)
    arm(m, pid, a, 4 * 512)
    m.advance(100 * MS)
    touch(m, pid, a, 4 * 512, step=HP)
    v = m.vmstat()
    assert v["pgpromote_success"] == 512 and v["pgpromote_candidate"] == 4 * 512


def gate_setup(tmake, **opts):
    """free(0) = high(0) exactly, hot pages waiting on node1."""
    m, pid, sp = setup(tmake, numa_balancing=2, **NO_SCAN, **opts)
    cold = sp.fill_to(0, HIGH[0], LOW[0])
    hot = sp.region(64, node=1)
    return m, pid, sp, cold, hot


def fault_hot(m, pid, hot, i):
    """Arm page i of ``hot``, let 10 ms pass, touch it (a hot fault)."""
    arm(m, pid, hot + i * 4096, 1)
    m.advance(10 * MS)
    touch(m, pid, hot + i * 4096, 1)


def test_x6_gate_wakes_kswapd_without_demotion(tmake):
    m, pid, sp, _, hot = gate_setup(tmake)
    for i in range(20):
        fault_hot(m, pid, hot, i)
        m.advance(10 * MS)                            # kswapd runs after its wake
    v = m.vmstat()
    assert v["pgpromote_candidate"] == 20 and v["pgpromote_success"] == 0
    assert v["pgsteal_kswapd"] == 0 and v["pgscan_kswapd"] > 0
    assert v["pageoutrun"] == 16                      # then node0 is hopeless
    assert m.free_pages()[0] == HIGH[0]


def test_x7_demotion_makes_room(tmake):
    m, pid, sp, (cold_thp, cold_base), hot = gate_setup(tmake, demotion_enabled=True)
    fault_hot(m, pid, hot, 0)                         # gate fails, kswapd(0) woken
    assert m.vmstat()["pgpromote_success"] == 0
    m.advance(10 * MS)
    v, n0 = m.vmstat(), m.node_vmstat()[0]
    assert m.free_pages()[0] > PROMO[0]
    assert n0["pgdemote_kswapd"] >= PROMO[0] + 1 - HIGH[0]          # >= 1049
    assert v["pgsteal_kswapd"] >= v["pgdemote_kswapd"]
    assert v["pgmigrate_success"] >= v["pgdemote_kswapd"] + v["pgpromote_success"]
    # the least recently accessed go first: the first THPs of the filler
    demoted = nodes(m, pid, cold_thp, n0["pgdemote_kswapd"])
    assert (demoted == 1).all()
    fault_hot(m, pid, hot, 1)                         # free(0) > high + 1: promoted
    assert m.vmstat()["pgpromote_success"] == 1


def test_x8_allocation_spill(tmake):
    m, pid, sp = setup(tmake, numa_balancing=2, demotion_enabled=True, **NO_SCAN)
    sp.fill_to(0, LOW[0], LOW[0])
    before = m.numastat()
    new = sp.region(10_000)
    after = m.numastat()
    assert (nodes(m, pid, new, 10_000) == 1).all()
    assert after[1]["numa_miss"] - before[1]["numa_miss"] == 10_000
    assert after[0]["numa_foreign"] - before[0]["numa_foreign"] == 10_000
    m.advance(10 * MS)
    v = m.vmstat()
    assert v["pageoutrun"] == 0 and v["pgdemote_kswapd"] == v["pgdemote_direct"] == 0
    arm(m, pid, new, 10)
    m.advance(10 * MS)
    touch(m, pid, new, 10)                            # P7 fails: free(0) <= high
    assert m.vmstat()["pgpromote_success"] == 0
    m.advance(10 * MS)
    assert m.vmstat()["pageoutrun"] == 1 and m.node_vmstat()[0]["pgdemote_kswapd"] > 0


def test_x9_demotion_target_full(tmake):
    m, pid, sp, _, hot = gate_setup(tmake, demotion_enabled=True)
    sp.fill_to(1, MIN[1], LOW[1])                     # node1 at its min mark
    m.advance(10 * MS)                                # node1's own kswapd run (no victim)
    runs = m.vmstat()["pageoutrun"]
    fault_hot(m, pid, hot, 0)
    m.advance(10 * MS)
    v = m.vmstat()
    assert v["pgdemote_kswapd"] == 0 and v["pgscan_kswapd"] > 0 and v["pgsteal_kswapd"] == 0
    assert v["pageoutrun"] == runs + 2                # node0, then node1 woken by the
    assert m.free_pages().tolist() == [HIGH[0], MIN[1]]   # failed demotion allocation


@pytest.mark.parametrize("bound", [True, False])
def test_x10_direct_demotion_under_bind(tmake, bound):
    m, pid, sp = setup(tmake, demotion_enabled=True, **NO_SCAN)
    sp.region(4 * 512, node=0, thp=True)              # cold pages on node0
    p2 = m.spawn(cpu=0)
    sp2 = Space(m, p2, base=1 << 40)
    sp2.fill_to(0, MIN[0], LOW[0])                    # node0 at its min mark (under BIND)
    if bound:                                         # MPOL_BIND {0}: node0 only
        m.set_mempolicy(p2, MPOL_BIND, [0])
    page = sp2.region(1)
    v, n0 = m.vmstat(), m.node_vmstat()[0]
    if bound:
        assert nodes(m, p2, page, 1)[0] == 0
        assert n0["pgdemote_direct"] > 0 and v["pgsteal_direct"] >= n0["pgdemote_direct"]
        assert v["pgscan_direct"] > 0
    else:                                             # node1 serves it: no reclaim at all
        assert nodes(m, p2, page, 1)[0] == 1
        assert n0["pgdemote_direct"] == 0 and v["pgscan_direct"] == 0


@pytest.mark.parametrize("profile", ["6.12", "6.1"])
def test_x11_mode_1_only(tmake, profile):
    m, pid, sp = setup(tmake, numa_balancing=1, memory_tiering=True, tiering_profile=profile,
                       **NO_SCAN)
    local = sp.region(64)
    a = sp.region(64, node=1)
    assert arm(m, pid, local, 64) == 0                # single thread on node0: skipped
    assert arm(m, pid, a, 64) == 64
    touch(m, pid, a, 64)                              # first fault: refused (no cpupid)
    assert (nodes(m, pid, a, 64) == 1).all() and m.vmstat()["numa_pages_migrated"] == 0
    arm(m, pid, a, 64)
    touch(m, pid, a, 64)                              # second: migrates
    v = m.vmstat()
    assert v["numa_pages_migrated"] == 64 and (nodes(m, pid, a, 64) == 0).all()
    assert v["pgpromote_candidate"] == 0
    assert v["pgpromote_success"] == (64 if profile == "6.1" else 0)


def test_x12_stamp_wrap_and_threshold_reset(tmake):
    m, pid, sp = hot_setup(tmake)
    a, b, c = (sp.region(8, node=1) for _ in range(3))
    arm(m, pid, a, 8)
    arm(m, pid, b, 8)
    m.advance(((1 << 21) + 200) * MS)                 # the stamp wraps: latency 200
    touch(m, pid, a, 8)
    assert (nodes(m, pid, a, 8) == 0).all()
    m.advance(1300 * MS)                              # latency 1500 >= 1125: cold
    touch(m, pid, b, 8)
    assert (nodes(m, pid, b, 8) == 1).all()
    arm(m, pid, c, 8)                                 # threshold now 1125 ms ...
    m.set_numa_balancing(1)
    m.set_numa_balancing(2)                           # ... K1 resets it to 1000
    m.advance(1100 * MS)
    touch(m, pid, c, 8)
    assert (nodes(m, pid, c, 8) == 1).all()
    assert m.vmstat()["pgpromote_candidate"] == 8


def test_counter_invariants_after_a_mixed_run(tmake):
    """§8 invariants over X7-like pressure with scanning on."""
    m, pid, sp = setup(tmake, numa_balancing=2, demotion_enabled=True)
    sp.fill_to(0, HIGH[0] + 600, LOW[0])
    hot = sp.region(3000, node=1)
    for _ in range(6):
        m.advance(700 * MS)
        touch(m, pid, hot, 3000)
    v, nv = m.vmstat(), m.node_vmstat()
    assert v["numa_pages_migrated"] == sum(nv[n]["pgpromote_success"] for n in nv)
    assert v["pgsteal_kswapd"] >= sum(nv[n]["pgdemote_kswapd"] for n in nv)
    assert v["pgpromote_success"] <= 512 * v["numa_hint_faults"]
    assert v["pgpromote_success"] > 0 and v["pgdemote_kswapd"] > 0
    assert v["pgmigrate_success"] == v["pgpromote_success"] + v["pgdemote_kswapd"]
