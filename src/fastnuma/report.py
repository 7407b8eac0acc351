"""Report: what a replay did to the machine, as Python objects, Arrow tables and files.

``ReportBuilder`` collects during the replay (epochs, fault events, failed calls);
``Report`` holds the result: counters (vmstat names), per-node counters, the access matrix
(CPU node x memory node, reads and writes), per-thread local/remote counts, the final
placement (pages per node per process), out-of-memory and segmentation-fault events,
system calls that failed, and one time-series row per epoch.
"""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .constants import TASK_SIZE, PAGE_SHIFT
from .dtypes import C_NUMA_HINT_FAULTS, C_NUMA_PAGES_MIGRATED, C_PGMIGRATE_SUCCESS
from .kernels.range import numa_maps_stats
from .epochs import EpochLog
from .outdir import write_set

REPORT_FILES = tuple(f"{name}.parquet" for name in (
    "counters", "nodes", "access_matrix", "threads", "placement", "faults", "failed_calls",
    "epochs", "epoch_nodes", "numa_maps", "heat", "cost_epochs", "cost_threads")) + (
    "summary.json",)
EPOCH_COLUMNS = ("end_row", "end_ns", "accesses", "remote", "remote_fraction",
                 "numa_hint_faults", "numa_pages_migrated", "pgmigrate_success")


class ReportBuilder:
    """Collects a replay's time series and events."""

    def __init__(self, sim, heat_buckets=None):
        self.sim = sim
        self.heat = None                 # the placement heatmap's sampler (heat.py)
        if heat_buckets is not None:
            from .heat import HeatRecorder
            self.heat = HeatRecorder(sim, heat_buckets)
        self.epochs = EpochLog(sim.topology.n_nodes)          # arrays, not a tuple each
        self.faults = []                 # (row, kind, pid, tid, addr)
        self.failed = []                 # (row, op, pid, tid, errno, message)
        self.implicit_mappings = 0
        self._last = self._snapshot()
        # what-if hook: per-epoch access matrix and vmstat deltas (the cost model's input)
        self.epoch_access, self.epoch_vmstat = [], []
        self._last_matrix = sim.access_counts.sum(axis=2)
        self._last_vm = sim.vm.copy()

    def _snapshot(self):
        c = self.sim.access_counts.sum(axis=2)
        vm = self.sim.vm
        return (int(c.sum()), int(c.sum() - np.trace(c)), int(vm[C_NUMA_HINT_FAULTS]),
                int(vm[C_NUMA_PAGES_MIGRATED]), int(vm[C_PGMIGRATE_SUCCESS]))

    def epoch(self, end_row, end_ns):
        now = self._snapshot()
        acc, remote, hints, migrated, moved = (a - b for a, b in zip(now, self._last))
        self._last = now
        used = self.sim.topology_pages - self.sim.free
        self.epochs.append(end_row, end_ns, acc, remote, remote / acc if acc else 0.0,
                           hints, migrated, moved, used)
        matrix = self.sim.access_counts.sum(axis=2)
        self.epoch_access.append(matrix - self._last_matrix)
        self.epoch_vmstat.append(self.sim.vm - self._last_vm)
        self._last_matrix, self._last_vm = matrix, self.sim.vm.copy()
        if self.heat is not None:
            self.heat.sample(len(self.epochs) - 1, end_row, end_ns)

    def fault_event(self, row, kind, pid, tid, addr):
        self.faults.append((row, kind, pid, tid, addr))

    def failed_call(self, row, op, pid, tid, err, message):
        self.failed.append((row, op, pid, tid, err, message))

    def implicit_mapping(self):
        self.implicit_mappings += 1

    def build(self, rows):
        sim = self.sim
        n = sim.topology.n_nodes
        placement = {}
        for pid, proc in sorted(sim.procs.items()):
            per_node = np.zeros(n, np.int64)
            numa_maps_stats(sim.st, sim.pt.blocks_of(proc.asid), 0, TASK_SIZE >> PAGE_SHIFT,
                            per_node, np.zeros(3, np.int64))
            placement[pid] = per_node
        threads = [dict(tid=tid, pid=th.pid, cpu=th.cpu, node=sim.topology.cpu_node[th.cpu],
                        local=th.local, remote=th.remote)
                   for tid, th in sorted(sim.threads.items())]
        return dict(rows=rows, topology=sim.topology.describe(), knobs=sim.config.describe(),
                    vmstat=sim.vmstat(), numastat=sim.numastat(),
                    access_matrix=sim.access_counts.copy(), threads=threads,
                    placement=placement, faults=list(self.faults), failed_calls=list(self.failed),
                    implicit_mappings=self.implicit_mappings, epochs=self.epochs,
                    free_pages=sim.free.copy(), node_pages=sim.topology_pages.copy(),
                    now_ns=sim.now_ns,
                    epoch_access=np.array(self.epoch_access, np.int64).reshape(-1, n, n),
                    epoch_vmstat=np.array(self.epoch_vmstat, np.int64).reshape(
                        -1, sim.vm.size),
                    numa_maps={pid: sim.numa_maps(pid) for pid in sorted(sim.procs)},
                    provenance=None,
                    heat=None if self.heat is None else self.heat.table())


class Report:
    """The outcome of :meth:`fastnuma.Simulator.replay`.

    Attributes: ``rows`` (events replayed), ``topology`` (text), ``knobs`` (dict),
    ``vmstat`` (dict, Linux names), ``numastat`` ({node: {counter: value}}),
    ``access_matrix`` (int64 [cpu node, memory node, read/write]), ``threads`` (list of
    dicts: tid, pid, cpu, node, local, remote), ``placement`` ({pid: pages per node}),
    ``faults`` (out-of-memory kills and segmentation faults: row, kind, pid, tid, addr),
    ``failed_calls`` (row, op, pid, tid, errno, message), ``implicit_mappings``,
    ``epochs`` (see :meth:`to_tables`), ``epoch_access`` (int64 [epoch, cpu node, memory
    node]: accesses in each epoch), ``epoch_vmstat`` (int64 [epoch, counter]: vmstat
    deltas, VMSTAT_NAMES order), ``numa_maps`` ({pid: /proc/PID/numa_maps text}),
    ``provenance`` (dict or None: configuration and trace, docs/run-config.md), ``heat`` (the placement heatmap's long
    table when the replay recorded one with ``heat_buckets``, else None; docs/report.md).
    """

    def __init__(self, data):
        self.__dict__.update(data)

    def to_tables(self):
        """The report as pyarrow Tables: counters, nodes, access_matrix, threads, placement,
        faults, failed_calls, epochs, and heat when recorded."""
        n = len(self.node_pages)
        nodes = {"node": list(range(n)), "node_pages": self.node_pages.tolist(),
                 "free_pages": self.free_pages.tolist()}
        for name in next(iter(self.numastat.values()), {}):
            nodes[name] = [self.numastat[k][name] for k in range(n)]
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
        } | ({} if getattr(self, "heat", None) is None else {"heat": self.heat}) | {
            f"cost_{name}": self.cost[name] for name in ("epochs", "threads")
            if getattr(self, "cost", None)}

    def summary_dict(self):
        """What summary.json holds: the scalars and small tables, JSON-ready."""
        return {"rows": self.rows, "topology": self.topology, "knobs": self.knobs,
                "now_ns": self.now_ns, "vmstat": self.vmstat,
                "numastat": {str(k): v for k, v in self.numastat.items()},
                "placement": {str(k): v.tolist() for k, v in self.placement.items()},
                "faults": len(self.faults), "failed_calls": len(self.failed_calls),
                "implicit_mappings": self.implicit_mappings, "epochs": len(self.epochs)} | (
                    {"provenance": self.provenance} if getattr(self, "provenance", None)
                    else {})

    def write(self, directory):
        """Write every table as ``<name>.parquet`` and ``summary.json`` into ``directory``,
        as a set: staged next to it and swapped in with one rename, so the directory holds
        the whole new report or what it held before (fastnuma/outdir.py). An existing
        ``directory`` may hold only a report's files (:data:`REPORT_FILES`)."""
        meta = provenance_metadata(self)
        writers = {}
        for name, table in self.to_tables().items():
            if name in WHAT_IF_TABLES and not getattr(self, "provenance", None):
                continue          # a plain Simulator.replay keeps its original file set
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
            writers[f"{name}.parquet"] = lambda f, t=table: pq.write_table(t, f)
        summary = self.summary_dict()
        if getattr(self, "cost", None):                 # the cost model's totals
            summary["cost"] = {k: v for k, v in self.cost.items()
                               if not isinstance(v, pa.Table)}
        text = json.dumps(summary, indent=2, default=int)
        writers["summary.json"] = lambda f: f.write(text.encode())
        write_set(directory, writers)

    def summary(self):
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

    def plot(self, kinds=None):
        """The report's figures as {kind: matplotlib Figure} (needs fastnuma[plot]); kinds
        and their axes are in docs/report.md (fastnuma.plot.KINDS)."""
        from .plot import plot_report
        return plot_report(self, kinds)

    def __repr__(self):
        return f"<fastnuma.Report: {self.rows:,} events, {len(self.epochs)} epochs>"


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
    acc = getattr(report, "epoch_access", np.zeros((len(ep), n, n), np.int64))
    used = np.array([e[-1] for e in ep], np.int64).reshape(-1, n)
    long = pa.table({
        "epoch": e_idx, "end_row": np.repeat([e[0] for e in ep], n).astype(np.int64),
        "end_ns": np.repeat([e[1] for e in ep], n).astype(np.int64), "node": node,
        "pages_used": used.ravel(), "accesses_from": acc.sum(axis=2).ravel(),
        "accesses_to": acc.sum(axis=1).ravel(),
        "remote_to": (acc.sum(axis=1) - np.diagonal(acc, axis1=1, axis2=2)).ravel()},
        schema=_EPOCH_NODES)
    maps = getattr(report, "numa_maps", {}) or {}
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
    prov = getattr(report, "provenance", None)
    if prov:
        meta[b"fastnuma.provenance"] = json.dumps(prov, sort_keys=True, default=str).encode()
    return meta
