"""Memory protection (docs/linux-semantics.md §3.6, §9 items 56-60; docs/api.md
mprotect): mmap's prot=, mprotect's errnos and VMA splits and merges, access_error's
SIGSEGV, change_protection's entries, and what the NUMA code does with inaccessible VMAs.

Every test runs on the reference model and on the engine (``make``); expected values are
worked out from the Linux functions named in the comments, never taken from either
implementation.
"""
import errno

import numpy as np
import pytest

import fastnuma.constants as C
from fastnuma.errors import SegmentationFault

P = C.PAGE_SIZE
X = 0x10000000                 # 2 MiB aligned
HP = C.HPAGE_PMD_SIZE
MS = C.NSEC_PER_MSEC
T2 = dict(node_pages=[64, 64], node_cpus=[[0, 1], [2, 3]])
THP_T = dict(node_pages=[2048, 2048], node_cpus=[[0], [1]])
RW = C.PROT_READ | C.PROT_WRITE
FIXED = C.MAP_PRIVATE | C.MAP_ANONYMOUS | C.MAP_FIXED
PRESENT, NUMA, WRITE, HUGE, ZERO, DIRTY = 1, 2, 4, 8, 16, 32


def raises(err, fn, *args, **kwargs):
    with pytest.raises(OSError) as info:
        fn(*args, **kwargs)
    assert info.value.errno == err, info.value


def touch(m, tid, addr, n, write=True):
    m.access(tid, np.arange(n, dtype=np.int64) * P + addr, write=write)


def segv(m, tid, addr, write=False):
    """The access faults with SIGSEGV and counts no page fault (access_error comes first)."""
    before = m.vmstat()["pgfault"]
    with pytest.raises(SegmentationFault):
        m.access(tid, addr, write=write)
    assert m.vmstat()["pgfault"] == before


def flags(m, pid, addr, n):
    return m.page_flags(pid, addr, n * P).tolist()


def lines(m, pid):
    return [line.split()[0] for line in m.numa_maps(pid).splitlines()]


def pgfaults(m, fn):
    before = m.vmstat()["pgfault"]
    fn()
    return m.vmstat()["pgfault"] - before


def test_constants_have_linux_values():
    assert (C.PROT_NONE, C.PROT_READ, C.PROT_WRITE, C.PROT_EXEC, C.PROT_SEM) == (0, 1, 2, 4, 8)
    assert (C.PROT_GROWSDOWN, C.PROT_GROWSUP) == (0x01000000, 0x02000000)


def test_prot_none_mapping_is_a_vma_whose_accesses_segfault(make):
    m = make(T2)
    pid = m.spawn()
    m.mmap(pid, 4 * P, FIXED, addr=X, prot=C.PROT_NONE)
    assert lines(m, pid) == [f"{X:08x}"]
    segv(m, pid, X)
    segv(m, pid, X + P, write=True)
    assert flags(m, pid, X, 4) == [0] * 4            # nothing was faulted in


@pytest.mark.parametrize("prot,read_ok", [(C.PROT_READ, True), (C.PROT_WRITE, True),
                                          (C.PROT_EXEC, True), (C.PROT_NONE, False)])
def test_access_error_read_needs_an_accessible_vma_write_needs_vm_write(make, prot, read_ok):
    # x86 access_error: read, not present -> !vma_is_accessible (READ|WRITE|EXEC);
    # write -> !(vm_flags & VM_WRITE)
    m = make(T2)
    pid = m.spawn()
    m.mmap(pid, 2 * P, FIXED, addr=X, prot=prot)
    if read_ok:
        assert pgfaults(m, lambda: m.access(pid, X)) == 1       # the zero page
        assert flags(m, pid, X, 1) == [PRESENT | ZERO]
    else:
        segv(m, pid, X)
    if prot & C.PROT_WRITE:
        assert pgfaults(m, lambda: m.access(pid, X + P, write=True)) == 1
    else:
        segv(m, pid, X + P, write=True)
        segv(m, pid, X, write=True)                   # present read-only: no COW either


def test_mmap_ignores_unknown_prot_bits_and_merges_equal_protection_only(make):
    m = make(T2)
    pid = m.spawn()
    m.mmap(pid, P, FIXED, addr=X, prot=RW | 0x100)       # do_mmap: other bits ignored
    m.mmap(pid, P, FIXED, addr=X + P)                    # default read+write: merges
    assert lines(m, pid) == [f"{X:08x}"]
    m.mmap(pid, P, FIXED, addr=X + 2 * P, prot=C.PROT_READ)
    assert lines(m, pid) == [f"{X:08x}", f"{X + 2 * P:08x}"]


def test_mprotect_argument_errnos_in_do_mprotect_pkey_order(make):
    m = make(T2)
    pid = m.spawn()
    m.mmap(pid, 4 * P, FIXED, addr=X)
    m.mmap(pid, 2 * P, FIXED, addr=X + 8 * P)
    raises(errno.EINVAL, m.mprotect, pid, X, P, C.PROT_GROWSDOWN | C.PROT_GROWSUP)
    raises(errno.EINVAL, m.mprotect, pid, X + 1, P, C.PROT_READ)       # start & ~PAGE_MASK
    m.mprotect(pid, 0x1000, 0, 0x40)             # !len: 0 before prot or mappings are checked
    raises(errno.ENOMEM, m.mprotect, pid, X, (1 << 64) - P, C.PROT_READ)   # end <= start
    raises(errno.ENOMEM, m.mprotect, pid, X, (1 << 64) - 1, C.PROT_READ)   # PAGE_ALIGN: 0
    raises(errno.EINVAL, m.mprotect, pid, X, P, 0x10)                # arch_validate_prot
    m.mprotect(pid, X, P, C.PROT_READ | C.PROT_SEM)                  # PROT_SEM is valid
    raises(errno.ENOMEM, m.mprotect, pid, X + 4 * P, P, C.PROT_READ)    # no VMA
    raises(errno.ENOMEM, m.mprotect, pid, X - P, 2 * P, C.PROT_READ)    # vm_start > start
    raises(errno.EINVAL, m.mprotect, pid, X - P, 2 * P, C.PROT_READ | C.PROT_GROWSDOWN)
    raises(errno.EINVAL, m.mprotect, pid, X, P, C.PROT_READ | C.PROT_GROWSUP)
    raises(errno.ENOMEM, m.mprotect, pid, X - P, 2 * P, C.PROT_READ | C.PROT_GROWSUP)
    raises(errno.ENOMEM, m.mprotect, pid, 1 << 47, P, C.PROT_READ)    # beyond TASK_SIZE
    assert lines(m, pid) == [f"{X:08x}", f"{X + P:08x}", f"{X + 8 * P:08x}"]


def test_mprotect_hole_gives_enomem_after_changing_the_vmas_before_it(make):
    m = make(T2)
    pid = m.spawn()
    m.mmap(pid, 2 * P, FIXED, addr=X)
    m.mmap(pid, 2 * P, FIXED, addr=X + 4 * P)
    raises(errno.ENOMEM, m.mprotect, pid, X, 6 * P, C.PROT_READ)
    touch(m, pid, X, 1, write=False)
    segv(m, pid, X + P, write=True)                  # changed: before the hole
    touch(m, pid, X + 4 * P, 1)                      # not reached: still writable


def test_mprotect_splits_and_merges_vmas(make):
    m = make(T2)
    pid = m.spawn()
    m.mmap(pid, 8 * P, FIXED, addr=X)
    m.mprotect(pid, X + 2 * P, 2 * P, C.PROT_NONE)
    assert lines(m, pid) == [f"{X:08x}", f"{X + 2 * P:08x}", f"{X + 4 * P:08x}"]
    m.mprotect(pid, X + 2 * P, 2 * P, RW)            # vma_modify_flags merges both sides
    assert lines(m, pid) == [f"{X:08x}"]
    m.mprotect(pid, X, 8 * P, RW)                    # newflags == oldflags: nothing
    assert lines(m, pid) == [f"{X:08x}"]


def test_mprotect_split_beyond_max_map_count_is_enomem(make):
    m = make(T2, max_map_count=2)
    pid = m.spawn()
    m.mmap(pid, 8 * P, FIXED, addr=X)
    m.mprotect(pid, X, 2 * P, C.PROT_READ)           # 2 VMAs
    raises(errno.ENOMEM, m.mprotect, pid, X + 4 * P, P, C.PROT_READ)   # would make 4
    assert lines(m, pid) == [f"{X:08x}", f"{X + 2 * P:08x}"]


def test_vm_account_decides_merges(make):
    # mmap_region gives a private writable mapping VM_ACCOUNT; mprotect_fixup keeps it
    # when write goes, unless the VMA has no anon_vma yet; VMAs differing in it never merge
    m = make(T2)
    pid = m.spawn()
    m.mmap(pid, 2 * P, FIXED, addr=X)
    touch(m, pid, X, 1)                              # anon_vma
    m.mprotect(pid, X, 2 * P, C.PROT_READ)           # read-only, VM_ACCOUNT kept
    m.mmap(pid, P, FIXED, addr=X + 2 * P, prot=C.PROT_READ)   # read-only, no VM_ACCOUNT
    assert lines(m, pid) == [f"{X:08x}", f"{X + 2 * P:08x}"]
    m.mmap(pid, 2 * P, FIXED, addr=X + 8 * P)        # no page: VM_ACCOUNT dropped
    m.mprotect(pid, X + 8 * P, 2 * P, C.PROT_READ)
    m.mmap(pid, P, FIXED, addr=X + 10 * P, prot=C.PROT_READ)
    assert lines(m, pid)[2:] == [f"{X + 8 * P:08x}"]
    m.mprotect(pid, X + 2 * P, P, RW)                # gains VM_ACCOUNT: joins X's when RW
    m.mprotect(pid, X, 2 * P, RW)
    assert lines(m, pid)[:1] == [f"{X:08x}"] and len(lines(m, pid)) == 2


def test_prot_none_over_present_pages_and_back(make):
    m = make(T2)
    pid = m.spawn()
    m.mmap(pid, 4 * P, FIXED, addr=X)
    touch(m, pid, X, 4)
    assert flags(m, pid, X, 4) == [PRESENT | WRITE | DIRTY] * 4
    m.mprotect(pid, X + P, 2 * P, C.PROT_NONE)
    # change_protection: pte_modify(PAGE_NONE) -> protnone (x86 encodes it as the NUMA
    # hinting mark does), not writable, dirty kept; the pages stay mapped
    assert flags(m, pid, X, 4) == [PRESENT | WRITE | DIRTY] + [PRESENT | NUMA | DIRTY] * 2 \
        + [PRESENT | WRITE | DIRTY]
    assert m.page_nodes(pid, X, 4 * P).tolist() == [0] * 4
    segv(m, pid, X + P)
    segv(m, pid, X + 2 * P, write=True)
    m.access(pid, X)                                 # the neighbours are unaffected
    m.mprotect(pid, X + P, 2 * P, RW)
    # pte_modify drops protnone; MM_CP_TRY_CHANGE_WRITABLE: exclusive anonymous pages
    # are writable again, so the writes take no fault
    assert flags(m, pid, X, 4) == [PRESENT | WRITE | DIRTY] * 4
    assert pgfaults(m, lambda: touch(m, pid, X, 4)) == 0


def test_read_only_then_writable_cow_shared_pages_stay_write_protected(make):
    m = make(T2)
    pid = m.spawn()
    m.mmap(pid, 2 * P, FIXED, addr=X)
    touch(m, pid, X, 2)
    child = m.fork(pid)
    m.mprotect(pid, X, 2 * P, C.PROT_READ)
    segv(m, pid, X, write=True)                      # VM_WRITE first: no COW
    m.mprotect(pid, X, 2 * P, RW)
    # can_change_pte_writable: pages mapped by both processes are not exclusive
    assert flags(m, pid, X, 2) == [PRESENT | DIRTY] * 2
    assert pgfaults(m, lambda: touch(m, pid, X, 1)) == 1      # do_wp_page copies
    assert flags(m, child, X, 2) == [PRESENT | DIRTY] * 2


def test_zero_page_stays_read_only(make):
    m = make(T2)
    pid = m.spawn()
    m.mmap(pid, P, FIXED, addr=X)
    m.access(pid, X)                                 # the zero page
    m.mprotect(pid, X, P, C.PROT_READ)
    m.mprotect(pid, X, P, RW)
    assert flags(m, pid, X, 1) == [PRESENT | ZERO]
    assert pgfaults(m, lambda: m.access(pid, X, write=True)) == 1


def test_shared_memory_follows_vm_page_prot(make):
    m = make(T2)
    pid = m.spawn()
    m.mmap(pid, 2 * P, C.MAP_SHARED | C.MAP_ANONYMOUS | C.MAP_FIXED, addr=X,
           prot=C.PROT_READ)
    m.access(pid, X)
    assert flags(m, pid, X, 1) == [PRESENT]          # shmem read fault, read-only VMA
    segv(m, pid, X, write=True)
    m.mprotect(pid, X, 2 * P, RW)                    # PAGE_SHARED: writable, no write fault
    assert flags(m, pid, X, 1) == [PRESENT | WRITE]
    assert pgfaults(m, lambda: m.access(pid, X, write=True)) == 0


def test_writable_again_drops_numa_hinting_marks(make):
    m = make(T2)
    pid = m.spawn()
    m.mmap(pid, 2 * P, FIXED, addr=X)
    touch(m, pid, X, 2)
    m.sched(pid, 2)                                  # node 1: the pages are remote
    assert m.change_prot_numa(pid, X, 2 * P) == 2
    m.mprotect(pid, X, 2 * P, RW)                    # same flags: mprotect_fixup returns
    assert flags(m, pid, X, 2) == [PRESENT | NUMA | WRITE | DIRTY] * 2
    m.mprotect(pid, X, 2 * P, C.PROT_READ)           # pte_modify(PAGE_READONLY)
    assert flags(m, pid, X, 2) == [PRESENT | DIRTY] * 2
    before = m.vmstat()["numa_hint_faults"]
    touch(m, pid, X, 2, write=False)
    assert m.vmstat()["numa_hint_faults"] == before


def test_mbind_over_prot_none_sets_the_policy(make):
    m = make(T2)
    pid = m.spawn()
    m.mmap(pid, 4 * P, FIXED, addr=X, prot=C.PROT_NONE)
    m.mbind(pid, X, 4 * P, C.MPOL_BIND, {1})         # a VMA, not a hole: no EFAULT
    assert m.get_mempolicy(pid, X, C.MPOL_F_ADDR) == (C.MPOL_BIND, frozenset({1}))
    m.mprotect(pid, X, 4 * P, RW)
    touch(m, pid, X, 1)
    assert m.page_nodes(pid, X, P).tolist() == [1]


def test_lazy_mbind_and_change_prot_numa_skip_inaccessible_vmas(make):
    m = make(T2)
    pid = m.spawn()
    m.mmap(pid, 4 * P, FIXED, addr=X)
    touch(m, pid, X, 4)
    m.mprotect(pid, X, 2 * P, C.PROT_NONE)
    m.sched(pid, 2)
    # queue_pages_test_walk: change_prot_numa only where vma_is_accessible
    m.mbind(pid, X, 4 * P, C.MPOL_PREFERRED, {1}, C.MPOL_MF_LAZY)
    assert m.vmstat()["numa_pte_updates"] == 2
    assert m.change_prot_numa(pid, X, 2 * P) == 0
    assert m.get_mempolicy(pid, X, C.MPOL_F_ADDR)[0] == C.MPOL_PREFERRED


def test_mbind_move_and_move_pages_migrate_prot_none_pages(make):
    # queue_folios_pte_range takes pte_present entries (protnone is present) and
    # vma_migratable ignores protection; move_pages' folio_walk_start does too. The new
    # entry gets vm_page_prot: still inaccessible.
    m = make(T2)
    pid = m.spawn()
    m.mmap(pid, 4 * P, FIXED, addr=X)
    touch(m, pid, X, 4)
    m.mprotect(pid, X, 4 * P, C.PROT_NONE)
    m.mbind(pid, X, 2 * P, C.MPOL_BIND, {1}, C.MPOL_MF_MOVE)
    status = m.move_pages(pid, np.array([X + 2 * P, X + 3 * P]), np.array([1, 1]))
    assert status.tolist() == [1, 1]
    assert m.page_nodes(pid, X, 4 * P).tolist() == [1] * 4
    assert m.move_pages(pid, np.array([X])).tolist() == [1]
    assert flags(m, pid, X, 4) == [PRESENT | NUMA | DIRTY] * 4
    segv(m, pid, X)


def test_get_mempolicy_node_needs_vm_read(make):
    # lookup_node: get_user_pages_fast -> check_vma_flags: a read needs VM_READ
    m = make(T2)
    pid = m.spawn()
    m.mmap(pid, P, FIXED, addr=X, prot=C.PROT_NONE)
    m.mmap(pid, P, FIXED, addr=X + P, prot=C.PROT_WRITE)
    m.mmap(pid, P, FIXED, addr=X + 2 * P, prot=C.PROT_READ)
    raises(errno.EFAULT, m.get_mempolicy, pid, X, C.MPOL_F_NODE | C.MPOL_F_ADDR)
    raises(errno.EFAULT, m.get_mempolicy, pid, X + P, C.MPOL_F_NODE | C.MPOL_F_ADDR)
    assert m.get_mempolicy(pid, X + 2 * P, C.MPOL_F_NODE | C.MPOL_F_ADDR) == 0


def test_numa_scanner_skips_inaccessible_vmas(make):
    # task_numa_work: !vma_is_accessible -> continue, before the VMA costs any of the
    # scan's budget (scan_size 1 MB: 256 pages, virtpages 2048). A 4096-page PROT_NONE
    # VMA below the page would otherwise use up the whole first scan.
    m = make(T2, numa_balancing=1, numa_balancing_scan_size_mb=1,
             numa_balancing_scan_delay_ms=10, numa_balancing_scan_period_min_ms=10,
             numa_balancing_scan_period_max_ms=10)
    pid = m.spawn()
    m.mmap(pid, 4096 * P, FIXED, addr=X, prot=C.PROT_NONE)
    m.mmap(pid, P, FIXED, addr=X + 4096 * P)
    touch(m, pid, X + 4096 * P, 1)                   # node 0
    m.sched(pid, 2)                                  # the task on node 1
    m.advance(11 * MS)                               # the first scan (mm next scan 10 ms)
    assert m.vmstat()["numa_pte_updates"] == 1
    assert flags(m, pid, X + 4096 * P, 1) == [PRESENT | NUMA | WRITE | DIRTY]


def test_thp_changes_as_a_unit_and_splits_at_a_boundary(make):
    m = make(THP_T, thp="always")
    pid = m.spawn()
    m.mmap(pid, 2 * HP, FIXED, addr=X)
    touch(m, pid, X, 1)
    touch(m, pid, X + HP, 1)
    assert m.vmstat()["thp_fault_alloc"] == 2
    m.mprotect(pid, X, HP, C.PROT_NONE)              # change_huge_pmd: the whole PMD
    assert set(flags(m, pid, X, 512)) == {PRESENT | NUMA | HUGE | DIRTY}
    segv(m, pid, X + 5 * P)
    m.mprotect(pid, X + HP, 8 * P, C.PROT_READ)      # a VMA boundary inside: split
    assert m.vmstat()["thp_split_pmd"] == 1
    assert flags(m, pid, X + HP, 9) == [PRESENT | DIRTY] * 8 + [PRESENT | WRITE | DIRTY]
    m.mprotect(pid, X, HP, RW)
    assert set(flags(m, pid, X, 512)) == {PRESENT | WRITE | HUGE | DIRTY}
    assert pgfaults(m, lambda: touch(m, pid, X + 7 * P, 1)) == 0


def test_checkpoint_and_pickle_keep_protections(tmp_path):
    """Vma.prot and VM_ACCOUNT round-trip through save/load and pickling; a state saved
    before Vma had them (the field missing) loads with read+write and VM_ACCOUNT."""
    import pickle

    import fastnuma as fn
    from fastnuma.state_codec import decode_value, encode_value
    from fastnuma.vma import Vma
    sim = fn.Simulator(fn.Topology(**T2))
    pid = sim.spawn()
    sim.mmap(pid, 4 * P, FIXED, addr=X)
    touch(sim, pid, X, 4)
    sim.mprotect(pid, X + P, P, C.PROT_NONE)
    sim.mprotect(pid, X + 2 * P, P, C.PROT_READ)
    sim.save(tmp_path / "ck")
    for back in (fn.Simulator.load(tmp_path / "ck"), pickle.loads(pickle.dumps(sim))):
        assert [(v.start, v.prot, v.account) for v in back.procs[pid].vmas] == \
            [(v.start, v.prot, v.account) for v in sim.procs[pid].vmas]
        assert back.page_flags(pid, X, 4 * P).tolist() == sim.page_flags(pid, X, 4 * P).tolist()
        segv(back, pid, X + P)
        segv(back, pid, X + 2 * P, write=True)
        back.access(pid, X + 3 * P, write=True)
    packed = encode_value(Vma(1, 2, 0, 1, prot=C.PROT_READ, account=False))
    assert (packed["state"]["state"].pop("prot"), packed["state"]["state"].pop("account")) \
        == (C.PROT_READ, False)
    old = decode_value(packed)                       # as saved before the fields existed
    assert (old.start, old.end, old.prot, old.account) == (1, 2, RW, True)


def test_loading_rebuilds_the_kernels_vma_views(tmp_path):
    """A checkpoint written before the views carried VM_READ/WRITE/EXEC (simulated by
    clearing them in the saved view) loads into a machine whose accesses still work."""
    import fastnuma as fn
    from fastnuma.dtypes import VM_ACCESS_FLAGS
    sim = fn.Simulator(fn.Topology(**T2))
    pid = sim.spawn()
    sim.mmap(pid, 4 * P, FIXED, addr=X)
    touch(sim, pid, X, 2)
    view = sim.procs[pid].vmas.current_view()
    view["flags"] &= ~np.int32(VM_ACCESS_FLAGS)
    sim.save(tmp_path / "old")
    back = fn.Simulator.load(tmp_path / "old")
    touch(back, pid, X, 4)
    assert back.vmstat()["pgfault"] == sim.vmstat()["pgfault"] + 2


@pytest.mark.parametrize("thp", ["never", "always"])
def test_read_fault_without_zero_page_maps_read_only(make, thp):
    # do_anonymous_page: mk_pte(vm_page_prot), pte_mkwrite(pte_mkdirty()) only with
    # VM_WRITE; the THP fault's maybe_pmd_mkwrite likewise (its PMD is always dirty)
    m = make(THP_T, zero_page=False, thp=thp)
    pid = m.spawn()
    m.mmap(pid, HP, FIXED, addr=X, prot=C.PROT_READ)
    m.access(pid, X)
    if thp == "never":
        assert flags(m, pid, X, 1) == [PRESENT]
        assert "dirty" not in m.numa_maps(pid)
    else:
        assert set(flags(m, pid, X, 512)) == {PRESENT | HUGE | DIRTY}
    segv(m, pid, X, write=True)
    m.mprotect(pid, X, HP, RW)                       # exclusive: writable again
    assert pgfaults(m, lambda: m.access(pid, X, write=True)) == 0
    assert flags(m, pid, X, 1)[0] & (WRITE | DIRTY) == WRITE | DIRTY
