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
