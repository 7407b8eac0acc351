"""Memory tiering in the NUMA-balancing paths (docs/tiering.md §5, §6): the scanner's
mode-2 rule and access-time stamp, the promotion decision of a hinting fault on a
slow-tier folio, the promotion gate's kswapd wake-up, and the promotion counters.

Linux functions: kernel/sched/fair.c should_numa_migrate_memory (its tiering branch),
numa_promotion_adjust_threshold, numa_promotion_rate_limit, pgdat_free_space_enough;
mm/mprotect.c change_pte_range (the TIERING-only skip, folio_xchg_access_time);
mm/migrate.c migrate_misplaced_folio (count_vm_numa_events PGPROMOTE_SUCCESS);
mm/vmscan.c wakeup_kswapd. Per-node state lives in ``numa_nodes`` rows (dtypes N_*);
with memory tiering off every node is top tier and none of this changes anything.
"""
import numpy as np

from ..constants import (MAX_RECLAIM_RETRIES, NSEC_PER_MSEC, NUMA_BALANCING_MEMORY_TIERING,
                         PAGE_ACCESS_TIME_MASK)
from ..dtypes import (CTL_ACCESS_SEQ, N_KSWAPD_FAILURES, N_KSWAPD_WAKE, N_NBP_RL_NR_CAND, N_NBP_RL_START,
                      N_NBP_TH_NR_CAND, N_NBP_TH_START, N_NBP_THRESHOLD, N_PGPROMOTE_CANDIDATE,
                      N_PGPROMOTE_SUCCESS, N_PROMO_ROOM, N_TOPTIER, N_WMARK_PROMO, NBP_NONE,
                      OPT_HOT_THRESHOLD_MS, OPT_MEMORY_TIERING, OPT_NUMA_BALANCING,
                      OPT_PROMOTE_RATE, OPT_SCAN_PERIOD_MAX_MS, OPT_TIERING_61)
from ._jit import kernel
from .zone import mask_allows


@kernel(inline="always")
def tiering_mode(st):
    """Memory tiering modelled and the TIERING bit of kernel.numa_balancing set."""
    return st.opts[OPT_MEMORY_TIERING] != 0 and \
        st.opts[OPT_NUMA_BALANCING] & NUMA_BALANCING_MEMORY_TIERING != 0


@kernel(inline="always")
def node_is_toptier(st, node):
    """node_is_toptier (T3); every node when memory tiering is off."""
    return st.numa_nodes[node, N_TOPTIER] != 0


@kernel(inline="always")
def folio_use_access_time(st, f):
    """T6: the folio's cpupid field holds an access time (ms), not a cpupid."""
    return tiering_mode(st) and not node_is_toptier(st, np.int64(st.frames[f]["node"]))


@kernel(inline="always")
def valid_cpu(st, cpu):
    """cpupid_to_cpu of a field names a CPU that exists (P3, P9)."""
    return 0 <= cpu < st.cpu_node.size and st.cpu_node[cpu] >= 0


@kernel(inline="always")
def now_ms(st):
    return st.clock[0] // NSEC_PER_MSEC


@kernel(inline="always")
def lru_touch(st, f):
    """An access to frame f (-1: the zero page, no frame): it becomes the most recently
    used (docs/tiering.md §7, the model's touch_folio). The event loop's hook."""
    if f >= 0:
        seq = st.ctl[CTL_ACCESS_SEQ] + 1
        st.ctl[CTL_ACCESS_SEQ] = seq
        st.frame_lru[f]["lru"] = seq


# ------------------------------------------------------------------ §5 the scanner
@kernel(inline="always")
def skip_arming(st, node):
    """S6: with kernel.numa_balancing == 2 (TIERING only) top-tier folios are not armed."""
    return st.opts[OPT_MEMORY_TIERING] != 0 and \
        st.opts[OPT_NUMA_BALANCING] == NUMA_BALANCING_MEMORY_TIERING and \
        node_is_toptier(st, node)


@kernel(inline="always")
def stamp_if_slow(st, f):
    """S6: an armed slow-tier folio gets the access time (folio_xchg_access_time)."""
    if folio_use_access_time(st, f):
        st.frames[f]["last_cpupid"] = now_ms(st) & PAGE_ACCESS_TIME_MASK


# ------------------------------------------------------------------ §6 promotion
@kernel(inline="always")
def pgdat_free_space_enough(st, node):
    """P4: free > promo + max(1 GiB, node/16) (the sum kept in N_PROMO_ROOM)."""
    return st.free[node] > st.numa_nodes[node, N_PROMO_ROOM]


@kernel(inline="always")
def adjust_threshold(st, node, rate, ref_th):
    """P5 (numa_promotion_adjust_threshold), once per scan_period_max ms per node."""
    row = st.numa_nodes[node]
    now = now_ms(st)
    period = st.opts[OPT_SCAN_PERIOD_MAX_MS]
    if now - row[N_NBP_TH_START] <= period:
        return
    row[N_NBP_TH_START] = now
    ref_cand = rate * period // 1000
    cand = row[N_PGPROMOTE_CANDIDATE]
    diff = cand - row[N_NBP_TH_NR_CAND]
    unit = ref_th * 2 // 16
    th = row[N_NBP_THRESHOLD] if row[N_NBP_THRESHOLD] != 0 else ref_th
    if diff > ref_cand * 11 // 10:
        th = max(th - unit, unit)
    elif diff < ref_cand * 9 // 10:
        th = min(th + unit, ref_th * 2)
    row[N_NBP_TH_NR_CAND] = cand
    row[N_NBP_THRESHOLD] = th


@kernel(inline="always")
def rate_limited(st, node, rate, nr):
    """P6 (numa_promotion_rate_limit): count the candidate, refuse when the window of
    1 s is full."""
    row = st.numa_nodes[node]
    now = now_ms(st)
    row[N_PGPROMOTE_CANDIDATE] += nr
    cand = row[N_PGPROMOTE_CANDIDATE]
    if row[N_NBP_RL_START] == NBP_NONE or now - row[N_NBP_RL_START] > 1000:
        row[N_NBP_RL_START] = now
        row[N_NBP_RL_NR_CAND] = cand
    return cand - row[N_NBP_RL_NR_CAND] >= rate


@kernel(inline="always")
def should_promote(st, f, dst):
    """P4-P6 for a hinting fault on a slow-tier folio: True to try the migration."""
    if pgdat_free_space_enough(st, dst):
        st.numa_nodes[dst, N_NBP_THRESHOLD] = 0
        return True
    rate = st.opts[OPT_PROMOTE_RATE]
    ref_th = st.opts[OPT_HOT_THRESHOLD_MS]
    adjust_threshold(st, dst, rate, ref_th)
    th = st.numa_nodes[dst, N_NBP_THRESHOLD]
    if th == 0:
        th = ref_th
    now = now_ms(st) & PAGE_ACCESS_TIME_MASK
    latency = (now - np.int64(st.frames[f]["last_cpupid"])) & PAGE_ACCESS_TIME_MASK
    st.frames[f]["last_cpupid"] = now                  # folio_xchg_access_time
    if latency >= th:
        return False
    return not rate_limited(st, dst, rate, np.int64(1) << np.int64(st.frames[f]["order"]))


@kernel(inline="always")
def pgdat_balanced(st, node):
    """D2: free > promo with the TIERING bit, else free > high."""
    if tiering_mode(st):
        return st.free[node] > st.numa_nodes[node, N_WMARK_PROMO]
    return st.free[node] > st.wmark_high[node]


@kernel(inline="always")
def wakeup_kswapd(st, node):
    """A4: nothing for a hopeless or balanced node; else a pending run at the first
    millisecond after now (kernels/reclaim.py runs it)."""
    if st.opts[OPT_MEMORY_TIERING] == 0:
        return
    row = st.numa_nodes[node]
    if row[N_KSWAPD_FAILURES] >= MAX_RECLAIM_RETRIES or pgdat_balanced(st, node):
        return
    if row[N_KSWAPD_WAKE] < 0:
        row[N_KSWAPD_WAKE] = st.clock[0]


@kernel(inline="always")
def wake_all_kswapds(st, start, mask):
    """A2: the allocation slow path wakes the kswapd of each node of the (restricted)
    list; ``mask`` 0 = every node."""
    lst = st.fallback[start]
    for j in range(lst.size):
        n = np.int64(lst[j])
        if n < 0:
            break
        if mask_allows(mask, n):
            wakeup_kswapd(st, n)


@kernel(inline="always")
def promotion_gate_failed(st, dst):
    """P7: migrate_balanced_pgdat failed; with the TIERING bit, wake dst's kswapd."""
    if tiering_mode(st):
        wakeup_kswapd(st, dst)


@kernel(inline="always")
def reset_stamp_on_tier_change(st, f, src, dst):
    """S7 (folio_migrate_flags): between a top-tier and a slow node with the TIERING bit
    the moved folio's cpupid is all ones; otherwise it is kept."""
    if tiering_mode(st) and node_is_toptier(st, src) != node_is_toptier(st, dst):
        st.frames[f]["last_cpupid"] = PAGE_ACCESS_TIME_MASK


@kernel(inline="always")
def count_promotion(st, f, src, dst, nr):
    """P8 / V1, S7 after a NUMA-balancing migration of folio f from src to dst."""
    if st.opts[OPT_MEMORY_TIERING] == 0:
        return
    if not node_is_toptier(st, src) and node_is_toptier(st, dst) and \
            (tiering_mode(st) or st.opts[OPT_TIERING_61] != 0):
        st.numa_nodes[dst, N_PGPROMOTE_SUCCESS] += nr
    reset_stamp_on_tier_change(st, f, src, dst)


@kernel(inline="always")
def refuse_first_fault(st, f, old):
    """P3 (mode 1 with tiers): a slow-tier folio whose field names no CPU is not migrated
    on this fault."""
    return st.opts[OPT_MEMORY_TIERING] != 0 and not tiering_mode(st) and \
        not node_is_toptier(st, np.int64(st.frames[f]["node"])) and \
        not valid_cpu(st, old >> 8)


@kernel(inline="always")
def skip_task_stats(st, node, old):
    """P9: a fault that leaves the folio on a slow tier feeds no task statistics with the
    TIERING bit, nor when its old field names no CPU."""
    return st.opts[OPT_MEMORY_TIERING] != 0 and not node_is_toptier(st, node) and \
        (tiering_mode(st) or not valid_cpu(st, old >> 8))
