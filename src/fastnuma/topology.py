"""The simulated machine: nodes, CPUs, SLIT distances, watermarks and the fallback order.

`Topology` is frozen and validated once. Its ``fallback`` lists are the zonelists of
docs/linux-semantics.md §1.6, built as Linux builds them at boot (mm/page_alloc.c
``__build_all_zonelists`` -> ``build_zonelists`` -> ``find_next_best_node``).
"""
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .constants import MAX_NUMNODES, MAX_SIM_NODES, PAGE_SIZE

__all__ = ["Topology", "LOCAL_DISTANCE", "REMOTE_DISTANCE", "MAX_DISTANCE",
           "PENALTY_FOR_NODE_WITH_CPUS", "NR_CPUS_MAX"]

LOCAL_DISTANCE = 10               # include/linux/topology.h
REMOTE_DISTANCE = 20              # include/linux/topology.h: the default remote distance
MAX_DISTANCE = 255                # a SLIT entry is a u8 (numa_set_distance rejects the rest)
PENALTY_FOR_NODE_WITH_CPUS = 1    # include/linux/topology.h, generic value (x86 keeps it)
NR_CPUS_MAX = 8192                # x86-64 CONFIG_NR_CPUS upper bound (MAXSMP): CPU ids < this
MAX_PAGES = 2**63 - 1             # capacities and watermarks are int64 inside the kernels
UNKNOWN_DISTANCE = MAX_DISTANCE   # node ids missing from numactl/sysfs input (ACPI: unreachable)


def _is_int(x):
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _int_vector(value, name):
    """Return a sequence or 1-D integer array as a tuple of Python ints (TypeError otherwise)."""
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return ()
        if value.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got an array of shape {value.shape}")
        if value.dtype.kind not in "iu":
            raise TypeError(f"{name} must hold integers, got an array of dtype {value.dtype}")
        return tuple(int(v) for v in value.tolist())
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a sequence of ints, got {type(value).__name__}")
    for i, v in enumerate(value):
        if not _is_int(v):
            raise TypeError(f"{name}[{i}] must be an int, got {v!r} ({type(v).__name__})")
    return tuple(int(v) for v in value)


def _rows(value, name):
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of sequences, got {type(value).__name__}")
    return [(f"{name}[{i}]", row) for i, row in enumerate(value)]


def _check_range(name, value, lo, hi, what=""):
    if not _is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    if not lo <= value <= hi:
        raise ValueError(f"{name} = {value}{what}; allowed range is {lo}..{hi}")
    return int(value)


def _normalise_cpus(node_cpus, n):
    rows = _rows(node_cpus, "node_cpus")
    if len(rows) != n:
        raise ValueError(f"node_cpus has {len(rows)} entries but node_pages has {n}; "
                         "give one CPU list per node")
    owner, out = {}, []
    for node, (name, row) in enumerate(rows):
        ids = _int_vector(row, name)
        for cpu in ids:
            _check_range(f"CPU id in {name}", cpu, 0, NR_CPUS_MAX - 1)
            if cpu in owner:
                raise ValueError(f"CPU {cpu} is listed on node {owner[cpu]} and again on node "
                                 f"{node}; each CPU id must belong to exactly one node")
            owner[cpu] = node
        out.append(tuple(sorted(ids)))
    if not owner:
        raise ValueError("no node has a CPU; a topology needs at least one CPU")
    cpu_node = tuple(owner.get(cpu, -1) for cpu in range(max(owner) + 1))
    return tuple(out), cpu_node


def _normalise_distance(distance, n):
    if distance is None:
        return tuple(tuple(LOCAL_DISTANCE if i == j else REMOTE_DISTANCE for j in range(n))
                     for i in range(n))
    if isinstance(distance, np.ndarray) and distance.ndim != 2:
        raise ValueError(f"distance must be an n x n matrix with n = {n}, got shape "
                         f"{distance.shape}")
    rows = tuple(_int_vector(row, name) for name, row in _rows(distance, "distance"))
    if len(rows) != n:
        raise ValueError(f"distance has {len(rows)} rows; expected an n x n matrix with n = {n} "
                         "(one row per node)")
    for i, row in enumerate(rows):
        if len(row) != n:
            raise ValueError(f"distance[{i}] has {len(row)} entries; expected {n} (one per node)")
        for j, d in enumerate(row):
            # x86 numa_set_distance(): local must be LOCAL_DISTANCE, values are u8;
            # ACPI slit_valid(): a remote entry must exceed LOCAL_DISTANCE.
            if i == j and d != LOCAL_DISTANCE:
                raise ValueError(f"distance[{i}][{i}] = {d}; a node's distance to itself must "
                                 f"be {LOCAL_DISTANCE} (LOCAL_DISTANCE)")
            if i != j and not LOCAL_DISTANCE < d <= MAX_DISTANCE:
                raise ValueError(f"distance[{i}][{j}] = {d}; a remote distance must be in "
                                 f"{LOCAL_DISTANCE + 1}..{MAX_DISTANCE}")
    return rows


def _normalise_wmarks(pages, wmarks):
    n = len(pages)
    out = []
    for name, value in wmarks:
        v = (0,) * n if value is None else _int_vector(value, name)
        if len(v) != n:
            raise ValueError(f"{name} has {len(v)} entries; expected {n} (one per node)")
        out.append(v)
    for node, (mn, lo, hi) in enumerate(zip(*out)):
        if not 0 <= mn <= lo <= hi <= pages[node]:
            raise ValueError(f"node {node}: watermarks must satisfy 0 <= wmark_min <= wmark_low "
                             f"<= wmark_high <= node_pages, got wmark_min={mn} wmark_low={lo} "
                             f"wmark_high={hi} node_pages={pages[node]}")
    return out


def _find_next_best_node(node, used, distance, has_memory, has_cpus, node_load):
    """Next node of ``node``'s fallback list, or -1: mm/page_alloc.c find_next_best_node()."""
    # Since v6.8 ("mm: page_alloc: skip memoryless nodes entirely") the local node comes
    # first only if it has memory (node_state(node, N_MEMORY)).
    if not used[node] and has_memory[node]:
        used[node] = True
        return node
    best, min_val = -1, None
    for n in range(len(distance)):               # for_each_node_state(n, N_MEMORY)
        if not has_memory[n] or used[n]:
            continue
        val = distance[node][n]                  # node_distance(node, n): row = source node
        val += int(n < node)                     # "prefer the next node"
        if has_cpus[n]:                          # nodes WITH CPUs are penalised, so a CPU-less
            val += PENALTY_FOR_NODE_WITH_CPUS    # (CXL) node wins a distance tie
        val = val * MAX_NUMNODES + node_load[n]
        if min_val is None or val < min_val:     # strict <: ties go to the lowest id
            best, min_val = n, val
    if best >= 0:
        used[best] = True
    return best


def _build_all_zonelists(distance, has_memory, has_cpus):
    """Fallback list of every node: mm/page_alloc.c __build_all_zonelists().

    One pass over all nodes in id order; ``node_load`` is zeroed once per pass and shared by
    every build_zonelists() call, so equal-distance groups round-robin between source nodes.
    """
    n = len(distance)
    node_load = [0] * n
    lists = []
    for local in range(n):
        used, order, prev = [False] * n, [], local
        while (node := _find_next_best_node(local, used, distance, has_memory, has_cpus,
                                            node_load)) >= 0:
            # build_zonelists(): penalise the first node of each new distance group
            if distance[local][node] != distance[local][prev]:
                node_load[node] += 1
            order.append(node)
            prev = node
        lists.append(tuple(order))
    return tuple(lists)


@dataclass(frozen=True, slots=True)
class Topology:
    """A NUMA machine: per-node memory, CPUs, SLIT distances and watermarks (frozen).

    Parameters
    ----------
    node_pages : sequence of int
        Capacity of each node in 4 KiB pages, 0..2**63-1; 0 is a memoryless node.
        1..MAX_SIM_NODES (64) nodes.
    node_cpus : sequence of sequences of int
        CPU ids of each node (stored sorted); empty for a CPU-less node (CXL memory). Ids are
        unique, 0..NR_CPUS_MAX-1, gaps allowed; at least one CPU overall.
    distance : n x n matrix of int, optional
        SLIT: 10 (LOCAL_DISTANCE) on the diagonal, 11..255 elsewhere, asymmetry allowed.
        Default 10 local, 20 remote.
    wmark_min, wmark_low, wmark_high : sequence of int, optional
        Watermarks in pages (default 0), with 0 <= min <= low <= high <= node_pages.

    Attributes
    ----------
    cpu_node : tuple of int
        CPU id -> node; -1 for ids in gaps (such a CPU does not exist).
    fallback : tuple of tuple of int
        Per node, its zonelist: the memory nodes in allocation order (§1.6). A node with
        memory comes first in its own list; a memoryless node's list holds only other nodes.

    Raises
    ------
    TypeError
        A value of the wrong type (a float page count, a string CPU list).
    ValueError
        A value out of range; the message names the value and the allowed range.
    """

    node_pages: tuple[int, ...]
    node_cpus: tuple[tuple[int, ...], ...]
    distance: tuple[tuple[int, ...], ...] = None
    wmark_min: tuple[int, ...] = None
    wmark_low: tuple[int, ...] = None
    wmark_high: tuple[int, ...] = None
    cpu_node: tuple[int, ...] = field(init=False, repr=False)
    fallback: tuple[tuple[int, ...], ...] = field(init=False, repr=False)

    def __post_init__(self):
        pages = _int_vector(self.node_pages, "node_pages")
        n = len(pages)
        if not 1 <= n <= MAX_SIM_NODES:
            raise ValueError(f"a topology has {n} nodes; allowed range is 1..{MAX_SIM_NODES} "
                             "(fastnuma.constants.MAX_SIM_NODES)")
        for i, p in enumerate(pages):
            _check_range(f"node_pages[{i}]", p, 0, MAX_PAGES, " (4 KiB pages)")
        cpus, cpu_node = _normalise_cpus(self.node_cpus, n)
        distance = _normalise_distance(self.distance, n)
        wmarks = _normalise_wmarks(pages, (("wmark_min", self.wmark_min),
                                           ("wmark_low", self.wmark_low),
                                           ("wmark_high", self.wmark_high)))
        fallback = _build_all_zonelists(distance, [p > 0 for p in pages], [bool(c) for c in cpus])
        for name, value in (("node_pages", pages), ("node_cpus", cpus), ("distance", distance),
                            ("wmark_min", wmarks[0]), ("wmark_low", wmarks[1]),
                            ("wmark_high", wmarks[2]), ("cpu_node", cpu_node),
                            ("fallback", fallback)):
            object.__setattr__(self, name, value)

    @property
    def n_nodes(self):
        """Number of nodes (node ids are 0..n_nodes-1)."""
        return len(self.node_pages)

    @property
    def n_cpus(self):
        """1 + the highest CPU id (ids in gaps count but have ``cpu_node`` -1)."""
        return len(self.cpu_node)

    def _node(self, n, strict):
        if not _is_int(n):
            raise TypeError(f"node id must be an int, got {n!r} ({type(n).__name__})")
        if n < 0 or (strict and n >= self.n_nodes):
            raise ValueError(f"node id {n} is out of range; allowed range is "
                             f"0..{self.n_nodes - 1}")
        return int(n)

    def has_memory(self, n):
        """Whether node ``n`` has memory; ids at or beyond ``n_nodes`` have none (api.md)."""
        n = self._node(n, strict=False)
        return n < self.n_nodes and self.node_pages[n] > 0

    def has_cpus(self, n):
        """Whether node ``n`` has CPUs; ids at or beyond ``n_nodes`` have none."""
        n = self._node(n, strict=False)
        return n < self.n_nodes and bool(self.node_cpus[n])

    def local_memory_node(self, n):
        """First node of ``n``'s fallback list (Linux local_memory_node()); -1 if no memory."""
        lst = self.fallback[self._node(n, strict=True)]
        return lst[0] if lst else -1

    def memory_nodes(self):
        """Ids of the nodes with memory, ascending (N_MEMORY)."""
        return tuple(i for i, p in enumerate(self.node_pages) if p > 0)

    def describe(self):
        """One line: nodes, their memory and CPUs, e.g. "2 nodes: N0 1.0 GiB 2 CPUs, ..."."""
        parts = [f"N{n} {self.node_pages[n] * PAGE_SIZE / 2**30:.1f} GiB "
                 f"{len(self.node_cpus[n])} CPUs" for n in range(self.n_nodes)]
        return f"{self.n_nodes} nodes: " + ", ".join(parts)

    def to_kernel_args(self):
        """Fresh numpy arrays for the Numba kernels.

        Returns
        -------
        dict
            ``cpu_node`` int16[n_cpus]; ``fallback`` int16[n_nodes, n_nodes], each row padded
            with -1; ``node_pages``, ``wmark_min``, ``wmark_low``, ``wmark_high`` int64[n_nodes];
            ``distance`` int32[n_nodes, n_nodes].
        """
        n = self.n_nodes
        fallback = np.full((n, n), -1, dtype=np.int16)
        for i, lst in enumerate(self.fallback):
            fallback[i, :len(lst)] = lst
        args = {"cpu_node": np.array(self.cpu_node, dtype=np.int16), "fallback": fallback}
        for name in ("node_pages", "wmark_min", "wmark_low", "wmark_high"):
            args[name] = np.array(getattr(self, name), dtype=np.int64)
        args["distance"] = np.array(self.distance, dtype=np.int32)
        return args

    # ---------------------------------------------------------------- presets
    @classmethod
    def uniform(cls, nodes=2, cpus_per_node=2, pages_per_node=1 << 18):
        """``nodes`` equal nodes at distance 20; node i owns CPUs i*cpus_per_node onwards."""
        nodes = _check_range("nodes", nodes, 1, MAX_SIM_NODES)
        cpus_per_node = _check_range("cpus_per_node", cpus_per_node, 1, NR_CPUS_MAX // nodes)
        return cls([pages_per_node] * nodes,
                   [range(i * cpus_per_node, (i + 1) * cpus_per_node) for i in range(nodes)])

    @classmethod
    def two_socket(cls, pages_per_node=1 << 20):
        """Two sockets of 8 CPUs (0-7 on node 0, 8-15 on node 1), SLIT 10/21."""
        return cls([pages_per_node] * 2, [range(0, 8), range(8, 16)], [[10, 21], [21, 10]])

    @classmethod
    def four_socket(cls, pages_per_node=1 << 20):
        """Four sockets of 8 CPUs (node i: CPUs 8i..8i+7) connected in a ring.

        The SLIT of a 4-socket Xeon Scalable with two UPI links per socket (ring 0-1-2-3-0):
        one hop 21, two hops 31 (pairs 0-2 and 1-3)::

            10 21 31 21
            21 10 21 31
            31 21 10 21
            21 31 21 10
        """
        slit = [[10, 21, 31, 21], [21, 10, 21, 31], [31, 21, 10, 21], [21, 31, 21, 10]]
        return cls([pages_per_node] * 4, [range(8 * i, 8 * i + 8) for i in range(4)], slit)

    @classmethod
    def cxl(cls, pages_per_node=1 << 20, cxl_pages=1 << 20):
        """Two 8-CPU sockets plus node 2: CPU-less CXL memory attached to socket 0.

        SLIT of the shape reported by hosts with a CXL Type-3 memory expander: socket-local
        10, cross-socket 21, CXL from its own socket 14, from the other socket 24::

            10 21 14
            21 10 24
            14 24 10
        """
        slit = [[10, 21, 14], [21, 10, 24], [14, 24, 10]]
        return cls([pages_per_node, pages_per_node, cxl_pages],
                   [range(0, 8), range(8, 16), ()], slit)

    # ---------------------------------------------------------------- parsers
    @classmethod
    def from_numactl(cls, text):
        """Parse ``numactl --hardware`` output.

        Reads ``available: N nodes (ids)``, ``node X cpus: ...`` (empty for a CPU-less node),
        ``node X size: S MB`` (also B/kB/GB/TB; ``<not available>`` = 0) and the ``node
        distances:`` table; ``node X free:`` is ignored. Node ids missing from a
        non-contiguous header (``(0,2)``) become memoryless CPU-less nodes at distance 255.
        Without a table the default distances apply. Capacity in pages = bytes / 4096.

        Raises
        ------
        ValueError
            Naming the line number and text of anything unparsable or inconsistent.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        from .topology_input import parse_numactl
        return cls(*parse_numactl(text))

    @classmethod
    def from_sysfs(cls, path="/sys/devices/system/node"):
        """Read ``nodeN/cpulist``, ``nodeN/meminfo`` (MemTotal) and ``nodeN/distance``.

        ``distance`` lists one value per node directory, in id order (Linux prints one per
        online node). Ids missing between directories become memoryless CPU-less nodes at
        distance 255.

        Raises
        ------
        OSError
            A directory or file that cannot be read (the error names it).
        ValueError
            Malformed content, naming the file.
        """
        from .topology_input import read_sysfs
        return cls(*read_sysfs(os.fspath(path)))
