"""Idle time with multi-threaded processes (issue 18, fault 2): a quiet process's scan
state and scan timing are skipped separately (numa_balancing_quiet.py, kernels/idle.py).
Several processes of several threads, with periods made unequal by hinting faults, land
after long gaps exactly where the reference model (stepping every tick) and the engine
stepping every tick land, hidden scanner state included; 2**52 ns gaps cost a bounded
number of ticks with 1 to 16 threads."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastnuma as fn
import fastnuma.invariants  # noqa: F401  (fn.invariants)
import fastnuma.numa_balancing_idle as idle
import fastnuma.numa_balancing_quiet as quiet
from fastnuma.kernels.idle import MAX_RESET_ITERS, _reset_after
from fastnuma.numa_balancing import NumaBalancing
from tests.reference.model import RefMachine, RefTopology
from tests.test_idle_skip import TARGS, build

MS = 1_000_000
PAGE = 4096

knobs = st.fixed_dictionaries({
    "numa_balancing_scan_delay_ms": st.sampled_from([0, 10, 100, 1000]),
    "numa_balancing_scan_period_min_ms": st.sampled_from([20, 100, 1000]),
    "numa_balancing_scan_period_max_ms": st.sampled_from([50, 1000, 60000]),
    "numa_balancing_scan_size_mb": st.sampled_from([0, 4, 16, 256]),
    "thp": st.sampled_from(["never", "always"]),
})
# processes: (threads, pages mapped, pages touched, shared mapping)
layouts = st.lists(st.tuples(st.integers(1, 6), st.integers(1, 3000), st.integers(0, 3000),
                             st.booleans()), min_size=1, max_size=3)
# between gaps: a thread of a process reads or writes a run of its pages
bursts = st.lists(st.tuples(st.integers(1, 30_000), st.integers(0, 2), st.integers(0, 5),
                            st.integers(0, 3000), st.integers(1, 400), st.booleans()),
                  min_size=1, max_size=4)


def build_many(kind, opts, layout):
    """Processes of several threads on both nodes, each with one touched mapping."""
    opts = dict(numa_balancing=1, **opts)
    m = (fn.Simulator(fn.Topology(**TARGS), **opts) if kind == "engine"
         else RefMachine(RefTopology(**TARGS), **opts))
    procs = []
    for i, (threads, pages, touched, shared) in enumerate(layout):
        p = m.spawn(cpu=i % 4)
        flags = fn.MAP_SHARED | fn.MAP_ANONYMOUS if shared else None
        a = m.mmap(p, pages * PAGE) if flags is None else m.mmap(p, pages * PAGE, flags)
        m.access(p, a + np.arange(min(touched, pages), dtype=np.int64) * PAGE, True)
        for k in range(threads - 1):
            m.clone(p, cpu=(i + 1 + k) % 4)
        procs.append((p, a, pages))
    return m, procs


def observe(m, procs):
    out = [m.vmstat(), m.now_ns]
    for pid, addr, pages in procs:
        out.append([m.task_numa_stats(t) for t in m.tids(pid)])
        out.append(np.asarray(m.page_flags(pid, addr, pages * PAGE)).tolist())
        out.append(np.asarray(m.page_nodes(pid, addr, pages * PAGE)).tolist())
    return out


def hidden(sim):
    """The scanner state no API shows: mm rows, thread rows, every VMA's numab state."""
    mc = sim.machine
    out = [mc.mms.tolist(), mc.tasks.tolist()]
    for pid, p in sorted(mc.procs.items()):
        out.append([(v.start, v.end) + (() if v.numab is None else (
            v.numab.start_scan_seq, v.numab.next_scan, v.numab.pids_active_reset,
            v.numab.prev_scan_seq, v.numab.pids0, v.numab.pids1)) for v in p.vmas])
    return out


def play(m, procs, plan):
    """Gaps, each followed by a burst of accesses by one thread (hinting faults move its
    scan period away from its siblings')."""
    for gap, pi, ti, start, count, write in plan:
        m.advance(gap * MS + 1)
        pid, addr, pages = procs[pi % len(procs)]
        tids = m.tids(pid)
        lo = start % pages
        idx = np.arange(lo, min(pages, lo + count), dtype=np.int64)
        m.access(tids[ti % len(tids)], addr + idx * PAGE, write)
    return observe(m, procs)


def engine_run(opts, layout, plan, stepping, monkeypatch):
    with monkeypatch.context() as mp:
        if stepping:
            mp.setattr(idle, "MIN_TICKS", 1 << 62)
        m, procs = build_many("engine", opts, layout)
        return play(m, procs, plan), hidden(m)


def check_program(opts, layout, plan, monkeypatch):
    got, got_hidden = engine_run(opts, layout, plan, False, monkeypatch)
    r, rprocs = build_many("model", opts, layout)
    assert got == play(r, rprocs, plan)
    assert (got, got_hidden) == engine_run(opts, layout, plan, True, monkeypatch)


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(opts=knobs, layout=layouts, plan=bursts)
def test_threads_and_processes_match_model_and_stepping(opts, layout, plan, monkeypatch):
    """Several multi-threaded processes, gaps of up to 30 s: skipping == model == stepping."""
    check_program(opts, layout, plan, monkeypatch)


@pytest.mark.slow
@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(opts=knobs, layout=layouts, plan=bursts)
def test_threads_and_processes_match_model_and_stepping_many(opts, layout, plan, monkeypatch):
    """The same, 200 programs (-m slow)."""
    check_program(opts, layout, plan, monkeypatch)


@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(opts=knobs, layout=layouts, plan=bursts)
def test_kernel_calls_cut_short_are_exact(opts, layout, plan, monkeypatch):
    """The timing kernel stopped every few scans (no cycle within its budget: it is
    called again from there) lands where stepping lands."""
    with monkeypatch.context() as mp:
        mp.setattr(quiet, "MAX_STEPS", 2)
        mp.setattr(quiet, "MAX_STEPS_CALL", 8)
        got = engine_run(opts, layout, plan, False, monkeypatch)
    assert got == engine_run(opts, layout, plan, True, monkeypatch)


@pytest.mark.parametrize("threads", [1, 4, 16])
@pytest.mark.parametrize("kn", [dict(), dict(delay=10, pmin=1000, pmax=5000),
                                dict(delay=1000, pmin=1000, pmax=60000, size=256)])
def test_gap_of_2_52_ns_with_threads(threads, kn, monkeypatch):
    """A 2**52 ns gap with 1, 4 and 16 threads (unequal periods: the leader's is
    task_scan_start, its clones' scan_delay; and a reset falling behind when the period
    exceeds 4 * scan_delay) runs a bounded number of ticks and lands on a consistent
    state, from which accesses and scans proceed; the same gap split in two agrees."""
    ticks = []
    orig = NumaBalancing._task_tick_numa
    monkeypatch.setattr(NumaBalancing, "_task_tick_numa",
                        lambda self, th: (ticks.append(1), orig(self, th))[1])
    m, *procs = build("engine", threads=threads, **kn)
    t0 = m.now_ns
    m.advance(1 << 52)
    assert m.now_ns == t0 + (1 << 52)
    assert len(ticks) < 5_000 * threads
    m2, *_ = build("engine", threads=threads, **kn)
    m2.advance(1 << 51)
    m2.advance(1 << 51)
    assert hidden(m2) == hidden(m)
    for pid, _ in procs:
        for tid in m.tids(pid):
            s = m.task_numa_stats(tid)
            th = m.machine.tasks[m.machine.threads[tid].slot]
            runtime = m.now_ns - int(th[fn.dtypes.T_START])
            # ticks fall on whole milliseconds, the clock need not: a stamp may lead the
            # runtime by up to 2 ticks (the last scan's 2-tick charge)
            assert -2 * MS <= runtime - s["node_stamp"] <= (s["numa_scan_period"] + 3) * MS, s
    (p, a), _ = procs
    m.access(m.tids(p)[-1], a + np.arange(300, dtype=np.int64) * PAGE, False)
    m.advance(5000 * MS)
    assert fn.invariants.violations(m) == []


def reset_loop(x, offs, dly, dt, k):
    """Plain reference of kernels/idle._reset_after: k cycles, check by check."""
    for _ in range(k):
        for o in offs:
            if o > x:
                x += dly
        x -= dt
    return x


@settings(max_examples=300, deadline=None)
@given(x=st.integers(-50_000, 50_000), offs=st.lists(st.integers(0, 999), max_size=6),
       dly=st.sampled_from([0, 40, 400, 4000]), dt=st.integers(1, 1000),
       k=st.integers(0, 3000))
def test_reset_recurrence_matches_plain_loop(x, offs, dly, dt, k):
    """A VMA's pids_active_reset over k timing cycles (cycle, lag or catch-up) equals
    applying every check."""
    offs = np.array(sorted(offs), np.int64)
    got, ok = _reset_after(x, offs, dly, dt, k)
    assert ok and k < MAX_RESET_ITERS
    assert got == reset_loop(x, offs.tolist(), dly, dt, k)


def timing_reference(p, per, owner, now, nxt, chk, reset, dly, limit):
    """Plain reference of kernels/idle.quiet_scans: tick by tick in (time, tid) order; a
    tick at or after the next scan time scans (the next scan moves to now + its period,
    its thread's next tick 2 ticks later, the cycle position's resets are checked).
    Returns the state after the last scan at or before limit whose count is a multiple
    of S: (next ticks, resets, next scan, time, owner, scans)."""
    tick = fn.constants.TICK_NS
    p, reset, S = list(p), list(reset), len(chk)
    good = (list(p), list(reset), nxt, now, owner, 0)
    k = 0
    while True:
        j = min(range(len(p)), key=lambda i: (p[i], i))
        t = p[j]
        if t > limit:
            return good
        p[j] = t + per[j]
        if t >= nxt:
            nxt = t + per[j]
            p[j] += 2 * tick
            for v, c in enumerate(chk[k % S]):
                for _ in range(c):
                    if t > reset[v]:
                        reset[v] += dly
            k += 1
            if k % S == 0:
                good = (list(p), list(reset), nxt, t, j, k)


@settings(max_examples=80, deadline=None)
@given(per=st.lists(st.integers(1, 40), min_size=1, max_size=5), data=st.data(),
       dly=st.sampled_from([0, 3, 40, 400]), limit=st.integers(0, 30_000),
       budget=st.sampled_from([2, 1 << 20]))
def test_timing_kernel_matches_tick_by_tick(per, data, dly, limit, budget):
    """quiet_scans (cycles skipped, resets by their recurrence, calls cut short) equals
    stepping every tick; times in ms here (TICK_NS is 1 ms)."""
    from fastnuma.kernels.idle import O_NEXT_SCAN, O_OWNER, O_SCANS, O_STATUS, O_TIME, \
        QUIET_OK, quiet_scans
    n = len(per)
    per = [q * MS for q in per]
    owner = data.draw(st.integers(0, n - 1))
    p = [data.draw(st.integers(1, per[j] // MS)) * MS for j in range(n)]
    p[owner] = per[owner] + 2 * MS                     # it just scanned at time 0
    S = data.draw(st.integers(1, 3))
    nv = data.draw(st.integers(0, 3))
    chk = [[data.draw(st.integers(0, 2)) for _ in range(nv)] for _ in range(S)]
    reset = [data.draw(st.integers(-100, 100)) * MS for _ in range(nv)]
    want = timing_reference(p, per, owner, 0, per[owner], chk, reset, dly * MS, limit * MS)
    pa, ra = np.array(p, np.int64), np.array(reset, np.int64)
    out = np.zeros(5, np.int64)
    out[O_NEXT_SCAN], out[O_TIME], out[O_OWNER] = per[owner], 0, owner
    scans = 0
    while True:
        quiet_scans(pa, np.array(per, np.int64), int(out[O_OWNER]), int(out[O_TIME]),
                    int(out[O_NEXT_SCAN]), np.array(chk, np.int64).reshape(S, nv), ra,
                    dly * MS, limit * MS, budget, out)
        scans += int(out[O_SCANS])
        if out[O_STATUS] == QUIET_OK:
            break
    got = (pa.tolist(), ra.tolist(), int(out[O_NEXT_SCAN]), int(out[O_TIME]),
           int(out[O_OWNER]), scans)
    assert got == want
