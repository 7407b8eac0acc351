"""Report: what a replay did to the machine, as Python objects, Arrow tables and files.

``ReportBuilder`` collects during the replay (epochs, fault events, failed calls) from
counters handed to it (it reads no kernel and no simulator);
``Report`` holds the result: counters (vmstat names), per-node counters, the access matrix
(CPU node x memory node, reads and writes), per-thread local/remote counts, the final
placement (pages per node per process), out-of-memory and segmentation-fault events,
system calls that failed, and one time-series row per epoch.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .dtypes import C_NUMA_HINT_FAULTS, C_NUMA_PAGES_MIGRATED, C_PGMIGRATE_SUCCESS

EPOCH_COLUMNS = ("end_row", "end_ns", "accesses", "remote", "remote_fraction",
                 "numa_hint_faults", "numa_pages_migrated", "pgmigrate_success")


class ReportBuilder:
    """Collects a replay's time series and events from the counters handed to it: the
    access matrix ``access_counts`` [cpu node, memory node, read/write], the vmstat
    counters ``vm`` (dtypes.VMSTAT_NAMES order), each node's capacity ``node_pages`` and
    its ``free`` pages. They are live arrays the replay updates; each epoch reads them."""

    def __init__(self, access_counts: np.ndarray, vm: np.ndarray, node_pages: np.ndarray,
                 free: np.ndarray):
        self._access_counts = access_counts
        self._vm = vm
        self._node_pages = node_pages
        self._free = free
        self.epochs: list[tuple] = []
        self.faults: list[tuple] = []          # (row, kind, pid, tid, addr)
        self.failed: list[tuple] = []          # (row, op, pid, tid, errno, message)
        self.implicit_mappings = 0
        self._last = self._snapshot()

    def _snapshot(self):
        c = self._access_counts.sum(axis=2)
        vm = self._vm
        return (int(c.sum()), int(c.sum() - np.trace(c)), int(vm[C_NUMA_HINT_FAULTS]),
                int(vm[C_NUMA_PAGES_MIGRATED]), int(vm[C_PGMIGRATE_SUCCESS]))

    def epoch(self, end_row: int, end_ns: int) -> None:
        now = self._snapshot()
        acc, remote, hints, migrated, moved = (a - b for a, b in zip(now, self._last))
        self._last = now
        used = self._node_pages - self._free
        self.epochs.append((end_row, end_ns, acc, remote, remote / acc if acc else 0.0,
                            hints, migrated, moved, used.copy()))

    def fault_event(self, row: int, kind: str, pid: int, tid: int, addr: int) -> None:
        self.faults.append((row, kind, pid, tid, addr))

    def failed_call(self, row: int, op: str, pid: int, tid: int, err: int,
                    message: str) -> None:
        self.failed.append((row, op, pid, tid, err, message))

    def implicit_mapping(self) -> None:
        self.implicit_mappings += 1

    def build(self, rows: int, *, topology: str, knobs: dict, vmstat: dict, numastat: dict,
              threads: list, placement: dict, now_ns: int) -> Report:
        """The report, from what the replay collected and the final state handed in."""
        return Report(rows=rows, topology=topology, knobs=knobs, vmstat=vmstat,
                      numastat=numastat, access_matrix=self._access_counts.copy(),
                      threads=threads, placement=placement, faults=list(self.faults),
                      failed_calls=list(self.failed),
                      implicit_mappings=self.implicit_mappings, epochs=list(self.epochs),
                      free_pages=self._free.copy(), node_pages=self._node_pages.copy(),
                      now_ns=now_ns)


@dataclass(eq=False, repr=False)
class Report:
    """The outcome of :meth:`fastnuma.Simulator.replay` (docs/api.md, "Trace replay").

    Attributes
    ----------
    rows : int
        Events replayed.
    topology : str
        The machine, as ``Topology.describe()`` writes it.
    knobs : dict
        Every kernel knob and its value.
    vmstat : dict
        /proc/vmstat counters under their Linux names.
    numastat : dict
        {node: {numa_hit, numa_miss, numa_foreign, interleave_hit, local_node, other_node}}.
    access_matrix : numpy.ndarray
        int64 [cpu node, memory node, read/write]: accesses.
    threads : list of dict
        tid, pid, cpu, node, local, remote (accesses) per thread.
    placement : dict
        {pid: int64 pages mapped per node}.
    faults : list of tuple
        Out-of-memory kills and segmentation faults: (row, kind, pid, tid, addr).
    failed_calls : list of tuple
        System calls of the trace that failed: (row, op, pid, tid, errno, message).
    implicit_mappings : int
        2 MiB regions a bare access trace mapped implicitly.
    epochs : list of tuple
        One row per epoch (columns: :data:`EPOCH_COLUMNS`, then pages used per node).
    free_pages, node_pages : numpy.ndarray
        Free pages and capacity per node at the end (4 KiB pages).
    now_ns : int
        Simulated time at the end, ns.
    """
    rows: int
    topology: str
    knobs: dict
    vmstat: dict
    numastat: dict
    access_matrix: np.ndarray
    threads: list
    placement: dict
    faults: list
    failed_calls: list
    implicit_mappings: int
    epochs: list
    free_pages: np.ndarray
    node_pages: np.ndarray
    now_ns: int

    def to_tables(self) -> dict[str, pa.Table]:
        """The report as pyarrow Tables: counters, nodes, access_matrix, threads, placement,
        faults, failed_calls, epochs."""
        n = len(self.node_pages)
        nodes = {"node": list(range(n)), "node_pages": self.node_pages.tolist(),
                 "free_pages": self.free_pages.tolist()}
        for name in next(iter(self.numastat.values()), {}):
            nodes[name] = [self.numastat[k][name] for k in range(n)]
        m = self.access_matrix
        cpu_node, mem_node = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        ep = self.epochs
        epochs = {c: [e[k] for e in ep] for k, c in enumerate(EPOCH_COLUMNS)}
        for node in range(n):
            epochs[f"pages_node{node}"] = [int(e[-1][node]) for e in ep]
        return {
            "counters": pa.table({"name": list(self.vmstat),
                                  "value": pa.array(list(self.vmstat.values()), pa.int64())}),
            "nodes": pa.table(nodes),
            "access_matrix": pa.table({"cpu_node": cpu_node.ravel(),
                                       "mem_node": mem_node.ravel(),
                                       "reads": m[:, :, 0].ravel(),
                                       "writes": m[:, :, 1].ravel()}),
            "threads": pa.Table.from_pylist(self.threads, schema=_THREADS),
            "placement": pa.table({
                "pid": [pid for pid in self.placement for _ in range(n)],
                "node": [k for _ in self.placement for k in range(n)],
                "pages": [int(x) for v in self.placement.values() for x in v]},
                schema=_PLACEMENT),
            "faults": pa.Table.from_pylist([dict(zip(_FAULTS.names, f)) for f in self.faults],
                                           schema=_FAULTS),
            "failed_calls": pa.Table.from_pylist(
                [dict(zip(_FAILED.names, f)) for f in self.failed_calls], schema=_FAILED),
            "epochs": pa.table(epochs) if ep else pa.table({c: [] for c in EPOCH_COLUMNS}),
        }

    def summary_dict(self) -> dict:
        """What summary.json holds: the scalars and small tables, JSON-ready."""
        return {"rows": self.rows, "topology": self.topology, "knobs": self.knobs,
                "now_ns": self.now_ns, "vmstat": self.vmstat,
                "numastat": {str(k): v for k, v in self.numastat.items()},
                "placement": {str(k): v.tolist() for k, v in self.placement.items()},
                "faults": len(self.faults), "failed_calls": len(self.failed_calls),
                "implicit_mappings": self.implicit_mappings, "epochs": len(self.epochs)}

    def write(self, directory: str | os.PathLike) -> None:
        """Write every table as ``<name>.parquet`` and ``summary.json`` into ``directory``
        (created if needed). Each file is written to a temporary name and renamed: it is
        there whole or not at all."""
        os.makedirs(directory, exist_ok=True)
        for name, table in self.to_tables().items():
            _atomic(directory, f"{name}.parquet", lambda f, t=table: pq.write_table(t, f))
        text = json.dumps(self.summary_dict(), indent=2, default=int)
        _atomic(directory, "summary.json", lambda f: f.write(text.encode()))

    def summary(self) -> str:
        """A readable summary table (what ``fastnuma replay`` prints)."""
        vm = self.vmstat
        acc = int(self.access_matrix.sum())
        local = int(sum(self.access_matrix[k, k].sum() for k in range(len(self.node_pages))))
        lines = [f"events replayed      {self.rows:,}",
                 f"topology             {self.topology}",
                 f"simulated time       {self.now_ns / 1e9:.3f} s",
                 f"accesses             {acc:,} ({100 * (acc - local) / acc if acc else 0:.1f}% "
                 f"remote)"]
        for name in ("pgfault", "numa_hit", "numa_miss", "numa_pte_updates",
                     "numa_hint_faults", "numa_hint_faults_local", "numa_pages_migrated",
                     "pgmigrate_success", "pgmigrate_fail", "thp_fault_alloc", "oom_kill"):
            lines.append(f"{name:<20} {vm[name]:,}")
        lines.append("placement (pages per node)")
        for pid, per_node in self.placement.items():
            lines.append(f"  process {pid:<10} " + "  ".join(
                f"N{k}={int(x):,}" for k, x in enumerate(per_node) if x))
        if self.faults:
            lines.append(f"fault events         {len(self.faults)} (first: row "
                         f"{self.faults[0][0]}, {self.faults[0][1]})")
        if self.failed_calls:
            lines.append(f"failed calls         {len(self.failed_calls)} (first: row "
                         f"{self.failed_calls[0][0]}, {self.failed_calls[0][5]})")
        if self.implicit_mappings:
            lines.append(f"implicit mappings    {self.implicit_mappings}")
        return "\n".join(lines)

    def __repr__(self):
        return f"<fastnuma.Report: {self.rows:,} events, {len(self.epochs)} epochs>"


_THREADS = pa.schema([("tid", pa.int64()), ("pid", pa.int64()), ("cpu", pa.int64()),
                      ("node", pa.int64()), ("local", pa.int64()), ("remote", pa.int64())])
_PLACEMENT = pa.schema([("pid", pa.int64()), ("node", pa.int64()), ("pages", pa.int64())])
_FAULTS = pa.schema([("row", pa.int64()), ("kind", pa.string()), ("pid", pa.int64()),
                     ("tid", pa.int64()), ("addr", pa.uint64())])
_FAILED = pa.schema([("row", pa.int64()), ("op", pa.string()), ("pid", pa.int64()),
                     ("tid", pa.int64()), ("errno", pa.int64()), ("message", pa.string())])


def _atomic(directory, name, write):
    """Write ``directory/name`` through a temporary file renamed into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, os.path.join(directory, name))
    except BaseException:
        os.unlink(tmp)
        raise
