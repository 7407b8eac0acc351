"""Intel Memory Latency Checker (MLC) output: ``--latency_matrix``, ``--bandwidth_matrix``
and the default run (which prints both, plus other sections that are skipped).

MLC prints a matrix as::

    Measuring idle latencies (in ns)...          <- or "Bandwidths are in MB/sec ..."
    \t\tNuma node
    Numa node\t     0\t     1\t     2
           0\t  82.4\t 138.6\t 254.6
           1\t 137.8\t  81.9\t 346.1

Rows are the nodes whose CPUs issue the accesses, columns the memory nodes; a node without
CPUs (CXL memory) is a column with no row. Entries MLC cannot measure print as ``-``
(read as NaN). Latencies are in ns, bandwidths in MB/s (MLC: 1 MB/sec = 10^6 bytes/s),
returned here as GB/s = bytes/ns. Banner and other lines are ignored.
"""
import math
import re
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MlcMatrix:
    """One MLC matrix: ``kind`` "latency" (ns) or "bandwidth" (GB/s = bytes/ns);
    ``values[cpu node, memory node]`` (n x n, NaN where MLC printed no row/value)."""
    kind: str
    values: np.ndarray
    source: str = None

    @property
    def n_nodes(self):
        return self.values.shape[1]

    def cpu_nodes(self):
        """Nodes that have a row (nodes with CPUs)."""
        return [i for i in range(self.values.shape[0]) if not np.isnan(self.values[i]).all()]


def parse_mlc(text, source="<mlc>"):
    """Every matrix in MLC output ``text``: {"latency": MlcMatrix, "bandwidth": MlcMatrix}
    (the kinds present). ValueError (naming ``source`` and the line) when a matrix is
    malformed or none is found."""
    lines = text.splitlines()
    found = {}
    kind = None
    i = 0
    while i < len(lines):
        line = lines[i]
        low = line.lower()
        if "latenc" in low and "(in ns)" in low:
            kind = "latency"
        elif "bandwidths are in mb/sec" in low:
            kind = "bandwidth"
        elif "peak injection" in low:
            kind = None                        # a per-system table, not a matrix
        if re.match(r"^\s*Numa node(\s+\d+)+\s*$", line):
            if kind is None:
                raise ValueError(f"{source}:{i + 1}: a matrix with no units line before it "
                                 "(expected 'Measuring idle latencies (in ns)' or "
                                 "'Bandwidths are in MB/sec')")
            cols = [int(x) for x in line.split()[2:]]
            if cols != list(range(len(cols))):
                raise ValueError(f"{source}:{i + 1}: node columns {cols}: expected 0..n-1")
            n = len(cols)
            values = np.full((n, n), np.nan)
            i += 1
            while i < len(lines) and lines[i].strip():
                parts = lines[i].split()
                if not parts[0].isdigit():
                    break
                row = int(parts[0])
                if row >= n or len(parts) != n + 1:
                    raise ValueError(f"{source}:{i + 1}: row {lines[i].strip()!r}: expected "
                                     f"a node id < {n} and {n} values")
                for j, word in enumerate(parts[1:]):
                    values[row, j] = _number(word, source, i + 1)
                i += 1
            if np.isnan(values).all():
                raise ValueError(f"{source}:{i}: matrix without rows")
            if kind == "bandwidth":
                values = values / 1000.0             # MB/s (10^6 B/s) -> GB/s = bytes/ns
            found[kind] = MlcMatrix(kind, values, source)
            kind = None
            continue
        i += 1
    if not found:
        raise ValueError(f"{source}: no MLC latency or bandwidth matrix found (expected "
                         f"the output of mlc --latency_matrix or --bandwidth_matrix)")
    return found


def read_mlc(path):
    """parse_mlc of a file."""
    with open(path) as f:
        return parse_mlc(f.read(), source=str(path))


def _number(word, source, lineno):
    if word == "-":
        return math.nan
    try:
        v = float(word)
    except ValueError:
        raise ValueError(f"{source}:{lineno}: {word!r} is not a number") from None
    if not v > 0 or math.isinf(v):
        raise ValueError(f"{source}:{lineno}: {word!r}: expected a positive value")
    return v


def slit_from_latency(lat):
    """SLIT distances from an MLC latency matrix: 10 x latency / the row's local latency,
    rounded, off-diagonal clamped to 11..254 (rows MLC does not print, CPU-less nodes, use
    their column's values: the SLIT of such a node is read by symmetry)."""
    v = lat.values
    n = v.shape[1]
    local = np.array([v[i, i] if i < v.shape[0] else np.nan for i in range(n)])
    dist = np.full((n, n), 10, np.int64)
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            if not np.isnan(v[i, j]) and not np.isnan(local[i]):
                d = 10 * v[i, j] / local[i]
            elif not np.isnan(v[j, i]) and not np.isnan(local[j]):
                d = 10 * v[j, i] / local[j]
            else:
                d = 255
            dist[i, j] = min(254, max(11, round(d))) if d != 255 else 255
    return dist.tolist()


def topology_from_mlc(cls, text, *, node_pages=1 << 20, cpus_per_node=8, source="<mlc>"):
    """Topology.from_mlc: nodes = the matrix's columns; a node with a row gets
    ``cpus_per_node`` CPUs (numbered node by node), a node without one is CPU-less (CXL);
    distances from the latencies (slit_from_latency); ``node_pages`` an int or a list."""
    mats = parse_mlc(text, source)
    if "latency" not in mats:
        raise ValueError(f"{source}: Topology.from_mlc needs a latency matrix")
    lat = mats["latency"]
    n = lat.n_nodes
    pages = list(node_pages) if isinstance(node_pages, (list, tuple)) else [node_pages] * n
    if len(pages) != n:
        raise ValueError(f"node_pages has {len(pages)} entries; the MLC matrix has {n} nodes")
    with_cpus = lat.cpu_nodes()
    cpus, k = [], 0
    for node in range(n):
        if node in with_cpus:
            cpus.append(range(k, k + cpus_per_node))
            k += cpus_per_node
        else:
            cpus.append(())
    return cls(pages, cpus, slit_from_latency(lat))
