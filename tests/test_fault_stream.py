"""Streams of hinting faults (kernels/fault_stream.py) against the reference model.

The event loop hands a hinting fault to ``fault_stream``, which takes the events that
follow while each is a hinting fault too, by the same thread on the same CPU in the same
VMA. Each case here starts such a stream after mbind(MPOL_MF_MOVE | MPOL_MF_LAZY) and
ends it in one way: a page in a PMD with no page table yet, the end of the VMA, a write
the VMA does not allow, a write to a read-only entry of a writable VMA (a second fault),
a page already unmarked, a page never touched, another thread, another CPU (the same
thread's too), an OOM. The same calls go to the engine (``sim.access``, and ``replay``
of the same accesses as a trace, whose columns are per event) and to the model;
outcomes, counters, the access matrix, placement and every thread's counters must
agree. The last cases take streams whose policy gives them a fixed migration target
(kernels/numa_fixed.py) with each policy, knob, a THP amid the base pages and a target
that fills up."""
import numpy as np
import pyarrow as pa
import pytest

import fastnuma as fn
from tests.reference.model import RefMachine, RefTopology

PAGE = 4096
BASE = 1 << 30
MAPF = fn.MAP_PRIVATE | fn.MAP_ANONYMOUS
LAZY = fn.MPOL_MF_MOVE | fn.MPOL_MF_LAZY
TARGS = dict(node_pages=[2048, 2048], node_cpus=[[0, 1], [2, 3]])


def outcome(call):
    try:
        return ("ok", call())
    except OSError as e:
        return ("errno", e.errno)


def setup(m, pages=64, prot=fn.PROT_READ | fn.PROT_WRITE, readonly_tail=0, whole=False):
    """A leader on CPU 0 writes ``pages`` pages (node 0) of a 3-PMD mapping, a worker on
    CPU 2 (node 1); the pages (``whole``: the whole mapping, one VMA) are marked by a lazy
    mbind(MPOL_LOCAL). The last ``readonly_tail`` of them are then made read-only (a VMA
    of their own)."""
    pid = m.spawn(cpu=0)
    m.mmap(pid, 3 * 512 * PAGE, MAPF, addr=BASE, prot=prot)
    m.access(pid, BASE + np.arange(pages, dtype=np.int64) * PAGE, write=True)
    worker = m.clone(pid, cpu=2)
    m.mbind(pid, BASE, (3 * 512 if whole else pages) * PAGE, fn.MPOL_LOCAL, None, LAZY)
    if readonly_tail:
        m.mprotect(pid, BASE + (pages - readonly_tail) * PAGE, readonly_tail * PAGE,
                   fn.PROT_READ)
    return pid, worker


def state(m, pid, tids):
    return (m.vmstat(), np.asarray(m.access_counts).tolist(),
            list(m.page_nodes(pid, BASE, 3 * 512 * PAGE)),
            [(m.threads[t].local, m.threads[t].remote, m.threads[t].cpu) for t in tids])


def pages_at(idx):
    return BASE + np.asarray(idx, np.int64) * PAGE


CASES = {
    # name: (setup kwargs, [(thread: 0 leader / 1 worker, cpu, pages, writes)])
    "a PMD without a page table": ({"whole": True}, [(1, 2, list(range(8)) + [600], False)]),
    "the end of the VMA": ({"readonly_tail": 8}, [(1, 2, list(range(50, 64)), False)]),
    "a write the VMA does not allow": ({"readonly_tail": 8}, [(1, 2, list(range(50, 60)), True)]),
    "a page already unmarked": ({}, [(1, 2, [0, 1, 2, 1, 3, 4], False)]),
    "a page never touched": ({}, [(1, 2, list(range(60, 70)), True)]),
    "reads and writes": ({}, [(1, 2, list(range(40)), [k % 3 == 0 for k in range(40)])]),
    "another thread, another CPU": ({}, [(1, 2, list(range(10)), False),
                                        (0, 0, list(range(10, 20)), False),
                                        (1, 3, list(range(20, 30)), True)]),
    "pages out of order": ({}, [(1, 3, [5, 63, 17, 2, 40, 41, 42, 9], False)]),
    "the same thread on another node's CPU": ({}, [(1, 2, list(range(10)), False),
                                                   (1, 0, list(range(10, 20)), False),
                                                   (1, 3, list(range(20, 30)), True)]),
}


def run_api(m, kwargs, steps):
    pid, worker = setup(m, **kwargs)
    out = []
    for who, cpu, pages, writes in steps:
        tid = worker if who else pid
        m.sched(tid, cpu)
        out.append(outcome(lambda: m.access(tid, pages_at(pages), write=np.asarray(writes)
                                            if isinstance(writes, list) else writes)))
    return out, state(m, pid, (pid, worker))


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_stream_ends_as_the_model_says(case):
    kwargs, steps = CASES[case]
    got = run_api(fn.Simulator(fn.Topology(**TARGS)), kwargs, steps)
    want = run_api(RefMachine(RefTopology(**TARGS)), kwargs, steps)
    assert got == want
    assert got[1][0]["numa_hint_faults"] > 0


@pytest.mark.parametrize("case", sorted(c for c in CASES if "allow" not in c))
def test_a_stream_replayed_from_a_trace_ends_as_the_model_says(case):
    """The same accesses replayed (every column per event), after the same setup."""
    kwargs, steps = CASES[case]
    sim = fn.Simulator(fn.Topology(**TARGS))
    pid, worker = setup(sim, **kwargs)
    rows = [(worker if who else pid, cpu, p, int(w))
            for who, cpu, pages, writes in steps
            for p, w in zip(pages, writes if isinstance(writes, list)
                            else [writes] * len(pages))]
    tids, cpus, idx, ops = (list(c) for c in zip(*rows))
    sim.replay(pa.table({"addr": pa.array(pages_at(idx).astype(np.uint64)),
                         "op": pa.array(ops, pa.uint8()), "cpu": pa.array(cpus, pa.uint16()),
                         "tid": pa.array(tids, pa.uint32()),
                         "pid": pa.array([pid] * len(rows), pa.uint32())}))
    assert state(sim, pid, (pid, worker)) == run_api(RefMachine(RefTopology(**TARGS)), kwargs,
                                                     steps)[1]


def test_a_write_to_a_marked_read_only_entry_is_the_models():
    """After a fork the parent's entries are write-protected (COW); once the child is gone
    a lazy mbind marks them, and the parent's writes each take a hinting fault and then a
    write fault (handle_mm_fault's own hinting fault, not the stream's), as in the
    model."""
    results = []
    for m in (fn.Simulator(fn.Topology(**TARGS)), RefMachine(RefTopology(**TARGS))):
        pid = m.spawn(cpu=0)
        m.mmap(pid, 512 * PAGE, MAPF, addr=BASE)
        m.access(pid, pages_at(range(32)), write=True)
        m.exit(m.fork(pid))
        worker = m.clone(pid, cpu=2)            # two threads: the mbind marks every page
        m.mbind(pid, BASE, 32 * PAGE, fn.MPOL_LOCAL, None, LAZY)
        res = outcome(lambda: m.access(worker, pages_at([0, 1, 2, 3, 10, 11]), write=True))
        results.append((res, state(m, pid, (pid, worker))))
    assert results[0] == results[1]
    assert results[0][1][0]["numa_hint_faults"] == 6


def test_an_oom_in_a_stream_is_the_models():
    """Node 1 full: the stream's migrations fail (the watermark), then a fault that must
    allocate finds no page anywhere (an OOM kill), as in the model."""
    targs = dict(node_pages=[80, 16], node_cpus=[[0, 1], [2, 3]])
    results = []
    for m in (fn.Simulator(fn.Topology(**targs)), RefMachine(RefTopology(**targs))):
        pid, worker = setup(m, pages=64)
        m.sched(worker, 2)
        res = outcome(lambda: m.access(worker, pages_at(list(range(64)) + list(range(64, 200))),
                                       write=True))
        results.append((res, m.vmstat()))
    assert results[0] == results[1]


# --------------------------------------------------------------- a fixed migration target
# kernels/numa_fixed.py takes the stream's faults when mpol_misplaced's answer depends on
# the folio's node only; the policies below give it each kind of target and stay set
# (INTERLEAVE and the default policy go the general way, in the same stream machinery).
THREE = dict(node_pages=[2048, 2048, 2048], node_cpus=[[0, 1], [2, 3], [4, 5]])
POLICIES = {
    "local": (fn.MPOL_LOCAL, None),
    "preferred, the worker's node": (fn.MPOL_PREFERRED, [1]),
    "preferred, another node": (fn.MPOL_PREFERRED, [2]),
    "preferred, where the pages are": (fn.MPOL_PREFERRED, [0]),
    "bind, another node": (fn.MPOL_BIND, [2]),
    "bind, where the pages are and another": (fn.MPOL_BIND, [0, 2]),
    "preferred many": (fn.MPOL_PREFERRED_MANY, [1, 2]),
    "interleave": (fn.MPOL_INTERLEAVE, [1, 2]),
}
KNOBS = {"defaults": {}, "numa_balancing": {"numa_balancing": 1},
         "no numa_stat": {"numa_stat": False}}


def fixed_stream_run(m, mode, nodes, thp_first=False):
    """A leader (CPU 0) writes 64 pages after a 2 MiB-aligned THP-sized first PMD (and the
    THP too when ``thp_first``); a lazy mbind(mode, nodes) marks all; the worker (CPU 2,
    node 1) reads and writes them in one stream, the THP's first page among them."""
    pid = m.spawn(cpu=0)
    m.mmap(pid, (512 + 64) * PAGE, MAPF, addr=BASE)
    if thp_first:
        m.access(pid, pages_at([0]), write=True)
    m.access(pid, pages_at(range(512, 576)), write=True)
    worker = m.clone(pid, cpu=2)
    m.mbind(pid, BASE, (512 + 64) * PAGE, mode, nodes, LAZY)
    order = list(range(512, 540)) + ([0] if thp_first else []) + list(range(540, 576))
    writes = [k % 4 == 1 for k in range(len(order))]
    m.sched(worker, 2)
    res = outcome(lambda: m.access(worker, pages_at(order), write=np.asarray(writes)))
    return (res, m.vmstat(), m.numastat(), list(m.free_pages()),
            np.asarray(m.access_counts).tolist(),
            list(m.page_nodes(pid, BASE, (512 + 64) * PAGE)), m.numa_maps(pid),
            [(m.threads[t].local, m.threads[t].remote) for t in (pid, worker)],
            m.task_numa_stats(worker))


@pytest.mark.parametrize("knobs", sorted(KNOBS))
@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_a_stream_with_a_fixed_target_is_the_models(policy, knobs):
    mode, nodes = POLICIES[policy]
    got = fixed_stream_run(fn.Simulator(fn.Topology(**THREE), **KNOBS[knobs]), mode, nodes)
    want = fixed_stream_run(RefMachine(RefTopology(**THREE), **KNOBS[knobs]), mode, nodes)
    assert got == want
    assert got[1]["numa_hint_faults"] == 64


@pytest.mark.parametrize("policy", ["local", "preferred, another node", "interleave"])
def test_a_thp_in_a_fixed_target_stream_is_the_models(policy):
    """The THP's fault goes the general way in the middle of the stream (its whole PMD),
    the base pages before and after it the fixed way."""
    mode, nodes = POLICIES[policy]
    got = fixed_stream_run(fn.Simulator(fn.Topology(**THREE), thp="always"), mode, nodes,
                           thp_first=True)
    want = fixed_stream_run(RefMachine(RefTopology(**THREE), thp="always"), mode, nodes,
                            thp_first=True)
    assert got == want
    assert got[1]["numa_hint_faults"] == 65


@pytest.mark.parametrize("policy", ["local", "bind, another node"])
def test_a_fixed_target_filling_up_is_the_models(policy):
    """The target has room for some pages only: the stream's migrations stop at its high
    watermark (migrate_balanced_pgdat), the rest of its faults leave the pages where they
    are, as in the model."""
    mode, nodes = POLICIES[policy]
    targs = dict(node_pages=[2048, 48, 48], node_cpus=[[0, 1], [2, 3], [4, 5]])
    got = fixed_stream_run(fn.Simulator(fn.Topology(**targs)), mode, nodes)
    want = fixed_stream_run(RefMachine(RefTopology(**targs)), mode, nodes)
    assert got == want
    assert 0 < got[1]["numa_pages_migrated"] < 64
