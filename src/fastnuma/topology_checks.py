"""Checks of the numbers a :class:`~fastnuma.topology.Topology` is built from (capacities,
CPU lists, SLIT distances, watermarks) and the limits they must respect."""
from collections.abc import Sequence

import numpy as np

LOCAL_DISTANCE = 10               # include/linux/topology.h
REMOTE_DISTANCE = 20              # include/linux/topology.h: the default remote distance
MAX_DISTANCE = 255                # a SLIT entry is a u8 (numa_set_distance rejects the rest)
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
