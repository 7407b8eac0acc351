"""fastnuma.BAD_ADDRESS: a node mask Linux cannot read (issue 18; docs/api.md,
docs/linux-semantics.md §2.1 step 2), on the model and the engine. get_nodes decrements
maxnode first: 0 left → the mask is not read (an empty set); more than a page of bits →
EINVAL before reading; else the read faults → EFAULT, after sanitize_mpol_flags (mbind,
set_mempolicy) and before everything else; nothing changes."""
import errno
import pickle

import numpy as np
import pytest

import fastnuma as fn

P = 4096
TARGS = dict(node_cpus=[[0], [1]], node_pages=[1024, 1024])
BAD = fn.BAD_ADDRESS


def setup(make):
    m = make(TARGS)
    pid = m.spawn(cpu=0)
    a = m.mmap(pid, 8 * P)
    m.access(m.tids(pid)[0], a + np.arange(8, dtype=np.int64) * P, True)
    return m, pid, a


def errno_of(call):
    with pytest.raises(OSError) as e:
        call()
    return e.value.errno


def test_mbind_with_an_unreadable_mask_is_efault_and_changes_nothing(make):
    m, pid, a = setup(make)
    before = m.numa_maps(pid)
    assert errno_of(lambda: m.mbind(pid, a, 8 * P, fn.MPOL_BIND, BAD, fn.MPOL_MF_MOVE)) \
        == errno.EFAULT
    # sanitize_mpol_flags runs first; flags, alignment and the range after get_nodes
    assert errno_of(lambda: m.mbind(pid, a, P, 99, BAD)) == errno.EINVAL
    assert errno_of(lambda: m.mbind(pid, a + 1, P, fn.MPOL_BIND, BAD)) == errno.EFAULT
    assert errno_of(lambda: m.mbind(pid, a, 0, fn.MPOL_BIND, BAD)) == errno.EFAULT
    assert m.numa_maps(pid) == before
    assert list(m.page_nodes(pid, a, 8 * P)) == [0] * 8


def test_maxnode_decides_whether_the_mask_is_read(make):
    m, pid, a = setup(make)
    tid = m.tids(pid)[0]
    m.set_mempolicy(tid, fn.MPOL_DEFAULT, BAD, maxnode=1)          # nothing read
    m.mbind(pid, a, P, fn.MPOL_LOCAL, BAD, maxnode=1)
    assert errno_of(lambda: m.set_mempolicy(tid, fn.MPOL_BIND, BAD, maxnode=0)) \
        == errno.EINVAL                                            # wraps: > a page
    assert errno_of(lambda: m.set_mempolicy(tid, fn.MPOL_BIND, BAD, maxnode=3)) \
        == errno.EFAULT
    assert errno_of(lambda: m.set_mempolicy(tid, fn.MPOL_BIND, BAD)) == errno.EFAULT
    assert m.get_mempolicy(tid)[0] == fn.MPOL_DEFAULT


def test_migrate_pages_with_an_unreadable_mask_is_efault_before_esrch(make):
    m, pid, a = setup(make)
    assert errno_of(lambda: m.migrate_pages(pid, BAD, {1})) == errno.EFAULT
    assert errno_of(lambda: m.migrate_pages(pid, {0}, BAD)) == errno.EFAULT
    assert errno_of(lambda: m.migrate_pages(999, BAD, {1})) == errno.EFAULT
    assert list(m.page_nodes(pid, a, 8 * P)) == [0] * 8


def test_bad_address_is_one_object():
    assert pickle.loads(pickle.dumps(BAD)) is BAD
    assert repr(BAD) == "fastnuma.BAD_ADDRESS"


# ---------------------------------------------------------------- move_pages (§3.3)
def test_move_pages_with_unreadable_pages_or_nodes_is_efault_and_changes_nothing(make):
    m, pid, a = setup(make)
    addrs = a + np.arange(4, dtype=np.int64) * P
    before = m.numa_maps(pid)
    # kernel_move_pages' checks first (flags, pid), then get_user of entry 0 faults
    assert errno_of(lambda: m.move_pages(pid, BAD, [1] * 4, 0x10)) == errno.EINVAL
    assert errno_of(lambda: m.move_pages(999, BAD, [1] * 4)) == errno.ESRCH
    assert errno_of(lambda: m.move_pages(pid, BAD)) == errno.EFAULT          # query
    assert errno_of(lambda: m.move_pages(pid, BAD, [1] * 4)) == errno.EFAULT
    assert errno_of(lambda: m.move_pages(pid, addrs, BAD)) == errno.EFAULT
    assert errno_of(lambda: m.move_pages(pid, BAD, BAD, nr_pages=3)) == errno.EFAULT
    assert m.numa_maps(pid) == before
    assert list(m.page_nodes(pid, a, 8 * P)) == [0] * 8
    # nr_pages 0: nothing is read or written (Linux returns 0)
    assert m.move_pages(pid, BAD, nr_pages=0).tolist() == []
    assert m.move_pages(pid, [], BAD).tolist() == []
    assert m.move_pages(pid, BAD, BAD, status=BAD, nr_pages=0).tolist() == []


def test_move_pages_query_with_an_unwritable_status_is_efault(make):
    m, pid, a = setup(make)
    addrs = a + np.arange(4, dtype=np.int64) * P
    assert errno_of(lambda: m.move_pages(pid, addrs, status=BAD)) == errno.EFAULT
    assert m.move_pages(pid, addrs).tolist() == [0] * 4


def test_unwritable_status_moves_the_first_run_then_efault(make):
    m, pid, a = setup(make)
    addrs = a + np.arange(4, dtype=np.int64) * P
    free = m.free_pages().tolist()
    # one run (all to node 1): queued, migrated at the end, then the store faults
    assert errno_of(lambda: m.move_pages(pid, addrs, [1] * 4, status=BAD)) == errno.EFAULT
    assert list(m.page_nodes(pid, a, 8 * P)) == [1] * 4 + [0] * 4
    assert m.free_pages().tolist() == [free[0] + 4, free[1] - 4]
    assert m.vmstat()["pgmigrate_success"] == 4


def test_unwritable_status_stops_at_the_first_store(make):
    m, pid, a = setup(make)
    addrs = a + np.arange(6, dtype=np.int64) * P
    # the target changes at entry 2: run [0, 2) moves, its statuses cannot be stored
    assert errno_of(lambda: m.move_pages(pid, addrs, [1, 1, 0, 1, 1, 1], status=BAD)) \
        == errno.EFAULT
    assert list(m.page_nodes(pid, a, 8 * P)) == [1, 1] + [0] * 6


def test_unwritable_status_at_a_page_not_queued_flushes_the_run_first(make):
    m, pid, a = setup(make)
    # entry 1 is unmapped (-ENOENT would be stored): out_flush moves entry 0's run
    addrs = [a, a + 64 * P, a + 2 * P]
    assert errno_of(lambda: m.move_pages(pid, addrs, [1, 1, 1], status=BAD)) == errno.EFAULT
    assert list(m.page_nodes(pid, a, 8 * P)) == [1, 0, 0, 0, 0, 0, 0, 0]
    # a page already on its target is not queued either: its status store faults
    assert errno_of(lambda: m.move_pages(pid, [a], [1], status=BAD)) == errno.EFAULT


def test_unwritable_status_keeps_enodev(make):
    m, pid, a = setup(make)
    addrs = a + np.arange(2, dtype=np.int64) * P
    # node 5 has no memory: -ENODEV, after the pending run moved (its store faulted)
    assert errno_of(lambda: m.move_pages(pid, addrs, [1, 5], status=BAD)) == errno.ENODEV
    assert list(m.page_nodes(pid, a, 8 * P)) == [1] + [0] * 7


def test_move_pages_output_and_count_arguments_are_typed(make):
    m, pid, a = setup(make)
    with pytest.raises(TypeError):
        m.move_pages(pid, [a], status=np.zeros(1))
    with pytest.raises(ValueError):
        m.move_pages(pid, [a], nr_pages=2)
    assert m.move_pages(pid, [a], nr_pages=1).tolist() == [0]


# ---------------------------------------------------------------- get_mempolicy (§3.2)
def test_get_mempolicy_unwritable_outputs_fault_after_the_lookup(make):
    m, pid, a = setup(make)
    tid = m.tids(pid)[0]
    m.set_mempolicy(tid, fn.MPOL_BIND, {1})
    assert errno_of(lambda: m.get_mempolicy(tid, mode=BAD)) == errno.EFAULT
    assert errno_of(lambda: m.get_mempolicy(tid, nodemask=BAD)) == errno.EFAULT
    # kernel_get_mempolicy's maxnode check and do_get_mempolicy's errors come first
    assert errno_of(lambda: m.get_mempolicy(tid, maxnode=1, nodemask=BAD)) == errno.EINVAL
    assert errno_of(lambda: m.get_mempolicy(tid, 0, 0x80, mode=BAD)) == errno.EINVAL
    assert errno_of(lambda: m.get_mempolicy(tid, a + 64 * P, fn.MPOL_F_ADDR, mode=BAD)) \
        == errno.EFAULT                                        # no VMA: do_get_mempolicy
    # put_user of the mode precedes copy_nodes_to_user's "more than a page" check
    assert errno_of(lambda: m.get_mempolicy(tid, maxnode=40000, mode=BAD)) == errno.EFAULT
    assert errno_of(lambda: m.get_mempolicy(tid, maxnode=40000, nodemask=BAD)) \
        == errno.EINVAL
    assert m.get_mempolicy(tid) == (fn.MPOL_BIND, frozenset({1}))


def test_get_mempolicy_node_lookup_takes_effect_before_efault(make):
    m, pid, a = setup(make)
    tid = m.tids(pid)[0]
    b = m.mmap(pid, 4 * P)
    vm = m.vmstat()["pgfault"]
    assert errno_of(lambda: m.get_mempolicy(tid, b, fn.MPOL_F_NODE | fn.MPOL_F_ADDR,
                                            mode=BAD)) == errno.EFAULT
    assert m.vmstat()["pgfault"] == vm + 1                    # lookup_node's read fault
    assert list(m.page_nodes(pid, b, 4 * P)) == [0, -1, -1, -1]   # the zero page


def test_get_mempolicy_maxnode_one_copies_no_byte(make):
    m = make(dict(node_cpus=[[0]], node_pages=[64]))
    pid = m.spawn(cpu=0)
    assert m.get_mempolicy(pid, maxnode=1, nodemask=BAD) == (fn.MPOL_DEFAULT, frozenset())
    assert errno_of(lambda: m.get_mempolicy(pid, maxnode=2, nodemask=BAD)) == errno.EFAULT
    with pytest.raises(TypeError):
        m.get_mempolicy(pid, mode=0)
