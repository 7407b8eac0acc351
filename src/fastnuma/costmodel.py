"""The cost model: a replay's estimated memory stall time, per epoch and per thread.

Every formula, unit and default is written down in docs/cost-model.md; the symbols here
are the ones there. In short, for epoch e, CPU node c and memory node m:

    f[e,c]   = W[e,c] / N[e,c]             memory-level share of the accesses (trace pass)
    A[e,c,m] = M[e,c,m] * f[e,c]            accesses reaching memory (M: the engine's)
    S[e]     = sum A[e,c,m] * L[c,m] / mlp  latency stall, thread-ns
    K[e]     = sum_k n_k[e] * cost_k        fault, migration, PTE-update and TLB costs, ns
    T_lat[e] = (S[e] + K[e]) / P[e]         P: threads that issued accesses in the epoch
    T_bw[e]  = max_m 64 * sum_c A[e,c,m] / BW[m]   bytes over GB/s (= bytes/ns) -> ns
    T[e]     = max(T_lat[e], T_bw[e])       estimated memory stall (wall) time, ns

N counts the trace's access events, W the accesses they stand for (the ``count`` column)
that miss the last-level cache (kernels/llc.py) when the filter is on, else all of them.
"""
import json
from dataclasses import asdict, dataclass, fields

import numpy as np
import pyarrow as pa

from .constants import OP_READ, OP_WRITE
from .dtypes import VMSTAT_NAMES

LINE_BYTES = 64

# vmstat counter -> the CostModel field that prices one of it (ns)
EVENT_COSTS = {"pgfault": "fault_ns", "numa_hint_faults": "hint_fault_ns",
               "pgmigrate_success": "page_migrate_ns",
               "thp_migration_success": "thp_migrate_ns",
               "numa_pte_updates": "pte_update_ns",
               "fastnuma_prot_numa_flushes": "tlb_flush_ns"}


@dataclass(frozen=True)
class CostModel:
    """Parameters of the cost model (docs/cost-model.md gives each one's source).

    Latency: ``latency_ns`` (matrix [cpu node][memory node], ns), else an MLC
    ``--latency_matrix`` file ``mlc_latency``, else ``local_ns`` x SLIT / 10.
    Bandwidth: ``bandwidth_gbps`` (per memory node, GB/s), else an MLC
    ``--bandwidth_matrix`` file (a node's best column entry), else ``dram_gbps`` for nodes
    with CPUs and ``cxl_gbps`` for CPU-less nodes. ``llc``: "auto" (on for traces whose
    metadata says they are instruction-level, e.g. from lackey), "on" or "off"."""
    local_ns: float = 90.0
    latency_ns: tuple = None
    mlc_latency: str = None
    mlc_bandwidth: str = None
    bandwidth_gbps: tuple = None
    dram_gbps: float = 100.0
    cxl_gbps: float = 25.0
    fault_ns: float = 1000.0
    hint_fault_ns: float = 1500.0
    page_migrate_ns: float = 5000.0
    thp_migrate_ns: float = 20000.0
    pte_update_ns: float = 10.0
    tlb_flush_ns: float = 3000.0
    mlp: float = 1.0
    llc: str = "auto"
    llc_bytes: int = 32 << 20
    llc_ways: int = 16

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type is float and (not isinstance(v, (int, float)) or isinstance(v, bool)
                                    or not v >= 0):
                raise ValueError(f"cost.{f.name} = {v!r}: expected a number >= 0")
        if self.mlp <= 0 or self.local_ns <= 0:
            raise ValueError("cost.mlp and cost.local_ns must be > 0")
        if self.llc not in ("auto", "on", "off"):
            raise ValueError(f"cost.llc = {self.llc!r}: expected auto, on or off")
        from .kernels.llc import new_cache          # checks size and ways
        new_cache(1, self.llc_bytes, self.llc_ways)

    def describe(self):
        return {k: (list(map(list, v)) if k == "latency_ns" and v is not None else
                    list(v) if isinstance(v, tuple) else v)
                for k, v in asdict(self).items() if v is not None}

    def latency(self, topology):
        """L[c, m] in ns (float64, n x n)."""
        n = topology.n_nodes
        if self.latency_ns is not None:
            lat = np.array(self.latency_ns, float)
        elif self.mlc_latency is not None:
            from .mlc import read_mlc
            mats = read_mlc(self.mlc_latency)
            if "latency" not in mats:
                raise ValueError(f"{self.mlc_latency}: no latency matrix")
            lat = mats["latency"].values.copy()
            slit = np.array(topology.distance, float)
            # rows MLC does not print (CPU-less nodes) never issue accesses: fill by SLIT
            miss = np.isnan(lat)
            lat[miss] = (self.local_ns * slit / 10.0)[miss] if lat.shape == slit.shape else 0
        else:
            lat = self.local_ns * np.array(topology.distance, float) / 10.0
        if lat.shape != (n, n):
            raise ValueError(f"latency matrix is {lat.shape[0]}x{lat.shape[1]}; the machine "
                             f"has {n} nodes")
        return lat

    def bandwidth(self, topology):
        """BW[m] in GB/s (= bytes/ns), per memory node."""
        n = topology.n_nodes
        if self.bandwidth_gbps is not None:
            bw = np.array(self.bandwidth_gbps, float)
        elif self.mlc_bandwidth is not None:
            from .mlc import read_mlc
            mats = read_mlc(self.mlc_bandwidth)
            if "bandwidth" not in mats:
                raise ValueError(f"{self.mlc_bandwidth}: no bandwidth matrix")
            bw = np.nanmax(mats["bandwidth"].values, axis=0)
        else:
            bw = np.array([self.dram_gbps if topology.node_cpus[m] else self.cxl_gbps
                           for m in range(n)], float)
        if bw.shape != (n,) or not (bw > 0).all():
            raise ValueError(f"bandwidths {bw.tolist()}: expected {n} positive values")
        return bw


@dataclass
class TracePass:
    """What the cost model reads from the trace itself (see trace_pass)."""
    events: np.ndarray        # N[e, c]: access events
    weight: np.ndarray        # W[e, c]: accesses reaching memory (count-weighted)
    threads: np.ndarray       # P[e]: threads with at least one access event
    thread_events: dict       # tid -> events
    thread_weight: dict       # tid -> memory-level accesses
    llc: bool


def llc_wanted(model, trace):
    """Whether the cache filter applies: model.llc, "auto" = the trace says it is
    instruction-level (generator metadata "level": "instruction")."""
    if model.llc != "auto":
        return model.llc == "on"
    if isinstance(trace, (pa.Table, pa.RecordBatchReader)):
        meta = trace.schema.metadata or {}
    else:
        from .trace.info import read_schema
        from .trace.reader import trace_files
        meta = read_schema(trace_files(trace)[0]).metadata or {}
    gen = meta.get(b"fastnuma.trace.generator")
    try:
        return json.loads(gen).get("level") == "instruction" if gen else False
    except (ValueError, AttributeError):
        return False


def trace_pass(trace, topology, end_rows, model, cpu_table=None, batch_rows=1 << 20,
               llc=None):
    """The cost model's pass over the trace on its own (TraceCounter over every batch);
    epoch e holds rows end_rows[e-1]..end_rows[e]-1. A what-if run counts as it replays
    instead (whatif.run)."""
    from .trace.reader import open_trace
    use_llc = llc_wanted(model, trace) if llc is None else llc
    counter = TraceCounter(topology, model, use_llc, batch_rows)
    ends = np.asarray(end_rows, np.int64)
    for b in open_trace(trace, batch_rows):
        counter.add(b, ends, None if cpu_table is None else cpu_table[b.cpu])
    return counter.result(len(ends))


class TraceCounter:
    """N, W, P per epoch and per-thread totals (TracePass), counted batch by batch by the
    kernel kernels/costmodel.count_events; the cache filter is kernels/llc.llc_filter.
    Batches come in trace order; ``add(b, ends)`` needs the ends of the epochs closed
    before b's last row (later ones may be missing: those rows count in the epoch after
    the last end given, as the final list will say)."""

    def __init__(self, topology, model, use_llc, batch_rows=1 << 20):
        from .kernels.costmodel import DIRECT_TIDS
        from .kernels.llc import new_cache
        self.n = topology.n_nodes
        self.cpu_node = np.array(topology.cpu_node, np.int64)
        self.llc = use_llc
        self.cache = new_cache(self.n, model.llc_bytes, model.llc_ways) if use_llc else None
        self.miss = np.empty(batch_rows if use_llc else 0, np.uint8)   # the filter's output
        self.N = np.zeros((1, self.n), np.int64)
        self.W = np.zeros((1, self.n), np.float64)
        self.P = np.zeros(1, np.int64)
        # per thread (at the tid, or DIRECT_TIDS + the index of a large tid's table):
        # events, weight (sums of counts: exact, as floats), last epoch
        self.counts = _thread_counts(DIRECT_TIDS + 32)
        self.keys = np.full(64, -1, np.int64)              # the table: tid, index
        self.ids = np.zeros(64, np.int64)
        self.n_hashed = np.zeros(1, np.int64)
        self.per_cpu = np.zeros((2, self.cpu_node.size), np.int64)   # the kernel's scratch

    def add(self, b, ends, cpu=None):
        """Count batch ``b`` (a TraceBatch; ``cpu``: its CPUs as the machine's, default
        b.cpu); ``ends``: int64 array of epoch end rows."""
        from .kernels.costmodel import count_events
        from .kernels.llc import llc_filter
        cpu = b.cpu if cpu is None else cpu
        if ends.size + 1 > self.N.shape[0]:
            rows = max(ends.size + 1, 2 * self.N.shape[0])
            self.N, self.W, self.P = (np.concatenate([a, np.zeros((rows - len(a),) + a.shape[1:],
                                                                   a.dtype)])
                                      for a in (self.N, self.W, self.P))
        reach = None
        if self.llc:
            if self.miss.size < len(b):
                self.miss = np.empty(len(b), np.uint8)
            reach = self.miss[:len(b)]
            is_acc = (b.op == OP_READ) | (b.op == OP_WRITE)
            llc_filter(b.addr, self.cpu_node[cpu], is_acc, *self.cache, reach)
        start = 0
        while True:
            start = count_events(start, b.row, b.op, cpu, b.tid, b.count, reach,
                                 self.cpu_node, ends, self.N, self.W, self.P, *self.counts,
                                 self.keys, self.ids, self.n_hashed, *self.per_cpu)
            if start == len(b):
                return
            if start < 0:
                k = -1 - start
                raise IndexError(f"row {b.row + k}: CPU {int(cpu[k])} is not in the "
                                 f"topology (CPUs 0..{self.cpu_node.size - 1})")
            self._grow_table()

    def _grow_table(self):
        """Room for one more large tid: twice the indices, or the table rehashed twice
        as large."""
        from .kernels.costmodel import DIRECT_TIDS
        n = int(self.n_hashed[0])
        if DIRECT_TIDS + n == self.counts[0].size:
            more = _thread_counts(n)
            self.counts = tuple(np.concatenate([a, b]) for a, b in zip(self.counts, more))
        if 2 * (n + 1) > self.keys.size:
            used = self.keys != -1
            old_keys, old_ids = self.keys[used], self.ids[used]
            self.keys = np.full(2 * self.keys.size, -1, np.int64)
            self.ids = np.zeros(self.keys.size, np.int64)
            mask = self.keys.size - 1
            for t, x in zip(old_keys.tolist(), old_ids.tolist()):
                h = ((t * 0x9E3779B97F4A7C15) % (1 << 64)) >> 40 & mask
                while self.keys[h] != -1:
                    h = (h + 1) & mask
                self.keys[h], self.ids[h] = t, x

    def result(self, epochs):
        """The TracePass of a trace cut into ``epochs`` epochs."""
        from .kernels.costmodel import DIRECT_TIDS, NOT_SEEN
        events, weight, last = self.counts
        small = np.flatnonzero(last[:DIRECT_TIDS] != NOT_SEEN)
        used = self.keys != -1
        tids = small.tolist() + self.keys[used].tolist()
        at = np.concatenate([small, DIRECT_TIDS + self.ids[used]])
        E = max(epochs, 0)
        return TracePass(self.N[:E].copy(), self.W[:E].copy(), self.P[:E].copy(),
                         dict(zip(tids, events[at].tolist())),
                         dict(zip(tids, weight[at].astype(np.float64).tolist())), self.llc)


def _thread_counts(n):
    """(events, weight, last epoch) for ``n`` threads, none seen."""
    from .kernels.costmodel import NOT_SEEN
    return (np.zeros(n, np.int64), np.zeros(n, np.int64),
            np.full(n, NOT_SEEN, np.int64))


def estimate(report, trace_info, topology, model):
    """The cost estimate of ``report`` (from the run's TracePass ``trace_info``):
    a dict with ``epochs`` and ``threads`` (Arrow tables; columns in docs/cost-model.md),
    ``estimated_ns``, ``stall_thread_ns``, ``memory_accesses``."""
    lat = model.latency(topology)
    bw = model.bandwidth(topology)
    M = np.asarray(report.epoch_access, np.float64)              # [e, c, m]
    E = M.shape[0]
    Nt, Wt = trace_info.events, trace_info.weight
    f = np.divide(Wt, Nt, out=np.zeros_like(Wt), where=Nt > 0)  # [e, c]
    A = M * f[:, :, None]
    S = (A * lat[None]).sum(axis=(1, 2)) / model.mlp
    vm = np.asarray(report.epoch_vmstat, np.float64).reshape(E, len(VMSTAT_NAMES))
    K = np.zeros(E)
    for name, field in EVENT_COSTS.items():
        K += vm[:, VMSTAT_NAMES.index(name)] * getattr(model, field)
    P = np.maximum(trace_info.threads, 1)
    t_lat = (S + K) / P
    node_bw_ns = LINE_BYTES * A.sum(axis=1) / bw[None]             # [e, m]
    t_bw = node_bw_ns.max(axis=1) if E else np.zeros(0)
    T = np.maximum(t_lat, t_bw)
    ep = report.epochs
    epochs = pa.table({
        "epoch": np.arange(E, dtype=np.int64),
        "end_row": np.array([x[0] for x in ep], np.int64),
        "end_ns": np.array([x[1] for x in ep], np.int64),
        "memory_accesses": A.sum(axis=(1, 2)), "threads": P.astype(np.int64),
        "latency_stall_ns": S, "event_ns": K, "latency_bound_ns": t_lat,
        "bandwidth_bound_ns": t_bw,
        "bandwidth_node": (node_bw_ns.argmax(axis=1) if E else np.zeros(0)).astype(np.int64),
        "bound": ["bandwidth" if b > l else "latency" for l, b in zip(t_lat, t_bw)],
        "estimated_ns": T})
    return {"epochs": epochs, "threads": _threads(report, trace_info, lat, model),
            "estimated_ns": float(T.sum()), "stall_thread_ns": float((S + K).sum()),
            "memory_accesses": float(A.sum())}


def _threads(report, trace_info, lat, model):
    """Per thread: W_t x (l_t L[n,n] + (1 - l_t) R[n]) / mlp, where n is the thread's node,
    l_t its local share (engine) and R[n] node n's access-weighted remote latency."""
    total = np.asarray(report.access_matrix, np.float64).sum(axis=2)     # [c, m]
    rows = []
    for th in report.threads:
        n = th["node"]
        remote = total[n].copy()
        remote[n] = 0
        r_lat = (remote * lat[n]).sum() / remote.sum() if remote.sum() else \
            np.delete(lat[n], n).mean() if lat.shape[0] > 1 else lat[n, n]
        acc = th["local"] + th["remote"]
        lf = th["local"] / acc if acc else 1.0
        w = trace_info.thread_weight.get(th["tid"], 0.0)
        rows.append(dict(tid=th["tid"], pid=th["pid"], node=n,
                         events=trace_info.thread_events.get(th["tid"], 0),
                         memory_accesses=w, local_fraction=lf,
                         estimated_stall_ns=w * (lf * lat[n, n] + (1 - lf) * r_lat) /
                         model.mlp))
    return pa.Table.from_pylist(rows, schema=_THREADS)


_THREADS = pa.schema([("tid", pa.int64()), ("pid", pa.int64()), ("node", pa.int64()),
                      ("events", pa.int64()), ("memory_accesses", pa.float64()),
                      ("local_fraction", pa.float64()),
                      ("estimated_stall_ns", pa.float64())])
