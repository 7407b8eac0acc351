"""fastnuma.invariants: holds on real machines (after calls and after a replay), and each
invariant is caught when the state is broken on purpose."""
import numpy as np
import pytest

import fastnuma as fn
from fastnuma.dtypes import FRAME_FREE, NS_HIT, PTE_NODE_SHIFT, PTE_PRESENT
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
