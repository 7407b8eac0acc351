"""The simulated machine: nodes, CPUs, SLIT distances, watermarks, fallback order, tiers.

`Topology` is frozen and validated once. Its ``fallback`` lists are the zonelists of
docs/linux-semantics.md §1.6, as Linux builds them at boot (mm/page_alloc.c
``build_zonelists``); its memory tiers come from memory_tiers.py."""
import os
from dataclasses import dataclass, field

import numpy as np

from . import memory_tiers as _mt
from .constants import MAX_SIM_NODES, PAGE_SIZE
from .zonelists import PENALTY_FOR_NODE_WITH_CPUS, build_all_zonelists
from .topology_checks import (LOCAL_DISTANCE, REMOTE_DISTANCE, MAX_DISTANCE, NR_CPUS_MAX, MAX_PAGES, _is_int, _int_vector, _check_range, _normalise_cpus, _normalise_distance, _normalise_wmarks)

__all__ = ["Topology", "LOCAL_DISTANCE", "REMOTE_DISTANCE", "MAX_DISTANCE",
           "PENALTY_FOR_NODE_WITH_CPUS", "NR_CPUS_MAX"]

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
        :meth:`with_linux_watermarks` computes them as Linux does (docs/tiering.md §3).
    wmark_promo, adistance : sequence of int, optional
        WMARK_PROMO (pages, >= high; default high + (high - low)); abstract distance per
        node (0..2**31-1; default 576 DRAM with CPUs, 2880 CPU-less CXL; docs/tiering.md §2).

    Attributes
    ----------
    cpu_node : tuple of int
        CPU id -> node; -1 for ids in gaps (such a CPU does not exist).
    fallback : tuple of tuple of int
        Per node, its zonelist: the memory nodes in allocation order (§1.6). A node with
        memory comes first in its own list; a memoryless node's list holds only other nodes.
    memtier, memory_tiers, demotion_preferred, demotion_fallback, top_tier_adistance
        Tiers (ids; nodes fastest first), demotion targets per node: memory_tiers.py.

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
    wmark_promo: tuple[int, ...] = None
    adistance: tuple[int, ...] = None
    cpu_node: tuple[int, ...] = field(init=False, repr=False)
    fallback: tuple[tuple[int, ...], ...] = field(init=False, repr=False)
    memtier: tuple[int, ...] = field(init=False, repr=False)
    memory_tiers: tuple = field(init=False)
    demotion_preferred: tuple[tuple[int, ...], ...] = field(init=False)
    demotion_fallback: tuple[tuple[int, ...], ...] = field(init=False, repr=False)
    top_tier_adistance: int = field(init=False, repr=False)

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
        fallback = build_all_zonelists(distance, [p > 0 for p in pages], [bool(c) for c in cpus])
        for name, value in (("node_pages", pages), ("node_cpus", cpus), ("distance", distance),
                            ("wmark_min", wmarks[0]), ("wmark_low", wmarks[1]),
                            ("wmark_high", wmarks[2]), ("cpu_node", cpu_node),
                            ("fallback", fallback)):
            object.__setattr__(self, name, value)
        for name, value in _mt.topology_tiers(self, pages, cpus, distance, wmarks).items():
            object.__setattr__(self, name, value)

    # tier methods and CXL presets (docs/tiering.md §2, §3): bodies, docs in memory_tiers.py
    node_is_toptier = _mt.node_is_toptier
    with_linux_watermarks = _mt.with_linux_watermarks
    describe_tiers = _mt.describe_tiers
    cxl_one_socket = classmethod(_mt.cxl_one_socket)
    cxl_two_socket = classmethod(_mt.cxl_two_socket)

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
    def from_mlc(cls, text, *, node_pages=1 << 20, cpus_per_node=8):
        """A machine from Intel MLC ``--latency_matrix`` output (banner lines and all):
        one node per column, ``cpus_per_node`` CPUs on each node with a row (numbered node
        by node), CPU-less nodes for columns without a row, SLIT = 10 x latency / local
        latency. See fastnuma.mlc; the cost model reads the same file's latencies."""
        from .mlc import topology_from_mlc
        return topology_from_mlc(cls, text, node_pages=node_pages,
                                 cpus_per_node=cpus_per_node)

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
