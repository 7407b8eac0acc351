"""fastnuma.invariants: holds on real machines (after calls and after a replay), and each
invariant is caught when the state is broken on purpose."""
import numpy as np
import pytest

import fastnuma as fn
from fastnuma.dtypes import FRAME_FREE, NS_HIT, PTE_NODE_SHIFT, PTE_NUMA, PTE_PRESENT, PTE_WRITE
from fastnuma.invariants import InvariantError, check, violations
from tests.test_replay import lazy_events, table, topo


def _machine():
    sim = fn.Simulator(topo())
    pid = sim.spawn(cpu=0)
    a = sim.mmap(pid, 256 * 4096)
    sim.access(sim.tids(pid)[0], a + np.arange(256, dtype=np.int64) * 4096, True)
    sim.clone(pid, cpu=2)
    sim.mbind(pid, a, 64 * 4096, fn.MPOL_BIND, 1 << 2, fn.MPOL_MF_MOVE)
    sim.page_cache_read(sim.tids(pid)[0], 10)
    return sim, pid, a


def test_a_real_machine_is_consistent():
    sim, _, _ = _machine()
    assert violations(sim) == []
    check(sim)
    sim2 = fn.Simulator(topo(), numa_balancing=1)
    sim2.replay(table(lazy_events(32, ts_step=1_000_000)))
    check(sim2)


def _mapped_pte(sim):
    flags = sim.pt.ptes["flags"]
    return int(np.flatnonzero((flags & PTE_PRESENT) & (sim.pt.ptes["frame"] >= 0))[0])


@pytest.mark.parametrize("break_it, needle", [
    (lambda sim: sim.machine.free.__setitem__(0, sim.machine.free[0] - 1), "pages in use"),
    (lambda sim: sim.machine.free.__setitem__(1, sim.machine.node_pages[1] + 5), "capacity"),
    (lambda sim: sim.machine.node_stats.__setitem__((0, NS_HIT),
                                               sim.machine.node_stats[0, NS_HIT] + 1),
     r"numa_hit \+ numa_miss"),
    (lambda sim: sim.pt.frames["flags"].__setitem__(
        sim.pt.ptes["frame"][_mapped_pte(sim)], FRAME_FREE), "freed frame"),
    (lambda sim: sim.pt.ptes["flags"].__setitem__(
        _mapped_pte(sim), (sim.pt.ptes["flags"][_mapped_pte(sim)] & 0xFF)
        | (7 << PTE_NODE_SHIFT)), "cached node"),
])
def test_each_invariant_catches_its_breakage(break_it, needle):
    sim, _, _ = _machine()
    break_it(sim)
    with pytest.raises(InvariantError, match=needle):
        check(sim)


def test_protection_invariant_holds_and_catches_its_breakage():
    """Entries agree with mprotect: a read-only VMA's are not writable, a PROT_NONE VMA's
    are protnone; breaking either is reported."""
    sim, pid, a = _machine()
    sim.mprotect(pid, a, 8 * 4096, fn.PROT_READ)
    sim.mprotect(pid, a + 8 * 4096, 8 * 4096, fn.PROT_NONE)
    check(sim)
    ptes = sim.pt.ptes
    asid = sim.procs[pid].asid
    b = int(sim.pt.blocks_of(asid, a >> 12, (a >> 12) + 1)[0])
    i = b * 512 + ((a >> 12) & 511)
    ptes["flags"][i] |= PTE_WRITE
    with pytest.raises(InvariantError, match="writable entry in the read-only VMA"):
        check(sim)
    ptes["flags"][i] &= ~np.uint32(PTE_WRITE)
    ptes["flags"][i + 8] &= ~np.uint32(PTE_NUMA)
    with pytest.raises(InvariantError, match="accessible entry in the PROT_NONE VMA"):
        check(sim)
