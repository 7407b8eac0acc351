"""Ranges ending beyond TASK_SIZE (issue 18; docs/linux-semantics.md §2.1, docs/api.md),
on the model and the engine. Linux's checks, read in the kernel source:
- do_mbind: unaligned start or a wrapping end → EINVAL; no TASK_SIZE check: the part
  beyond the last VMA is a hole → EFAULT, except MPOL_DEFAULT (MPOL_MF_DISCONTIG_OK)
  which applies to the VMAs in the range and fails only when there is none;
- madvise (madvise_walk_vmas): no TASK_SIZE check: applies to the mapped parts, then
  ENOMEM for the hole;
- munmap (do_vmi_munmap): start > TASK_SIZE or len > TASK_SIZE - start → EINVAL;
- change_prot_numa (fastnuma's) checks as mbind."""
import errno

import numpy as np
import pytest

import fastnuma as fn

P = 4096
TASK_SIZE = 1 << 47
TOP = TASK_SIZE - 4 * P                  # a VMA of the last 4 pages below TASK_SIZE
TARGS = dict(node_cpus=[[0], [1]], node_pages=[1024, 1024])


def setup(make):
    m = make(TARGS)
    pid = m.spawn(cpu=0)
    assert m.mmap(pid, 4 * P, addr=TOP) == TOP
    m.access(m.tids(pid)[0], TOP + np.arange(4, dtype=np.int64) * P, True)
    return m, pid


def errno_of(call):
    with pytest.raises(OSError) as e:
        call()
    return e.value.errno


@pytest.mark.parametrize("length", [8 * P, (1 << 52), (1 << 63)])
def test_mbind_beyond_task_size_is_efault_and_changes_nothing(make, length):
    m, pid = setup(make)
    before = m.numa_maps(pid)
    assert errno_of(lambda: m.mbind(pid, TOP, length, fn.MPOL_BIND, {1},
                                    fn.MPOL_MF_MOVE)) == errno.EFAULT
    assert errno_of(lambda: m.mbind(pid, TASK_SIZE, P, fn.MPOL_BIND, {1})) == errno.EFAULT
    assert m.numa_maps(pid) == before
    assert list(m.page_nodes(pid, TOP, 4 * P)) == [0] * 4


def test_mbind_default_beyond_task_size_applies_to_the_vmas_there(make):
    m, pid = setup(make)
    m.mbind(pid, TOP, 4 * P, fn.MPOL_BIND, {1})
    m.mbind(pid, TOP, 8 * P, fn.MPOL_DEFAULT)              # the hole is tolerated
    assert m.get_mempolicy(m.tids(pid)[0], TOP, fn.MPOL_F_ADDR)[0] == fn.MPOL_DEFAULT
    assert errno_of(lambda: m.mbind(pid, TASK_SIZE, 8 * P, fn.MPOL_DEFAULT)) == errno.EFAULT


def test_mbind_and_madvise_wrapping_past_2_64_stay_einval(make):
    m, pid = setup(make)
    assert errno_of(lambda: m.mbind(pid, TOP, (1 << 64) - P, fn.MPOL_BIND, {1})) \
        == errno.EINVAL
    assert errno_of(lambda: m.madvise(pid, TOP, (1 << 64) - P, fn.MADV_DONTNEED)) \
        == errno.EINVAL


def test_madvise_beyond_task_size_applies_then_enomem(make):
    m, pid = setup(make)
    assert errno_of(lambda: m.madvise(pid, TOP + 2 * P, 1 << 40, fn.MADV_DONTNEED)) \
        == errno.ENOMEM
    assert list(m.page_nodes(pid, TOP, 4 * P)) == [0, 0, -1, -1]   # applied, then ENOMEM
    assert errno_of(lambda: m.madvise(pid, TASK_SIZE, P, fn.MADV_HUGEPAGE)) == errno.ENOMEM


def test_munmap_beyond_task_size_is_einval_and_unmaps_nothing(make):
    m, pid = setup(make)
    assert errno_of(lambda: m.munmap(pid, TOP, 8 * P)) == errno.EINVAL
    assert errno_of(lambda: m.munmap(pid, TASK_SIZE, P)) == errno.EINVAL
    assert list(m.page_nodes(pid, TOP, 4 * P)) == [0] * 4


def test_change_prot_numa_beyond_task_size_is_efault(make):
    m, pid = setup(make)
    assert errno_of(lambda: m.change_prot_numa(pid, TOP, 8 * P)) == errno.EFAULT
    tid = m.clone(pid, cpu=1)                      # two threads: every page is marked
    assert errno_of(lambda: m.change_prot_numa(pid, TOP, 8 * P, tid)) == errno.EFAULT
    assert m.change_prot_numa(pid, TOP, 4 * P, tid) == 4
