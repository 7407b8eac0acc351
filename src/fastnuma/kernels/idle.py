"""Idle time under NUMA balancing: one process's scan timing in closed form
(numa_balancing_quiet.py, docs/linux-semantics.md §5.2).

While nothing happens, a thread with period P (ns, a whole number of ticks) ticks every P
(P + 2 ticks after a tick that scanned), and the scan after one at time t by thread s is
the first tick at or after t + P_s of any thread of the process (ties: lowest tid, the
tick order). So a scan needs O(threads) arithmetic, not O(ticks); the relative timing
(cycle position mod S, owner, next ticks minus now) is a finite state, and Brent's cycle
detection finds where it repeats, after which whole cycles are skipped.

Arrays: ``p`` the threads' next tick times (ns, by tid), ``per`` their periods (ns),
``chk[pos, v]`` how many times a scan at cycle position pos checks VMA v's
pids_active_reset (``if now > reset: reset += dly``), ``reset`` those resets (ns).
"""
import numpy as np

from ..constants import TICK_NS
from ._jit import kernel

# out[] slots: scans done (a multiple of S), the mm's next scan, the time of the last scan
# done, a status (QUIET_OK, or QUIET_GAVE_UP: no timing cycle within the budget; what was
# done is exact, call again from there), and the thread that ran that scan
O_SCANS, O_NEXT_SCAN, O_TIME, O_STATUS, O_OWNER = range(5)
QUIET_OK, QUIET_GAVE_UP = 0, 1
MAX_RESET_ITERS = 1 << 20      # cycles of one reset's own recurrence looked at
MAX_OFFSETS = 1 << 22          # checks recorded over one timing cycle


@kernel
def _first_at_or_after(p, per, j, t):
    """Thread j's first tick at or after t."""
    if p[j] >= t:
        return p[j]
    return p[j] + (t - p[j] + per[j] - 1) // per[j] * per[j]


@kernel
def _next_scan(p, per, nxt, c):
    """(owner, time) of the process's next scan: the first tick at or after nxt; c[j]:
    thread j's first tick at or after nxt."""
    s = 0
    for j in range(len(p)):
        c[j] = _first_at_or_after(p, per, j, nxt)
        if c[j] < c[s]:                      # ties: the lower tid ticks first
            s = j
    return s, c[s]


@kernel
def _scan(p, per, c, s, ts, chk, pos, reset, dly):
    """Run the process's ticks up to and including its scan at ts by thread s."""
    p[:] = c                                 # the others: their ticks before nxt ran
    p[s] = ts + per[s] + 2 * TICK_NS         # task_numa_work: node_stamp += 2 ticks
    for v in range(chk.shape[1]):
        for _ in range(chk[pos, v]):
            if ts > reset[v]:
                reset[v] += dly


@kernel
def _reset_after(x, offs, dly, dt, k):
    """x (a reset minus a cycle's start) after k cycles whose checks are at ``offs``
    (sorted, relative to the cycle's start) and which last dt, relative to the k-th
    cycle's end; ok False when its recurrence did not repeat within the budget."""
    m = len(offs)
    if m == 0 or dly == 0:                   # never checked, or never moved
        return x - k * dt, True
    # Brent on the one-dimensional recurrence; a lag that grows (every check moves the
    # reset and the checks cannot catch up: m*dly <= dt) is linear from there
    power, lam = 1, 0
    saved = x
    i = 0
    while i < k:
        y = x
        inc = 0
        for o in offs:
            if o > y:
                y += dly
                inc += 1
        y -= dt
        i += 1
        if inc == m and m * dly <= dt:
            return y + (k - i) * (m * dly - dt), True
        x = y
        if x == saved:                       # a cycle of length lam + 1
            cyc = lam + 1
            rest = (k - i) % cyc
            for _ in range(rest):
                for o in offs:
                    if o > x:
                        x += dly
                x -= dt
            return x, True
        lam += 1
        if lam == power:
            saved, power, lam = x, power * 2, 0
        if i > MAX_RESET_ITERS:
            return x, False
    return x, True


@kernel
def quiet_scans(p, per, owner, now, nxt, chk, reset, dly, limit, max_steps, out):
    """Run the scans of one quiet process from a scan at ``now`` (by thread ``owner``,
    cycle position 0) while they are due at or before ``limit``, stopping at the last
    one whose count is a multiple of S = len(chk), or at the first such one past
    ``max_steps`` scans when no timing cycle was found (QUIET_GAVE_UP: call again from
    there). On return p, reset and out describe the state right after that scan."""
    n = len(p)
    S = chk.shape[0]
    # a state at a multiple of S is kept only near the end: from one before ``near`` the
    # next one is reached before the limit (a scan is at most max(per) + 2 ticks after
    # the one before)
    near = limit - (S + 1) * (per.max() + 2 * TICK_NS)
    good_p = p.copy()
    good_r = reset.copy()
    good_s, good_t, good_n = owner, now, nxt
    out[O_STATUS] = QUIET_OK
    c = np.empty(n, np.int64)
    saved = np.empty(n + 2, np.int64)
    saved[0], saved[1] = 0, owner
    for j in range(n):
        saved[j + 2] = p[j] - now
    saved_t, saved_k = now, 0
    power, lam = 1, 0
    k_done = k_good = 0
    s, t = owner, now
    jumped = False
    while True:
        if k_done % S == 0:
            if k_done >= max_steps and not jumped:
                out[O_STATUS] = QUIET_GAVE_UP
                k_good = -1                  # the current state is the result
                break
            if t >= near:
                good_p[:] = p
                good_r[:] = reset
                good_s, good_t, good_n, k_good = s, t, nxt, k_done
        nxt_s, ts = _next_scan(p, per, nxt, c)
        if ts > limit:                       # (s, t): still the last scan's
            break
        s = nxt_s
        _scan(p, per, c, s, ts, chk, k_done % S, reset, dly)
        k_done += 1
        t = ts
        nxt = ts + per[s]
        if jumped:
            continue
        same = k_done % S == saved[0] and s == saved[1]
        j = 0
        while same and j < n:                # no array built: this runs every scan
            same = p[j] - t == saved[j + 2]
            j += 1
        if same:
            jumped = True                    # the timing repeats: skip whole cycles
            if t + 2 * (t - saved_t) <= limit:
                k_done, nxt, t = _jump(p, per, s, t, nxt, chk, reset, dly, limit,
                                       k_done - saved_k, t - saved_t, k_done)
            continue
        lam += 1
        if lam == power:
            saved[0], saved[1] = k_done % S, s
            for j in range(n):
                saved[j + 2] = p[j] - t
            saved_t, saved_k = t, k_done
            power, lam = power * 2, 0
    if k_good == -1 or k_done % S == 0:
        good_p[:] = p
        good_r[:] = reset
        good_s, good_t, good_n, k_good = s, t, nxt, k_done
    p[:] = good_p
    reset[:] = good_r
    out[O_SCANS], out[O_NEXT_SCAN], out[O_TIME], out[O_OWNER] = k_good, good_n, good_t, good_s


@kernel
def _jump(p, per, s, t, nxt, chk, reset, dly, limit, lam, dt, k_done):
    """After a timing cycle of lam scans and dt ns (t + 2 dt <= limit): run one more
    cycle recording when it checks each VMA's reset, then skip as many whole cycles as
    fit before ``limit``, each reset by its own recurrence (none skipped when a
    recurrence does not repeat within its budget). Returns (scans, next scan, time)."""
    S = chk.shape[0]
    nv = chk.shape[1]
    per_cycle = np.zeros(nv, np.int64)
    for pos in range(S):
        for v in range(nv):
            per_cycle[v] += chk[pos, v] * (lam // S)
    record = per_cycle.sum() <= MAX_OFFSETS
    start = np.zeros(nv + 1, np.int64)
    for v in range(nv):
        start[v + 1] = start[v] + per_cycle[v]
    offs = np.empty(start[nv] if record else 0, np.int64)
    fill = start[:nv].copy()
    c = np.empty(len(p), np.int64)
    t0 = t
    for i in range(lam):
        pos = (k_done + i) % S
        s, ts = _next_scan(p, per, nxt, c)
        _scan(p, per, c, s, ts, chk, pos, reset, dly)
        if record:
            for v in range(nv):
                for _ in range(chk[pos, v]):
                    offs[fill[v]] = ts - t0
                    fill[v] += 1
        t = ts
        nxt = ts + per[s]
    k_done += lam
    k = (limit - t) // dt - 1
    if k <= 0 or not record:
        return k_done, nxt, t
    new = reset.copy()
    for v in range(nv):
        x, ok = _reset_after(reset[v] - t, offs[start[v]:start[v + 1]], dly, dt, k)
        if not ok:
            return k_done, nxt, t
        new[v] = x + t + k * dt
    reset[:] = new
    p += k * dt
    return k_done + k * lam, nxt + k * dt, t + k * dt
