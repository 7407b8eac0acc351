"""The bundled example: a 4-socket machine, one process, policies, faults and migrations.

Run with ``python -m fastnuma demo``. It builds the machine, lets one thread first-touch a
shared array (every page lands on its node), re-homes the array with mbind MOVE, lets the
workers read their parts, and prints what Linux would report.
"""
import numpy as np

from .constants import MPOL_BIND, MPOL_INTERLEAVE, MPOL_MF_MOVE, PAGE_SIZE
from .engine import Simulator
from .topology import Topology


def run_demo(n_pages=1 << 16, out=print):
    """Run the example and print its counters; returns the simulator."""
    topo = Topology.four_socket(pages_per_node=1 << 18)
    sim = Simulator(topo, thp="never")
    pid = sim.spawn(cpu=0)
    workers = [pid] + [sim.clone(pid, cpu=topo.node_cpus[n][0]) for n in range(1, 4)]
    base = sim.mmap(pid, n_pages * PAGE_SIZE)
    pages = base + PAGE_SIZE * np.arange(n_pages, dtype=np.int64)

    sim.access(pid, pages, write=True)                      # thread 0 initialises it all
    out("after initialisation by thread 0 (node 0):")
    out("  " + sim.numa_maps(pid).strip())

    sim.mbind(pid, base, n_pages * PAGE_SIZE, MPOL_INTERLEAVE, {0, 1, 2, 3}, MPOL_MF_MOVE)
    out("mbind(MPOL_INTERLEAVE {0-3}, MPOL_MF_MOVE) moves nothing: every page is already on a")
    out("node of the mask, and MOVE only moves misplaced pages (queue_folios_pte_range):")
    out("  " + sim.numa_maps(pid).strip())

    quarter = n_pages // 4
    for node in range(4):                                   # each quarter to its worker
        sim.mbind(pid, base + node * quarter * PAGE_SIZE, quarter * PAGE_SIZE, MPOL_BIND,
                  {node}, MPOL_MF_MOVE)
    out("after mbind(MPOL_BIND {n}, MPOL_MF_MOVE) of quarter n to node n:")
    for line in sim.numa_maps(pid).splitlines():
        out("  " + line)
    for node, tid in enumerate(workers):                    # each worker reads its quarter
        sim.access(tid, pages[node * quarter:(node + 1) * quarter])
    for tid in workers:
        t = sim.threads[tid]
        out(f"  thread {tid} on node {topo.cpu_node[t.cpu]}: {t.local} local, "
            f"{t.remote} remote accesses")

    status = sim.move_pages(pid, pages[::quarter])
    out(f"move_pages query of each quarter's first page -> {status.tolist()}")
    vm = sim.vmstat()
    out("vmstat:")
    for name in ("numa_hit", "numa_miss", "numa_foreign", "numa_interleave", "numa_local",
                 "numa_other", "pgfault", "pgmigrate_success", "pgmigrate_fail"):
        out(f"  {name:<20} {vm[name]}")
    out("numastat (per node):")
    for node, counters in sim.numastat().items():
        out(f"  node{node}: " + " ".join(f"{k}={v}" for k, v in counters.items()))
    return sim
