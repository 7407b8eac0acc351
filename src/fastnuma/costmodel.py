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
    """One streaming pass over the trace: N, W, P per epoch (epoch e holds rows
    end_rows[e-1]..end_rows[e]-1) and per-thread totals. Vectorised per batch; the cache
    filter is the Numba kernel kernels/llc.llc_filter."""
    from .kernels.llc import llc_filter, new_cache
    from .trace.reader import open_trace
    n, E = topology.n_nodes, len(end_rows)
    use_llc = llc_wanted(model, trace) if llc is None else llc
    N = np.zeros((max(E, 1), n), np.int64)
    W = np.zeros((max(E, 1), n), np.float64)
    cpu_node = np.array(topology.cpu_node, np.int64)
    cache = new_cache(n, model.llc_bytes, model.llc_ways) if use_llc else None
    ends = np.asarray(end_rows, np.int64)
    pairs, t_events, t_weight = set(), {}, {}
    miss_buf = np.empty(batch_rows, np.uint8)               # the filter's output, reused
    for b in open_trace(trace, batch_rows):
        cpu = b.cpu if cpu_table is None else cpu_table[b.cpu]
        is_acc = (b.op == OP_READ) | (b.op == OP_WRITE)
        node = cpu_node[cpu.astype(np.int64)]
        if use_llc:
            miss = miss_buf[:len(b)]
            llc_filter(b.addr, node, is_acc, *cache, miss)
            reach = is_acc & (miss == 1)
        else:
            reach = is_acc
        count = b.count.astype(np.float64) if b.count is not None else np.ones(len(b))
        # the batch's rows split at epoch ends (a few per batch): bincounts per segment
        lo = 0
        while lo < len(b):
            e = min(int(np.searchsorted(ends, b.row + lo, side="right")), max(E - 1, 0))
            hi = len(b) if e >= E - 1 else min(len(b), int(ends[e]) - b.row)
            acc, hit = is_acc[lo:hi], reach[lo:hi]
            nd, w = node[lo:hi], np.where(hit, count[lo:hi], 0.0)
            N[e] += np.bincount(nd[acc], minlength=n)
            W[e] += np.bincount(nd, weights=w, minlength=n)
            ids, inv = np.unique(b.tid[lo:hi], return_inverse=True)
            ev = np.bincount(inv, weights=acc, minlength=ids.size)
            wt = np.bincount(inv, weights=w, minlength=ids.size)
            for t, a, x in zip(ids.tolist(), ev.tolist(), wt.tolist()):
                if a:
                    pairs.add((e, t))
                t_events[t] = t_events.get(t, 0) + int(a)
                t_weight[t] = t_weight.get(t, 0.0) + x
            lo = hi
    P = np.zeros(max(E, 1), np.int64)
    for e, _ in pairs:
        P[e] += 1
    return TracePass(N[:E], W[:E], P[:E], t_events, t_weight, use_llc)


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
