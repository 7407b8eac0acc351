"""The cost model against hand computation from docs/cost-model.md, on tiny traces:
without and with the LLC filter, with the count column, with the bandwidth bound active,
per epoch and per thread, and with MLC matrices."""
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import fastnuma as fn
from fastnuma.whatif import run
from fastnuma.costmodel import CostModel
from fastnuma.runconfig import RunConfig

BASE = 0x7f0000000000 - (64 << 20)
MLC = Path(__file__).parent / "data" / "mlc"
MACHINE = {"nodes": [{"memory": "4MiB", "cpus": "0"}, {"memory": "4MiB", "cpus": "1"}],
           "distance": [[10, 20], [20, 10]]}
# L = 100 ns local, 200 ns remote (local_ns x SLIT / 10); only first-touch faults priced
COST = {"local_ns": 100.0, "fault_ns": 1000.0, "hint_fault_ns": 0.0, "pte_update_ns": 0.0,
        "tlb_flush_ns": 0.0, "page_migrate_ns": 0.0, "thp_migrate_ns": 0.0, "llc": "off"}


def events(rows, count=None):
    """rows: (page or address, cpu, op, tid)."""
    addr = [BASE + (r[0] * 4096 if r[0] < 1 << 20 else r[0]) for r in rows]
    cols = {"addr": pa.array(addr, pa.uint64()),
            "cpu": pa.array([r[1] for r in rows], pa.uint16()),
            "op": pa.array([r[2] for r in rows], pa.uint8()),
            "tid": pa.array([r[3] for r in rows], pa.uint32())}
    if count is not None:
        cols["count"] = pa.array(count, pa.uint32())
    return pa.table(cols)


def config(epoch="1000000", **cost):
    return RunConfig.from_dict({"machine": MACHINE, "cost": {**COST, **cost},
                                "replay": {"epoch": epoch}})


W, R = fn.OP_WRITE, fn.OP_READ
# thread 10 (CPU 0, node 0) first-touches 4 pages; thread 11 (CPU 1, node 1) reads them
SHARE = [(p, 0, W, 10) for p in range(4)] + [(p, 1, R, 11) for p in range(4)]


def test_latency_and_fault_costs_by_hand():
    r = run(config(), events(SHARE))
    assert r.vmstat["pgfault"] == 4
    c = r.cost
    # S = 4 x 100 + 4 x 200 = 1200; K = 4 faults x 1000 = 4000; P = 2 threads
    ep = c["epochs"].to_pylist()[0]
    assert ep["latency_stall_ns"] == 1200 and ep["event_ns"] == 4000 and ep["threads"] == 2
    assert ep["latency_bound_ns"] == 2600
    # bandwidth: 8 accesses x 64 B to node 0 at 100 GB/s = 5.12 ns
    assert ep["bandwidth_bound_ns"] == pytest.approx(5.12) and ep["bound"] == "latency"
    assert c["estimated_ns"] == 2600 and c["stall_thread_ns"] == 5200
    th = {t["tid"]: t for t in c["threads"].to_pylist()}
    assert th[10]["estimated_stall_ns"] == 400 and th[10]["local_fraction"] == 1
    assert th[11]["estimated_stall_ns"] == 800 and th[11]["local_fraction"] == 0


def test_per_epoch_by_hand():
    r = run(config(epoch="4"), events(SHARE))
    eps = r.cost["epochs"].to_pylist()
    # epoch 0: thread 10 alone: (4 x 100 + 4000) / 1; epoch 1: thread 11: 4 x 200 / 1
    assert [e["estimated_ns"] for e in eps] == [4400, 800]
    assert [e["threads"] for e in eps] == [1, 1]
    assert r.cost["estimated_ns"] == 5200


def test_llc_filter_by_hand():
    # thread 10 writes one line 3 times, thread 11 reads it twice: one miss per socket
    rows = [(0, 0, W, 10)] * 3 + [(0, 1, R, 11)] * 2
    off = run(config(), events(rows)).cost
    on = run(config(llc="on", llc_bytes=4096, llc_ways=4), events(rows)).cost
    # off: S = 3 x 100 + 2 x 200 = 700, K = 1000 -> (1700) / 2
    assert off["epochs"].to_pylist()[0]["latency_bound_ns"] == 850
    # on: A = 1 from each node: S = 100 + 200 = 300 -> (300 + 1000) / 2
    assert on["memory_accesses"] == 2
    assert on["epochs"].to_pylist()[0]["latency_bound_ns"] == 650 and on["llc_filter"]


def test_count_column_weighs_accesses():
    r = run(config(), events(SHARE, count=[10] * 4 + [5] * 4))
    # A = [[40, 0], [20, 0]]: S = 40 x 100 + 20 x 200 = 8000; (8000 + 4000) / 2
    assert r.cost["memory_accesses"] == 60
    assert r.cost["estimated_ns"] == 6000
    assert r.rows == 8 and r.vmstat["pgfault"] == 4       # the engine counts events


def test_bandwidth_bound():
    r = run(config(bandwidth_gbps=[0.001, 0.001]), events(SHARE))
    ep = r.cost["epochs"].to_pylist()[0]
    # 512 bytes at 0.001 GB/s (1 MB/s) = 512,000 ns > 2,600 ns of latency
    assert ep["bandwidth_bound_ns"] == pytest.approx(512_000) and ep["bound"] == "bandwidth"
    assert ep["bandwidth_node"] == 0 and r.cost["estimated_ns"] == pytest.approx(512_000)


def test_mlc_matrices_price_accesses():
    cfg = RunConfig.from_dict({"machine": {"preset": "two_socket", "pages_per_node": 4096},
                               "cost": {**COST, "mlc_latency": str(MLC / "skx_2s_latency.txt"),
                                        "mlc_bandwidth": str(MLC / "skx_2s_bandwidth.txt")}})
    rows = [(p, 0, W, 10) for p in range(4)] + [(p, 8, R, 11) for p in range(4)]
    r = run(cfg, events(rows))
    ep = r.cost["epochs"].to_pylist()[0]
    assert ep["latency_stall_ns"] == pytest.approx(4 * 82.4 + 4 * 137.8)
    assert ep["bandwidth_bound_ns"] == pytest.approx(512 / 115.0847)
    assert r.provenance["machine"]["bandwidth_gbps"] == [115.085, 115.344]


def test_event_costs_use_every_counter():
    # lazy migration: hinting faults, migrations, PTE updates and a TLB flush
    n = 8
    ev = [dict(addr=BASE + p * 4096, cpu=0, op=W, tid=10) for p in range(n)]
    ev += [dict(addr=BASE, cpu=1, op=fn.OP_MBIND, tid=11, len=n * 4096, mode=fn.MPOL_LOCAL,
                flags=fn.MPOL_MF_MOVE | fn.MPOL_MF_LAZY)]
    ev += [dict(addr=BASE + p * 4096, cpu=1, op=R, tid=11) for p in range(n)]
    types = {"addr": pa.uint64(), "cpu": pa.uint16(), "op": pa.uint8(), "tid": pa.uint32(),
             "len": pa.uint64(), "mode": pa.uint16(), "flags": pa.uint32()}
    full = pa.table({k: pa.array([e.get(k, 0) for e in ev], t) for k, t in types.items()})
    costs = dict(fault_ns=1.0, hint_fault_ns=10.0, page_migrate_ns=100.0,
                 pte_update_ns=1000.0, tlb_flush_ns=10000.0)
    r = run(config(**costs), full)
    vm = r.vmstat
    assert vm["numa_hint_faults"] == n and vm["pgmigrate_success"] == n
    want = (vm["pgfault"] * 1 + vm["numa_hint_faults"] * 10 + vm["pgmigrate_success"] * 100
            + vm["numa_pte_updates"] * 1000 + vm["fastnuma_prot_numa_flushes"] * 10000)
    assert sum(e["event_ns"] for e in r.cost["epochs"].to_pylist()) == want


def test_bad_cost_parameters():
    for kw, msg in (({"fault_ns": -1.0}, "fault_ns"), ({"llc": "maybe"}, "llc"),
                    ({"llc_bytes": 100}, "multiple of 64")):
        with pytest.raises(ValueError, match=msg):
            CostModel(**kw)
    with pytest.raises(ValueError, match="2 positive values"):
        CostModel(bandwidth_gbps=(1.0,)).bandwidth(fn.Topology.two_socket())
    assert np.allclose(CostModel().latency(fn.Topology.cxl()),
                       [[90, 189, 126], [189, 90, 216], [126, 216, 90]])
