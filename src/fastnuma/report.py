"""Report: what a replay did to the machine, as Python objects, Arrow tables and files.

``ReportBuilder`` collects during the replay (epochs, fault events, failed calls) from
counters handed to it (it reads no kernel and no simulator);
``Report`` holds the result: counters (vmstat names), per-node counters, the access matrix
(CPU node x memory node, reads and writes), per-thread local/remote counts, the final
placement (pages per node per process), out-of-memory and segmentation-fault events,
system calls that failed, one time-series row per epoch, and what the what-if layer,
the placement heatmap and the cost model add (docs/report.md).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .dtypes import C_NUMA_HINT_FAULTS, C_NUMA_PAGES_MIGRATED, C_PGMIGRATE_SUCCESS, N_VMSTAT
from .epochs import COLUMNS as EPOCH_COLUMNS, EpochLog
from .outdir import write_set

REPORT_FILES = tuple(f"{name}.parquet" for name in (
    "counters", "nodes", "access_matrix", "threads", "placement", "faults", "failed_calls",
    "epochs", "epoch_nodes", "numa_maps", "heat", "cost_epochs", "cost_threads")) + (
    "summary.json",)


class ReportBuilder:
    """Collects a replay's time series and events from the counters handed to it: the
    access matrix ``access_counts`` [cpu node, memory node, read/write], the vmstat
    counters ``vm`` (dtypes.VMSTAT_NAMES order), each node's capacity ``node_pages`` and
    its ``free`` pages. They are live arrays the replay updates; each epoch reads them.
    ``heat``: an object whose ``sample(epoch, end_row, end_ns)`` records the placement
    heatmap at each epoch and ``table()`` returns it (fastnuma.heat.HeatRecorder)."""

    def __init__(self, access_counts: np.ndarray, vm: np.ndarray, node_pages: np.ndarray,
                 free: np.ndarray, heat=None, node_rows=None):
        self._access_counts = access_counts
        self._vm = vm
        self._node_pages = node_pages
        self._free = free
        self.heat = heat
        # epochs keep the VMSTAT_NAMES counters (vm may hold the tiering ones after them)
        self.epochs = EpochLog(len(node_pages), N_VMSTAT, node_rows=node_rows)
        self.faults: list[tuple] = []          # (row, kind, pid, tid, addr)
        self.failed: list[tuple] = []          # (row, op, pid, tid, errno, message)
        self.implicit_mappings = 0
        self._last = self._snapshot()
        self._last_matrix = access_counts.sum(axis=2)
        self._last_vm = vm.copy()

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
        matrix = self._access_counts.sum(axis=2)
        self.epochs.append(end_row, end_ns, acc, remote, remote / acc if acc else 0.0,
                           hints, migrated, moved, used, matrix - self._last_matrix,
                           (self._vm - self._last_vm)[:N_VMSTAT])
        self._last_matrix = matrix
        self._last_vm[:] = self._vm
        if self.heat is not None:
            self.heat.sample(len(self.epochs) - 1, end_row, end_ns)
    def fault_event(self, row: int, kind: str, pid: int, tid: int, addr: int) -> None:
        self.faults.append((row, kind, pid, tid, addr))

    def failed_call(self, row: int, op: str, pid: int, tid: int, err: int,
                    message: str) -> None:
        self.failed.append((row, op, pid, tid, err, message))

    def implicit_mapping(self) -> None:
        self.implicit_mappings += 1

    def build(self, rows: int, *, topology: str, knobs: dict, vmstat: dict, numastat: dict,
              threads: list, placement: dict, now_ns: int,
              numa_maps: dict | None = None, node_vmstat: dict | None = None) -> Report:
        """The report, from what the replay collected and the final state handed in."""
        return Report(rows=rows, topology=topology, knobs=knobs, vmstat=vmstat,
                      numastat=numastat, access_matrix=self._access_counts.copy(),
                      threads=threads, placement=placement, faults=list(self.faults),
                      failed_calls=list(self.failed),
                      implicit_mappings=self.implicit_mappings, epochs=self.epochs,
                      free_pages=self._free.copy(), node_pages=self._node_pages.copy(),
                      now_ns=now_ns, epoch_access=self.epochs.access,
                      epoch_vmstat=self.epochs.vm, numa_maps=numa_maps or {},
                      heat=None if self.heat is None else self.heat.table(),
                      node_vmstat=node_vmstat)


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
    epochs : fastnuma.epochs.EpochLog
        A sequence of one tuple per epoch (columns: :data:`EPOCH_COLUMNS`, then pages used
        per node), stored in arrays.
    free_pages, node_pages : numpy.ndarray
        Free pages and capacity per node at the end (4 KiB pages).
    now_ns : int
        Simulated time at the end, ns.
    epoch_access : numpy.ndarray
        int64 [epoch, cpu node, memory node]: accesses in each epoch.
    epoch_vmstat : numpy.ndarray
        int64 [epoch, counter]: vmstat deltas in each epoch (dtypes.VMSTAT_NAMES order).
    numa_maps : dict
        {pid: /proc/PID/numa_maps text} at the end.
    heat : pyarrow.Table or None
        The placement heatmap's long table when the replay recorded one
        (``heat_buckets``; docs/report.md), else None.
    provenance : dict or None
        Configuration, machine and trace of a what-if run (docs/run-config.md).
    cost : dict or None
        The cost model's estimate of a what-if run (docs/cost-model.md).
    node_vmstat : dict or None
        With memory tiering on, {node: pgpromote_success, pgpromote_candidate,
        pgdemote_kswapd, ...} (docs/tiering.md §8; also columns of the ``nodes`` table).
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
    epoch_access: np.ndarray | None = None
    epoch_vmstat: np.ndarray | None = None
    numa_maps: dict | None = None
    heat: pa.Table | None = None
    provenance: dict | None = None
    cost: dict | None = None
    node_vmstat: dict | None = None      # memory tiering on: {node: pgpromote_*, pgdemote_*}

    def to_tables(self) -> dict[str, pa.Table]:
        """The report as pyarrow Tables: counters, nodes, access_matrix, threads, placement,
        faults, failed_calls, epochs, and heat when recorded."""
        n = len(self.node_pages)
        nodes = {"node": list(range(n)), "node_pages": self.node_pages.tolist(),
                 "free_pages": self.free_pages.tolist()}
        for per_node in (self.numastat, self.node_vmstat or {}):     # docs/tiering.md §8
            for name in next(iter(per_node.values()), {}):
                nodes[name] = [per_node[k][name] for k in range(n)]
        m = self.access_matrix
        cpu_node, mem_node = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        ep = self.epochs
        epochs = ep.columns()
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
            **_what_if_tables(self),
        } | ({} if self.heat is None else {"heat": self.heat}) | {
            f"cost_{name}": self.cost[name] for name in ("epochs", "threads")
            if self.cost}

    def summary_dict(self) -> dict:
        """What summary.json holds: the scalars and small tables, JSON-ready."""
        return {"rows": self.rows, "topology": self.topology, "knobs": self.knobs,
                "now_ns": self.now_ns, "vmstat": self.vmstat,
                "numastat": {str(k): v for k, v in self.numastat.items()},
                "placement": {str(k): v.tolist() for k, v in self.placement.items()},
                "faults": len(self.faults), "failed_calls": len(self.failed_calls),
                "implicit_mappings": self.implicit_mappings, "epochs": len(self.epochs)} | (
                    {"provenance": self.provenance} if self.provenance
                    else {}) | ({} if self.node_vmstat is None else {"node_vmstat": {
                        str(k): v for k, v in self.node_vmstat.items()}})

    def write(self, directory: str | os.PathLike) -> None:
        """Write every table as ``<name>.parquet`` and ``summary.json`` into ``directory``,
        as a set: staged next to it and swapped in with one rename, so the directory holds
        the whole new report or what it held before (fastnuma/outdir.py). An existing
        ``directory`` may hold only a report's files (:data:`REPORT_FILES`)."""
        meta = provenance_metadata(self)
        writers = {}
        for name, table in self.to_tables().items():
            if name in WHAT_IF_TABLES and not self.provenance:
                continue          # a plain Simulator.replay keeps its original file set
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
            writers[f"{name}.parquet"] = lambda f, t=table: pq.write_table(t, f)
        summary = self.summary_dict()
        if self.cost:                 # the cost model's totals
            summary["cost"] = {k: v for k, v in self.cost.items()
                               if not isinstance(v, pa.Table)}
        text = json.dumps(summary, indent=2, default=int)
        writers["summary.json"] = lambda f: f.write(text.encode())
        write_set(directory, writers)

    def summary(self) -> str:
        """A readable summary table (what ``fastnuma replay`` prints): one label column as
        wide as the longest counter name (numa_hint_faults_local) and two spaces, then one
        value column."""
        vm = self.vmstat
        acc = int(self.access_matrix.sum())
        local = int(sum(self.access_matrix[k, k].sum() for k in range(len(self.node_pages))))
        line = summary_line
        lines = [line("events replayed", f"{self.rows:,}"),
                 line("topology", self.topology),
                 line("simulated time", f"{self.now_ns / 1e9:.3f} s"),
                 line("accesses", f"{acc:,} ({100 * (acc - local) / acc if acc else 0:.1f}% "
                      f"remote)")]
        for name in SUMMARY_COUNTERS + TIERING_SUMMARY_COUNTERS:
            if name in vm:                   # the tiering ones: memory tiering on
                lines.append(line(name, f"{vm[name]:,}"))
        lines.append("placement (pages per node)")
        for pid, per_node in self.placement.items():
            lines.append(line(f"  process {pid}", "  ".join(
                f"N{k}={int(x):,}" for k, x in enumerate(per_node) if x)))
        if self.faults:
            lines.append(line("fault events", f"{len(self.faults)} (first: row "
                              f"{self.faults[0][0]}, {self.faults[0][1]})"))
        if self.failed_calls:
            lines.append(line("failed calls", f"{len(self.failed_calls)} (first: row "
                              f"{self.failed_calls[0][0]}, {self.failed_calls[0][5]})"))
        if self.implicit_mappings:
            lines.append(line("implicit mappings", f"{self.implicit_mappings}"))
        return "\n".join(lines)

    def plot(self, kinds=None):
        """The report's figures as {kind: matplotlib Figure} (needs fastnuma[plot]); kinds
        and their axes are in docs/report.md (fastnuma.plot.KINDS)."""
        from .plot import plot_report
        return plot_report(self, kinds)

    def __repr__(self):
        return f"<fastnuma.Report: {self.rows:,} events, {len(self.epochs)} epochs>"


#: the counters of the text summary, and the width of its label column (the longest
#: name, numa_hint_faults_local, and two spaces): one value column
SUMMARY_COUNTERS = ("pgfault", "numa_hit", "numa_miss", "numa_pte_updates",
                    "numa_hint_faults", "numa_hint_faults_local", "numa_pages_migrated",
                    "pgmigrate_success", "pgmigrate_fail", "thp_fault_alloc", "oom_kill")
TIERING_SUMMARY_COUNTERS = ("pgpromote_success", "pgdemote_kswapd", "pgdemote_direct")
SUMMARY_LABEL_WIDTH = max(map(len, SUMMARY_COUNTERS)) + 2


def summary_line(label, value):
    """``label`` padded to the summary's label column, then ``value``."""
    return f"{label:<{SUMMARY_LABEL_WIDTH}}{value}"


_THREADS = pa.schema([("tid", pa.int64()), ("pid", pa.int64()), ("cpu", pa.int64()),
                      ("node", pa.int64()), ("local", pa.int64()), ("remote", pa.int64())])
_PLACEMENT = pa.schema([("pid", pa.int64()), ("node", pa.int64()), ("pages", pa.int64())])
_FAULTS = pa.schema([("row", pa.int64()), ("kind", pa.string()), ("pid", pa.int64()),
                     ("tid", pa.int64()), ("addr", pa.uint64())])
_FAILED = pa.schema([("row", pa.int64()), ("op", pa.string()), ("pid", pa.int64()),
                     ("tid", pa.int64()), ("errno", pa.int64()), ("message", pa.string())])


# ---------------------------------------------------------------- what-if additions
# written by runs with a provenance (RunConfig, the CLI); always in to_tables()
WHAT_IF_TABLES = ("epoch_nodes", "numa_maps")

def _what_if_tables(report):
    """epoch_nodes (long form: one row per epoch and node) and numa_maps (one row per
    line per process); docs/report.md gives every column's unit."""
    n = len(report.node_pages)
    ep = report.epochs
    e_idx = np.repeat(np.arange(len(ep), dtype=np.int64), n)
    node = np.tile(np.arange(n, dtype=np.int64), len(ep))
    acc = report.epoch_access
    if acc is None:
        acc = np.zeros((len(ep), n, n), np.int64)
    cols = ep.columns()
    used = np.stack([cols[f"pages_node{k}"] for k in range(n)], axis=1) if n else \
        np.zeros((len(ep), 0), np.int64)
    long = pa.table({
        "epoch": e_idx, "end_row": np.repeat(cols["end_row"], n).astype(np.int64),
        "end_ns": np.repeat(cols["end_ns"], n).astype(np.int64), "node": node,
        "pages_used": used.ravel(), "accesses_from": acc.sum(axis=2).ravel(),
        "accesses_to": acc.sum(axis=1).ravel(),
        "remote_to": (acc.sum(axis=1) - np.diagonal(acc, axis1=1, axis2=2)).ravel()},
        schema=_EPOCH_NODES)
    maps = report.numa_maps or {}
    rows = [(pid, line) for pid, text in maps.items() for line in text.splitlines()]
    return {"epoch_nodes": long,
            "numa_maps": pa.table({"pid": [r[0] for r in rows], "line": [r[1] for r in rows]},
                                  schema=_NUMA_MAPS)}


_EPOCH_NODES = pa.schema([(c, pa.int64()) for c in (
    "epoch", "end_row", "end_ns", "node", "pages_used", "accesses_from", "accesses_to",
    "remote_to")])
_NUMA_MAPS = pa.schema([("pid", pa.int64()), ("line", pa.string())])


def provenance_metadata(report):
    """Parquet schema metadata of every report file: the fastnuma version, and the run's
    configuration and trace (``report.provenance``) as JSON."""
    from . import __version__
    meta = {b"fastnuma.version": __version__.encode()}
    prov = report.provenance
    if prov:
        meta[b"fastnuma.provenance"] = json.dumps(prov, sort_keys=True, default=str).encode()
    return meta
