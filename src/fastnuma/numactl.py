"""numactl's vocabulary: node lists, CPU lists, memory-policy flags and thread placement.

Node and CPU lists are read as libnuma's ``numa_parse_nodestring`` /
``numa_parse_cpustring`` read them: ``all``, ``N``, ``N-M``, comma-separated parts,
a leading ``!`` (every node/CPU *not* listed) and a leading ``+`` (ids relative to the
allowed set: ``+0-1`` = the first two allowed nodes). See docs/run-config.md.

A task policy is written as numactl's long option without dashes, ``MODE[:NODES]``:
``default``, ``localalloc``, ``interleave:all``, ``membind:0,2``, ``preferred:1``,
``preferred-many:0-1``, ``weighted-interleave:0,2``. It is the task policy of every process
of the trace from its first event (as if numactl had started it).

A CPU map turns the trace's ``cpu`` column into CPUs of the target machine through one
lookup table (``table[trace_cpu]``), applied per batch with ``np.take``.
"""
from dataclasses import dataclass

import numpy as np

from .constants import (MPOL_BIND, MPOL_DEFAULT, MPOL_F_RELATIVE_NODES, MPOL_INTERLEAVE,
                        MPOL_LOCAL, MPOL_PREFERRED, MPOL_PREFERRED_MANY,
                        MPOL_WEIGHTED_INTERLEAVE)
from .policy import id_list_str, id_range

CPU_ID_LIMIT = 1 << 16              # the trace's cpu column is uint16
UNMAPPED = np.uint16(0xFFFF)        # a lookup-table entry of a CPU the map does not place

# numactl option name -> (mode, takes nodes, exactly one node)
POLICY_FLAGS = {
    "default": (MPOL_DEFAULT, False, False),
    "localalloc": (MPOL_LOCAL, False, False),
    "interleave": (MPOL_INTERLEAVE, True, False),
    "membind": (MPOL_BIND, True, False),
    "preferred": (MPOL_PREFERRED, True, True),
    "preferred-many": (MPOL_PREFERRED_MANY, True, False),
    "weighted-interleave": (MPOL_WEIGHTED_INTERLEAVE, True, False),
}
CPU_MAP_MODES = ("keep", "spread", "pack", "modulo", "file")


def parse_id_list(text, universe, allowed, what):
    """The ids of a numactl list ``text`` (sorted tuple).

    ``universe``: every id that exists (an id outside it is an error); ``allowed``: what
    ``all``, ``!`` and ``+`` refer to (libnuma: the nodes with memory / the CPUs of the
    cpuset). ``what`` names the option in errors, e.g. ``--membind``."""
    s = text.strip()
    if not s:
        raise ValueError(f"{what}: empty list")
    invert = s.startswith("!")
    if invert:
        s = s[1:].strip()
    relative = s.startswith("+")
    if relative:
        s = s[1:].strip()
    allowed = sorted(allowed)
    if s == "all":
        ids = set(range(len(allowed))) if relative else set(allowed)
    else:
        ids = set()
        for part in s.split(","):
            r = id_range(part)
            if r is None:
                raise ValueError(f"{what}: cannot parse {part.strip()!r} of {text!r} "
                                 f"(expected all, N, N-M, comma-separated, ! or + first)")
            ids.update(range(r[0], r[1] + 1))
    if relative:
        bad = sorted(i for i in ids if i >= len(allowed))
        if bad:
            raise ValueError(f"{what}: relative id {bad[0]} of {text!r}: only "
                             f"{len(allowed)} allowed")
        ids = {allowed[i] for i in ids}
    bad = sorted(ids - set(universe))
    if bad:
        raise ValueError(f"{what}: {bad[0]} of {text!r} is not on this machine "
                         f"(valid: {id_list_str(sorted(universe))})")
    if invert:
        ids = set(allowed) - ids
    if not ids:
        raise ValueError(f"{what}: {text!r} selects nothing")
    return tuple(sorted(ids))


def parse_nodes(text, topology, what="nodes", allowed=None):
    """A node list on ``topology``; ``all``/``!``/``+`` refer to the nodes with memory
    (or ``allowed``)."""
    return parse_id_list(text, range(topology.n_nodes),
                         topology.memory_nodes() if allowed is None else allowed, what)


def parse_cpus(text, topology, what="--physcpubind"):
    """A CPU list on ``topology``; ``all``/``!``/``+`` refer to every CPU."""
    cpus = [c for c, n in enumerate(topology.cpu_node) if n >= 0]
    return parse_id_list(text, cpus, cpus, what)


@dataclass(frozen=True)
class TaskPolicy:
    """A resolved task policy: a Linux mode, node mask (bitmask) and mode flags."""
    mode: int
    nodemask: int = 0
    flags: int = 0
    text: str = "default"

    def apply(self, sim, tid):
        """set_mempolicy for thread ``tid`` (numactl does this before exec)."""
        if self.mode != MPOL_DEFAULT:
            sim.set_mempolicy(tid, self.mode | self.flags, self.nodemask)


def parse_policy(spec, topology):
    """``MODE[:NODES]`` (numactl's long option names) -> :class:`TaskPolicy`."""
    if spec is None:
        return TaskPolicy(MPOL_DEFAULT)
    spec = str(spec).strip()
    name, sep, nodes = spec.partition(":")
    if "=" in name:                              # --interleave=0-1 also accepted
        name, _, nodes = name.partition("=")
        sep = ":"
    name = name.strip().lstrip("-")
    if name not in POLICY_FLAGS:
        raise ValueError(f"policy {spec!r}: unknown mode {name!r} (expected one of "
                         f"{', '.join(POLICY_FLAGS)})")
    mode, takes_nodes, single = POLICY_FLAGS[name]
    what = f"--{name}"
    if not takes_nodes:
        if sep and nodes.strip():
            raise ValueError(f"policy {spec!r}: {what} takes no node list")
        return TaskPolicy(mode, text=name)
    if not sep or not nodes.strip():
        raise ValueError(f"policy {spec!r}: {what} needs a node list, e.g. {name}:0-1")
    ids = parse_nodes(nodes, topology, what)
    if single and len(ids) != 1:
        raise ValueError(f"policy {spec!r}: {what} takes one node, got {id_list_str(ids)}")
    flags = MPOL_F_RELATIVE_NODES if nodes.strip().lstrip("!").strip().startswith("+") \
        else 0
    if flags:                                   # numactl passes the relative ids as given
        mask = 0
        allowed = sorted(topology.memory_nodes())
        for i in ids:
            mask |= 1 << allowed.index(i)
    else:
        mask = sum(1 << i for i in ids)
    return TaskPolicy(mode, mask, flags, text=f"{name}:{nodes.strip()}")


@dataclass(frozen=True)
class CpuPlacement:
    """Where the trace's threads run on the target machine.

    mode: ``keep`` (trace CPU c runs on CPU c), ``modulo`` (c -> allowed[c mod m], allowed
    CPUs in id order), ``pack`` (the k-th distinct trace CPU by first appearance -> the (k
    mod m)-th allowed CPU filling node by node: node 0's CPUs first), ``spread`` (the k-th
    distinct trace CPU -> round robin over the allowed nodes), ``file`` (a mapping file of
    ``TRACE_CPU TARGET_CPU`` lines, ``#`` comments). ``cpunodebind`` / ``physcpubind``
    restrict the allowed CPUs (numactl's options; both: their intersection)."""
    mode: str = "keep"
    cpunodebind: str = None
    physcpubind: str = None
    file: str = None

    def __post_init__(self):
        if self.mode not in CPU_MAP_MODES:
            raise ValueError(f"cpu_map {self.mode!r}: expected one of "
                             f"{', '.join(CPU_MAP_MODES)}")
        if (self.mode == "file") != (self.file is not None):
            raise ValueError("cpu_map 'file' needs a mapping file (and a file needs "
                             "cpu_map 'file')")

    def is_identity(self):
        return self.mode == "keep" and self.cpunodebind is None and self.physcpubind is None

    def allowed(self, topology):
        cpus = [c for c, n in enumerate(topology.cpu_node) if n >= 0]
        if self.cpunodebind is not None:
            with_cpus = [n for n in range(topology.n_nodes) if topology.node_cpus[n]]
            nodes = parse_nodes(self.cpunodebind, topology, "--cpunodebind", with_cpus)
            cpus = [c for c in cpus if topology.cpu_node[c] in nodes]
        if self.physcpubind is not None:
            chosen = set(parse_cpus(self.physcpubind, topology))
            cpus = [c for c in cpus if c in chosen]
        if not cpus:
            raise ValueError("--cpunodebind/--physcpubind leave no CPU")
        return cpus

    def order(self, topology):
        """pack/spread: the allowed CPUs in the order trace CPUs are given them."""
        by_node = {}
        for c in self.allowed(topology):
            by_node.setdefault(topology.cpu_node[c], []).append(c)
        groups = [by_node[n] for n in sorted(by_node)]
        if self.mode == "pack":
            return np.asarray([c for g in groups for c in g], np.uint16)
        return np.asarray([g[k] for k in range(max(map(len, groups)))     # round robin
                           for g in groups if k < len(g)], np.uint16)

    def mapper(self, topology, batch_rows=1 << 20):
        """A :class:`CpuMapper` for one replay (its table fills as trace CPUs appear)."""
        return CpuMapper(self, topology, batch_rows)

    def table(self, topology):
        """uint16[65536]: trace CPU -> target CPU (UNMAPPED where the map places none).
        pack and spread give CPUs by order of first appearance: their table is filled by
        the CpuMapper of a replay; here it is the one of a trace whose CPUs appear in id
        order."""
        allowed = self.allowed(topology)
        table = np.full(CPU_ID_LIMIT, UNMAPPED, np.uint16)
        ids = np.arange(CPU_ID_LIMIT)
        if self.mode == "keep":
            table[allowed] = allowed
        elif self.mode == "modulo":
            table[:] = np.asarray(allowed)[ids % len(allowed)]
        elif self.mode in ("pack", "spread"):
            order = self.order(topology)
            table[:] = order[ids % len(order)]
        else:
            for src, dst in read_cpu_map_file(self.file):
                if dst not in allowed:
                    raise ValueError(f"{self.file}: target CPU {dst} is not an allowed CPU "
                                     f"of the machine ({id_list_str(allowed)})")
                table[src] = dst
        return table

    def describe(self):
        return {k: v for k, v in (("mode", self.mode), ("cpunodebind", self.cpunodebind),
                                  ("physcpubind", self.physcpubind), ("file", self.file))
                if v is not None}


def read_cpu_map_file(path):
    """``TRACE_CPU TARGET_CPU`` pairs (whitespace or comma separated; ``#`` comments)."""
    pairs, seen = [], set()
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            parts = text.replace(",", " ").split()
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                raise ValueError(f"{path}:{lineno}: expected 'TRACE_CPU TARGET_CPU', got "
                                 f"{line.strip()!r}")
            src, dst = int(parts[0]), int(parts[1])
            if src >= CPU_ID_LIMIT or src in seen:
                raise ValueError(f"{path}:{lineno}: trace CPU {src} "
                                 f"{'mapped twice' if src in seen else 'out of range'}")
            seen.add(src)
            pairs.append((src, dst))
    if not pairs:
        raise ValueError(f"{path}: no CPU pairs")
    return pairs


class CpuMapper:
    """The CPU map of one replay. keep/modulo/file: a fixed table. pack/spread: the k-th
    distinct trace CPU, in order of first appearance, gets ``order[k mod m]``; new CPUs
    are found per batch (``np.unique``), so the result does not depend on batch sizes.
    ``table`` is the map as filled so far (the cost model's pass reuses it)."""

    def __init__(self, placement, topology, batch_rows=1 << 20):
        self.dynamic = placement.mode in ("pack", "spread")
        if self.dynamic:
            self.order = placement.order(topology)
            self.table = np.full(CPU_ID_LIMIT, UNMAPPED, np.uint16)
            self.given = 0
        else:
            self.table = placement.table(topology)
        self._remap = remapper(self.table, batch_rows)

    def __call__(self, b):
        if self.dynamic:
            fresh = self.table[b.cpu] == UNMAPPED
            if fresh.any():
                cpus, first = np.unique(b.cpu[fresh], return_index=True)
                cpus = cpus[np.argsort(first)]            # order of first appearance
                k = (self.given + np.arange(cpus.size)) % self.order.size
                self.table[cpus] = self.order[k]
                self.given += cpus.size
        return self._remap(b)


def remapper(table, batch_rows):
    """A function TraceBatch -> TraceBatch whose ``cpu`` is ``table[cpu]`` (one vectorised
    take into a buffer allocated once; valid until the next batch, like the reader's
    buffers). A trace CPU that the map does not place is a TraceError naming its row."""
    return _Remap(table, np.empty(batch_rows, np.uint16))


class _Remap:
    """remapper's function as an object of data, not a closure: a checkpoint saves it
    (state_codec.py) with the replay's state."""

    def __init__(self, table, buf):
        self.table, self.buf = table, buf

    def __call__(self, b):
        import dataclasses

        from .errors import TraceError
        if len(b) > self.buf.size:           # a resumed replay's larger batches
            self.buf = np.empty(len(b), np.uint16)
        out = np.take(self.table, b.cpu, out=self.buf[:len(b)])
        bad = np.flatnonzero(out == UNMAPPED)
        if bad.size:
            k = int(bad[0])
            raise TraceError("the CPU map places no CPU for this trace CPU", path=b.path,
                             column="cpu", row=b.row + k, value=int(b.cpu[k]))
        return dataclasses.replace(b, cpu=out)
