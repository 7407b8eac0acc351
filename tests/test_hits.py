"""Plain hits in trace replay (kernels/hits.py, issue 13) against the reference model.

Replay runs the hits of a trace whose columns are per event in ``hit_chunks``, a chunk of
events at a time, and counts them in its own table until the event loop returns. Random
traces of one or two processes and up to 70 threads (the table holds 64), with tids small
and above the direct table's range, CPUs on every node, runs of hits longer than a chunk,
first touches, writes to clean pages, hinting faults after a lazy mbind and processes
taking turns, and one thread alone on one CPU (counted in registers), replay to the state
the same calls reach through the API, on the model and on the engine (whose ``access``
calls never take this path). The counters of every thread (local, remote, its CPU) and
the access matrix are compared, for several batch sizes."""
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnuma as fn
from fastnuma.kernels.hits import HIT_CHUNK, HIT_TID_LIMIT
from fastnuma.memory import hit_scratch
from tests.reference.model import RefMachine, RefTopology

PAGE = 4096
REGION = 1 << 32                     # process k's pages: REGION * (k + 1) + page * PAGE
PAGES = 1500                         # three PMDs' worth
MAPF = fn.MAP_PRIVATE | fn.MAP_ANONYMOUS
TYPES = {"ts": pa.uint64(), "op": pa.uint8(), "addr": pa.uint64(), "cpu": pa.uint16(),
         "tid": pa.uint32(), "pid": pa.uint32(), "len": pa.uint64(), "mode": pa.uint16(),
         "nodemask": pa.uint64(), "flags": pa.uint32()}


def program(seed, n_threads, n_procs, big_tids, nodes, n_events):
    """(trace events, threads): thread k is (trace tid, process index); the trace's
    first events create the processes and threads in API order (spawn, clone ...)."""
    rng = np.random.default_rng(seed)
    n_cpus = 2 * nodes
    first = 1 if not big_tids else HIT_TID_LIMIT - 3           # some tids above the table
    threads = [(first + k, k % n_procs) for k in range(n_threads)]
    pids = [threads[p][0] for p in range(n_procs)]             # a process's first thread
    ev = []
    for p in range(n_procs):
        ev.append(dict(op=fn.OP_MMAP, addr=REGION * (p + 1), len=PAGES * PAGE, flags=MAPF,
                       tid=pids[p], pid=pids[p], cpu=p % n_cpus))
        for pg in range(0, PAGES, 3):                          # two thirds stay untouched
            ev.append(dict(op=int(pg % 2), addr=REGION * (p + 1) + pg * PAGE,
                           tid=pids[p], pid=pids[p], cpu=p % n_cpus))
    for tid, p in threads[n_procs:]:
        ev.append(dict(op=fn.OP_SCHED, cpu=int(rng.integers(0, n_cpus)), tid=tid,
                       pid=pids[p]))
    while len(ev) < n_events:
        tid, p = threads[int(rng.integers(0, n_threads))]
        if rng.random() < 0.1:                                 # marks: hinting faults
            lo = int(rng.integers(0, PAGES))
            ev.append(dict(op=fn.OP_MBIND, addr=REGION * (p + 1) + lo * PAGE,
                           len=int(rng.integers(1, PAGES - lo + 1)) * PAGE,
                           mode=fn.MPOL_LOCAL, flags=fn.MPOL_MF_MOVE | fn.MPOL_MF_LAZY,
                           tid=tid, pid=pids[p]))
            continue
        size = int(rng.choice([1, 5, 40, 2 * HIT_CHUNK + 7]))
        start = int(rng.integers(0, PAGES))
        pages = ((start + np.arange(size)) % PAGES if rng.random() < 0.5
                 else rng.integers(0, PAGES, size))
        writes = rng.random() * (rng.random() < 0.5)
        one_cpu = rng.random() < 0.6
        cpu = int(rng.integers(0, n_cpus))
        for pg in pages:
            if rng.random() < 0.05:                            # threads interleave
                tid, p = threads[int(rng.integers(0, n_threads))]
            ev.append(dict(op=int(rng.random() < writes), addr=REGION * (p + 1) + int(pg) * PAGE,
                           cpu=cpu if one_cpu else int(rng.integers(0, n_cpus)), tid=tid,
                           pid=pids[p]))
    return ev, threads


def table(ev):
    return pa.table({k: pa.array([e.get(k, 0) for e in ev], t) for k, t in TYPES.items()})


def drive(machine, ev, threads):
    """The same events through the API: tid_of maps the trace's tids to the machine's."""
    tid_of = {}
    for e in ev:
        tid = e["tid"]
        if tid not in tid_of:
            if tid == e["pid"]:
                tid_of[tid] = machine.spawn(cpu=e.get("cpu", 0))
            else:
                tid_of[tid] = machine.clone(tid_of[e["pid"]], cpu=e.get("cpu", 0))
        t, pid = tid_of[tid], tid_of[e["pid"]]
        machine.sched(t, e.get("cpu", 0))          # every event moves its thread
        if e["op"] == fn.OP_MMAP:
            machine.mmap(pid, e["len"], e["flags"], addr=e["addr"])
        elif e["op"] == fn.OP_MBIND:
            machine.mbind(pid, e["addr"], e["len"], e["mode"], None, e["flags"], tid=t)
        elif e["op"] != fn.OP_SCHED:
            machine.access(t, e["addr"], write=bool(e["op"]))
    return tid_of


def check(sim, other, ev, threads, tid_of):
    assert sim.vmstat() == other.vmstat()
    assert (sim.access_counts == np.asarray(other.access_counts)).all()
    for tid, _ in threads:
        a, b = sim.threads[tid], other.threads[tid_of[tid]]
        assert (a.local, a.remote, a.cpu) == (b.local, b.remote, b.cpu), tid
    for p in {p for _, p in threads}:
        pid = threads[p][0]
        assert (list(sim.page_nodes(pid, REGION * (p + 1), PAGES * PAGE))
                == list(other.page_nodes(tid_of[pid], REGION * (p + 1), PAGES * PAGE)))


def topology(nodes, model):
    args = dict(node_pages=[1 << 13] * nodes, node_cpus=[[2 * k, 2 * k + 1] for k in range(nodes)])
    return RefTopology(**args) if model else fn.Topology(**args)


def replay_and_compare(seed, n_threads, n_procs, big_tids, nodes, n_events, batch_rows):
    ev, threads = program(seed, n_threads, n_procs, big_tids, nodes, n_events)
    sim = fn.Simulator(topology(nodes, False))
    sim.replay(table(ev), batch_rows=batch_rows)
    for other in (RefMachine(topology(nodes, True)), fn.Simulator(topology(nodes, False))):
        tid_of = drive(other, ev, threads)
        check(sim, other, ev, threads, tid_of)
    tid_base, tid_cpu, cells = hit_scratch()            # left empty for the next call
    assert not tid_base.any() and not tid_cpu.any() and not cells.any()
    return sim


@pytest.mark.parametrize("n_threads, n_procs, big_tids, nodes", [
    (5, 2, False, 4), (70, 1, False, 4), (6, 2, True, 4),
    (1, 1, False, 4), (1, 1, False, 8)])     # one thread: counted in registers up to 4 nodes
def test_replay_of_hits_equals_the_model(n_threads, n_procs, big_tids, nodes):
    sim = replay_and_compare(11, n_threads, n_procs, big_tids, nodes, 6000, 1000)
    assert sim.vmstat()["numa_hint_faults"] > 0 and sim.vmstat()["pgfault"] > 0


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), n_threads=st.integers(1, 8), n_procs=st.integers(1, 2),
       big_tids=st.booleans(), nodes=st.sampled_from([1, 2, 4]),
       batch_rows=st.sampled_from([1, 97, 300, 100_000]))
def test_random_traces_of_hits_equal_the_model(seed, n_threads, n_procs, big_tids, nodes,
                                               batch_rows):
    replay_and_compare(seed, n_threads, min(n_procs, n_threads), big_tids, nodes, 2500,
                       batch_rows)
