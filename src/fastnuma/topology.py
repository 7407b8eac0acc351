"""The simulated machine: nodes, CPUs, SLIT distances, watermarks and the fallback order.

`Topology` is frozen and validated once. Its ``fallback`` lists are the zonelists of
docs/linux-semantics.md §1.6, built as Linux builds them at boot (mm/page_alloc.c
``__build_all_zonelists`` -> ``build_zonelists`` -> ``find_next_best_node``).
"""
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
    wmark_promo : sequence of int, optional
        WMARK_PROMO in pages, >= wmark_high; default high + (high - low), Linux's formula.
    adistance : sequence of int, optional
        Abstract distance of each node (docs/tiering.md §2), 0..2**31-1; default 576
        (DRAM) for nodes with CPUs, 2880 (dax/kmem, e.g. CXL) for CPU-less nodes with
        memory; ignored for memoryless nodes.

    Attributes
    ----------
    cpu_node : tuple of int
        CPU id -> node; -1 for ids in gaps (such a CPU does not exist).
    fallback : tuple of tuple of int
        Per node, its zonelist: the memory nodes in allocation order (§1.6). A node with
        memory comes first in its own list; a memoryless node's list holds only other nodes.
    memtier : tuple of int
        Per node, its memory tier id (``memory_tier<id>`` = adistance >> 7); -1 without memory.
    memory_tiers : tuple of (int, tuple of int)
        The tiers, fastest first: (id, nodes).
    demotion_preferred : tuple of tuple of int
        Per node, ``node_demotion[n].preferred`` of establish_demotion_targets (empty on the
        last tier).
    demotion_fallback : tuple of tuple of int
        Per node, its tier's ``lower_tier_mask``: every memory node of the slower tiers.
    top_tier_adistance : int
        Last abstract distance of the slowest tier with a CPU node (node_is_toptier).

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

    def node_is_toptier(self, n):
        """Linux node_is_toptier(): no tier (memoryless), or the node's tier starts at or
        above ``top_tier_adistance`` (docs/tiering.md T3)."""
        n = self._node(n, strict=True)
        return self.memtier[n] < 0 or (self.memtier[n] << 7) <= self.top_tier_adistance

    def with_linux_watermarks(self, min_free_kbytes=None, watermark_scale_factor=10):
        """A copy whose min/low/high/promo watermarks are Linux's (docs/tiering.md §3):
        ``min_free_kbytes`` None = the boot value int_sqrt(lowmem_kbytes * 16) clamped to
        128..262144; ``watermark_scale_factor`` in 1/10000 of the node (1..3000)."""
        wmin, wlow, whigh, wpromo = _mt.setup_per_zone_wmarks(
            self.node_pages, min_free_kbytes, watermark_scale_factor)
        return Topology(self.node_pages, self.node_cpus, self.distance, wmin, wlow, whigh,
                        wpromo, self.adistance)

    def describe_tiers(self):
        """Lines: each memory tier and its nodes, then per node its tier, top-tier flag,
        demotion targets and watermarks (pages), as `fastnuma info --topology` prints."""
        return _mt.describe_tiers(self)

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

    @classmethod
    def cxl_one_socket(cls, dram_gib=128, cxl_gib=64, cpus=16):
        """One socket (CPUs 0..cpus-1, node 0, DRAM) and node 1: a CPU-less CXL Type-3
        expander onlined by dax/kmem (adistance 2880, memory_tier22). Default 128 GiB of
        DDR5 plus one 64 GiB expander card (a third of the memory on CXL). SLIT 10/14.
        Watermarks are Linux's (:meth:`with_linux_watermarks`)."""
        return cls([_mt.gib_pages(dram_gib, "dram_gib"), _mt.gib_pages(cxl_gib, "cxl_gib")],
                   [range(_check_range("cpus", cpus, 1, NR_CPUS_MAX)), ()],
                   [[10, 14], [14, 10]]).with_linux_watermarks()

    @classmethod
    def cxl_two_socket(cls, dram_gib=256, cxl_gib=128, cpus_per_socket=16):
        """Two sockets (nodes 0 and 1, DRAM, CPUs 0..c-1 and c..2c-1) and one CPU-less CXL
        expander per socket (node 2 behind socket 0, node 3 behind socket 1, adistance
        2880). Default 256 GiB DRAM and a 128 GiB card per socket. SLIT: cross-socket 21,
        CXL from its own socket 14, from the other socket 24, between the two cards 34::

            10 21 14 24
            21 10 24 14
            14 24 10 34
            24 14 34 10

        Watermarks are Linux's; each DRAM node demotes to its own socket's card."""
        c = _check_range("cpus_per_socket", cpus_per_socket, 1, NR_CPUS_MAX // 2)
        dram, cxl = _mt.gib_pages(dram_gib, "dram_gib"), _mt.gib_pages(cxl_gib, "cxl_gib")
        slit = [[10, 21, 14, 24], [21, 10, 24, 14], [14, 24, 10, 34], [24, 14, 34, 10]]
        return cls([dram, dram, cxl, cxl], [range(0, c), range(c, 2 * c), (), ()],
                   slit).with_linux_watermarks()

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
