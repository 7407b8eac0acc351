"""Fault-around on shared anonymous memory (docs/linux-semantics.md §1.8; Linux 6.12
mm/memory.c do_read_fault / should_fault_around / do_fault_around, mm/filemap.c
filemap_map_pages), on the reference model and the engine.

A read fault on a MAP_SHARED anonymous mapping first maps the object's pages already
present in a window of fault_around_bytes (default 65536: 16 pages), naturally aligned
in virtual address, clamped to the VMA (from_pte = max(ALIGN_DOWN(pte_off, nr), the VMA's
start); to_pte = min(from_pte + nr, the PTE table's end, the VMA's end)); only empty PTEs,
no allocation, no counter but the fault's pgfault. Write faults and private mappings do
not fault around."""
import numpy as np
import pytest

import fastnuma.constants as C

P = C.PAGE_SIZE
X = 0x10000000                 # 2 MiB-aligned: page 0 of a PTE table
T2 = dict(node_pages=[1024, 1024], node_cpus=[[0], [1]])
SHARED = C.MAP_SHARED | C.MAP_ANONYMOUS


def present(m, pid, addr, n):
    """Pages of [addr, addr + n pages) this process maps (page_flags PRESENT)."""
    flags = np.asarray(m.page_flags(pid, addr, n * P))
    return np.flatnonzero(flags & 1).tolist()


def touch(m, tid, pages, write, base=X):
    m.access(tid, base + np.asarray(pages, dtype=np.int64) * P, write)


def shared_pair(make, n=64, populated=range(0, 64, 3), addr=X, **knobs):
    """Process a maps n shared pages at ``addr`` and writes ``populated``; b is its fork
    (the object is shared; b maps none of its pages yet)."""
    m = make(T2, **knobs)
    a = m.spawn(cpu=0)
    assert m.mmap(a, n * P, SHARED, addr) == addr
    touch(m, a, list(populated), True, addr)
    b = m.fork(a)
    return m, a, b


def test_read_fault_maps_the_cached_neighbours_in_the_aligned_window(make):
    m, a, b = shared_pair(make)
    free, vm = m.free_pages().tolist(), m.vmstat()
    m.sched(b, 1)
    touch(m, b, [22], False)                  # window: pages 16..31 (16-page aligned)
    assert present(m, b, X, 64) == [18, 21, 22, 24, 27, 30]
    # 22 was not in the object: shmem_fault allocated it (b runs on node 1); the
    # neighbours are the parent's pages on node 0, mapped a second time, not moved
    assert m.free_pages().tolist() == [free[0], free[1] - 1]
    assert m.page_nodes(b, X + 16 * P, 16 * P).tolist() == \
        [0 if p in (18, 21, 24, 27, 30) else (1 if p == 22 else -1) for p in range(16, 32)]
    after = m.vmstat()
    assert after["pgfault"] == vm["pgfault"] + 1                 # one fault
    assert after["numa_hit"] == vm["numa_hit"] + 1               # one allocation
    same = ("pgmigrate_success", "numa_pte_updates", "numa_hint_faults", "thp_fault_alloc")
    assert [after[k] for k in same] == [vm[k] for k in same]
    assert "mapped=6 mapmax=2" in m.numa_maps(b)


def test_a_cached_faulting_page_maps_without_allocation(make):
    m, a, b = shared_pair(make)
    free = m.free_pages().tolist()
    numastat = m.numastat()
    touch(m, b, [3], False)                    # page 3 is the parent's: fault-around maps it
    assert present(m, b, X, 64) == [0, 3, 6, 9, 12, 15]
    assert m.free_pages().tolist() == free and m.numastat() == numastat
    touch(m, b, [4, 5, 6], False)              # 4 faults (allocates 4, window 0..15 full)
    assert present(m, b, X, 64) == [0, 3, 4, 5, 6, 9, 12, 15]
    # b faulted at 3, 4 and 5 (5 was not in the object at the fault at 4); 6 was mapped
    assert m.vmstat()["pgfault"] == 22 + 3


def test_write_faults_and_private_mappings_do_not_fault_around(make):
    m, a, b = shared_pair(make)
    touch(m, b, [21], True)                    # do_shared_fault: no fault-around
    assert present(m, b, X, 64) == [21]
    m2 = make(T2)
    p = m2.spawn(cpu=0)
    m2.mmap(p, 64 * P, C.MAP_PRIVATE | C.MAP_ANONYMOUS, X)
    touch(m2, p, range(0, 64, 3), True)
    m2.madvise(p, X, 64 * P, C.MADV_DONTNEED)
    touch(m2, p, [22], False)                  # do_anonymous_page: the zero page only
    assert present(m2, p, X, 64) == [22]


def test_the_window_is_clamped_to_the_vma(make):
    # a VMA starting at page 5 of its table: from_pte = max(0, 5) = 5, then 16 pages
    m, a, b = shared_pair(make, n=40, populated=range(40), addr=X + 5 * P)
    touch(m, b, [2], False, X + 5 * P)         # vpn page 7 of the table
    assert present(m, b, X + 5 * P, 40) == list(range(0, 16))      # table pages 5..20
    # the VMA's end cuts the window: 40 pages end at table page 45
    touch(m, b, [38], False, X + 5 * P)        # table page 43: window 32..47 -> 32..44
    assert present(m, b, X + 5 * P, 40) == list(range(0, 16)) + list(range(27, 40))


def test_the_window_stops_at_the_page_table(make):
    # 32 pages from table page 500: the fault at 510 may not cross into the next table
    m, a, b = shared_pair(make, n=32, populated=range(32), addr=X + 500 * P)
    touch(m, b, [10], False, X + 500 * P)       # table page 510: window 500..511
    assert present(m, b, X + 500 * P, 32) == list(range(0, 12))
    touch(m, b, [13], False, X + 500 * P)       # page 1 of the next table: window 0..15
    assert present(m, b, X + 500 * P, 32) == list(range(0, 28))


def test_present_and_hinting_ptes_are_left_alone(make):
    m, a, b = shared_pair(make, populated=range(64))
    touch(m, b, [0], False)                    # maps 0..15
    m.change_prot_numa(b, X, 16 * P)           # PROT_NONE hinting marks: PTEs not none
    flags = np.asarray(m.page_flags(b, X, 16 * P))
    m.madvise(b, X + 8 * P, 8 * P, C.MADV_DONTNEED)     # 8..15 gone from b (not the object)
    touch(m, b, [9], False)                    # maps 8..15 again, 0..7 keep their marks
    assert np.asarray(m.page_flags(b, X, 8 * P)).tolist() == flags[:8].tolist()
    assert present(m, b, X, 16) == list(range(16))
    assert "mapmax=2" in m.numa_maps(b)


def test_the_same_process_sees_its_own_pages_after_dontneed(make):
    m = make(T2)
    a = m.spawn(cpu=0)
    m.mmap(a, 32 * P, SHARED, X)
    touch(m, a, [1, 2, 7, 20], True)
    m.madvise(a, X, 32 * P, C.MADV_DONTNEED)   # the PTEs go; the object keeps its pages
    assert present(m, a, X, 32) == []
    touch(m, a, [2], False)
    assert present(m, a, X, 32) == [1, 2, 7]
    assert m.free_pages().tolist() == [1020, 1024]


def test_one_vma_cut_by_a_shared_policy_is_one_window(make):
    # b's VMA is one VMA; a's mbind puts a shared policy on pages 8..15 of the object
    # (the engine cuts b's kernel rows there): fault-around in b spans the cut
    m, a, b = shared_pair(make, populated=range(64))
    m.mbind(a, X + 8 * P, 8 * P, C.MPOL_BIND, {1})
    touch(m, b, [3], False)
    assert present(m, b, X, 64) == list(range(16))


def test_another_vma_of_the_object_is_outside_the_window(make):
    # b's own mbind splits its VMA at page 8: the window stops at the VMA's end
    m, a, b = shared_pair(make, populated=range(64))
    m.mbind(b, X + 8 * P, 8 * P, C.MPOL_BIND, {1})
    touch(m, b, [3], False)
    assert present(m, b, X, 64) == list(range(8))
    touch(m, b, [12], False)
    assert present(m, b, X, 64) == list(range(16))


@pytest.mark.parametrize("value,pages", [(4096, 1), (8191, 1), (8192, 2), (3 * 4096, 2),
                                         (1, 1), (65535, 8), (1 << 21, 512),
                                         ((1 << 21) + 4095, 512)])
def test_fault_around_bytes_rounds_down_to_a_power_of_two(make, value, pages):
    m, a, b = shared_pair(make, n=512, populated=range(512), fault_around_bytes=value)
    touch(m, b, [300], False)
    lo = 300 - 300 % pages
    assert present(m, b, X, 512) == list(range(lo, lo + pages))


@pytest.mark.parametrize("value", [0, -1, (1 << 21) + 4096, 1 << 30, 65536.0, True, "64k"])
def test_fault_around_bytes_out_of_range_is_rejected(make, value):
    with pytest.raises(ValueError):
        make(T2, fault_around_bytes=value)


def test_get_mempolicy_node_lookup_faults_around_too(make):
    m, a, b = shared_pair(make)
    assert m.get_mempolicy(b, X + 21 * P, C.MPOL_F_NODE | C.MPOL_F_ADDR) == 0
    assert present(m, b, X, 64) == [18, 21, 24, 27, 30]


def test_engine_knob_reads_back_as_linux_stores_it():
    import fastnuma as fn
    sim = fn.Simulator(fn.Topology(**T2), fault_around_bytes=100_000)
    assert sim.config.fault_around_bytes == 65536
    assert sim.config.describe()["fault_around_bytes"] == 65536
    with pytest.raises(ValueError, match="fault_around_bytes"):
        fn.Simulator(fn.Topology(**T2), fault_around_bytes=1 << 22)


def test_rule_25_program_with_the_default_window(make):
    # test_rules' shared-policy program, fault-around on: each of the child's two reads
    # maps the object's cached pages of its own VMA ([0, 2) and [2, 4))
    m = make(dict(node_pages=[64, 64], node_cpus=[[0, 1], [2, 3]]))
    pid = m.spawn()
    m.mmap(pid, 4 * P, SHARED, addr=X)
    child = m.fork(pid)
    m.mbind(child, X + 2 * P, 2 * P, C.MPOL_BIND, {1})
    touch(m, pid, [0, 1], False)
    touch(m, pid, [2, 3], True)
    touch(m, child, [3], False)
    assert m.page_nodes(child, X, 4 * P).tolist() == [-1, -1, 1, 1]
    touch(m, child, [0], False)
    assert m.page_nodes(child, X, 4 * P).tolist() == [0, 0, 1, 1]
    assert m.free_pages().tolist() == [62, 62]
    assert "mapped=2 mapmax=2" in m.numa_maps(child)


def test_a_read_only_vma_gets_read_only_ptes(make):
    # vm_page_prot of the faulting VMA: the child's mprotect(PROT_READ) splits its VMA;
    # fault-around there maps read-only PTEs, and stops at the VMA's end
    m, a, b = shared_pair(make, populated=range(64))
    m.mprotect(b, X, 8 * P, C.PROT_READ)
    touch(m, b, [2], False)
    flags = np.asarray(m.page_flags(b, X, 16 * P))
    assert (flags & 1).tolist() == [1] * 8 + [0] * 8         # PRESENT: VMA [0, 8)
    assert (flags & 4).tolist() == [0] * 16                  # no WRITE
    touch(m, b, [12], False)                                 # the writable VMA [8, 64)
    flags = np.asarray(m.page_flags(b, X, 16 * P))
    assert (flags[8:] & 5).tolist() == [5] * 8                 # PRESENT | WRITE
