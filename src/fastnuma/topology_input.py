"""Machine descriptions read from outside: ``numactl --hardware`` output and a sysfs node
directory, turned into the arguments of :class:`~fastnuma.topology.Topology`."""
import os
import re

from .constants import MAX_SIM_NODES, PAGE_SIZE
from .policy import id_range
from .topology_checks import LOCAL_DISTANCE, NR_CPUS_MAX, UNKNOWN_DISTANCE

# -------------------------------------------------------------------- parsing helpers
def _parse_list(text, where):
    """Parse the Linux list syntax ("0-3,8-11", "" = empty) into a tuple of ints."""
    out = []
    text = text.strip()
    for part in text.split(",") if text else ():
        r = id_range(part)
        if r is None:
            raise ValueError(f"{where}: cannot parse {part.strip()!r} of list {text!r}")
        lo, hi = r
        if hi >= NR_CPUS_MAX:
            raise ValueError(f"{where}: id {hi} is out of range; allowed range is "
                             f"0..{NR_CPUS_MAX - 1}")
        out.extend(range(lo, hi + 1))
    return tuple(out)


def _assemble(ids, pages, cpus, dist, where):
    """Lay nodes out by id: gaps are memoryless, CPU-less, at UNKNOWN_DISTANCE."""
    n = max(ids) + 1
    if n > MAX_SIM_NODES:
        raise ValueError(f"{where}: node id {n - 1} is out of range; allowed range is "
                         f"0..{MAX_SIM_NODES - 1}")
    node_pages = [pages.get(i, 0) for i in range(n)]
    node_cpus = [cpus.get(i, ()) for i in range(n)]
    if dist is None:
        return node_pages, node_cpus, None
    matrix = [[LOCAL_DISTANCE if i == j else UNKNOWN_DISTANCE for j in range(n)]
              for i in range(n)]
    for (i, j), d in dist.items():
        matrix[i][j] = d
    return node_pages, node_cpus, matrix


_NUMACTL_UNITS = {"B": 1, "kB": 1 << 10, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30,
                  "TB": 1 << 40}


def parse_numactl(text):
    ids = None
    cpus, pages, dist = {}, {}, None
    table = None                                   # column ids once "node distances:" is read
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        where = f"numactl line {lineno} {raw.strip()!r}"
        if not line or re.fullmatch(r"node \d+ free:.*", line):
            continue
        if m := re.fullmatch(r"available:\s*(\d+)\s+nodes?\s*\(([^)]*)\)", line):
            ids = sorted(set(_parse_list(m[2], where)))
            if int(m[1]) != len(ids) or not ids:
                raise ValueError(f"{where}: says {m[1]} nodes but lists {len(ids)}")
        elif m := re.fullmatch(r"node\s+(\d+)\s+cpus:(.*)", line):
            node = _known(int(m[1]), ids, cpus, where)
            cpus[node] = tuple(_int_words(m[2], where))
        elif m := re.fullmatch(r"node\s+(\d+)\s+size:\s*(.*)", line):
            node = _known(int(m[1]), ids, pages, where)
            size = re.fullmatch(r"(\d+)\s*([kKMGT]?B)", m[2])
            if m[2] != "<not available>" and not size:
                raise ValueError(f"{where}: cannot parse the size {m[2]!r}")
            pages[node] = int(size[1]) * _NUMACTL_UNITS[size[2]] // PAGE_SIZE if size else 0
        elif line == "No distance information available.":
            continue
        elif line == "node distances:":
            table, dist = [], {}
        elif table == [] and (m := re.fullmatch(r"node((?:\s+\d+)+)", line)):
            table = [int(w) for w in m[1].split()]
            if ids is None or sorted(table) != ids:
                raise ValueError(f"{where}: distance table nodes {table} differ from the "
                                 f"available nodes {ids}")
        elif table and (m := re.fullmatch(r"(\d+):((?:\s+\d+)*)", line)):
            row, values = int(m[1]), _int_words(m[2], where)
            if row not in table or len(values) != len(table):
                raise ValueError(f"{where}: expected a row for one of nodes {table} with "
                                 f"{len(table)} distances")
            dist.update(((row, col), d) for col, d in zip(table, values))
        else:
            raise ValueError(f"{where}: unrecognised line")
    if ids is None:
        raise ValueError("numactl text has no 'available: N nodes (...)' line")
    for name, got in (("cpus", cpus), ("size", pages)):
        if missing := [i for i in ids if i not in got]:
            raise ValueError(f"numactl text has no 'node {missing[0]} {name}:' line")
    if dist is not None and len(dist) != len(ids) ** 2:
        raise ValueError(f"numactl distance table is incomplete: {len(dist)} of "
                         f"{len(ids) ** 2} entries")
    return _assemble(ids, pages, cpus, dist, "numactl text")


def _int_words(text, where):
    words = text.split()
    if not all(re.fullmatch(r"[0-9]+", w) for w in words):
        raise ValueError(f"{where}: expected integers, got {text.strip()!r}")
    return [int(w) for w in words]


def _known(node, ids, seen, where):
    if ids is None:
        raise ValueError(f"{where}: comes before the 'available: N nodes (...)' line")
    if node not in ids:
        raise ValueError(f"{where}: node {node} is not among the available nodes {ids}")
    if node in seen:
        raise ValueError(f"{where}: node {node} is described twice")
    return node


def _read(path):
    with open(path, encoding="ascii") as f:
        return f.read()


def read_sysfs(root):
    ids = sorted(int(m[1]) for e in os.listdir(root) if (m := re.fullmatch(r"node(\d+)", e))
                 and os.path.isdir(os.path.join(root, e)))
    if not ids:
        raise ValueError(f"{root}: no node<N> directories")
    cpus, pages, dist = {}, {}, {}
    for node in ids:
        base = os.path.join(root, f"node{node}")
        file = os.path.join(base, "cpulist")
        cpus[node] = _parse_list(_read(file), file)
        file = os.path.join(base, "meminfo")
        m = re.search(rf"^Node\s+{node}\s+MemTotal:\s+(\d+)\s+kB\s*$", _read(file), re.M)
        if not m:
            raise ValueError(f"{file}: no 'Node {node} MemTotal: <n> kB' line")
        pages[node] = int(m[1]) * 1024 // PAGE_SIZE
        file = os.path.join(base, "distance")
        values = _int_words(_read(file), file)
        if len(values) != len(ids):
            raise ValueError(f"{file}: {len(values)} distances for {len(ids)} nodes {ids}")
        dist.update(((node, col), d) for col, d in zip(ids, values))
    return _assemble(ids, pages, cpus, dist, root)
