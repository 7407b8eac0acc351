"""Shared setup of the tiering rule tests (docs/tiering.md §12): the machine of the
scenarios and helpers that place pages through the public API only."""
import numpy as np
import pytest

from fastnuma.constants import MADV_HUGEPAGE, MPOL_BIND, MPOL_DEFAULT

MS = 1_000_000
PAGE = 4096
HP = 512 * PAGE
# node0 DRAM 4 GiB with the CPUs, node1 CXL 8 GiB CPU-less (adistance 2880 by default);
# the watermarks of docs/tiering.md W3
MIN, LOW, HIGH, PROMO = (1182, 2364), (2230, 4461), (3278, 6558), (4326, 8655)
TOPO = dict(node_pages=[1 << 20, 1 << 21], node_cpus=[[0, 1], []],
            distance=[[10, 14], [14, 10]], wmark_min=list(MIN), wmark_low=list(LOW),
            wmark_high=list(HIGH), wmark_promo=list(PROMO))
ROOM = PROMO[0] + (1 << 18)        # P4: node0 has room above this many free pages
NO_SCAN = dict(numa_balancing_scan_delay_ms=1 << 30)   # arm with change_prot_numa only


@pytest.fixture
def tmake(make, machine_cls, request):
    """``make`` for the tiering tests: the model must pass; the engine gets memory
    tiering in phase 2, until then its parameter is a strict xfail."""
    if machine_cls.__name__ != "RefMachine":
        request.node.add_marker(pytest.mark.xfail(reason="engine tiering lands in phase 2",
                                                  strict=True))

    def build(topology_kwargs=None, **opts):
        return make(TOPO if topology_kwargs is None else topology_kwargs,
                    **{"thp": "madvise", **opts})
    return build


class Space:
    """Hands out disjoint, 2 MiB-aligned address ranges of one process."""

    def __init__(self, m, pid, base=1 << 32):
        self.m, self.pid, self.next = m, pid, base

    def region(self, pages, node=None, thp=False, touch=True):
        """Map ``pages`` pages; THP-advise them (one write per 2 MiB) or write every
        page; with ``node`` the first thread allocates under BIND {node}."""
        m, pid = self.m, self.pid
        addr = self.next
        length = pages * PAGE
        self.next += -(-length // HP) * HP + HP
        m.mmap(pid, length, addr=addr)
        if thp:
            m.madvise(pid, addr, length, MADV_HUGEPAGE)
        if touch:
            if node is not None:
                m.set_mempolicy(pid, MPOL_BIND, [node])
            step = HP if thp else PAGE
            m.access(pid, addr + np.arange(0, length, step, dtype=np.int64), write=True)
            if node is not None:
                m.set_mempolicy(pid, MPOL_DEFAULT)
        return addr

    def fill_to(self, node, free, low):
        """Allocate on ``node`` until exactly ``free`` pages stay free: THPs while they
        keep the node well above its low mark, base pages for the rest. Returns the
        regions (THP region or None, base region or None)."""
        cur = int(self.m.free_pages()[node])
        thps = max(0, (cur - max(free, low + 1024)) // 512)
        a = self.region(thps * 512, node, thp=True) if thps else None
        rest = int(self.m.free_pages()[node]) - free
        b = self.region(rest, node) if rest > 0 else None
        assert int(self.m.free_pages()[node]) == free
        return a, b


def arm(m, pid, addr, pages):
    """Arm [addr, addr + pages) for hinting as the process's thread would (a scan)."""
    return m.change_prot_numa(pid, addr, pages * PAGE)


def touch(m, pid, addr, pages, step=PAGE):
    m.access(pid, addr + np.arange(0, pages * PAGE, step, dtype=np.int64))


def nodes(m, pid, addr, pages):
    return np.asarray(m.page_nodes(pid, addr, pages * PAGE))
