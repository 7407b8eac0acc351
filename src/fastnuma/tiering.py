"""Memory tiering (docs/tiering.md): the per-node tier rows the kernels read, the sysctl
writes (kernel.numa_balancing, the watermark knobs), and the tiering counters
(/proc/vmstat's and /sys/devices/system/node/nodeN/vmstat's).

The rules themselves run in Numba: kernels/tiering.py (the scanner's mode-2 rule, the
promotion decision of a hinting fault, the gate's kswapd wake-up, the counters). This
module only fills ``numa_nodes``' tiering columns (dtypes N_*) from the Topology's memory
tiers and reads the counters back.
"""
import dataclasses

import numpy as np

from . import memory_tiers as _mt
from .constants import NUMA_BALANCING_MEMORY_TIERING, PROMO_ROOM_MIN_PAGES
from .dtypes import (FRAME_FILE, N_DEMOTE_LOWER, N_DEMOTE_PREFERRED, N_KSWAPD_WAKE, N_NBP_RL_START,
                     N_NBP_TH_NR_CAND, N_NBP_TH_START, N_NBP_THRESHOLD, N_PGPROMOTE_CANDIDATE,
                     N_PGPROMOTE_SUCCESS, N_PROMO_ROOM, N_TOPTIER, N_WMARK_PROMO, NBP_NONE,
                     NODE_VMSTAT_NAMES, OPT_NUMA_BALANCING, TIER_VMSTAT_NAMES, N_VMSTAT)

from .kernels.reclaim import run_kswapds_at

MS = 1_000_000
_DEMOTE_COUNTERS = ("pgdemote_kswapd", "pgdemote_direct", "pgdemote_khugepaged")


def _mask(nodes):
    """A node set as the int64 bitmask the kernels read (at most 64 nodes)."""
    bits = sum(1 << n for n in nodes)
    return bits - (1 << 64) if bits >= 1 << 63 else bits


class Tiering:
    """The tiering state of one :class:`~fastnuma.machine.Machine`."""

    def __init__(self, machine):
        self.m = machine
        cfg, topo = machine.config, machine.topology
        self.on = cfg.tiering_on
        st = machine.st
        promo = list(topo.wmark_promo)
        if cfg.min_free_kbytes is not None or cfg.watermark_scale_factor is not None:
            marks = _mt.setup_per_zone_wmarks(             # a sysctl write: recomputed
                topo.node_pages, cfg.min_free_kbytes, cfg.watermark_scale_factor or 10)
            for arr, vals in zip((st.wmark_min, st.wmark_low, st.wmark_high), marks):
                arr[:] = vals
            promo = list(marks[3])
        rows = machine.numa_nodes
        for n in range(topo.n_nodes):
            rows[n, N_TOPTIER] = 1 if not self.on else int(topo.node_is_toptier(n))
            rows[n, N_WMARK_PROMO] = promo[n]
            rows[n, N_PROMO_ROOM] = promo[n] + max(PROMO_ROOM_MIN_PAGES,
                                                   topo.node_pages[n] >> 4)
            rows[n, N_DEMOTE_PREFERRED] = _mask(topo.demotion_preferred[n])
            rows[n, N_DEMOTE_LOWER] = _mask(topo.demotion_fallback[n])
            rows[n, N_NBP_RL_START] = NBP_NONE
            rows[n, N_KSWAPD_WAKE] = -1

    # ------------------------------------------------------------------ knobs
    def set_numa_balancing(self, mode):
        """sysctl kernel.numa_balancing = mode. K1: turning the TIERING bit on resets every
        node's threshold (0), candidates at the last adjustment (= the candidates so far)
        and its start (now); the rate-limit window is kept. Returns the new config."""
        if mode not in (0, 1, 2, 3) or isinstance(mode, bool):
            raise ValueError(f"numa_balancing={mode!r}: expected 0, 1, 2 or 3")
        m = self.m
        old = m.config.numa_balancing
        if mode & NUMA_BALANCING_MEMORY_TIERING and not old & NUMA_BALANCING_MEMORY_TIERING:
            rows = m.numa_nodes
            rows[:, N_NBP_THRESHOLD] = 0
            rows[:, N_NBP_TH_NR_CAND] = rows[:, N_PGPROMOTE_CANDIDATE]
            rows[:, N_NBP_TH_START] = m.now_ns // 1_000_000
        # memory_tiering is decided at creation (as a boot-time choice): pinned here
        m.config = dataclasses.replace(m.config, numa_balancing=mode,
                                       memory_tiering=self.on)
        m.st.opts[OPT_NUMA_BALANCING] = mode
        return m.config

    # ------------------------------------------------------------------ kswapd
    def next_kswapd_ns(self):
        """When the earliest pending kswapd runs (its wake's next whole ms), or None."""
        wake = self.m.numa_nodes[:, N_KSWAPD_WAKE]
        pending = wake[wake >= 0]
        if not self.on or not pending.size:
            return None
        return int((pending.min() // MS + 1) * MS)

    def run_kswapds_until(self, end, run_ticks):
        """D2: run every pending kswapd due at or before ``end``, in time order (node order
        at equal times); NUMA ticks up to a kswapd's time run first (``run_ticks(t)``), as
        in the reference model. Returns whether one ran."""
        t = self.next_kswapd_ns()
        if t is None or t > end:
            return False
        m = self.m
        if t > m.now_ns:
            run_ticks(t)
        m.now_ns = max(m.now_ns, t)
        run_kswapds_at(m.st, t, m.node_pages)
        self.prune_page_cache()
        return True

    def prune_page_cache(self):
        """Page-cache frames that reclaim dropped leave the page-cache list (reclaim runs
        inside kernels, which cannot edit this Python list)."""
        m = self.m
        if self.on and m.page_cache:           # (FRAME_FILE is set with tiering only)
            # a dropped frame may since hold a new page-cache page: listed once
            live = m.pt.frames["flags"][np.asarray(m.page_cache, np.int64)] & FRAME_FILE
            if not live.all() or len(set(m.page_cache)) != len(m.page_cache):
                m.page_cache[:] = list(dict.fromkeys(
                    f for f, k in zip(m.page_cache, live) if k))

    # ------------------------------------------------------------------ counters
    def vmstat(self):
        """The tiering items of /proc/vmstat (with memory tiering on only): the reclaim
        events and the node counters summed (6.1: no pgdemote_khugepaged)."""
        if not self.on:
            return {}
        out = {name: int(self.m.vm[N_VMSTAT + i]) for i, name in enumerate(TIER_VMSTAT_NAMES)}
        rows = self.m.numa_nodes
        for i, name in enumerate(NODE_VMSTAT_NAMES):
            if name == "pgdemote_khugepaged" and self.m.config.tiering_profile == "6.1":
                continue
            out[name] = int(rows[:, N_PGPROMOTE_SUCCESS + i].sum())
        return out

    def node_vmstat(self):
        """{node: {pgpromote_success, pgpromote_candidate, pgdemote_kswapd,
        pgdemote_direct, pgdemote_khugepaged}}: the tiering items of
        /sys/devices/system/node/nodeN/vmstat (6.1: pgpromote_* only)."""
        drop = _DEMOTE_COUNTERS if self.m.config.tiering_profile == "6.1" else ()
        rows = self.m.numa_nodes
        return {n: {name: int(rows[n, N_PGPROMOTE_SUCCESS + i])
                    for i, name in enumerate(NODE_VMSTAT_NAMES) if name not in drop}
                for n in range(rows.shape[0])}
