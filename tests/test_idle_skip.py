"""Idle time under NUMA balancing (issue 18, fault 2): the engine skips cycles of scans
that change nothing (numa_balancing_idle.py) and must land exactly where stepping every
tick lands: the reference model (which steps every tick), and the engine with skipping
turned off, agree with it after long gaps, and after accesses and scans that follow."""
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnuma as fn
import fastnuma.invariants  # noqa: F401  (fn.invariants)
import fastnuma.numa_balancing_idle as idle
from fastnuma.numa_balancing import NumaBalancing
from tests.reference.model import RefMachine, RefTopology
from tests.test_replay import KNOBS, drive, random_program, table, topo

MS = 1_000_000
PAGE = 4096
TARGS = dict(node_cpus=[[0, 1], [2, 3]], node_pages=[4096, 4096])


def build(kind, delay=100, pmin=20, pmax=1000, size=4, threads=2, thp="never"):
    """Two processes with touched and untouched memory, one with two threads."""
    opts = dict(numa_balancing=1, numa_balancing_scan_delay_ms=delay,
                numa_balancing_scan_period_min_ms=pmin,
                numa_balancing_scan_period_max_ms=pmax, numa_balancing_scan_size_mb=size,
                thp=thp)
    m = (fn.Simulator(fn.Topology(**TARGS), **opts) if kind == "engine"
         else RefMachine(RefTopology(**TARGS), **opts))
    p = m.spawn(cpu=0)
    a = m.mmap(p, 3000 * PAGE)
    m.access(p, a + np.arange(2000, dtype=np.int64) * PAGE, True)
    b = m.mmap(p, 600 * PAGE)
    m.access(p, b + np.arange(100, dtype=np.int64) * PAGE, True)
    for k in range(threads - 1):
        m.clone(p, cpu=2 + k % 2)
    q = m.spawn(cpu=3)
    c = m.mmap(q, 1000 * PAGE, fn.MAP_SHARED | fn.MAP_ANONYMOUS)
    m.access(q, c + np.arange(700, dtype=np.int64) * PAGE, True)
    return m, (p, a), (q, c)


def state(m, procs):
    out = [m.vmstat(), m.now_ns]
    for pid, addr in procs:
        out.append([m.task_numa_stats(t) for t in m.tids(pid)])
        out.append(np.asarray(m.page_flags(pid, addr, 3000 * PAGE)).tolist())
        out.append(np.asarray(m.page_nodes(pid, addr, 3000 * PAGE)).tolist())
    return out


def program(m, procs, gaps):
    """Long gaps, with a burst of remote reads (hinting faults, migrations) between."""
    (p, a), _ = procs
    tid = m.tids(p)[-1]
    for k, gap in enumerate(gaps):
        m.advance(gap)
        m.access(tid, a + np.arange(50 * k, 50 * k + 300, dtype=np.int64) * PAGE, False)
    return state(m, procs)


knobs = st.fixed_dictionaries({
    "delay": st.sampled_from([0, 10, 100, 1000]),
    "pmin": st.sampled_from([20, 100]),
    "pmax": st.sampled_from([50, 1000, 60000]),
    "size": st.sampled_from([0, 4, 16, 256]),
    "threads": st.integers(1, 6),
    "thp": st.sampled_from(["never", "always"]),
})


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(knobs=knobs, gaps=st.lists(st.integers(1, 12_000).map(lambda ms: ms * MS + 1),
                                  min_size=1, max_size=3))
def test_long_gaps_match_model(knobs, gaps):
    """Gaps of up to 12 s (hundreds of scan periods) then accesses: engine == model."""
    m, *procs = build("engine", **knobs)
    r, *rprocs = build("model", **knobs)
    assert program(m, procs, gaps) == program(r, rprocs, gaps)


def test_skipping_happens_and_is_exact(monkeypatch):
    """Two 10 s gaps: the engine runs a fraction of the ticks, and ends where the model and
    the engine stepping every tick end."""
    ticks = []
    orig = NumaBalancing._task_tick_numa
    monkeypatch.setattr(NumaBalancing, "_task_tick_numa",
                        lambda self, th: (ticks.append(1), orig(self, th))[1])
    m, *procs = build("engine", threads=1)
    got = program(m, procs, [10_000 * MS, 10_000 * MS + 7])
    skipped = len(ticks)
    r, *rprocs = build("model", threads=1)
    assert got == program(r, rprocs, [10_000 * MS, 10_000 * MS + 7])
    monkeypatch.setattr(idle, "MIN_TICKS", 1 << 62)          # stepping every tick
    ticks.clear()
    m2, *procs2 = build("engine", threads=1)
    assert program(m2, procs2, [10_000 * MS, 10_000 * MS + 7]) == got
    assert skipped * 10 < len(ticks), (skipped, len(ticks))


def test_gap_of_2_52_ns(monkeypatch):
    """A 2**52 ns gap (52 days; ~2.3e8 periods of 20 ms): a bounded number of ticks run,
    the clock lands exactly, the scanner state is consistent (node_stamp within one
    period of the runtime, the scan sequence advanced by about a pass per cycle), and the
    same program with a 60 s gap agrees with the model from there on (the state after a
    jump is an ordinary state)."""
    ticks = []
    orig = NumaBalancing._task_tick_numa
    monkeypatch.setattr(NumaBalancing, "_task_tick_numa",
                        lambda self, th: (ticks.append(1), orig(self, th))[1])
    m, *procs = build("engine", threads=1)
    t0 = m.now_ns
    m.advance(1 << 52)
    assert m.now_ns == t0 + (1 << 52)
    assert len(ticks) < 20_000
    for pid, _ in procs:
        for tid in m.tids(pid):
            s = m.task_numa_stats(tid)
            th = m.machine.tasks[m.machine.threads[tid].slot]
            runtime = m.now_ns - int(th[fn.dtypes.T_START])
            assert 0 <= runtime - s["node_stamp"] <= (s["numa_scan_period"] + 3) * MS, s
    seq = int(m.machine.mms[m.machine.procs[procs[0][0]].asid, fn.dtypes.M_SCAN_SEQ])
    assert seq > (1 << 52) // (1000 * MS) // 50          # passes keep happening
    # after the jump, faults and scans proceed with consistent state
    (p, a), _ = procs
    m.access(m.tids(p)[-1], a + np.arange(300, dtype=np.int64) * PAGE, False)
    m.advance(5000 * MS)
    assert fn.invariants.violations(m) == []


@pytest.mark.parametrize("gap", [60_000 * MS + 3])
def test_replay_with_a_huge_gap_equals_the_api(gap, make):
    """A trace with a gap in its middle (scans run through it) replays to the state the
    same calls reach through the API: on the model and the engine for a 60 s gap, on the
    engine (the model would step 2e8 periods) for 2**52 ns."""
    ev = random_program(7, n=600)
    for e in ev[len(ev) // 2:]:
        e["ts"] += gap
    sim = fn.Simulator(topo(), **KNOBS)
    sim.replay(table(ev), batch_rows=97)
    if gap == 1 << 52 and isinstance(make({"node_pages": [1], "node_cpus": [[0]]}),
                                     RefMachine):
        other = fn.Simulator(topo(), **KNOBS)
    else:
        other = make(dict(node_pages=[1 << 14] * 4,
                          node_cpus=[[0, 1], [2, 3], [4, 5], [6, 7]]), **KNOBS)
    drive(other, ev)
    assert sim.now_ns == other.now_ns
    assert sim.vmstat() == other.vmstat()
    assert sim.vmstat()["numa_pte_updates"] > 0
    assert sim.numa_maps(1) == other.numa_maps(1)
    for tid in (1, 2):
        assert sim.task_numa_stats(tid) == other.task_numa_stats(tid)


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(knobs=knobs, gaps=st.lists(st.integers(1, 30_000).map(lambda ms: ms * MS + 1),
                                  min_size=1, max_size=4))
def test_long_gaps_match_model_many(knobs, gaps):
    """The same, more programs and gaps up to 30 s (-m slow)."""
    m, *procs = build("engine", **knobs)
    r, *rprocs = build("model", **knobs)
    assert program(m, procs, gaps) == program(r, rprocs, gaps)
