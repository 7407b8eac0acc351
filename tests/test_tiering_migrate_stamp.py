"""docs/tiering.md S7 for every migration, not only NUMA balancing and demotion: a folio
moved between a slow and a top-tier node by move_pages, migrate_pages or mbind(MOVE)
with the TIERING bit set gets an unset cpupid field (Linux mm/migrate.c
folio_migrate_flags, called for every migration), so the slow tier's access time is
never read as a cpupid. And docs/linux-semantics.md §4.5 step 6: a cpupid field naming
a CPU the topology does not have has no node, so the two-stage filter refuses.
On the reference model and the engine (fixture ``tmake``)."""
import pytest

from fastnuma.constants import MPOL_BIND, MPOL_DEFAULT, MPOL_MF_MOVE

from tests.tiering_helpers import MS, NO_SCAN, PAGE, Space, arm, nodes, tmake, touch

__all__ = ["tmake"]

# node0 DRAM with CPU 0 (the task), node1 DRAM with CPU 1, node2 CXL (CPU-less: slow)
TOPO3 = dict(node_pages=[1 << 16, 1 << 16, 1 << 17], node_cpus=[[0], [1], []],
             distance=[[10, 12, 20], [12, 10, 20], [20, 20, 10]],
             wmark_min=[16, 16, 32], wmark_low=[32, 32, 64], wmark_high=[48, 48, 96])


def move_to_node1(m, pid, addr, how):
    if how == "move_pages":
        assert list(m.move_pages(pid, [addr], [1])) == [1]
    elif how == "migrate_pages":
        assert m.migrate_pages(pid, 1 << 2, 1 << 1) == 0
    else:
        m.mbind(pid, addr, PAGE, MPOL_BIND, 1 << 1, MPOL_MF_MOVE)
        m.mbind(pid, addr, PAGE, MPOL_DEFAULT, 0, 0)   # back to the default policy
    assert (nodes(m, pid, addr, 1) == 1).all()


def stamped_slow_page(tmake, stamp_ms):
    """One page of the task's on the CXL node, armed (so stamped) at ``stamp_ms``."""
    m = tmake(TOPO3, numa_balancing=3, **NO_SCAN)
    pid = m.spawn(cpu=0)
    a = Space(m, pid).region(1, node=2)
    m.advance(stamp_ms * MS)
    assert arm(m, pid, a, 1) == 1
    return m, pid, a


@pytest.mark.parametrize("how", ["move_pages", "migrate_pages", "mbind"])
def test_s7_user_migration_across_tiers_resets_the_stamp(tmake, how):
    # stamp 300 ms = 1 << 8 | 44: read as a cpupid it would name CPU 1 (node1), pid 44,
    # and the two-stage filter would refuse node0 (the last fault "came from" node1)
    m, pid, a = stamped_slow_page(tmake, 300)
    move_to_node1(m, pid, a, how)                      # slow -> top tier: field unset
    arm(m, pid, a, 1)
    touch(m, pid, a, 1)                                # CPU 0: unset cpupid, early life
    assert (nodes(m, pid, a, 1) == 0).all()
    s = m.task_numa_stats(pid)
    assert s["numa_pages_migrated"] == 1
    assert s["numa_faults_locality"] == [0, 1, 0]


def test_s7_without_the_tiering_bit_the_field_is_kept(tmake):
    # stamped in mode 3, moved in mode 1: the field (1325 ms = CPU 5, pid 45) is copied;
    # the topology has no CPU 5, so it names no node and the filter refuses node0
    m, pid, a = stamped_slow_page(tmake, 1325)
    m.set_numa_balancing(1)
    move_to_node1(m, pid, a, "move_pages")
    arm(m, pid, a, 1)
    touch(m, pid, a, 1)
    assert (nodes(m, pid, a, 1) == 1).all()
    s = m.task_numa_stats(pid)
    assert s["numa_pages_migrated"] == 0
    assert s["numa_faults_locality"] == [1, 0, 0]
    assert m.vmstat()["numa_hint_faults"] == 1
