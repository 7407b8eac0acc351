"""One test (or a small table) per rule of linux-semantics.md §9 items 33-54, as fastnuma
models them (docs/lazy-migration.md), plus the issue's motivating scenario and the
contract's extensions (knobs, MPOL_NOOP, holes, fork, stats).

Every test runs on the reference model and on the engine (``machine_cls``); expected
values are worked out by hand from the contract (the comments show the arithmetic), never
taken from either implementation. Times: ms = 10**6 ns; scheduler ticks every 1 ms.
"""
import errno

import numpy as np
import pytest

import fastnuma.constants as C

from tests.test_rules import HP, P, T2, T3, X, mapped, nodes, raises, stat, touch, unchanged

MS = 1_000_000
PRESENT, NUMA, WRITE, HUGE, ZERO, DIRTY = 1, 2, 4, 8, 16, 32
MASK = PRESENT | NUMA | HUGE | ZERO          # the bits every test compares
PN = PRESENT | NUMA
MPOL_NOOP = getattr(C, "MPOL_NOOP", 0x100)
LAZY = C.MPOL_MF_LAZY
THP_T = dict(node_pages=[2048, 2048], node_cpus=[[0, 1], [2, 3]])
BIG = dict(node_pages=[4096, 4096], node_cpus=[[0, 1], [2, 3]])
# node 1 may receive one page: free 8 > wmark_high 6 + 1, then 7 > 7 fails
WM = dict(node_pages=[64, 8], node_cpus=[[0, 1], [2, 3]], wmark_min=[0, 0],
          wmark_low=[0, 0], wmark_high=[0, 6])
RING = [[10, 21, 31, 21], [21, 10, 21, 31], [31, 21, 10, 21], [21, 31, 21, 10]]
FOUR_SOCKET = dict(node_pages=[1024] * 4, node_cpus=[list(range(8 * i, 8 * i + 8))
                                                     for i in range(4)], distance=RING)


# ------------------------------------------------------------------ helpers
def flags(m, pid, addr, n):
    return (np.asarray(m.page_flags(pid, addr, n * P)) & MASK).tolist()


def counters(m, *names):
    v = m.vmstat()
    return tuple(v[name] for name in names)


def task_stats(period=1000, period_max=0, stamp=0, seq=0, preferred=-1, retry=0,
               migrated=0, locality=(0, 0, 0), faults=((0, 0), (0, 0)),
               buffer=((0, 0), (0, 0))):
    return dict(numa_scan_period=period, numa_scan_period_max=period_max, node_stamp=stamp,
                numa_scan_seq=seq, numa_preferred_nid=preferred, numa_migrate_retry=retry,
                numa_pages_migrated=migrated, numa_faults_locality=list(locality),
                faults=[list(f) for f in faults], faults_buffer=[list(f) for f in buffer])


def remark_and_touch(m, pid, tid, addr=X):
    """Mark one page with change_prot_numa (by the first thread) and read it as ``tid``."""
    assert m.change_prot_numa(pid, addr, P) == 1
    m.access(tid, addr)
    return nodes(m, pid, addr, 1)[0]


# ------------------------------------------------------------------ §9 rules 33-54
def test_rule_33_change_prot_numa_skips(make):
    # modelled: not present, already marked, the zero page, a shared page of a private
    # (COW) mapping; KSM, device and dirty file pages do not exist in fastnuma
    m = make(T2)
    pid = mapped(m, 6, write=None)
    touch(m, pid, X, 4)                          # pages 0-3 on node 0
    m.access(pid, X + 4 * P)                     # page 4: the zero page; page 5 untouched
    child = m.fork(pid)                          # pages 0-3 mapped twice (COW)
    touch(m, pid, X, 1)                          # the parent's page 0 is now its own copy
    t1 = m.clone(pid, cpu=2)                     # a marking thread on node 1
    assert m.change_prot_numa(pid, X, 6 * P, tid=t1) == 1
    assert flags(m, pid, X, 6) == [PN, PRESENT, PRESENT, PRESENT, PRESENT | ZERO, 0]
    assert m.change_prot_numa(pid, X, 6 * P, tid=t1) == 0      # already marked
    m.sched(child, 2)                            # the child's old page 0 is mapped once now
    assert m.change_prot_numa(child, X, 6 * P) == 1
    assert flags(m, child, X, 6) == [PN, PRESENT, PRESENT, PRESENT, PRESENT | ZERO, 0]
    assert counters(m, "numa_pte_updates", "fastnuma_prot_numa_flushes") == (2, 2)
    # the range checks of mbind: no VMA / a hole -> EFAULT, unaligned -> EINVAL, 0 -> 0
    unchanged(m, errno.EFAULT, m.change_prot_numa, pid, X + 6 * P, P)
    unchanged(m, errno.EFAULT, m.change_prot_numa, pid, X, 8 * P)
    unchanged(m, errno.EINVAL, m.change_prot_numa, pid, X + 1, P)
    unchanged(m, errno.ESRCH, m.change_prot_numa, pid, X, P, tid=child)
    assert m.change_prot_numa(pid, X, 0) == 0
    assert counters(m, "numa_pte_updates", "fastnuma_prot_numa_flushes") == (2, 2)


@pytest.mark.parametrize("skip,first,second", [(True, 2, 2), (False, 4, 0)])
def test_rule_34_single_threaded_skips_pages_on_its_node(make, skip, first, second):
    m = make(T2, skip_local_single_thread=skip)
    pid = mapped(m, 4, write=None)
    touch(m, pid, X, 2)                          # pages 0-1 on node 0
    m.sched(pid, 2)
    touch(m, pid, X + 2 * P, 2)                  # pages 2-3 on node 1
    m.sched(pid, 0)                              # the marking CPU's node: 0
    assert m.change_prot_numa(pid, X, 4 * P) == first      # skip: pages 2-3 only
    m.clone(pid)                                 # two threads: nothing is local-skipped
    assert m.change_prot_numa(pid, X, 4 * P) == second
    assert flags(m, pid, X, 4) == [PN] * 4


def test_rule_34_shared_memory_is_not_skipped(make):
    # rule 5 is for private VMAs only; MAP_SHARED pages mapped twice are marked in mainline
    m = make(T2)
    pid = m.spawn(cpu=0)
    m.mmap(pid, 2 * P, C.MAP_SHARED | C.MAP_ANONYMOUS, addr=X)
    touch(m, pid, X, 2)                          # on node 0 = the marking node
    child = m.fork(pid)
    m.access(child, [X, X + P])                  # mapped by both processes now
    assert m.change_prot_numa(pid, X, 2 * P) == 2
    assert m.change_prot_numa(child, X, 2 * P) == 2          # the child's own entries
    assert flags(m, pid, X, 2) == flags(m, child, X, 2) == [PN, PN]
    assert counters(m, "numa_pte_updates", "fastnuma_prot_numa_flushes") == (4, 2)


@pytest.mark.parametrize("count,huge", [(512, 1), (1, 0)])
def test_rule_35_thp_marked_as_a_unit_or_split_first(make, count, huge):
    m = make(THP_T, thp="always", thp_update_count=count)
    pid = m.spawn(cpu=0)
    m.mmap(pid, 2 * HP, addr=X)
    m.access(pid, [X, X + HP], write=True)       # two THPs on node 0
    m.clone(pid)                                 # two threads: no local skip for the PTEs
    assert m.change_prot_numa(pid, X, HP) == count
    assert m.change_prot_numa(pid, X + 7 * P, 0) == 0        # empty range: no split
    assert flags(m, pid, X, 512) == [PN | HUGE] * 512
    assert flags(m, pid, X + HP, 512) == [PRESENT | HUGE] * 512
    assert m.change_prot_numa(pid, X, HP) == 0               # already marked
    # one page of the second THP: the PMD (and, in fastnuma, the folio) is split first
    assert m.change_prot_numa(pid, X + HP + P, P) == 1
    assert flags(m, pid, X + HP, 3) == [PRESENT, PN, PRESENT]
    assert nodes(m, pid, X + HP, 3) == [0, 0, 0]
    assert counters(m, "numa_pte_updates", "numa_huge_pte_updates", "thp_split_pmd",
                    "thp_split_page", "fastnuma_prot_numa_flushes") == (count + 1, huge, 1, 1, 2)


def test_rule_36_every_hinting_fault_is_counted(make):
    m = make(T2)
    pid = mapped(m, 2)                           # pages 0-1 on node 0 (CPU 0)
    t1 = m.clone(pid, cpu=2)                     # node 1
    m.mbind(pid, X, 2 * P, C.MPOL_BIND, {0})     # no MOF: the faults never migrate
    assert m.change_prot_numa(pid, X, 2 * P) == 2
    m.access(pid, X)                             # a local hinting fault
    m.access(t1, X + P)                          # a remote one
    m.access(pid, [X, X + P])                    # marks cleared: no more faults
    m.access(t1, [X, X + P])
    # pgfault: 2 first writes + 2 hinting faults
    assert counters(m, "numa_hint_faults", "numa_hint_faults_local", "pgfault",
                    "numa_pages_migrated") == (2, 1, 4, 0)
    assert flags(m, pid, X, 2) == [PRESENT, PRESENT]
    assert nodes(m, pid, X, 2) == [0, 0]


def test_rule_36_thp_hinting_fault_counts_once(make):
    m = make(THP_T, thp="always")
    pid = m.spawn(cpu=0)
    m.mmap(pid, HP, addr=X)
    m.access(pid, X, write=True)                 # a THP on node 0 (pgfault 1)
    t1 = m.clone(pid, cpu=2)
    m.mbind(pid, X, HP, C.MPOL_BIND, {0})        # no MOF
    assert m.change_prot_numa(pid, X, HP) == 512
    m.access(t1, [X + 5 * P, X + 7 * P])         # one remote fault for the whole THP
    m.access(pid, X)
    assert counters(m, "numa_hint_faults", "numa_hint_faults_local", "pgfault") == (1, 0, 2)
    assert m.change_prot_numa(pid, X, HP) == 512
    m.access(pid, [X + 9 * P, X])                # one local fault
    assert counters(m, "numa_hint_faults", "numa_hint_faults_local", "pgfault",
                    "numa_pte_updates", "numa_huge_pte_updates") == (2, 1, 3, 1024, 2)
    assert flags(m, pid, X, 512) == [PRESENT | HUGE] * 512


def test_rule_37_default_policy_two_stage_filter(make):
    m = make(T2)                                 # node 0: CPUs 0-1, node 1: CPUs 2-3
    pid = mapped(m, 1)                           # one page on node 0, written by CPU 0
    ta = m.clone(pid, cpu=2)                     # tid 2, node 1
    tb = m.clone(pid, cpu=0)                     # tid 3, node 0
    tc = m.clone(pid, cpu=1)                     # tid 4, node 0
    # cpupid unset: the first hinting fault migrates to the faulting CPU's node
    assert remark_and_touch(m, pid, ta) == 1     # last_cpupid := (CPU 2, 2)
    # recorded CPU 2 is on node 1, not tb's node 0, and another pid: stays
    assert remark_and_touch(m, pid, tb) == 1     # last_cpupid := (CPU 0, 3)
    # recorded CPU 0 is on tc's node 0; another pid, no NUMA group: migrates
    assert remark_and_touch(m, pid, tc) == 0     # last_cpupid := (CPU 1, 4)
    # early in task life (no preferred node) the same pid migrates even from another node
    m.sched(tc, 2)
    assert remark_and_touch(m, pid, tc) == 1
    assert counters(m, "numa_hint_faults", "numa_hint_faults_local", "numa_pages_migrated",
                    "pgmigrate_success") == (4, 0, 3, 3)


def test_rule_37_older_task_needs_two_faults_from_one_node(make):
    # numa_scan_seq > 4 and a preferred node: the same-pid shortcut no longer applies
    m = make(T2, numa_balancing=1, numa_balancing_scan_size_mb=1,
             numa_balancing_scan_delay_ms=10, numa_balancing_scan_period_min_ms=10,
             numa_balancing_scan_period_max_ms=10)
    # scan_size 1 MB: floor 1000 // 2560 = 0, windows 1 -> scan_min = scan_max = 10 ms
    pid = mapped(m, 1)                           # node 0; mm next scan at 10 ms
    m.sched(pid, 2)
    m.advance(11 * MS)
    # tick 11: runtime 11 ms > 0 + 10 ms: period := 10, stamp 10 ms; scan (next 21 ms,
    # stamp 12 ms): the page (node 0, CPU on node 1) is marked; end of list: seq 1
    assert counters(m, "numa_pte_updates") == (1,)
    m.access(pid, X)
    # unset cpupid -> migrate to node 1, cpupid (CPU 2, 1). Then task_numa_fault: placement
    # (seq 0 -> 1, nothing buffered, local + shared == 0: period min(10, 20) = 10),
    # buffer[1][private] = 1, locality[local] = 1
    assert nodes(m, pid, X, 1) == [1]
    assert m.task_numa_stats(pid) == task_stats(period=10, period_max=10, stamp=12 * MS,
                                                seq=1, migrated=1, locality=(0, 1, 0),
                                                buffer=((0, 0), (0, 1)))
    m.sched(pid, 0)
    m.advance(49 * MS)
    # scans at ticks 23 (marks the page, now remote; seq 2), 35 (seq 3), 47 (4), 59 (5)
    assert counters(m, "numa_pte_updates") == (2,)
    m.access(pid, X)
    # decided first: no preferred node yet, same pid -> migrates to node 0, cpupid
    # (CPU 0, 1). Placement: seq 5, faults[1][1] = 1 -> preferred 1; locality (0, 1, 0),
    # private 1: ps = 10 >= 7 -> diff 3 * ceil(10/10) -> clamp(13, 10, 10) = 10, locality
    # cleared; retry = 60 ms + min(1000, 10 // 16) ms = 60 ms
    assert nodes(m, pid, X, 1) == [0]
    assert m.task_numa_stats(pid) == task_stats(
        period=10, period_max=10, stamp=60 * MS, seq=5, preferred=1, retry=60 * MS,
        migrated=2, locality=(0, 1, 0), faults=((0, 0), (0, 1)), buffer=((0, 1), (0, 0)))
    m.sched(pid, 2)
    # seq 5 > 4 and preferred 1: the recorded CPU 0 (node 0) is not node 1 -> stays
    assert remark_and_touch(m, pid, pid) == 0
    # now the cpupid names CPU 2 on node 1: the second fault from node 1 migrates
    assert remark_and_touch(m, pid, pid) == 1
    assert counters(m, "numa_hint_faults", "numa_hint_faults_local",
                    "numa_pages_migrated") == (4, 0, 3)


def test_rule_38_local_fault_does_not_touch_the_cpupid(make):
    m = make(T2)
    pid = mapped(m, 1)                           # node 0
    ta = m.clone(pid, cpu=2)
    assert remark_and_touch(m, pid, pid) == 0    # already on node 0: nothing recorded
    # still unset: ta's first fault migrates (a recorded (CPU 0, 1) would have blocked it)
    assert remark_and_touch(m, pid, ta) == 1
    assert counters(m, "numa_hint_faults", "numa_hint_faults_local",
                    "numa_pages_migrated") == (2, 1, 1)


@pytest.mark.parametrize("mode,mask", [(C.MPOL_PREFERRED, {1}), (C.MPOL_INTERLEAVE, {0, 1}),
                                       (C.MPOL_LOCAL, None), (C.MPOL_BIND, {1})])
def test_rule_39_user_policies_never_migrate_and_are_not_scanned(make, mode, mask):
    m = make(T2, numa_balancing=1)
    pid = m.spawn(cpu=0)
    ta = m.clone(pid, cpu=2)                     # two threads: no local skip
    m.mmap(pid, 2 * P, addr=X)                   # A: default policy
    m.mmap(pid, 2 * P, addr=X + 4 * P)           # B: a user policy
    touch(m, pid, X, 2)
    touch(m, pid, X + 4 * P, 2)                  # all four pages on node 0
    m.mbind(pid, X + 4 * P, 2 * P, mode, mask)
    m.advance(1001 * MS)                         # the leader's first scan: A only
    assert counters(m, "numa_pte_updates") == (2,)
    assert flags(m, pid, X, 2) == [PN, PN] and flags(m, pid, X + 4 * P, 2) == [PRESENT] * 2
    assert m.change_prot_numa(pid, X + 4 * P, 2 * P) == 2
    m.access(ta, [X, X + P, X + 4 * P, X + 5 * P])
    # A: default policy, unset cpupid -> node 1; B: no MOF -> stays
    assert nodes(m, pid, X, 2) == [1, 1] and nodes(m, pid, X + 4 * P, 2) == [0, 0]
    assert counters(m, "numa_hint_faults", "numa_hint_faults_local",
                    "numa_pages_migrated") == (4, 0, 2)


def test_rule_40_bind_numa_balancing_migrates_only_into_the_mask(make):
    m = make(T3)                                 # one CPU per node
    pid = mapped(m, 2)                           # node 0
    t1 = m.clone(pid, cpu=1)
    t2 = m.clone(pid, cpu=2)
    m.mbind(pid, X, 2 * P, C.MPOL_BIND | C.MPOL_F_NUMA_BALANCING, {0, 1})
    assert m.change_prot_numa(pid, X, 2 * P) == 2
    m.access(t1, X)          # node 1 in the mask: MORON -> node 1 (node 0 was in it too)
    m.access(t2, X + P)      # node 2 outside the mask: not misplaced
    m.access(pid, X + P)     # already placed (no mark left)
    assert nodes(m, pid, X, 2) == [1, 0]
    assert counters(m, "numa_hint_faults", "numa_hint_faults_local",
                    "numa_pages_migrated") == (2, 0, 1)


@pytest.mark.parametrize("profile", ["mainline", "seed"])
@pytest.mark.parametrize("mode,mask,expect", [
    (C.MPOL_BIND, {1}, [1, 1, 1, 1]), (C.MPOL_PREFERRED, {1}, [1, 1, 1, 1]),
    (C.MPOL_INTERLEAVE, {0, 1}, [0, 1, 0, 1]),    # vpn 0x10000 + i: node (i mod 2)
    (C.MPOL_LOCAL, None, [1, 1, 1, 1])])           # the faulting thread's node
def test_rule_41_lazy_mof_policy_migrates_on_first_touch(make, profile, mode, mask, expect):
    m = make(T2, profile=profile, pmd_numa_batching=False)
    pid = mapped(m, 4)                           # node 0
    ta = m.clone(pid, cpu=2)
    m.mbind(pid, X, 4 * P, mode, mask, C.MPOL_MF_MOVE | LAZY)
    assert nodes(m, pid, X, 4) == [0] * 4 and flags(m, pid, X, 4) == [PN] * 4
    assert counters(m, "pgmigrate_success") == (0,)            # nothing moved yet
    touch(m, ta, X, 4, write=False)
    assert nodes(m, pid, X, 4) == expect
    moved = expect.count(1)
    assert counters(m, "numa_pte_updates", "numa_hint_faults", "numa_hint_faults_local",
                    "numa_pages_migrated", "pgmigrate_success") == (4, 4, 0, moved, moved)
    assert m.get_mempolicy(pid, X, C.MPOL_F_ADDR) == (mode, frozenset(mask or ()))


def lazy_bind_on_small_node(make, **opts):
    """Rule 42's setup: 3 pages on node 0, a LAZY BIND {1}, read by a thread on node 1."""
    m = make(WM, numa_balancing=1, **opts)
    pid = mapped(m, 3)                           # node 0
    ta = m.clone(pid, cpu=2)
    m.mbind(pid, X, 3 * P, C.MPOL_BIND, {1}, LAZY)
    touch(m, ta, X, 3, write=False)
    return m, pid, ta


def test_rule_42_target_below_high_watermark_refuses(make):
    m, pid, ta = lazy_bind_on_small_node(make)
    # page 0: free 8 > 6 + 1 -> moves (free 7); pages 1-2: 7 > 7 is false -> refused
    assert nodes(m, pid, X, 3) == [1, 0, 0]
    assert flags(m, pid, X, 3) == [PRESENT] * 3              # restored accessible
    assert m.free_pages().tolist() == [62, 7]
    before = counters(m, "pgfault")
    touch(m, ta, X, 3, write=False)
    assert counters(m, "pgfault") == before                  # no retry before a new mark
    assert counters(m, "numa_hint_faults", "numa_pages_migrated", "pgmigrate_success",
                    "pgmigrate_fail") == (3, 1, 1, 0)
    # at t = 0 no placement (now > retry 0 is false); cpupid unset -> private;
    # page 0 local on node 1, pages 1-2 failed and remote (node 0)
    # clone: node_stamp = min(scan_max 60000, 1000 x 1 thread x 10**6) + 2 ms
    assert m.task_numa_stats(ta) == task_stats(stamp=2_060_000, migrated=1,
                                               locality=(2, 1, 2),
                                               buffer=((0, 2), (0, 1)))


@pytest.mark.parametrize("period_max,stamp,period,retry_ms", [
    (60000, 2_060_000, 2000, 1001 + 125),       # 2000 // 16 = 125
    (1500, 2_001_500, 1500, 1001 + 93)])        # capped; 1500 // 16 = 93
def test_rule_43_failed_migration_doubles_the_scan_period(make, period_max, stamp, period,
                                                          retry_ms):
    m, pid, ta = lazy_bind_on_small_node(make,
                                         numa_balancing_scan_period_max_ms=period_max)
    m.advance(1001 * MS)
    # tick 1001, leader: period := scan_start 1000, stamp 1000 ms; scan (next 2001 ms,
    # stamp 1002 ms): the 3 pages are marked (two threads); end of list: mm seq 1
    assert counters(m, "numa_pte_updates") == (6,)
    m.access(ta, X + P)
    # refused again (7 > 7 false). Placement first: seq 1, period_max = scan_max;
    # faults[0][1] = 2, faults[1][1] = 1 -> preferred 0; locality (2, 1, 2) has failures:
    # period = min(period_max, 2 x 1000); retry = now + min(1000, period // 16) ms.
    # Then failed + remote: locality (3, 1, 3), buffer[0][1] = 1
    assert m.task_numa_stats(ta) == task_stats(
        period=period, period_max=period_max, stamp=stamp, seq=1, preferred=0,
        retry=retry_ms * MS, migrated=1, locality=(3, 1, 3), faults=((0, 2), (0, 1)),
        buffer=((0, 1), (0, 0)))
    assert m.task_numa_stats(pid) == task_stats(stamp=1002 * MS)


def test_rule_44_thp_migration_counts_base_pages(make):
    m = make(THP_T, thp="always", numa_balancing=1)
    pid = m.spawn(cpu=0)
    m.mmap(pid, HP, addr=X)
    m.access(pid, X, write=True)                 # a THP on node 0
    ta = m.clone(pid, cpu=2)
    m.mbind(pid, X, HP, C.MPOL_BIND, {1}, LAZY)
    m.access(ta, X + 100 * P)
    assert nodes(m, pid, X, 512) == [1] * 512
    assert flags(m, pid, X, 512) == [PRESENT | HUGE] * 512
    assert counters(m, "numa_pte_updates", "numa_huge_pte_updates", "numa_hint_faults",
                    "numa_hint_faults_local", "numa_pages_migrated", "pgmigrate_success",
                    "thp_migration_success", "thp_migration_fail",
                    "pgfault") == (512, 1, 1, 0, 512, 512, 1, 0, 2)
    assert m.free_pages().tolist() == [2048, 1536]
    # the destination: one allocation on node 1 by a CPU of node 1
    assert stat(m, 1) == dict(numa_hit=1, numa_miss=0, numa_foreign=0, interleave_hit=0,
                              local_node=1, other_node=0)
    assert m.task_numa_stats(ta) == task_stats(stamp=2_060_000, migrated=512,
                                               locality=(0, 512, 0),
                                               buffer=((0, 0), (0, 512)))


def test_rule_45_mbind_move_is_not_a_numa_migration(make):
    m = make(T2, numa_balancing=1)
    pid = mapped(m, 2)                           # node 0
    m.clone(pid, cpu=2)
    assert m.change_prot_numa(pid, X, P) == 1
    m.mbind(pid, X, 2 * P, C.MPOL_BIND, {1}, C.MPOL_MF_MOVE)
    assert nodes(m, pid, X, 2) == [1, 1]
    assert flags(m, pid, X, 2) == [PN, PRESENT]               # the mark moved with it
    assert counters(m, "pgmigrate_success", "numa_pages_migrated") == (2, 0)
    m.access(pid, X)                             # BIND without MOF: not misplaced
    assert counters(m, "numa_hint_faults", "numa_hint_faults_local") == (1, 0)
    m.mbind(pid, X, 2 * P, C.MPOL_BIND, {0}, C.MPOL_MF_MOVE | LAZY)    # marks, moves nothing
    assert counters(m, "pgmigrate_success", "numa_pte_updates") == (2, 3)
    m.access(pid, [X, X + P])                    # BIND {0} with MOF: both come back
    assert nodes(m, pid, X, 2) == [0, 0]
    assert counters(m, "numa_hint_faults", "numa_hint_faults_local", "numa_pages_migrated",
                    "pgmigrate_success") == (3, 0, 2, 4)
    assert m.task_numa_stats(pid)["numa_pages_migrated"] == 2


@pytest.mark.parametrize("balancing", [0, 1])
def test_rule_46_scanning_starts_after_scan_delay_and_runtime(make, balancing):
    m = make(T2, numa_balancing=balancing)
    pid = mapped(m, 4)                           # node 0, at t = 0
    m.sched(pid, 2)                              # the pages are remote now
    m.advance(1000 * MS)                         # runtime 1000 ms is not > 0 + 1000 ms
    assert counters(m, "numa_pte_updates") == (0,)
    assert m.task_numa_stats(pid) == task_stats()
    m.advance(MS)                                # tick 1001
    if not balancing:
        assert counters(m, "numa_pte_updates") == (0,)
        return
    assert counters(m, "numa_pte_updates", "fastnuma_prot_numa_flushes") == (4, 1)
    assert flags(m, pid, X, 4) == [PN] * 4
    # stamp 0 + 1000 ms, + 2 ms by task_numa_work
    assert m.task_numa_stats(pid) == task_stats(stamp=1002 * MS)
    # a thread added later (§6.1) is staggered: min(scan_max 60000, 1000 ms x 1 thread in
    # ns) + 2 ms (Linux compares ms with ns there); it takes the mm's scan sequence (the
    # pass above wrapped: 1) and the leader's preferred node and period bound (none yet)
    assert m.task_numa_stats(m.clone(pid)) == task_stats(stamp=60_000 + 2 * MS, seq=1)


def test_rule_46_a_later_process_waits_for_its_own_delay(make):
    m = make(T2, numa_balancing=1)
    m.advance(500 * MS)
    pid = mapped(m, 4)                           # mm next scan at 1500 ms
    m.sched(pid, 2)
    m.advance(1000 * MS)                         # t = 1500: runtime 1000 ms, not > 1000
    assert counters(m, "numa_pte_updates") == (0,)
    m.advance(MS)
    assert counters(m, "numa_pte_updates") == (4,)


def test_rule_47_scan_budget_and_2mib_chunk_ends(make):
    # scan_size 1 MB: 256 pages with updates per pass, 2048 pages of address space
    m = make(BIG, numa_balancing=1, numa_balancing_scan_size_mb=1)
    pid = mapped(m, 1536)                        # 3 PMDs of pages on node 0
    m.sched(pid, 2)
    m.advance(1001 * MS)
    # tick 1001: windows = ceil(1536 / 256) = 6, scan_min = max(1000 // 2560, 1000 // 6)
    # = 166; chunk [X, ALIGN(X + 256 pages, 2 MiB)) = 512 pages marked: budget spent
    assert counters(m, "numa_pte_updates") == (512,)
    assert flags(m, pid, X + 511 * P, 2) == [PN, PRESENT]
    assert m.task_numa_stats(pid) == task_stats(period=166, stamp=1002 * MS)
    m.advance(167 * MS)                          # next pass at tick 1169 (1002 + 166 < t)
    assert counters(m, "numa_pte_updates") == (512,)
    m.advance(MS)
    assert counters(m, "numa_pte_updates") == (1024,)
    assert flags(m, pid, X + 1023 * P, 2) == [PN, PRESENT]


def test_rule_47_the_first_period_of_a_scan_reads_the_rss_of_that_moment(make):
    # task_numa_work of a thread whose period is still 0 (a clone with scan_delay 0) takes
    # task_scan_start, and Linux's task_scan_min counts the RSS when it is called, not at
    # the mm's previous pass (found by the slow differential run)
    m = make(BIG, numa_balancing=1, numa_balancing_scan_size_mb=1,
             numa_balancing_scan_delay_ms=0)
    pid = m.spawn(cpu=0)                         # period = scan_delay = 0, mm next scan 0
    m.mmap(pid, 1024 * P, addr=X)
    touch(m, pid, X, 100)
    tid = m.clone(pid)                           # stamp min(scan_max, 0 ms x 1) + 2 ms
    m.advance(MS)
    # tick 1, leader: windows ceil(100 / 256) = 1, period = 1000; its pass marks the 100
    # pages of [X, X + 512) (the budget of 256 pages is spent), next scan at 1001 ms
    assert counters(m, "numa_pte_updates") == (100,)
    touch(m, pid, X + 100 * P, 500)              # unmarked pages: RSS 600, no hint fault
    m.advance(1000 * MS)
    # tick 1001, the clone (runtime 1001 ms > 2 ms + 0): windows ceil(600 / 256) = 3,
    # period_max = 60000 // 3 = 20000, period = 1000 // 3 = 333; it marks pages 512-599
    assert counters(m, "numa_pte_updates") == (188,)
    assert m.task_numa_stats(tid) == task_stats(period=333, period_max=20000, stamp=4 * MS)


def test_rule_47_scan_stops_after_2gib_worth_of_address_space(make):
    m = make(BIG, numa_balancing=1, numa_balancing_scan_size_mb=1)
    pid = mapped(m, 4096, write=None)            # 8 PMDs, only PMD 5 populated
    touch(m, pid, X + 2560 * P, 4)
    m.sched(pid, 2)
    m.advance(1001 * MS)
    # PMDs 0-3 have no page table: 4 x 512 = 2048 pages of virtual budget, nothing marked
    assert counters(m, "numa_pte_updates") == (0,)
    m.advance(1001 * MS)                         # t = 2002: the next pass is at 2003
    assert counters(m, "numa_pte_updates") == (0,)
    m.advance(MS)                                # from PMD 4: PMD 5 has the 4 pages
    assert counters(m, "numa_pte_updates") == (4,)
    assert flags(m, pid, X + 2559 * P, 6) == [0, PN, PN, PN, PN, 0]


@pytest.mark.parametrize("task_mode,after_pass1,after_pass2", [
    (None, 4, 5), (C.MPOL_BIND, 2, 2), (C.MPOL_BIND | C.MPOL_F_NUMA_BALANCING, 4, 5)])
def test_rule_48_scan_skips_non_mof_vmas_and_wraps(make, task_mode, after_pass1,
                                                    after_pass2):
    m = make(T2, numa_balancing=1, skip_local_single_thread=False)
    pid = m.spawn(cpu=0)
    if task_mode is not None:
        m.set_mempolicy(pid, task_mode, {0, 1})
    shared = C.MAP_SHARED | C.MAP_ANONYMOUS
    m.mmap(pid, 3 * P, addr=X)                                  # A: no VMA policy
    m.mmap(pid, 2 * P, addr=X + 4 * P)                          # B: BIND {0}, no MOF
    m.mbind(pid, X + 4 * P, 2 * P, C.MPOL_BIND, {0})
    m.mmap(pid, 2 * P, shared, addr=X + 8 * P)                  # C: shared, no policy
    m.mmap(pid, 2 * P, shared, addr=X + 12 * P)                 # D: shared, MOF policy
    m.mbind(pid, X + 12 * P, 2 * P, C.MPOL_BIND | C.MPOL_F_NUMA_BALANCING, {0, 1})
    for a in (X, X + 4 * P, X + 8 * P, X + 12 * P):
        touch(m, pid, a, 2)                                     # all on node 0
    raises(errno.EINVAL, m.mmap, pid, HP, C.MAP_PRIVATE | C.MAP_ANONYMOUS | C.MAP_HUGETLB)
    m.advance(1001 * MS)         # pass 1: A (with a MOF task policy) and D; seq 1
    assert counters(m, "numa_pte_updates") == (after_pass1,)
    touch(m, pid, X + 2 * P, 1)                                 # a new page in A
    m.advance(1002 * MS)         # pass 2 at 2003 ms restarts at address 0: A's new page
    assert counters(m, "numa_pte_updates") == (after_pass2,)
    a_mark = NUMA if after_pass1 == 4 else 0
    assert flags(m, pid, X, 3) == [PRESENT | a_mark] * 3
    assert flags(m, pid, X + 4 * P, 2) == flags(m, pid, X + 8 * P, 2) == [PRESENT] * 2
    assert flags(m, pid, X + 12 * P, 2) == [PN] * 2
    m.access(pid, X + 12 * P)    # D: MORON, already local -> no migration
    # placement at this first fault: seq 2 (two passes reached the end of the list);
    # nothing buffered: period doubles to 2000; then buffer[0][private] = 1, local
    assert m.task_numa_stats(pid) == task_stats(period=2000, period_max=60000,
                                                stamp=2004 * MS, seq=2, locality=(0, 1, 0),
                                                buffer=((0, 1), (0, 0)))


@pytest.mark.parametrize("size_mb,thps,scan_min,scan_max", [
    (256, 1, 1000, 60000),                      # 512 pages: 1 window
    (256, 129, 500, 30000),                     # 66048 pages: 2 windows
    (256, 1281, 100, 5454),                     # 655872 pages: 11 windows, 100 ms floor
    (4, 11, 166, 10000)])                       # 5632 / 1024 -> 6 windows; floor 1
def test_rule_49_scan_period_bounds(make, size_mb, thps, scan_min, scan_max):
    m = make(dict(node_pages=[700_000, 1024], node_cpus=[[0, 1], [2, 3]]), thp="always",
             numa_balancing=1, numa_balancing_scan_size_mb=size_mb)
    pid = m.spawn(cpu=0)
    m.mmap(pid, thps * HP, addr=X)
    m.access(pid, X + np.arange(thps, dtype=np.int64) * HP, write=True)
    m.advance(1001 * MS)                         # first tick: period := scan_start
    assert m.task_numa_stats(pid)["numa_scan_period"] == scan_min
    tid = m.clone(pid)                           # min(scan_max, 1000 ms in ns) + 2 ms
    assert m.task_numa_stats(tid)["node_stamp"] == scan_max + 2 * MS


@pytest.mark.parametrize("value", [2, 3])
def test_rule_50_memory_tiering_is_rejected(make, machine_cls, value):
    if machine_cls.__name__ == "RefMachine":     # issue 16: the model implements tiering
        assert make(T2, numa_balancing=value).numa_balancing == value   # (test_tiering_*)
    else:                                        # the engine until its phase 2
        with pytest.raises(ValueError, match="tiering"):
            make(T2, numa_balancing=value)
    m = make(T2, numa_balancing=1)               # NORMAL balancing is
    assert not [k for k in m.vmstat() if k.startswith("pgpromote")]


@pytest.mark.parametrize("batching", [False, True])
def test_rule_51_pmd_numa_batching(make, batching):
    m = make(T2, pmd_numa_batching=batching)
    pid = mapped(m, 8, write=None)
    touch(m, pid, X, 4)                          # pages 0-3 on node 0, 4-7 empty
    m.clone(pid, cpu=2)                          # two threads: no local skip
    m.mbind(pid, X, 8 * P, C.MPOL_BIND, {1}, LAZY)
    assert counters(m, "numa_pte_updates") == (4,)
    m.access(pid, X + 5 * P, write=True)
    # batching: the access anywhere in the marked PMD resolves pages 0-3 (4 local hinting
    # faults, each migrated to node 1), then the missing page is allocated under BIND {1}
    m.access(pid, X)
    if batching:
        expect = (4, 4, 4, 6, [1, 1, 1, 1, -1, 1, -1, -1], [PRESENT] * 4)
    else:
        expect = (1, 1, 1, 6, [1, 0, 0, 0, -1, 1, -1, -1], [PRESENT] + [PN] * 3)
    hint, local, moved, pgfault, where, marks = expect
    assert counters(m, "numa_hint_faults", "numa_hint_faults_local", "numa_pages_migrated",
                    "pgfault") == (hint, local, moved, pgfault)
    assert nodes(m, pid, X, 8) == where
    assert flags(m, pid, X, 8) == marks + [0, PRESENT, 0, 0]


@pytest.mark.parametrize("batching", [False, True])
def test_rule_51_batch_skips_pages_mapped_twice(make, batching):
    # the seed's do_pmd_numa_page: a page mapped more than once is unmarked, not counted
    m = make(T2, pmd_numa_batching=batching)
    pid = m.spawn(cpu=0)
    m.mmap(pid, 2 * P, C.MAP_SHARED | C.MAP_ANONYMOUS, addr=X)
    touch(m, pid, X, 2)
    child = m.fork(pid)
    m.access(child, [X, X + P])                  # both pages mapped twice
    assert m.change_prot_numa(pid, X, 2 * P) == 2            # shared memory: marked
    before = counters(m, "pgfault")[0]
    m.access(pid, X)
    expect = (0, [PRESENT, PRESENT]) if batching else (1, [PRESENT, PN])
    assert (counters(m, "numa_hint_faults")[0], flags(m, pid, X, 2)) == expect
    assert counters(m, "pgfault")[0] == before + 1


def test_rule_52_migrate_rate_limit(make):
    n = 66
    m = make(dict(node_pages=[40000, 40000], node_cpus=[[0, 1], [2, 3]]), thp="always",
             migrate_rate_limit=True)
    pid = m.spawn(cpu=0)
    m.mmap(pid, n * HP, addr=X)
    heads = X + np.arange(n, dtype=np.int64) * HP
    m.access(pid, heads, write=True)             # 66 THPs on node 0
    m.mbind(pid, X, n * HP, C.MPOL_BIND, {1}, LAZY)
    m.access(pid, heads)                         # one hinting fault per THP, at t = 0
    # counted before each try: after 64 THPs 32768 (not > 32768), the 65th moves too
    # (33280); the 66th is refused in this window
    assert nodes(m, pid, X + 64 * HP, 1) == [1] and nodes(m, pid, X + 65 * HP, 1) == [0]
    assert counters(m, "numa_hint_faults", "numa_pages_migrated", "thp_migration_success",
                    "pgmigrate_fail") == (66, 65 * 512, 65, 0)
    m.advance(MS)                                # t = 1 ms > window end: a new window
    assert m.change_prot_numa(pid, X + 65 * HP, HP) == 512
    m.access(pid, X + 65 * HP)
    assert nodes(m, pid, X + 65 * HP, 1) == [1]
    assert counters(m, "numa_hint_faults", "numa_pages_migrated",
                    "thp_migration_success") == (67, 66 * 512, 66)


@pytest.mark.parametrize("rule", [False, True])
def test_rule_53_shared_page_rule(make, rule):
    m = make(T2, shared_page_rule=rule)
    pid = m.spawn(cpu=0)
    m.mmap(pid, 2 * P, C.MAP_SHARED | C.MAP_ANONYMOUS, addr=X)
    touch(m, pid, X, 2)                          # node 0
    m.mbind(pid, X, P, C.MPOL_BIND, {1}, LAZY)   # page 0 marked while mapped once
    child = m.fork(pid)
    m.access(child, [X, X + P])                  # both pages mapped twice now
    assert m.change_prot_numa(pid, X + P, P) == (0 if rule else 1)
    m.access(pid, X)                             # BIND {1} with MOF: target node 1
    assert nodes(m, pid, X, 2) == ([0, 0] if rule else [1, 0])
    assert nodes(m, child, X, 2) == nodes(m, pid, X, 2)
    assert counters(m, "numa_pte_updates", "numa_hint_faults",
                    "numa_pages_migrated") == (2 if not rule else 1, 1, 0 if rule else 1)


@pytest.mark.parametrize("rule", [False, True])
def test_rule_53_shared_thp_is_not_marked(make, rule):
    m = make(THP_T, thp="always", shared_page_rule=rule)
    pid = m.spawn(cpu=0)
    m.mmap(pid, HP, addr=X)
    m.access(pid, X, write=True)                 # one THP
    m.fork(pid)                                  # mapped by two processes
    assert m.change_prot_numa(pid, X, HP) == (0 if rule else 512)


@pytest.mark.parametrize("opts,first_moves", [
    (dict(), True), (dict(two_stage_filter="last_node"), False), (dict(profile="seed"), False)])
def test_rule_54_first_hinting_fault_never_migrates(make, opts, first_moves):
    m = make(T2, **opts)
    pid = mapped(m, 1)                           # node 0
    ta = m.clone(pid, cpu=2)
    # last node: unset -> node 1 recorded, unset != 1: stays; then 1 == 1: migrates
    assert remark_and_touch(m, pid, ta) == (1 if first_moves else 0)
    if not first_moves:
        assert remark_and_touch(m, pid, ta) == 1
    assert counters(m, "numa_hint_faults", "numa_pages_migrated") == (
        1 if first_moves else 2, 1)


def test_rule_54_last_node_records_local_faults_too(make):
    m = make(T2, two_stage_filter="last_node")
    pid = mapped(m, 1)
    ta = m.clone(pid, cpu=2)
    assert remark_and_touch(m, pid, pid) == 0    # last := 0
    assert remark_and_touch(m, pid, ta) == 0     # 0 != 1: stays; last := 1
    assert remark_and_touch(m, pid, ta) == 1
    assert counters(m, "numa_hint_faults", "numa_hint_faults_local",
                    "numa_pages_migrated") == (3, 1, 1)


# ------------------------------------------------------------------ the motivating scenario
@pytest.mark.parametrize("balancing", [0, 1])
def test_scenario_workers_pull_their_quarters(make, balancing):
    n = 64
    m = make(FOUR_SOCKET, numa_balancing=balancing)
    pid = m.spawn(cpu=0)
    m.mmap(pid, 4 * n * P, addr=X)
    touch(m, pid, X, 4 * n)                      # the main thread fills it on node 0
    workers = [m.clone(pid, cpu=8 * i) for i in range(4)]    # one per node
    m.mbind(pid, X, 4 * n * P, C.MPOL_LOCAL, None, C.MPOL_MF_MOVE | LAZY)
    assert flags(m, pid, X, 4 * n) == [PN] * (4 * n)         # 5 threads: all marked
    for i, tid in enumerate(workers):
        touch(m, tid, X + i * n * P, n, write=False)
    for i in range(4):
        assert nodes(m, pid, X + i * n * P, n) == [i] * n
    assert counters(m, "numa_pte_updates", "numa_hint_faults", "numa_hint_faults_local",
                    "numa_pages_migrated", "pgmigrate_success") == (4 * n, 4 * n, n,
                                                                    3 * n, 3 * n)
    assert m.free_pages().tolist() == [1024 - n, 1024 - n, 1024 - n, 1024 - n]
    assert flags(m, pid, X, 4 * n) == [PRESENT] * (4 * n)


# ------------------------------------------------------------------ contract extensions
def test_contract_knobs(make):
    for bad in (dict(profile="v3.8"), dict(thp_update_count=2), dict(noop_mode="yes"),
                dict(two_stage_filter="node"), dict(pte_restore_timing="never"),
                dict(interleave_thp_index="page"), dict(numa_balancing=4),
                dict(numa_balancing_scan_period_min_ms=0),
                dict(numa_balancing_scan_period_max_ms=0),
                dict(numa_balancing_scan_size_mb=-1), dict(numa_balancing_scan_delay_ms=-1)):
        with pytest.raises(ValueError):
            make(T2, **bad)
    # a switch given alone wins over the profile
    m = make(T2, profile="seed", noop_mode=False)
    pid = mapped(m, 2)
    m.mbind(pid, X, 2 * P, C.MPOL_PREFERRED_MANY, {1})       # 5 is PREFERRED_MANY here
    assert m.get_mempolicy(pid, X, C.MPOL_F_ADDR) == (C.MPOL_PREFERRED_MANY, frozenset({1}))
    assert m.task_numa_stats(pid) == task_stats()
    raises(errno.ESRCH, m.task_numa_stats, 99)


@pytest.mark.parametrize("opts,noop", [(dict(), MPOL_NOOP), (dict(noop_mode=True), 5),
                                       (dict(profile="seed"), 5)])
def test_contract_mpol_noop(make, opts, noop):
    m = make(T2, pmd_numa_batching=False, **opts)
    pid = mapped(m, 2)                           # node 0
    ta = m.clone(pid, cpu=2)
    m.mbind(pid, X, 2 * P, C.MPOL_BIND, {1})     # a policy to keep (no MOF)
    unchanged(m, errno.EINVAL, m.mbind, pid, X, 2 * P, noop, {0}, LAZY)
    unchanged(m, errno.EINVAL, m.mbind, pid, X, 2 * P, noop | C.MPOL_F_STATIC_NODES,
              None, LAZY)
    unchanged(m, errno.EINVAL, m.set_mempolicy, pid, MPOL_NOOP)
    unchanged(m, errno.EFAULT, m.mbind, pid, X, 3 * P, noop, None, C.MPOL_MF_MOVE)  # hole
    assert m.mbind(pid, X, 2 * P, noop, None, C.MPOL_MF_MOVE) is None      # no-op
    # STRICT has no nodes to check the pages against: never EIO (found by the slow
    # differential run: the engine checked them against the empty mask)
    assert m.mbind(pid, X, 2 * P, noop, None, C.MPOL_MF_STRICT) is None
    unchanged(m, errno.EFAULT, m.mbind, pid, X, 3 * P, noop, None, C.MPOL_MF_STRICT)
    assert flags(m, pid, X, 2) == [PRESENT] * 2
    assert m.mbind(pid, X, 2 * P, noop, None, C.MPOL_MF_MOVE | LAZY) is None
    assert flags(m, pid, X, 2) == [PN] * 2
    assert m.get_mempolicy(pid, X, C.MPOL_F_ADDR) == (C.MPOL_BIND, frozenset({1}))
    m.access(ta, [X, X + P])                     # the kept policy has no MOF: no migration
    assert nodes(m, pid, X, 2) == [0, 0]
    assert counters(m, "numa_pte_updates", "numa_hint_faults", "pgmigrate_success") == (
        2, 2, 0)


@pytest.mark.parametrize("mode,mask", [(C.MPOL_DEFAULT, None), (C.MPOL_BIND, {1})])
def test_contract_lazy_hole_is_efault_before_marking(make, mode, mask):
    m = make(T2)
    pid = mapped(m, 2)
    m.clone(pid, cpu=2)
    unchanged(m, errno.EFAULT, m.mbind, pid, X, 3 * P, mode, mask, LAZY)     # tail hole
    unchanged(m, errno.EFAULT, m.mbind, pid, X - 2 * P, 4 * P, mode, mask, LAZY)
    unchanged(m, errno.EFAULT, m.mbind, pid, X + 4 * P, P, mode, mask, LAZY)  # no VMA
    assert flags(m, pid, X, 2) == [PRESENT] * 2
    assert counters(m, "numa_pte_updates", "fastnuma_prot_numa_flushes") == (0, 0)
    m.mbind(pid, X, 2 * P, mode, mask, C.MPOL_MF_STRICT | LAZY)  # STRICT: never EIO
    assert flags(m, pid, X, 2) == [PN] * 2 and nodes(m, pid, X, 2) == [0, 0]


def test_contract_fork_keeps_marks_and_write_faults_after_the_hint(make):
    m = make(T2)
    pid = mapped(m, 1)                           # node 0, pgfault 1
    m.clone(pid, cpu=2)
    assert m.change_prot_numa(pid, X, P) == 1
    child = m.fork(pid)                          # both entries write-protected and marked
    assert flags(m, pid, X, 1) == flags(m, child, X, 1) == [PN]
    touch(m, pid, X, 1)          # hinting fault (local, no target), then the COW fault
    assert flags(m, pid, X, 1) == [PRESENT] and flags(m, child, X, 1) == [PN]
    m.access(child, X)                           # the child's own hinting fault
    assert flags(m, child, X, 1) == [PRESENT]
    assert counters(m, "pgfault", "numa_hint_faults", "numa_hint_faults_local") == (4, 2, 2)
    assert m.free_pages().tolist() == [62, 64]   # the COW copy on node 0


@pytest.mark.parametrize("index,expect", [("order", [0, 1]), ("base", [0, 0])])
def test_contract_interleave_thp_index(make, index, expect):
    # THPs at vpn 0x10000 and 0x10200: ilx 0x80 + k (order-scaled) or 0x10000 + 512 k (base)
    m = make(THP_T, thp="always", interleave_thp_index=index)
    pid = m.spawn(cpu=0)
    m.mmap(pid, 2 * HP, addr=X)
    m.mbind(pid, X, 2 * HP, C.MPOL_INTERLEAVE, {0, 1})
    m.access(pid, [X, X + HP], write=True)
    assert [nodes(m, pid, X + k * HP, 512) for k in (0, 1)] == [[n] * 512 for n in expect]
    assert counters(m, "thp_fault_alloc") == (2,)


def test_contract_one_tlb_flush_per_vma(make):
    m = make(T2)
    pid = mapped(m, 4)                           # node 0
    m.clone(pid, cpu=2)
    m.mbind(pid, X + 2 * P, 2 * P, C.MPOL_BIND, {0})         # two VMAs now
    assert m.change_prot_numa(pid, X, 4 * P) == 4
    assert counters(m, "numa_pte_updates", "fastnuma_prot_numa_flushes") == (4, 2)
    m.access(pid, [X, X + P])                    # unmark the first VMA only
    m.mbind(pid, X, 4 * P, C.MPOL_PREFERRED, {0}, LAZY)      # one call, one VMA changed
    assert counters(m, "numa_pte_updates", "fastnuma_prot_numa_flushes") == (6, 3)
