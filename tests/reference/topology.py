"""RefTopology and the node fallback order (linux-semantics.md §1.6).

Written from the spec and mm/page_alloc.c (build_zonelists, find_next_best_node); it does
not use fastnuma.topology. The model accepts any object with the attributes of
:class:`RefTopology` (node_pages, node_cpus, distance, wmark_min, wmark_low, wmark_high).
"""
from dataclasses import dataclass

from fastnuma.constants import MAX_NUMNODES

PENALTY_FOR_NODE_WITH_CPUS = 1      # generic value (include/linux/topology.h)
INT_MAX = (1 << 31) - 1


@dataclass(frozen=True)
class RefTopology:
    """The machine: per node its capacity (4 KiB pages, 0 = memoryless), its CPU ids
    (empty = CPU-less), the SLIT distance matrix (default 10 local / 20 remote) and the
    watermarks in pages (default 0)."""

    node_pages: tuple
    node_cpus: tuple
    distance: tuple = None
    wmark_min: tuple = None
    wmark_low: tuple = None
    wmark_high: tuple = None
    wmark_promo: tuple = None
    adistance: tuple = None

    def __post_init__(self):
        put = object.__setattr__
        n = len(self.node_pages)
        put(self, "node_pages", tuple(int(p) for p in self.node_pages))
        put(self, "node_cpus", tuple(tuple(int(c) for c in cs) for cs in self.node_cpus))
        if self.distance is None:
            put(self, "distance", tuple(tuple(10 if i == j else 20 for j in range(n))
                                        for i in range(n)))
        else:
            put(self, "distance", tuple(tuple(int(d) for d in row) for row in self.distance))
        for name in ("wmark_min", "wmark_low", "wmark_high"):
            value = getattr(self, name)
            put(self, name, (0,) * n if value is None else tuple(int(w) for w in value))
        if self.wmark_promo is None:        # Linux: promo = high + (high - low)
            put(self, "wmark_promo", tuple(2 * h - lo for lo, h in zip(self.wmark_low,
                                                                         self.wmark_high)))
        else:
            put(self, "wmark_promo", tuple(int(w) for w in self.wmark_promo))
        if self.adistance is not None:
            put(self, "adistance", tuple(int(a) for a in self.adistance))


def topology_arrays(topo):
    """Plain tuples from any topology-like object: (node_pages, node_cpus, distance,
    wmark_min, wmark_low, wmark_high); None watermarks read as 0."""
    n = len(topo.node_pages)
    pages = tuple(int(p) for p in topo.node_pages)
    cpus = tuple(tuple(int(c) for c in cs) for cs in topo.node_cpus)
    dist = getattr(topo, "distance", None)
    if dist is None:
        dist = tuple(tuple(10 if i == j else 20 for j in range(n)) for i in range(n))
    dist = tuple(tuple(int(d) for d in row) for row in dist)
    marks = []
    for name in ("wmark_min", "wmark_low", "wmark_high"):
        value = getattr(topo, name, None)
        marks.append((0,) * n if value is None else tuple(int(w) for w in value))
    return pages, cpus, dist, marks[0], marks[1], marks[2]


def find_next_best_node(node, used, pages, cpus, dist, node_load):
    """mm/page_alloc.c find_next_best_node(): the local node first (if it has memory),
    then the unused memory node with the smallest
    (distance + [n < node] + [n has CPUs]*PENALTY) * MAX_NUMNODES + node_load[n];
    a strict '<' in ascending id order breaks ties towards the lower id. -1 when none."""
    if node not in used and pages[node] > 0:
        used.add(node)
        return node
    best, min_val = -1, INT_MAX
    for n in range(len(pages)):
        if pages[n] <= 0 or n in used:
            continue
        val = dist[node][n] + (n < node)
        if cpus[n]:
            val += PENALTY_FOR_NODE_WITH_CPUS
        val = val * MAX_NUMNODES + node_load[n]
        if val < min_val:
            min_val, best = val, n
    if best >= 0:
        used.add(best)
    return best


def build_zonelists(topo):
    """linux-semantics.md §1.6 (build_all_zonelists -> build_zonelists per node, in node-id
    order, sharing one node_load[]): the fallback list of every node. A node's list holds
    only nodes with memory; the first node of a memory node's list is itself. When a pick's
    distance differs from the previous pick's, node_load[pick] += 1."""
    pages, cpus, dist, *_ = topology_arrays(topo)
    node_load = [0] * len(pages)
    lists = []
    for local in range(len(pages)):
        used, order, prev = set(), [], local
        while True:
            node = find_next_best_node(local, used, pages, cpus, dist, node_load)
            if node < 0:
                break
            if dist[local][node] != dist[local][prev]:
                node_load[node] += 1
            order.append(node)
            prev = node
        lists.append(tuple(order))
    return tuple(lists)
