"""One table-driven test per rule of linux-semantics.md §9 (items 1-32), plus bad input.

Every test runs on the reference model and on the engine (``machine_cls``); expected
values are worked out by hand from the spec (the comments show the arithmetic), never
taken from either implementation.
"""
import errno

import numpy as np
import pytest

import fastnuma.constants as C
from fastnuma.errors import OutOfMemory, SegmentationFault

from tests.reference import RefMachine, RefTopology, build_zonelists
from tests.reference.syscalls import MOVE_PAGES_UNWRITTEN

P = C.PAGE_SIZE
X = 0x10000000                 # a fixed, 2 MiB-aligned address: vpn 0x10000 (65536)
HP = C.HPAGE_PMD_SIZE
T2 = dict(node_pages=[64, 64], node_cpus=[[0, 1], [2, 3]])
T3 = dict(node_pages=[64, 64, 64], node_cpus=[[0], [1], [2]])
# fallback lists of FOUR (worked out in test_rule_20): 0:[0,2,1,3] 1:[1,3,0,2] 2:[2,0,3,1]
# 3:[3,1,2,0]
FOUR = dict(node_pages=[16] * 4, node_cpus=[[0], [1], [2], [3]],
            distance=[[10, 30, 20, 40], [30, 10, 40, 20], [20, 40, 10, 30], [40, 20, 30, 10]])
RING = dict(node_pages=[2] * 4, node_cpus=[[0], [1], [2], [3]],
            distance=[[10, 21, 31, 21], [21, 10, 21, 31], [31, 21, 10, 21], [21, 31, 21, 10]])
CXL = dict(node_pages=[2, 2, 2], node_cpus=[[0], [1], []],
           distance=[[10, 21, 14], [21, 10, 24], [14, 24, 10]])
MEMLESS = dict(node_pages=[0, 2, 2], node_cpus=[[0], [1], [2]],
               distance=[[10, 20, 15], [20, 10, 20], [15, 20, 10]])


# ------------------------------------------------------------------ helpers
def raises(err, fn, *args, **kwargs):
    with pytest.raises(OSError) as info:
        fn(*args, **kwargs)
    assert info.value.errno == err, info.value
    return info.value


def nodes(m, pid, addr, n):
    return m.page_nodes(pid, addr, n * P).tolist()


def snapshot(m):
    """Everything observable that a failed call must not change."""
    return (m.vmstat(), m.free_pages().tolist(), {p: m.numa_maps(p) for p in m.pids()},
            {t: m.get_mempolicy(t) for p in m.pids() for t in m.tids(p)})


def unchanged(m, err, fn, *args, **kwargs):
    before = snapshot(m)
    raises(err, fn, *args, **kwargs)
    assert snapshot(m) == before


def touch(m, tid, addr, n, write=True):
    m.access(tid, np.arange(n, dtype=np.int64) * P + addr, write=write)


def stat(m, node):
    return m.numastat()[node]


def mapped(m, n=4, cpu=0, addr=X, write=True, **spawn):
    """A process on ``cpu`` with n pages at ``addr``, touched (written) in order."""
    pid = m.spawn(cpu=cpu, **spawn)
    assert m.mmap(pid, n * P, addr=addr) == addr
    if write is not None:
        touch(m, pid, addr, n, write)
    return pid


# ------------------------------------------------------------------ §9 rules 1-32
@pytest.mark.parametrize("mode", [7, 100, -1, C.MPOL_BIND | C.MPOL_F_STATIC_NODES
                                  | C.MPOL_F_RELATIVE_NODES,
                                  C.MPOL_INTERLEAVE | C.MPOL_F_STATIC_NODES
                                  | C.MPOL_F_RELATIVE_NODES])
def test_rule_01_bad_mode_or_static_with_relative(make, mode):
    m = make(T2)
    pid = mapped(m, 2)
    unchanged(m, errno.EINVAL, m.mbind, pid, X, 2 * P, mode, {0})
    unchanged(m, errno.EINVAL, m.set_mempolicy, pid, mode, {0})


@pytest.mark.parametrize("mode,ok", [
    (C.MPOL_DEFAULT, False), (C.MPOL_PREFERRED, False), (C.MPOL_INTERLEAVE, False),
    (C.MPOL_LOCAL, False), (C.MPOL_WEIGHTED_INTERLEAVE, False),
    (C.MPOL_BIND, True), (C.MPOL_PREFERRED_MANY, True)])
def test_rule_02_numa_balancing_only_with_bind_or_preferred_many(make, mode, ok):
    m = make(T2)
    pid = mapped(m, 2)
    mask = None if mode in (C.MPOL_DEFAULT, C.MPOL_LOCAL) else {1}
    if not ok:
        unchanged(m, errno.EINVAL, m.set_mempolicy, pid, mode | C.MPOL_F_NUMA_BALANCING,
                  mask)
        unchanged(m, errno.EINVAL, m.mbind, pid, X, 2 * P,
                  mode | C.MPOL_F_NUMA_BALANCING, mask)
        return
    assert m.set_mempolicy(pid, mode | C.MPOL_F_NUMA_BALANCING, mask) is None
    assert m.get_mempolicy(pid) == (mode | C.MPOL_F_NUMA_BALANCING, frozenset({1}))
    m.mbind(pid, X, 2 * P, mode | C.MPOL_F_NUMA_BALANCING, mask)
    assert m.get_mempolicy(pid, X, C.MPOL_F_ADDR) == (mode | C.MPOL_F_NUMA_BALANCING,
                                                      frozenset({1}))
    name = "bind" if mode == C.MPOL_BIND else "prefer (many)"
    assert m.numa_maps(pid).startswith(f"{X:08x} {name}=balancing:1 ")


@pytest.mark.parametrize("strict,flags,ok", [
    (True, C.MPOL_MF_LAZY, False), (True, 0x10, False), (True, 0x7, True),
    (False, C.MPOL_MF_LAZY, True), (False, C.MPOL_MF_LAZY | C.MPOL_MF_MOVE, True),
    (False, 0x10, False), (False, 0x10 | C.MPOL_MF_LAZY, False), (False, -1, False)])
def test_rule_03_mbind_flags(make, strict, flags, ok):
    m = make(T2, linux_strict_flags=strict)
    pid = mapped(m, 2)                           # pages on node 0
    if not ok:
        unchanged(m, errno.EINVAL, m.mbind, pid, X, 2 * P, C.MPOL_BIND, {1}, flags)
        return
    assert m.mbind(pid, X, 2 * P, C.MPOL_BIND, {1}, flags) is None
    assert m.get_mempolicy(pid, X, C.MPOL_F_ADDR) == (C.MPOL_BIND, frozenset({1}))
    # LAZY (this version): policy applied, nothing examined or moved
    expect = [1, 1] if flags == 0x7 else [0, 0]
    assert nodes(m, pid, X, 2) == expect
    assert m.vmstat()["pgmigrate_success"] == (2 if flags == 0x7 else 0)


@pytest.mark.parametrize("addr,flags,err", [
    (X, C.MPOL_MF_MOVE_ALL, errno.EPERM),
    (X + 1, C.MPOL_MF_MOVE_ALL, errno.EPERM),              # before the alignment check
    (X, C.MPOL_MF_MOVE_ALL | 0x10, errno.EINVAL),          # after the flags check
    (X + 1, C.MPOL_MF_MOVE, errno.EINVAL)])
def test_rule_04_move_all_needs_cap_sys_nice(make, addr, flags, err):
    m = make(T2)
    pid = mapped(m, 2, cap_sys_nice=False)
    unchanged(m, err, m.mbind, pid, addr, 2 * P, C.MPOL_BIND, {1}, flags)


def test_rule_04_move_all_with_cap_sys_nice(make):
    m = make(T2)
    pid = mapped(m, 2)
    m.mbind(pid, X, 2 * P, C.MPOL_BIND, {1}, C.MPOL_MF_MOVE_ALL)
    assert nodes(m, pid, X, 2) == [1, 1]


@pytest.mark.parametrize("addr,length,mode,mask,result", [
    (X + 1, P, C.MPOL_BIND, {1}, errno.EINVAL),
    (X + 2048, P, C.MPOL_BIND, {1}, errno.EINVAL),
    (X, 0, C.MPOL_BIND, None, None),            # empty mask not checked: len 0 -> 0
    (X, 0, C.MPOL_DEFAULT, {0}, None),
    (X, 0, C.MPOL_INTERLEAVE, {5}, None),
    (X + 100 * P, 0, C.MPOL_BIND, {1}, None),   # nothing mapped there: still 0
])
def test_rule_05_unaligned_start_and_empty_length(make, addr, length, mode, mask, result):
    m = make(T2)
    pid = mapped(m, 2)
    if result is None:
        before = snapshot(m)
        assert m.mbind(pid, addr, length, mode, mask) is None
        assert snapshot(m) == before
    else:
        unchanged(m, result, m.mbind, pid, addr, length, mode, mask)


def test_rule_05_length_rounds_up_to_a_page(make):
    m = make(T2)
    pid = mapped(m, 3)
    m.mbind(pid, X + P, 1, C.MPOL_BIND, {1})
    assert [m.get_mempolicy(pid, X + i * P, C.MPOL_F_ADDR)[0] for i in range(3)] == \
        [C.MPOL_DEFAULT, C.MPOL_BIND, C.MPOL_DEFAULT]


@pytest.mark.parametrize("length,result", [
    (-2 * P, errno.EINVAL),              # end = start - 2 pages: wraps below start
    ((1 << 64) - 2 * P, errno.EINVAL),   # the same as an unsigned long
    ((1 << 64) - 1, None),               # PAGE_ALIGN wraps to 0: len 0 -> 0, no change
])
def test_rule_06_end_before_start(make, length, result):
    m = make(T2)
    pid = mapped(m, 2)
    if result is None:
        before = snapshot(m)
        assert m.mbind(pid, X, length, C.MPOL_BIND, {1}) is None
        assert snapshot(m) == before
    else:
        unchanged(m, result, m.mbind, pid, X, length, C.MPOL_BIND, {1})


@pytest.mark.parametrize("mode,mask,expect", [
    (C.MPOL_BIND, None, errno.EINVAL),
    (C.MPOL_INTERLEAVE, [], errno.EINVAL),
    (C.MPOL_PREFERRED_MANY, 0, errno.EINVAL),
    (C.MPOL_WEIGHTED_INTERLEAVE, None, errno.EINVAL),
    (C.MPOL_PREFERRED | C.MPOL_F_STATIC_NODES, None, errno.EINVAL),
    (C.MPOL_PREFERRED | C.MPOL_F_RELATIVE_NODES, None, errno.EINVAL),
    (C.MPOL_DEFAULT, {0}, errno.EINVAL),
    (C.MPOL_LOCAL, {0}, errno.EINVAL),
    (C.MPOL_LOCAL | C.MPOL_F_STATIC_NODES, None, errno.EINVAL),
    (C.MPOL_PREFERRED, None, (C.MPOL_LOCAL, frozenset())),
    (C.MPOL_PREFERRED, {0, 1}, (C.MPOL_PREFERRED, frozenset({0}))),
    (C.MPOL_LOCAL, None, (C.MPOL_LOCAL, frozenset())),
    (C.MPOL_DEFAULT, None, (C.MPOL_DEFAULT, frozenset())),
])
def test_rule_07_empty_and_non_empty_masks(make, mode, mask, expect):
    m = make(T2)
    pid = mapped(m, 2)
    if isinstance(expect, int):
        unchanged(m, expect, m.set_mempolicy, pid, mode, mask)
        unchanged(m, expect, m.mbind, pid, X, 2 * P, mode, mask)
        return
    m.set_mempolicy(pid, mode, mask)
    assert m.get_mempolicy(pid) == expect
    m.mbind(pid, X, 2 * P, mode, mask)
    assert m.get_mempolicy(pid, X, C.MPOL_F_ADDR) == expect


@pytest.mark.parametrize("mask,maxnode,expect", [
    ({1024}, None, errno.EINVAL),
    (1 << 1024, None, errno.EINVAL),
    ({0, 1023}, None, frozenset({0})),            # 1023 < MAX_NUMNODES: no memory, dropped
    ({-1}, None, errno.EINVAL),
    ({0, 1}, 2, frozenset({0})),                  # only bit 0 (< maxnode-1) is read
    (0b11, 3, frozenset({0, 1})),
    ({1}, 2, errno.EINVAL),                       # bit 1 not read: empty -> BIND EINVAL
    ({0}, 1, errno.EINVAL),                       # maxnode 1: nothing read
    ({0}, 0, errno.EINVAL),                       # maxnode 0 with a mask wraps
    ({0, 5000}, 3, frozenset({0})),               # bits >= maxnode-1 are never read
    ({0, 2000}, 4000, errno.EINVAL),              # read, and >= MAX_NUMNODES
    ({0}, 32769, frozenset({0})),                 # maxnode-1 = 32768 is the limit
    ({0}, 32770, errno.EINVAL),
    ({1, 5}, None, frozenset({1})),               # node 5 beyond the topology vanishes
    ({5}, None, errno.EINVAL),                    # ... and alone leaves nothing
])
def test_rule_08_nodemask_bits_and_maxnode(make, mask, maxnode, expect):
    m = make(T2)
    pid = mapped(m, 2)
    if isinstance(expect, int):
        unchanged(m, expect, m.set_mempolicy, pid, C.MPOL_BIND, mask, maxnode=maxnode)
        unchanged(m, expect, m.mbind, pid, X, 2 * P, C.MPOL_BIND, mask, maxnode=maxnode)
        return
    m.set_mempolicy(pid, C.MPOL_BIND, mask, maxnode=maxnode)
    assert m.get_mempolicy(pid) == (C.MPOL_BIND, expect)


def test_rule_08_maxnode_with_null_mask(make):
    m = make(T2)
    pid = mapped(m, 2)
    m.set_mempolicy(pid, C.MPOL_DEFAULT, None, maxnode=0)     # NULL mask: maxnode unused
    m.set_mempolicy(pid, C.MPOL_LOCAL, None, maxnode=1 << 40)
    assert m.get_mempolicy(pid) == (C.MPOL_LOCAL, frozenset())


@pytest.mark.parametrize("mode,mask,addr,length,err", [
    (C.MPOL_BIND, {1}, X, 8 * P, errno.EFAULT),            # hole in the middle
    (C.MPOL_BIND, {1}, X - P, 3 * P, errno.EFAULT),        # hole before the first VMA
    (C.MPOL_BIND, {1}, X + 4 * P, 4 * P, errno.EFAULT),    # hole after the last VMA
    (C.MPOL_LOCAL, None, X, 8 * P, errno.EFAULT),
    (C.MPOL_PREFERRED, {1}, X, 8 * P, errno.EFAULT),
    (C.MPOL_DEFAULT, None, X + 16 * P, 2 * P, errno.EFAULT),  # no VMA at all
    (C.MPOL_DEFAULT, None, X - 4 * P, 2 * P, errno.EFAULT),
    (C.MPOL_DEFAULT, None, X - P, 10 * P, None),             # DEFAULT: holes are fine
])
def test_rule_09_holes(make, mode, mask, addr, length, err):
    m = make(T2)
    pid = mapped(m, 2)
    m.mmap(pid, 2 * P, addr=X + 4 * P)          # VMAs [X, X+2P) and [X+4P, X+6P)
    m.mbind(pid, X, 2 * P, C.MPOL_BIND, {0})
    m.mbind(pid, X + 4 * P, 2 * P, C.MPOL_BIND, {0})
    if err:
        unchanged(m, err, m.mbind, pid, addr, length, mode, mask)
        return
    m.mbind(pid, addr, length, mode, mask)
    for a in (X, X + 4 * P):
        assert m.get_mempolicy(pid, a, C.MPOL_F_ADDR) == (C.MPOL_DEFAULT, frozenset())


@pytest.mark.parametrize("mode,mask,flags,ok", [
    (C.MPOL_BIND, {1}, C.MPOL_MF_STRICT, False),       # page on node 0 is outside {1}
    (C.MPOL_PREFERRED, {1}, C.MPOL_MF_STRICT, False),
    (C.MPOL_LOCAL, None, C.MPOL_MF_STRICT, False),     # empty mask: every page misplaced
    (C.MPOL_BIND, {0}, C.MPOL_MF_STRICT, True),
    (C.MPOL_PREFERRED, {1, 0}, C.MPOL_MF_STRICT, True),   # the user mask counts
    (C.MPOL_DEFAULT, None, C.MPOL_MF_STRICT, True),    # DEFAULT clears STRICT
])
def test_rule_10_strict_without_move(make, mode, mask, flags, ok):
    m = make(T2)
    pid = mapped(m, 1)                           # page 0 on node 0
    m.mmap(pid, P, addr=X + P)                   # merges: [X, X+2P)
    touch(m, pid, X + P, 1, write=False)         # zero page: skipped by the walk
    if not ok:
        unchanged(m, errno.EIO, m.mbind, pid, X, 2 * P, mode, mask, flags)
        assert m.get_mempolicy(pid, X, C.MPOL_F_ADDR) == (C.MPOL_DEFAULT, frozenset())
        return
    m.mbind(pid, X, 2 * P, mode, mask, flags)
    assert m.get_mempolicy(pid, X, C.MPOL_F_ADDR)[0] == (
        C.MPOL_LOCAL if mode == C.MPOL_LOCAL else mode)
    assert nodes(m, pid, X, 2) == [0, 0]


@pytest.mark.parametrize("flags", [C.MPOL_MF_MOVE | C.MPOL_MF_STRICT, C.MPOL_MF_MOVE])
def test_rule_11_full_bind_target_stops_migration(make, flags):
    m = make(dict(T2, node_pages=[64, 2]))
    pid = mapped(m, 4)                           # 4 pages on node 0 (CPU 0)
    call = (m.mbind, pid, X, 4 * P, C.MPOL_BIND, {1}, flags)
    if flags & C.MPOL_MF_STRICT:
        raises(errno.EIO, *call)
    else:
        assert call[0](*call[1:]) is None
    # the policy was applied; two destinations fit on node 1 (free 2 -> 1 -> 0), the third
    # allocation fails: those two move, the rest stay untried
    assert m.get_mempolicy(pid, X, C.MPOL_F_ADDR) == (C.MPOL_BIND, frozenset({1}))
    assert nodes(m, pid, X, 4) == [1, 1, 0, 0]
    assert m.free_pages().tolist() == [62, 0]
    v = m.vmstat()
    assert (v["pgmigrate_success"], v["pgmigrate_fail"]) == (2, 1)
    # 4 faults: hit/local on node 0; 2 destinations: preferred = node 1 (first of node
    # 0's list within {1}) -> hit on node 1, other (the caller runs on node 0)
    assert stat(m, 0) == dict(numa_hit=4, numa_miss=0, numa_foreign=0, interleave_hit=0,
                              local_node=4, other_node=0)
    assert stat(m, 1) == dict(numa_hit=2, numa_miss=0, numa_foreign=0, interleave_hit=0,
                              local_node=0, other_node=2)


@pytest.mark.parametrize("flags,moved", [
    (C.MPOL_MF_MOVE, False), (C.MPOL_MF_MOVE | C.MPOL_MF_STRICT, False),
    (C.MPOL_MF_MOVE_ALL, True), (C.MPOL_MF_MOVE_ALL | C.MPOL_MF_STRICT, True)])
def test_rule_12_move_skips_shared_pages(make, flags, moved):
    m = make(T2)
    pid = mapped(m, 2)
    child = m.fork(pid)                          # both pages now mapped twice
    assert m.mbind(pid, X, 2 * P, C.MPOL_BIND, {1}, flags) is None   # never EIO
    expect = [1, 1] if moved else [0, 0]
    assert nodes(m, pid, X, 2) == expect and nodes(m, child, X, 2) == expect
    assert m.vmstat()["pgmigrate_success"] == (2 if moved else 0)
    assert m.vmstat()["pgmigrate_fail"] == 0
    assert m.get_mempolicy(pid, X, C.MPOL_F_ADDR) == (C.MPOL_BIND, frozenset({1}))
    assert f"mapmax=2 N{expect[0]}=2 " in m.numa_maps(child)


@pytest.mark.parametrize("mode,caller_cpu,node", [
    (C.MPOL_LOCAL, 0, 0), (C.MPOL_DEFAULT, 0, 0), (C.MPOL_LOCAL, 2, 1),
    (C.MPOL_DEFAULT, 2, 1)])
def test_rule_13_default_and_local_move_every_page(make, mode, caller_cpu, node):
    m = make(T2)
    pid = mapped(m, 3)                           # 3 pages on node 0
    tid = m.clone(pid, cpu=caller_cpu)
    m.mbind(pid, X, 3 * P, mode, None, C.MPOL_MF_MOVE, tid=tid)
    assert nodes(m, pid, X, 3) == [node] * 3
    assert m.vmstat()["pgmigrate_success"] == 3          # 0 -> 0 counts too
    free = [61, 64] if node == 0 else [64, 61]
    assert m.free_pages().tolist() == free
    s = stat(m, node)                            # destinations: hit and local on node
    assert (s["numa_hit"], s["local_node"]) == ((6, 6) if node == 0 else (3, 3))
    expect = (C.MPOL_LOCAL if mode == C.MPOL_LOCAL else C.MPOL_DEFAULT, frozenset())
    assert m.get_mempolicy(pid, X, C.MPOL_F_ADDR) == expect


def test_rule_14_split_beyond_max_map_count(make):
    m = make(T2, max_map_count=3)
    pid = m.spawn()
    m.mmap(pid, 4 * P, addr=X)
    m.mmap(pid, 4 * P, addr=X + 8 * P)
    m.mbind(pid, X, 4 * P, C.MPOL_BIND, {0})
    m.mbind(pid, X + 8 * P, 4 * P, C.MPOL_BIND, {0})
    # DEFAULT over [X+2P, X+10P): splits the first VMA at X+2P (2 -> 3 VMAs) and resets
    # its upper part, then needs a split of the second at X+10P: 3 >= 3 -> ENOMEM
    raises(errno.ENOMEM, m.mbind, pid, X + 2 * P, 8 * P, C.MPOL_DEFAULT)
    assert m.numa_maps(pid) == (f"{X:08x} bind:0\n{X + 2 * P:08x} default\n"
                                f"{X + 8 * P:08x} bind:0\n")
    got = [m.get_mempolicy(pid, a, C.MPOL_F_ADDR)[0] for a in (X, X + 2 * P, X + 9 * P)]
    assert got == [C.MPOL_BIND, C.MPOL_DEFAULT, C.MPOL_BIND]
    # madvise turns the split failure into EAGAIN
    raises(errno.EAGAIN, m.madvise, pid, X + 9 * P, P, C.MADV_HUGEPAGE)
    # mmap: 3 VMAs are not more than 3, a fourth is allowed; then 4 > 3 -> ENOMEM
    m.mmap(pid, P, addr=X + 64 * P)
    unchanged(m, errno.ENOMEM, m.mmap, pid, P, addr=X + 128 * P)


def test_rule_15_interleave_index(make):
    m = make(T3)
    pid = m.spawn()
    m.set_mempolicy(pid, C.MPOL_INTERLEAVE, {0, 1, 2})
    m.mmap(pid, 6 * P, addr=X)
    m.access(pid, X + np.arange(5, -1, -1) * P, write=True)        # reverse order
    # vpn 65536.. mod 3 = 1, 2, 0, 1, 2, 0
    assert nodes(m, pid, X, 6) == [1, 2, 0, 1, 2, 0]
    assert m.get_mempolicy(pid, 0, C.MPOL_F_NODE) == 0               # counter untouched
    # 64-bit index: vpn 2**32 -> 2**32 mod 3 = 1 (a 32-bit index would give 0)
    m.mmap(pid, 2 * P, addr=1 << 44)
    touch(m, pid, 1 << 44, 2)
    assert nodes(m, pid, 1 << 44, 2) == [1, 2]
    # every interleave fault landed on its target
    assert m.vmstat()["numa_interleave"] == 8


def test_rule_15_vma_interleave_and_thp(make):
    m = make(dict(T2, node_pages=[2048, 2048]), thp="always")
    pid = m.spawn(cpu=2)
    m.mmap(pid, 8 * P, addr=X)
    m.mbind(pid, X, 8 * P, C.MPOL_INTERLEAVE, {0, 1})
    m.access(pid, X + np.array([7, 3, 0, 5, 1, 6, 2, 4]) * P, write=True)
    assert nodes(m, pid, X, 8) == [0, 1] * 4          # vpn 65536 is even
    # THPs: ilx = addr >> 21: 0x40000000 >> 21 = 512 (even) -> node 0, then node 1
    base = 0x40000000
    m.mmap(pid, 2 * HP, addr=base)
    m.mbind(pid, base, 2 * HP, C.MPOL_INTERLEAVE, {0, 1})
    m.access(pid, [base + HP + 5 * P, base + 7 * P], write=True)
    assert nodes(m, pid, base, 1024) == [0] * 512 + [1] * 512
    v = m.vmstat()
    assert (v["thp_fault_alloc"], v["numa_interleave"], v["numa_hit"]) == (2, 10, 10)
    assert m.get_mempolicy(pid, base, C.MPOL_F_NODE | C.MPOL_F_ADDR) == 0


@pytest.mark.parametrize("mode,mask,first,expect", [
    (C.MPOL_INTERLEAVE, {1, 2}, 1, [1, 2, 1, 2]),
    # weights {0: 2}: node 0 twice (il_weight 2 -> 1 -> 0), then node 2 once
    (C.MPOL_WEIGHTED_INTERLEAVE, {0, 2}, 0, [0, 0, 2, 0, 0, 2]),
    (C.MPOL_INTERLEAVE, {2}, 2, [2, 2, 2])])
def test_rule_16_task_round_robin_starts_at_lowest_node(make, mode, mask, first, expect):
    m = make(T3, interleave_weights={0: 2})
    pid = m.spawn()
    m.set_mempolicy(pid, C.MPOL_INTERLEAVE, {0, 1, 2})
    assert m.page_cache_read(pid).tolist() == [0]     # moves il_prev to 0
    m.set_mempolicy(pid, mode, mask)                   # il_prev = MAX_NUMNODES-1, weight 0
    assert m.get_mempolicy(pid, 0, C.MPOL_F_NODE) == first
    m.mmap(pid, 4 * P, addr=X)
    touch(m, pid, X, 4)                                # anonymous faults use the index
    assert m.get_mempolicy(pid, 0, C.MPOL_F_NODE) == first
    tid = m.clone(pid)                                 # inherited with the policy
    assert m.get_mempolicy(tid, 0, C.MPOL_F_NODE) == first
    got = m.page_cache_read(pid, len(expect))
    assert got.dtype == np.int64 and got.tolist() == expect
    v = m.vmstat()
    assert (v["numa_interleave"], v["pgfault"]) == (4 + 1 + len(expect), 4)
    m.drop_caches()
    assert m.free_pages().tolist() == [64 - sum(n == k for n in nodes(m, pid, X, 4))
                                       for k in range(3)]


@pytest.mark.parametrize("weights,expect", [
    ({0: 2, 1: 1}, [0, 1, 0, 0, 1, 0]),   # t = vpn mod 3: 1->0, 2->1, 0->0, 1->0, 2->1, 0->0
    (None, [0, 1, 0, 1, 0, 1]),           # weight 1 each: plain interleave
    ({0: 0, 1: 3}, [0, 1, 1, 1, 0, 1]),   # 0 reads as 1: t = vpn mod 4 = 0,1,2,3,0,1
])
def test_rule_17_weighted_interleave(make, weights, expect):
    m = make(T2, interleave_weights=weights)
    pid = m.spawn()
    m.mmap(pid, 6 * P, addr=X)
    m.mbind(pid, X, 6 * P, C.MPOL_WEIGHTED_INTERLEAVE, {0, 1})
    touch(m, pid, X, 6)
    assert nodes(m, pid, X, 6) == expect
    assert m.vmstat()["numa_interleave"] == 6


def test_rule_18_preferred_full_falls_back(make):
    m = make(dict(T2, node_pages=[64, 2]))
    pid = m.spawn(cpu=0)
    m.set_mempolicy(pid, C.MPOL_PREFERRED, {1})
    m.mmap(pid, 3 * P, addr=X)
    touch(m, pid, X, 3)
    assert nodes(m, pid, X, 3) == [1, 1, 0]     # node 1: free 2 -> 1 -> 0, then 1's list
    assert stat(m, 0) == dict(numa_hit=0, numa_miss=1, numa_foreign=0, interleave_hit=0,
                              local_node=1, other_node=0)
    assert stat(m, 1) == dict(numa_hit=2, numa_miss=0, numa_foreign=1, interleave_hit=0,
                              local_node=0, other_node=2)
    v = m.vmstat()
    assert (v["numa_hit"], v["numa_miss"], v["numa_foreign"]) == (2, 1, 1)


@pytest.mark.parametrize("mode", [C.MPOL_BIND, C.MPOL_BIND | C.MPOL_F_STATIC_NODES])
def test_rule_19_bind_exhausted_is_oom(make, mode):
    m = make(dict(T2, node_pages=[64, 2]))
    pid = m.spawn(cpu=0)
    m.set_mempolicy(pid, mode, {1})
    m.mmap(pid, 3 * P, addr=X)
    with pytest.raises(OutOfMemory) as info:
        touch(m, pid, X, 3)
    assert info.value.errno == errno.ENOMEM
    assert m.pids() == []
    raises(errno.ESRCH, m.page_nodes, pid, X, P)
    assert m.free_pages().tolist() == [64, 2]      # node 0 never used, memory given back
    v = m.vmstat()
    assert (v["oom_kill"], v["numa_hit"], v["pgfault"]) == (1, 2, 3)


@pytest.mark.parametrize("cpu,mask,node", [
    (0, {1, 2}, 2),     # list of node 0: [0, 2, 1, 3]
    (0, {1, 3}, 1),
    (2, {0, 1}, 0),     # list of node 2: [2, 0, 3, 1]
    (3, {0, 2}, 2),     # list of node 3: [3, 1, 2, 0]
    (1, {0, 3}, 3),     # list of node 1: [1, 3, 0, 2]
    (1, {1, 2}, 1)])
def test_rule_20_bind_nearest_member(make, cpu, mask, node):
    # find_next_best_node on FOUR (all nodes have CPUs, penalty +1 everywhere):
    # N0: 2 (20*1024.. -> load2=1), 1 (30, load1=1), 3 (40, load3=1)
    # N1: 3 (21*1024+1, load3=2), 0 (32*1024, load0=1), 2 (load2=2)
    # N2: 0 (22*1024+1, load0=2), 3 (31*1024+2, load3=3), 1 (load1=2)
    # N3: 1 (22*1024+2, load1=3), 2 (32*1024+2, load2=3), 0
    m = make(FOUR)
    pid = m.spawn(cpu=cpu)
    m.mmap(pid, P, addr=X)
    m.mbind(pid, X, P, C.MPOL_BIND, mask)
    touch(m, pid, X, 1)
    assert nodes(m, pid, X, 1) == [node]
    assert stat(m, node)["numa_hit"] == 1


FALLBACK_CASES = [
    # RING: see tests/test_topology.py; node_load round-robins the equal-distance pairs
    (RING, ((0, 1, 3, 2), (1, 2, 0, 3), (2, 3, 1, 0), (3, 0, 2, 1))),
    # CXL: node 2 has no CPU (no penalty): N0 picks 2 (14) before 1; N1: 0 (23*1024) before
    # 2 (24*1024+1); N2: 0 (16*1024+1), then 1
    (CXL, ((0, 2, 1), (1, 0, 2), (2, 0, 1))),
    # node 0 has CPUs but no memory: its list holds memory nodes only, nearest first
    (MEMLESS, ((2, 1), (1, 2), (2, 1))),
    (FOUR, ((0, 2, 1, 3), (1, 3, 0, 2), (2, 0, 3, 1), (3, 1, 2, 0))),
]


@pytest.mark.parametrize("topo,lists", FALLBACK_CASES)
def test_rule_21_fallback_lists(make, machine_cls, topo, lists):
    if machine_cls is RefMachine:
        assert build_zonelists(RefTopology(**topo)) == lists
    else:
        import fastnuma
        assert tuple(map(tuple, fastnuma.Topology(**topo).fallback)) == lists
    # behaviour: a thread on each node's CPU fills memory in its list's order
    for node, order in enumerate(lists):
        cpus = topo["node_cpus"][node]
        if not cpus:
            continue
        m = make(topo)
        pid = m.spawn(cpu=cpus[0])
        n = sum(topo["node_pages"])
        m.mmap(pid, (n + 1) * P, addr=X)
        touch(m, pid, X, n)
        assert nodes(m, pid, X, n) == [k for k in order for _ in range(topo["node_pages"][k])]
        with pytest.raises(OutOfMemory):
            touch(m, pid, X + n * P, 1)


def test_rule_21_memoryless_cpu_node_counts(make):
    m = make(MEMLESS)
    pid = m.spawn(cpu=0)                        # node 0: no memory, list [2, 1]
    m.mmap(pid, P, addr=X)
    touch(m, pid, X, 1)
    assert nodes(m, pid, X, 1) == [2]
    # preferred zone = node 2 (first of the list): hit there, "other" (CPU on node 0)
    assert stat(m, 2) == dict(numa_hit=1, numa_miss=0, numa_foreign=0, interleave_hit=0,
                              local_node=0, other_node=1)


WM = dict(T2, node_pages=[10, 64], wmark_min=[4, 0], wmark_low=[8, 0], wmark_high=[9, 0])


@pytest.mark.parametrize("policy,n,expect,oom", [
    # low pass: free - 0 > 8 holds at 10 and 9 only; then node 1
    (None, 4, [0, 0, 1, 1], False),
    # BIND drains node 0 to min: 10,9 (low pass), 8,7,6,5 (min pass: > 4), then OOM
    ((C.MPOL_BIND, {0}), 7, [0] * 6, True),
    ((C.MPOL_PREFERRED, {0}), 4, [0, 0, 1, 1], False),
])
def test_rule_22_watermarks(make, policy, n, expect, oom):
    m = make(WM)
    pid = m.spawn(cpu=0)
    if policy:
        m.set_mempolicy(pid, *policy)
    m.mmap(pid, n * P, addr=X)
    if oom:
        with pytest.raises(OutOfMemory):
            touch(m, pid, X, n)
        assert m.free_pages().tolist() == [10, 64]
        assert m.vmstat()["numa_hit"] == len(expect)
        return
    touch(m, pid, X, n)
    assert nodes(m, pid, X, n) == expect


def test_rule_22_preferred_many_drains_to_min_then_local_list(make):
    # 3 uniform nodes: list of node 2 = [2, 0, 1]; node 0 (the set) drains to min (4), then
    # the second attempt walks the *local* node's list (2), not the set's neighbour (1)
    m = make(dict(T3, node_pages=[10, 64, 64], wmark_min=[4, 0, 0], wmark_low=[8, 0, 0],
                  wmark_high=[9, 0, 0]))
    pid = m.spawn(cpu=2)
    m.set_mempolicy(pid, C.MPOL_PREFERRED_MANY, {0})
    m.mmap(pid, 8 * P, addr=X)
    touch(m, pid, X, 8)
    assert nodes(m, pid, X, 8) == [0] * 6 + [2] * 2
    assert stat(m, 0)["numa_hit"] == 6 and stat(m, 0)["other_node"] == 6
    assert stat(m, 2)["numa_hit"] == 2 and stat(m, 2)["local_node"] == 2


THP_T = dict(T2, node_pages=[500, 4096])


@pytest.mark.parametrize("opts,advise,policy,expect", [
    # no direct reclaim (defrag madvise, VMA not madvised): node 0 only, then base page
    (dict(thp="always"), None, None, "base0"),
    (dict(thp="always", thp_defrag="never"), C.MADV_HUGEPAGE, None, "base0"),
    (dict(thp="always", thp_defrag="defer"), C.MADV_HUGEPAGE, None, "base0"),
    # direct reclaim allowed: retry with the normal fallback -> THP on node 1
    (dict(thp="always", thp_defrag="always"), None, None, "thp1"),
    (dict(thp="madvise"), C.MADV_HUGEPAGE, None, "thp1"),
    (dict(thp="always", thp_defrag="defer+madvise"), C.MADV_HUGEPAGE, None, "thp1"),
    # interleave: no node-only attempt; {0}: target 0 too small, normal fallback to 1
    (dict(thp="always"), None, (C.MPOL_INTERLEAVE, {0}), "thp1"),
    # BIND {1} does not admit the start node 0: allocated the standard way on node 1
    (dict(thp="always"), None, (C.MPOL_BIND, {1}), "thp1"),
    # not eligible at all
    (dict(thp="madvise"), None, None, "none"),
    (dict(thp="always"), C.MADV_NOHUGEPAGE, None, "none"),
])
def test_rule_23_thp_local_only_first(make, opts, advise, policy, expect):
    m = make(THP_T, **opts)
    pid = m.spawn(cpu=0)
    m.mmap(pid, HP, addr=X)
    if advise is not None:
        m.madvise(pid, X, HP, advise)
    if policy:
        m.set_mempolicy(pid, *policy)
    m.access(pid, X + 3 * P, write=True)
    got = nodes(m, pid, X, 512)
    v = m.vmstat()
    if expect == "thp1":
        assert got == [1] * 512
        assert (v["thp_fault_alloc"], v["thp_fault_fallback"]) == (1, 0)
        assert m.free_pages().tolist() == [500, 4096 - 512]
        assert v["numa_hit"] + v["numa_miss"] == 1            # a THP counts once
    else:
        assert got == [-1] * 3 + [0] + [-1] * 508
        assert v["thp_fault_alloc"] == 0
        assert v["thp_fault_fallback"] == (1 if expect == "base0" else 0)
        assert m.free_pages().tolist() == [499, 4096]
    assert v["pgfault"] == 1


def test_rule_23_thp_on_start_node_and_huge_zero_page(make):
    m = make(dict(T2, node_pages=[1024, 1024]), thp="always")
    pid = m.spawn(cpu=2)
    m.mmap(pid, 2 * HP, addr=X)
    m.access(pid, X, write=True)                     # THP on node 1 (the CPU's node)
    m.access(pid, X + HP + 7 * P)                    # read: huge zero page, no allocation
    assert nodes(m, pid, X, 1024) == [1] * 512 + [0] * 512
    assert m.free_pages().tolist() == [1024, 512]
    m.access(pid, X + HP + 9 * P, write=True)        # splits the zero PMD, one base page
    got = nodes(m, pid, X + HP, 512)
    assert got[9] == 1 and got.count(0) == 511
    v = m.vmstat()
    assert (v["thp_fault_alloc"], v["thp_split_pmd"], v["pgfault"], v["numa_hit"]) == \
        (1, 1, 3, 2)
    assert m.move_pages(pid, [X + HP, X + HP + 9 * P]).tolist() == [-errno.EFAULT, 1]


@pytest.mark.parametrize("mode,mask", [(C.MPOL_BIND, {1}), (C.MPOL_INTERLEAVE, {0, 1}),
                                       (C.MPOL_PREFERRED_MANY, {1}),
                                       (C.MPOL_PREFERRED | C.MPOL_F_STATIC_NODES, {1})])
def test_rule_24_set_mempolicy_default_removes(make, mode, mask):
    m = make(T2)
    pid = m.spawn(cpu=0)
    m.set_mempolicy(pid, mode, mask)
    assert m.get_mempolicy(pid)[0] == mode
    assert m.set_mempolicy(pid, C.MPOL_DEFAULT, []) is None
    assert m.get_mempolicy(pid) == (C.MPOL_DEFAULT, frozenset())
    m.mmap(pid, 2 * P, addr=X)
    touch(m, pid, X, 2)
    assert nodes(m, pid, X, 2) == [0, 0]
    assert m.numa_maps(pid) == f"{X:08x} default anon=2 dirty=2 N0=2 kernelpagesize_kB=4\n"


@pytest.mark.parametrize("vma_policy,expect", [
    (None, (C.MPOL_DEFAULT, frozenset())),               # no fallback to the task policy
    ((C.MPOL_INTERLEAVE, {0, 1}), (C.MPOL_INTERLEAVE, frozenset({0, 1}))),
    ((C.MPOL_BIND | C.MPOL_F_STATIC_NODES, {1, 5}),      # STATIC: the user mask as given
     (C.MPOL_BIND | C.MPOL_F_STATIC_NODES, frozenset({1, 5}))),
    ((C.MPOL_INTERLEAVE | C.MPOL_F_RELATIVE_NODES, {0, 3}),
     (C.MPOL_INTERLEAVE | C.MPOL_F_RELATIVE_NODES, frozenset({0, 3}))),
    ((C.MPOL_PREFERRED, None), (C.MPOL_LOCAL, frozenset())),
])
def test_rule_25_get_mempolicy_addr(make, vma_policy, expect):
    m = make(T2)
    pid = m.spawn()
    m.set_mempolicy(pid, C.MPOL_BIND, {1})
    m.mmap(pid, 4 * P, addr=X)
    if vma_policy:
        m.mbind(pid, X, 4 * P, *vma_policy)
    assert m.get_mempolicy(pid, X + 3 * P + 17, C.MPOL_F_ADDR) == expect
    unchanged(m, errno.EFAULT, m.get_mempolicy, pid, X + 4 * P, C.MPOL_F_ADDR)
    unchanged(m, errno.EFAULT, m.get_mempolicy, pid, X - 1, C.MPOL_F_ADDR)


def test_rule_25_relative_nodes_effective_set(make):
    m = make(T2)
    pid = m.spawn()
    m.mmap(pid, 2 * P, addr=X)
    # RELATIVE {0, 3} folds onto the 2 memory nodes: bits 0 and 1 -> nodes {0, 1}
    m.mbind(pid, X, 2 * P, C.MPOL_INTERLEAVE | C.MPOL_F_RELATIVE_NODES, {0, 3})
    touch(m, pid, X, 2)
    assert nodes(m, pid, X, 2) == [0, 1]
    assert m.numa_maps(pid).startswith(f"{X:08x} interleave=relative:0-1 anon=2")


def test_rule_25_shared_policy_is_seen_by_every_mapper(make):
    # one page per fault: with fault-around (tests/test_fault_around.py) the child's
    # reads would also map the neighbours already in the object
    m = make(T2, fault_around_bytes=P)
    pid = m.spawn()
    m.mmap(pid, 4 * P, C.MAP_SHARED | C.MAP_ANONYMOUS, addr=X)
    child = m.fork(pid)
    m.mbind(child, X + 2 * P, 2 * P, C.MPOL_BIND, {1})
    assert m.get_mempolicy(pid, X + 3 * P, C.MPOL_F_ADDR) == (C.MPOL_BIND, frozenset({1}))
    assert m.get_mempolicy(pid, X, C.MPOL_F_ADDR) == (C.MPOL_DEFAULT, frozenset())
    # the parent allocates under the tree: reads allocate too (no zero page for shmem)
    touch(m, pid, X, 2, write=False)
    touch(m, pid, X + 2 * P, 2, write=True)      # write faults dirty the pages
    assert nodes(m, pid, X, 4) == [0, 0, 1, 1]
    touch(m, child, X + 3 * P, 1, write=False)   # the child maps the same pages
    touch(m, child, X, 1, write=False)
    assert nodes(m, child, X, 4) == [0, -1, -1, 1]
    assert m.free_pages().tolist() == [62, 62]
    shm = " file=/dev/zero\\040(deleted)"
    # parent: one VMA (the split was the child's); policy = tree at vm_pgoff 0 -> task
    # policy; 4 pages, 2 dirty -> mapped=4; pages 0 and 3 are mapped twice
    assert m.numa_maps(pid) == (f"{X:08x} default{shm} dirty=2 mapped=4 mapmax=2 N0=2 "
                                f"N1=2 kernelpagesize_kB=4\n")
    # child: clean PTEs; page 3 is dirty (the parent's write fault marked it)
    assert m.numa_maps(child) == (f"{X:08x} default{shm} mapped=1 mapmax=2 N0=1 "
                                  f"kernelpagesize_kB=4\n"
                                  f"{X + 2 * P:08x} bind:1{shm} dirty=1 mapmax=2 N1=1 "
                                  f"kernelpagesize_kB=4\n")


@pytest.mark.parametrize("policy,expect", [
    (None, errno.EINVAL), ((C.MPOL_BIND, {1}), errno.EINVAL),
    ((C.MPOL_PREFERRED, {1}), errno.EINVAL), ((C.MPOL_LOCAL, None), errno.EINVAL),
    ((C.MPOL_PREFERRED_MANY, {0, 1}), errno.EINVAL),
    ((C.MPOL_INTERLEAVE, {1}), 1), ((C.MPOL_WEIGHTED_INTERLEAVE, {0, 1}), 0)])
def test_rule_26_get_mempolicy_node_without_addr(make, policy, expect):
    m = make(T2)
    pid = m.spawn()
    if policy:
        m.set_mempolicy(pid, *policy)
    if expect == errno.EINVAL:
        unchanged(m, errno.EINVAL, m.get_mempolicy, pid, 0, C.MPOL_F_NODE)
    else:
        assert m.get_mempolicy(pid, 0, C.MPOL_F_NODE) == expect


@pytest.mark.parametrize("kwargs,expect", [
    (dict(maxnode=2), errno.EINVAL),                 # 2 < nr_node_ids = 3
    (dict(maxnode=0), errno.EINVAL),
    (dict(maxnode=3), (C.MPOL_DEFAULT, frozenset())),
    (dict(maxnode=32770), errno.EINVAL),             # more than a page of mask
    (dict(addr=X), errno.EINVAL),                    # addr without MPOL_F_ADDR
    (dict(flags=8), errno.EINVAL),
    (dict(flags=C.MPOL_F_MEMS_ALLOWED | C.MPOL_F_NODE), errno.EINVAL),
    (dict(flags=C.MPOL_F_MEMS_ALLOWED | C.MPOL_F_ADDR, addr=X), errno.EINVAL),
    (dict(flags=C.MPOL_F_MEMS_ALLOWED), (0, frozenset({0, 1}))),   # node 2: no memory
])
def test_rule_27_get_mempolicy_arguments(make, kwargs, expect):
    m = make(dict(T3, node_pages=[64, 64, 0]))
    pid = mapped(m, 1)
    if isinstance(expect, int):
        unchanged(m, expect, m.get_mempolicy, pid, **kwargs)
    else:
        assert m.get_mempolicy(pid, **kwargs) == expect


def test_rule_28_query_statuses_and_zero_page(make):
    m = make(T2)
    pid = m.spawn(cpu=2)
    m.mmap(pid, 4 * P, addr=X)
    m.mbind(pid, X, 4 * P, C.MPOL_BIND, {0})
    m.access(pid, [X, X + P], write=np.array([True, False]))   # node 0; zero page
    q = [X, X + P + 5, X + 2 * P, X + 100 * P, X - 1]
    st = m.move_pages(pid, q)
    assert st.dtype == np.int64
    assert st.tolist() == [0, -errno.EFAULT, -errno.ENOENT, -errno.EFAULT, -errno.EFAULT]
    # NODE|ADDR read-faults the unpopulated page: zero page (node 0), no allocation
    free, faults = m.free_pages().tolist(), m.vmstat()["pgfault"]
    m.mbind(pid, X + 3 * P, P, C.MPOL_BIND, {1})
    assert m.get_mempolicy(pid, X + 3 * P, C.MPOL_F_NODE | C.MPOL_F_ADDR) == 0
    assert m.free_pages().tolist() == free and m.vmstat()["pgfault"] == faults + 1
    assert m.move_pages(pid, [X + 3 * P]).tolist() == [-errno.EFAULT]
    assert nodes(m, pid, X, 4) == [0, 0, -1, 0]
    unchanged(m, errno.EFAULT, m.get_mempolicy, pid, X + 4 * P,
              C.MPOL_F_NODE | C.MPOL_F_ADDR)


@pytest.mark.parametrize("bad", [2, 5, -1, 1024, 1 << 20])
def test_rule_29_move_pages_to_a_node_without_memory(make, bad):
    m = make(dict(T3, node_pages=[64, 64, 0]))
    pid = mapped(m, 3)
    # the pending run (page 0 -> node 1) is migrated first, then the call fails
    raises(errno.ENODEV, m.move_pages, pid, [X, X + P, X + 2 * P], [1, bad, 1])
    assert nodes(m, pid, X, 3) == [1, 0, 0]
    assert m.vmstat()["pgmigrate_success"] == 1
    before = snapshot(m)
    raises(errno.ENODEV, m.move_pages, pid, [X + P], bad)
    assert snapshot(m) == before


def test_rule_30_move_pages_per_page_statuses(make):
    m = make(T2)
    pid = mapped(m, 2)                           # p0, p1 on node 0
    child = m.fork(pid)                          # p0, p1 now shared
    m.mmap(pid, 2 * P, addr=X + 2 * P)
    touch(m, pid, X + 2 * P, 1)                  # p2: private, node 0
    tid = m.clone(pid, cpu=2)
    touch(m, tid, X + 3 * P, 1)                  # p3: private, node 1
    st = m.move_pages(pid, [X, X + P, X + 2 * P, X + 2 * P, X + 3 * P], 1)
    # shared -> -EACCES; p2 queued, listed again in the run -> -EBUSY (the run moves);
    # p3 already on node 1
    assert st.tolist() == [-errno.EACCES, -errno.EACCES, 1, -errno.EBUSY, 1]
    assert nodes(m, pid, X, 4) == [0, 0, 1, 1]
    assert m.vmstat()["pgmigrate_success"] == 1
    # already there is checked before the shared test
    assert m.move_pages(pid, [X], 0).tolist() == [0]
    # MOVE_ALL moves the shared page for both processes
    assert m.move_pages(pid, [X], [1], C.MPOL_MF_MOVE_ALL).tolist() == [1]
    assert nodes(m, child, X, 2) == [1, 0]
    assert m.vmstat()["pgmigrate_success"] == 2


def test_rule_31_move_pages_and_migrate_pages_enomem(make):
    m = make(dict(T2, node_pages=[64, 1]))
    pid = mapped(m, 3)
    # node 1 takes one page; the second destination fails: ENOMEM, the first stays moved
    raises(errno.ENOMEM, m.move_pages, pid, [X, X + P, X + 2 * P], 1)
    assert nodes(m, pid, X, 3) == [1, 0, 0]
    v = m.vmstat()
    assert (v["pgmigrate_success"], v["pgmigrate_fail"]) == (1, 1)
    m2 = make(dict(T2, node_pages=[64, 1]))
    pid2 = mapped(m2, 3)
    raises(errno.ENOMEM, m2.migrate_pages, pid2, {0}, {1})
    assert nodes(m2, pid2, X, 3) == [1, 0, 0]
    assert m2.free_pages().tolist() == [62, 0]


def test_rule_31_thp_split_gives_a_positive_count(make):
    m = make(dict(T2, node_pages=[2048, 300]), thp="always")
    pid = m.spawn(cpu=0)
    m.mmap(pid, HP, addr=X)
    m.access(pid, X, write=True)                 # a THP on node 0
    # the THP does not fit on node 1 (300 - 511 <= 0): split (PMD then folio), the base
    # pages move until node 1 is empty (300), the 301st fails: positive return, statuses
    # unwritten
    st = m.move_pages(pid, [X], 1)
    assert st.tolist() == [MOVE_PAGES_UNWRITTEN]
    assert nodes(m, pid, X, 512) == [1] * 300 + [0] * 212
    v = m.vmstat()
    assert (v["pgmigrate_success"], v["pgmigrate_fail"]) == (300, 1)
    assert (v["thp_migration_success"], v["thp_migration_fail"],
            v["thp_migration_split"]) == (0, 1, 1)
    assert (v["thp_split_pmd"], v["thp_split_page"]) == (1, 1)
    assert m.free_pages().tolist() == [2048 - 512 + 300, 0]


@pytest.mark.parametrize("old,new,expect", [
    (set(range(8)), {3, 4, 5}, [3, 4, 5, 3, 4, 5, 3, 4]),   # only 0,1,2,6,7 move
    ({2, 3, 4}, {3, 4, 5}, [0, 1, 3, 4, 5, 5, 6, 7]),      # 4->5, then 3->4, then 2->3
    ({0, 1}, {1, 0}, list(range(8))),                       # remap onto itself
    ({6}, {0}, [0, 1, 2, 3, 4, 5, 0, 7]),
])
def test_rule_32_migrate_pages_node_remap(make, old, new, expect):
    m = make(dict(node_pages=[16] * 8, node_cpus=[[c] for c in range(8)]))
    pid = m.spawn(cpu=0)
    m.mmap(pid, 8 * P, addr=X)
    for k in range(8):                           # page k on node k
        m.sched(pid, k)
        touch(m, pid, X + k * P, 1)
    assert m.migrate_pages(pid, old, new) == 0
    assert nodes(m, pid, X, 8) == expect
    assert m.vmstat()["pgmigrate_success"] == sum(a != b for a, b in
                                                 zip(range(8), expect))


def test_rule_32_migrate_pages_skips_shared_without_cap(make):
    m = make(T2)
    pid = mapped(m, 2, cap_sys_nice=False)
    child = m.fork(pid)
    m.mmap(pid, P, addr=X + 2 * P)
    touch(m, pid, X + 2 * P, 1)
    assert m.migrate_pages(pid, {0}, {1}) == 0   # MOVE: shared pages skipped, no failure
    assert nodes(m, pid, X, 3) == [0, 0, 1]
    unchanged(m, errno.EPERM, m.migrate_pages, pid, {0}, {1, 5})   # 5 has no memory
    other = m.spawn(uid=7, cap_sys_nice=False)
    unchanged(m, errno.EPERM, m.migrate_pages, pid, {0}, {1}, caller=other)
    assert m.migrate_pages(pid, {0}, {1}, caller=m.spawn(uid=7)) == 0   # CAP: MOVE_ALL
    assert nodes(m, child, X, 2) == [1, 1]


# ------------------------------------------------------------------ bad input
def busy_machine(make):
    """Two processes with private, shared and policied memory."""
    m = make(dict(T3, node_pages=[64, 64, 0]))
    pid = m.spawn(cpu=0)
    m.set_mempolicy(pid, C.MPOL_INTERLEAVE, {0, 1})
    m.mmap(pid, 4 * P, addr=X)
    m.mmap(pid, 2 * P, C.MAP_SHARED | C.MAP_ANONYMOUS, addr=X + 8 * P)
    m.mbind(pid, X + 2 * P, 2 * P, C.MPOL_BIND, {1})
    touch(m, pid, X, 4)
    touch(m, pid, X + 8 * P, 1)
    tid = m.clone(pid, cpu=1)
    child = m.fork(pid)
    return m, pid, tid, child


def bad_calls(pid, tid, child):
    E, B = errno, C
    return [
        # unknown pid / tid
        (E.ESRCH, "clone", (999,), {}), (E.ESRCH, "fork", (999,), {}),
        (E.ESRCH, "fork", (pid,), dict(tid=child)), (E.ESRCH, "exit", (999,), {}),
        (E.ESRCH, "sched", (999, 0), {}), (E.ESRCH, "tids", (999,), {}),
        (E.ESRCH, "mmap", (999, P), {}), (E.ESRCH, "munmap", (999, X, P), {}),
        (E.ESRCH, "madvise", (999, X, P, B.MADV_NORMAL), {}),
        (E.ESRCH, "access", (999, X), {}),
        (E.ESRCH, "mbind", (999, X, P, B.MPOL_BIND, {0}), {}),
        (E.ESRCH, "mbind", (pid, X, P, B.MPOL_BIND, {0}), dict(tid=child)),
        (E.ESRCH, "set_mempolicy", (999, B.MPOL_BIND, {0}), {}),
        (E.ESRCH, "get_mempolicy", (999,), {}),
        (E.ESRCH, "move_pages", (999, [X]), {}),
        (E.ESRCH, "move_pages", (pid, [X], 1), dict(caller=999)),
        (E.ESRCH, "migrate_pages", (999, {0}, {1}), {}),
        (E.ESRCH, "migrate_pages", (pid, {0}, {1}), dict(caller=999)),
        (E.ESRCH, "numa_maps", (999,), {}), (E.ESRCH, "page_nodes", (999, X, P), {}),
        # nodes and CPUs beyond the topology
        (E.EINVAL, "set_mempolicy", (tid, B.MPOL_BIND, {7}), {}),
        (E.EINVAL, "set_mempolicy", (tid, B.MPOL_BIND, {2}), {}),    # memoryless
        (E.EINVAL, "mbind", (pid, X, P, B.MPOL_PREFERRED, {1024}), {}),
        (E.ENODEV, "move_pages", (pid, [X], 7), {}),
        (E.ENODEV, "move_pages", (pid, [X + P, X], [1, -1]), {}),   # X+P: already on 1
        (E.EINVAL, "migrate_pages", (pid, {0}, {7}), {}),
        (E.EINVAL, "migrate_pages", (pid, {0}, {1 << 12}), {}),
        (E.EINVAL, "sched", (tid, 3), {}), (E.EINVAL, "spawn", (), dict(cpu=99)),
        (E.EINVAL, "clone", (pid,), dict(cpu=-1)),
        # negative or overflowing lengths
        (E.ENOMEM, "mmap", (pid, -P), {}), (E.ENOMEM, "mmap", (pid, (1 << 47) + P), {}),
        (E.EINVAL, "mmap", (pid, 0), {}),
        (E.EINVAL, "munmap", (pid, X, -P), {}), (E.EINVAL, "munmap", (pid, X, 0), {}),
        (E.EINVAL, "mbind", (pid, X, -P, B.MPOL_BIND, {0}), {}),
        (E.EINVAL, "madvise", (pid, X, -1, B.MADV_HUGEPAGE), {}),
        (E.EINVAL, "madvise", (pid, X, -2 * P, B.MADV_DONTNEED), {}),
        (E.EINVAL, "page_nodes", (pid, X, -P), {}),
        # addresses beyond 47 bits
        (E.ENOMEM, "mmap", (pid, P), dict(addr=1 << 47)),
        (E.ENOMEM, "mmap", (pid, 2 * P), dict(addr=(1 << 47) - P)),
        (E.EINVAL, "munmap", (pid, 1 << 47, P), {}),
        (E.EINVAL, "munmap", (pid, (1 << 47) - P, 2 * P), {}),
        # issue 18: Linux's do_mbind and madvise have no TASK_SIZE check (a hole there)
        (E.EFAULT, "mbind", (pid, 1 << 47, P, B.MPOL_BIND, {0}), {}),
        (E.EINVAL, "mbind", (pid, -P, P, B.MPOL_BIND, {0}), {}),
        (E.ENOMEM, "madvise", (pid, 1 << 48, P, B.MADV_HUGEPAGE), {}),
        (E.EFAULT, "access", (tid, 1 << 47), {}),
        (E.EFAULT, "access", (tid, [X, 1 << 62]), {}),
        (E.EFAULT, "get_mempolicy", (tid, 1 << 48, B.MPOL_F_ADDR), {}),
        (E.EINVAL, "page_nodes", (pid, 1 << 47, P), {}),
        # wrong types
        (TypeError, "mmap", (pid, 4096.0), {}), (TypeError, "mmap", (pid, "4096"), {}),
        (TypeError, "mmap", (pid, P), dict(addr=float(X))),
        (TypeError, "munmap", (pid, float(X), P), {}),
        (TypeError, "mbind", (pid, X, P, "bind", {0}), {}),
        (TypeError, "mbind", (pid, X, P, B.MPOL_BIND, "01"), {}),
        (TypeError, "mbind", (pid, X, P, B.MPOL_BIND, [0.0]), {}),
        (TypeError, "mbind", (pid, X, P, B.MPOL_BIND, 1.5), {}),
        (TypeError, "set_mempolicy", (tid, B.MPOL_BIND, {0.5}), {}),
        (TypeError, "set_mempolicy", (tid, 2.0, {0}), {}),
        (TypeError, "get_mempolicy", (tid, float(X), B.MPOL_F_ADDR), {}),
        (TypeError, "access", (tid, 1.5), {}),
        (TypeError, "access", (tid, np.array([1.5])), {}),
        (TypeError, "access", (tid, X), dict(write="yes")),
        (TypeError, "move_pages", (pid, [float(X)]), {}),
        (TypeError, "move_pages", (pid, [X], [1.0]), {}),
        (TypeError, "migrate_pages", (pid, "0", {1}), {}),
        (TypeError, "sched", (tid, 1.0), {}), (TypeError, "spawn", (), dict(cpu="0")),
        (TypeError, "madvise", (pid, X, P, 14.0), {}),
        (TypeError, "page_nodes", (pid, str(X), P), {}),
    ]


def test_bad_input_leaves_the_machine_unchanged(make):
    m, pid, tid, child = busy_machine(make)
    for err, name, args, kwargs in bad_calls(pid, tid, child):
        before = snapshot(m)
        if isinstance(err, int):
            with pytest.raises(OSError) as info:
                getattr(m, name)(*args, **kwargs)
            assert info.value.errno == err, (name, args, kwargs, info.value)
            if err == errno.EFAULT and name == "access":
                assert isinstance(info.value, SegmentationFault)
        else:
            with pytest.raises(err):
                getattr(m, name)(*args, **kwargs)
        assert snapshot(m) == before, (name, args, kwargs)


def test_bad_input_access_segfault_keeps_earlier_accesses(make):
    m, pid, tid, child = busy_machine(make)
    m.mmap(pid, 2 * P, addr=X + 16 * P)
    with pytest.raises(SegmentationFault) as info:
        m.access(tid, [X + 16 * P, X + 32 * P, X + 17 * P], write=True)
    assert info.value.errno == errno.EFAULT and info.value.index == 1
    assert nodes(m, pid, X + 16 * P, 2) == [0, -1]   # interleave {0, 1}: vpn 65552 even


# ------------------------------------------------------------------ docs/api.md contract
def test_contract_access_counts(make):
    m = make(T2)
    pid = m.spawn(cpu=0)
    m.mmap(pid, 4 * P, addr=X)
    m.mbind(pid, X + P, P, C.MPOL_BIND, {1})
    m.access(pid, [X, X + P, X + 2 * P], write=np.array([True, True, False]))
    counts = np.zeros((2, 2, 2), np.int64)
    counts[0, 0, 1] = counts[0, 1, 1] = counts[0, 0, 0] = 1     # zero page: node 0
    assert m.access_counts.tolist() == counts.tolist()
    assert (m.threads[pid].local, m.threads[pid].remote) == (2, 1)


def test_contract_mmap_top_down_and_merging(make):
    m = make(T2)
    pid = m.spawn()
    top = 0x7F0000000000
    assert m.mmap(pid, P) == top - P
    assert m.mmap(pid, 2 * P) == top - 3 * P                 # merges with the first
    assert m.mmap(pid, HP) == 0x7EFFFFC00000                 # 2 MiB aligned, highest fit
    assert m.mmap(pid, P) == top - 4 * P                     # merges again
    assert m.mmap(pid, P, C.MAP_SHARED | C.MAP_ANONYMOUS) == top - 5 * P   # never merges
    m.mbind(pid, top - 4 * P, 4 * P, C.MPOL_BIND, {1})
    assert m.mmap(pid, P) == top - 6 * P                     # no merge with shared
    assert m.numa_maps(pid) == ("7effffc00000 default\n7effffffa000 default\n"
                                "7effffffb000 default file=/dev/zero\\040(deleted)\n"
                                "7effffffc000 bind:1\n")
    unchanged(m, errno.EINVAL, m.mmap, pid, P, C.MAP_PRIVATE)       # not anonymous
    unchanged(m, errno.EINVAL, m.mmap, pid, P, C.MAP_PRIVATE | C.MAP_SHARED
              | C.MAP_ANONYMOUS)
    unchanged(m, errno.EINVAL, m.mmap, pid, P, C.MAP_PRIVATE | C.MAP_ANONYMOUS
              | C.MAP_HUGETLB)
    unchanged(m, errno.EINVAL, m.mmap, pid, P, addr=X + 1)


def test_contract_fork_copy_on_write(make):
    m = make(T2)
    pid = mapped(m, 2)                           # both pages on node 0
    child = m.fork(pid)
    m.sched(child, 2)
    touch(m, child, X, 1)                        # copy on node 1 (the child's node)
    touch(m, pid, X, 1)                          # mapped once now: reused, no allocation
    touch(m, pid, X + P, 1)                      # still mapped twice: copied on node 0
    assert nodes(m, pid, X, 2) == [0, 0] and nodes(m, child, X, 2) == [1, 0]
    assert m.free_pages().tolist() == [61, 63]
    assert m.vmstat()["pgfault"] == 5
    line = f"{X:08x} default anon=2 dirty=2 N0=1 N1=1 kernelpagesize_kB=4\n"
    assert m.numa_maps(child) == line
    m.exit(pid)
    assert m.free_pages().tolist() == [63, 63] and m.pids() == [child]


def test_contract_fork_does_not_copy_a_vma_with_only_zero_pages(make):
    # copy_page_range runs only for a VMA with an anon_vma; mapping the zero page does not
    # create one (do_anonymous_page), so the child starts without those PTEs
    m = make(T2)
    pid = mapped(m, 2, write=False)              # zero pages only
    m.mmap(pid, 2 * P, addr=X + 4 * P)
    m.access(pid, [X + 4 * P, X + 5 * P], write=np.array([False, True]))
    child = m.fork(pid)
    assert nodes(m, child, X, 2) == [-1, -1]
    assert nodes(m, child, X + 4 * P, 2) == [0, 0]           # zero page copied with it
    assert m.move_pages(child, [X, X + 4 * P]).tolist() == [-errno.ENOENT, -errno.EFAULT]
