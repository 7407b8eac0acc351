"""docs/tiering.md: one test per rule not already pinned by a scenario of §12
(test_tiering_scenarios.py covers X1-X12). Model now; engine a strict xfail until its
phase 2 (fixture ``tmake``)."""
import pytest

from fastnuma.constants import MPOL_BIND

from tests.reference.memory_tiers import linux_watermarks
from tests.tiering_helpers import (HIGH, LOW, MS, NO_SCAN, PROMO, TOPO, Space, arm, nodes,
                                   tmake, touch)

__all__ = ["tmake"]


def setup(tmake, topo=None, **opts):
    m = tmake(topo, **opts)
    pid = m.spawn(cpu=0)
    return m, pid, Space(m, pid)


def test_knobs_linux_names_defaults_and_checks(tmake):
    m = tmake(numa_balancing=3)
    assert (m.promote_rate_limit_MBps, m.hot_threshold_ms, m.demotion_enabled) == \
        (65536, 1000, False)
    assert m.memory_tiering
    for bad in (dict(numa_balancing=4), dict(numa_balancing_hot_threshold_ms=-1),
                dict(tiering_profile="5.18"), dict(watermark_scale_factor=0)):
        with pytest.raises(ValueError):
            tmake(**bad)


def test_w2_sysctl_keywords_recompute_the_watermarks(tmake):
    m, pid, sp = setup(tmake, numa_balancing=2, min_free_kbytes=16384,
                       watermark_scale_factor=100, **NO_SCAN)
    # node0: min 4096 * 2^20 / 3 * 2^20 = 1365, tmp = 10485: low 11850
    sp.fill_to(0, 11850, 11850)
    a = sp.region(10)
    assert (nodes(m, pid, a, 10) == 1).all()           # below the new low: spill


def test_s5_bind_policy_is_not_scanned(tmake):
    m, pid, sp = setup(tmake, numa_balancing=2)
    m.set_mempolicy(pid, MPOL_BIND, [1])
    sp.region(64)
    m.advance(3000 * MS)
    assert m.vmstat()["numa_pte_updates"] == 0


def test_s6_armed_page_keeps_its_old_stamp(tmake):
    m, pid, sp = setup(tmake, numa_balancing=2, **NO_SCAN)
    sp.fill_to(0, 200_000, LOW[0])
    a = sp.region(4, node=1)
    arm(m, pid, a, 4)                                  # stamp t = 0
    m.advance(900 * MS)
    assert arm(m, pid, a, 4) == 0                      # already armed: no re-stamp
    m.advance(200 * MS)
    touch(m, pid, a, 4)                                # latency 1100: cold
    assert (nodes(m, pid, a, 4) == 1).all()


def test_p1_p9_slow_tier_faults_feed_no_task_statistics(tmake):
    m, pid, sp = setup(tmake, numa_balancing=2, **NO_SCAN)
    sp.fill_to(0, 200_000, LOW[0])
    a = sp.region(8, node=1)
    arm(m, pid, a, 8)
    m.advance(1500 * MS)
    touch(m, pid, a, 8)                                # cold: not migrated
    v = m.vmstat()
    assert v["numa_hint_faults"] == 8 and v["numa_hint_faults_local"] == 0
    assert m.task_numa_stats(pid)["faults_buffer"] == [[0, 0], [0, 0]]


def test_p4_room_resets_the_threshold(tmake):
    m, pid, sp = setup(tmake, numa_balancing=2, **NO_SCAN)
    cold = sp.region(8, node=1)
    m.advance(61_000 * MS)
    arm(m, pid, cold, 8)
    m.advance(1100 * MS)
    touch(m, pid, cold, 8)                             # room: promoted whatever the latency
    assert (nodes(m, pid, cold, 8) == 0).all()
    assert m.vmstat()["pgpromote_candidate"] == 0


def test_p5_many_candidates_lower_the_threshold(tmake):
    # 1 MB/s: ref_cand = 256 * 60 = 15360; > 16896 candidates in a period: 1000 -> 875
    m, pid, sp = setup(tmake, numa_balancing=2, numa_balancing_promote_rate_limit_MBps=1,
                       **NO_SCAN)
    sp.fill_to(0, 200_000, LOW[0])
    a = sp.region(17_000, node=1)
    m.advance(1000 * MS)
    arm(m, pid, a, 17_000)
    m.advance(100 * MS)
    touch(m, pid, a, 17_000)                           # 17 000 candidates, 256 promoted
    b = sp.region(8, node=1)
    m.advance(60_000 * MS)
    arm(m, pid, b, 8)
    m.advance(900 * MS)                                # 900 < 1000 but >= 875: cold
    touch(m, pid, b, 8)
    assert (nodes(m, pid, b, 8) == 1).all()
    assert m.vmstat()["pgpromote_candidate"] == 17_000


def test_p7_gate_needs_free_above_high_plus_nr(tmake):
    m, pid, sp = setup(tmake, numa_balancing=2, **NO_SCAN)
    sp.fill_to(0, HIGH[0] + 2, LOW[0])
    a = sp.region(2, node=1)
    arm(m, pid, a, 2)
    m.advance(10 * MS)
    touch(m, pid, a, 2)                                # 3280 > 3279: yes; then 3279: no
    assert nodes(m, pid, a, 2).tolist() == [0, 1]
    assert m.vmstat()["pgpromote_candidate"] == 2


def test_d2_without_tiering_bit_kswapd_stops_at_high(tmake):
    m, pid, sp = setup(tmake, numa_balancing=0, demotion_enabled=True)
    sp.region(4 * 512, node=0, thp=True)               # cold, demotable
    sp.fill_to(0, LOW[0], LOW[0])
    sp.region(1, node=0)                               # under BIND {0}: the slow path
    m.advance(10 * MS)                                 # slow path woke kswapd(0)
    free = int(m.free_pages()[0])
    assert HIGH[0] < free <= PROMO[0] + 512             # target high, whole THPs demoted
    assert m.vmstat()["pageoutrun"] == 1


def test_a3_demotion_falls_back_to_the_lower_tier_mask(tmake):
    topo = dict(node_pages=[1 << 18, 1 << 14, 1 << 18], node_cpus=[[0, 1], [], []],
                distance=[[10, 14, 30], [14, 10, 30], [30, 30, 10]],
                adistance=[576, 2880, 5000])
    mn, lo, hi, promo = linux_watermarks(topo["node_pages"], 4096, 10)
    m, pid, sp = setup(tmake, topo, numa_balancing=2, demotion_enabled=True,
                       min_free_kbytes=4096, watermark_scale_factor=10, **NO_SCAN)
    sp.region(8 * 512, node=0, thp=True)               # cold on node0
    sp.fill_to(1, mn[1], lo[1])                        # node1 (preferred) at its min mark
    m.advance(10 * MS)                                 # node1's own kswapd run
    sp.fill_to(0, hi[0], lo[0])
    hot = sp.region(1, node=2)
    arm(m, pid, hot, 1)
    m.advance(10 * MS)
    touch(m, pid, hot, 1)                              # gate fails: kswapd(0)
    m.advance(10 * MS)
    assert m.node_vmstat()[0]["pgdemote_kswapd"] > 0
    assert int(m.free_pages()[0]) > promo[0]
    assert m.free_pages()[1] == mn[1]                  # the demoted pages went to node2


def test_v2_61_demotion_counters_are_global(tmake):
    m, pid, sp = setup(tmake, numa_balancing=2, demotion_enabled=True,
                       tiering_profile="6.1", **NO_SCAN)
    assert "pgdemote_kswapd" not in m.node_vmstat()[0]
    v = m.vmstat()
    assert "pgdemote_kswapd" in v and "pgdemote_khugepaged" not in v


def test_memory_tiering_off_keeps_the_old_machine(tmake):
    m = tmake(TOPO, numa_balancing=1, tiering_profile="6.12")
    assert not m.memory_tiering and "pgpromote_success" not in m.vmstat()
    assert m.node_vmstat()[1]["pgpromote_success"] == 0


def test_t5_each_batch_draws_a_preferred_target(tmake):
    topo = dict(node_pages=[1 << 18, 1 << 18, 1 << 18], node_cpus=[[0, 1], [], []],
                distance=[[10, 14, 14], [14, 10, 20], [14, 20, 10]])
    _, lo, hi, _ = linux_watermarks(topo["node_pages"], None, 200)
    m, pid, sp = setup(tmake, topo, numa_balancing=2, demotion_enabled=True,
                       watermark_scale_factor=200, **NO_SCAN)   # promo - high: 2 % of node0
    cold, _ = sp.fill_to(0, hi[0], lo[0])
    hot = sp.region(1, node=1)
    arm(m, pid, hot, 1)
    m.advance(10 * MS)
    touch(m, pid, hot, 1)                              # gate fails: kswapd(0) demotes
    m.advance(10 * MS)                                 # ~5243 pages: 11 THP batches
    got = nodes(m, pid, cold, 11 * 512)
    assert (got == 1).any() and (got == 2).any()       # both preferred targets drawn
