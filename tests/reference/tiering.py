"""Memory tiering of the reference model (docs/tiering.md): NUMA-balancing promotion
(numa_balancing bit 1, NUMA_BALANCING_MEMORY_TIERING), kswapd, direct reclaim and
demotion, with Linux 6.12's counters (6.1's with tiering_profile="6.1").

A mixin of RefMachine, active when ``self.memory_tiering``. Linux functions:
kernel/sched/fair.c should_numa_migrate_memory, numa_promotion_adjust_threshold,
numa_promotion_rate_limit, pgdat_free_space_enough; mm/migrate.c migrate_balanced_pgdat;
mm/vmscan.c wakeup_kswapd, balance_pgdat, shrink_folio_list, demote_folio_list,
try_to_free_pages; mm/memory-tiers.c next_demotion_node.

The LRU is approximated (docs/tiering.md §7): every folio keeps the sequence number of
its last access (``lru_seq``) and of its last examination by reclaim (``seen_seq``);
reclaim takes the least recently accessed folios first, and a folio accessed since it was
last examined gets one second chance (the young bit's role in folio_check_references).
kswapd runs as its own actor: woken at time t, balance_pgdat runs at the first
millisecond tick after t and reclaims to its target at once (its speed is not modelled).
"""
from fastnuma.constants import HPAGE_PMD_ORDER

from .memory_tiers import RefTiers, linux_watermarks

MS = 1_000_000
NUMA_BALANCING_NORMAL, NUMA_BALANCING_MEMORY_TIERING = 1, 2
PAGE_ACCESS_TIME_MASK = (1 << 21) - 1     # LAST_CPUPID_SHIFT 21 (NR_CPUS 8192): ms exactly
SWAP_CLUSTER_MAX = 32
MAX_RECLAIM_RETRIES = 16
PROMO_ROOM_MIN = 262144                    # pgdat_free_space_enough: 1 GiB in pages
NODE_COUNTERS = ("pgpromote_success", "pgpromote_candidate", "pgdemote_kswapd",
                 "pgdemote_direct", "pgdemote_khugepaged")
RECLAIM_EVENTS = ("pgscan_kswapd", "pgscan_direct", "pgscan_khugepaged", "pgscan_anon",
                  "pgscan_file", "pgsteal_kswapd", "pgsteal_direct", "pgsteal_khugepaged",
                  "pgsteal_anon", "pgsteal_file", "pageoutrun")
TIER_KNOBS = dict(numa_balancing_promote_rate_limit_MBps=65536,
                  numa_balancing_hot_threshold_ms=1000, demotion_enabled=False,
                  min_free_kbytes=None, watermark_scale_factor=None, memory_tiering=None,
                  tiering_profile="6.12")


class NodeTierState:
    """Per node: pgdat's nbp_* fields (fair.c) and kswapd's state (vmscan.c)."""

    def __init__(self, now_ms):
        self.nbp_threshold = 0
        self.nbp_th_nr_cand = 0
        self.nbp_th_start = now_ms
        self.nbp_rl_start = None               # -infinity: the first candidate opens it
        self.nbp_rl_nr_cand = 0
        self.kswapd_wake_ns = None             # pending run (woken, not yet run)
        self.kswapd_failures = 0


class TieringMixin:
    def init_tiering(self, topology, knobs):
        """Check the tiering knobs (Linux names and defaults) and set up the state."""
        unknown = set(knobs) - set(TIER_KNOBS)
        if unknown:
            raise TypeError(f"unexpected keyword {sorted(unknown)[0]!r}")
        k = {**TIER_KNOBS, **knobs}
        for name in ("numa_balancing_promote_rate_limit_MBps",
                     "numa_balancing_hot_threshold_ms"):
            v = k[name]
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << 32:
                raise ValueError(f"{name}={v!r}: expected an int >= 0")
        if k["tiering_profile"] not in ("6.12", "6.1"):
            raise ValueError(f"tiering_profile={k['tiering_profile']!r}: expected '6.12' "
                             "or '6.1'")
        self.promote_rate_limit_MBps = k["numa_balancing_promote_rate_limit_MBps"]
        self.hot_threshold_ms = k["numa_balancing_hot_threshold_ms"]
        self.demotion_enabled = bool(k["demotion_enabled"])
        self.tiering_profile = k["tiering_profile"]
        self.memory_tiering = bool(self.numa_balancing & NUMA_BALANCING_MEMORY_TIERING
                                   or self.demotion_enabled) \
            if k["memory_tiering"] is None else bool(k["memory_tiering"])
        mfk, wsf = k["min_free_kbytes"], k["watermark_scale_factor"]
        for name, v, lo, hi in (("min_free_kbytes", mfk, 0, 1 << 40),
                                ("watermark_scale_factor", wsf, 1, 3000)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)
                                  or not lo <= v <= hi):
                raise ValueError(f"{name}={v!r}: expected an int {lo}..{hi}")
        if mfk is not None or wsf is not None:            # a sysctl write: recompute
            marks = linux_watermarks(self.node_pages, mfk, 10 if wsf is None else wsf)
            self.wmark_min, self.wmark_low, self.wmark_high, self.wmark_promo = marks
        else:
            self.wmark_promo = tuple(getattr(topology, "wmark_promo", None) or
                                     (2 * h - lo for lo, h in zip(self.wmark_low,
                                                                   self.wmark_high)))
        cpus = [[c for c, n in self.cpu_node.items() if n == node]
                for node in range(self.n_nodes)]
        self.tiers = RefTiers(self.node_pages, cpus, self.node_distance,
                              getattr(topology, "adistance", None))
        self.tier_rng = 0                      # splitmix64 state of node_random (T5)
        self.node_vm = {n: dict.fromkeys(NODE_COUNTERS, 0) for n in range(self.n_nodes)}
        self.vm.update(dict.fromkeys(RECLAIM_EVENTS, 0))
        self.nbp = [NodeTierState(0) for _ in range(self.n_nodes)]
        self.access_seq = 0

    # ------------------------------------------------------------ helpers
    @property
    def tiering_mode(self):
        return bool(self.numa_balancing & NUMA_BALANCING_MEMORY_TIERING)

    def now_ms(self):
        return self.now_ns // MS

    def node_is_toptier(self, node):
        return not self.memory_tiering or self.tiers.node_is_toptier(node)

    def folio_use_access_time(self, folio):
        """T6: the folio's cpupid field holds an access time."""
        return self.tiering_mode and not self.node_is_toptier(folio.node)

    def tier_vmstat(self):
        """The reclaim events and the node counters summed (6.1: pgdemote_* global,
        no pgdemote_khugepaged)."""
        out = {name: self.vm[name] for name in RECLAIM_EVENTS}
        for name in NODE_COUNTERS:
            if name == "pgdemote_khugepaged" and self.tiering_profile == "6.1":
                continue
            out[name] = sum(self.node_vm[n][name] for n in range(self.n_nodes))
        return out

    def node_vmstat(self):
        """/sys/devices/system/node/nodeN/vmstat, the tiering items: per node
        pgpromote_success, pgpromote_candidate and (6.12) pgdemote_*."""
        drop = ("pgdemote_kswapd", "pgdemote_direct", "pgdemote_khugepaged") \
            if self.tiering_profile == "6.1" else ()
        return {n: {k: v for k, v in c.items() if k not in drop}
                for n, c in self.node_vm.items()}

    def set_numa_balancing(self, mode):
        """sysctl kernel.numa_balancing = mode; K1: turning the TIERING bit on resets
        every node's threshold (nbp_threshold 0, th_nr_cand = the candidates so far,
        th_start = now); the rate-limit window is kept."""
        if mode not in (0, 1, 2, 3) or isinstance(mode, bool):
            raise ValueError(f"numa_balancing={mode!r}: expected 0, 1, 2 or 3")
        if mode & NUMA_BALANCING_MEMORY_TIERING and not self.tiering_mode:
            for n, st in enumerate(self.nbp):
                st.nbp_threshold = 0
                st.nbp_th_nr_cand = self.node_vm[n]["pgpromote_candidate"]
                st.nbp_th_start = self.now_ms()
        self.numa_balancing = mode

    def touch_folio(self, folio):
        """An access: the folio becomes the most recently used (the LRU approximation)."""
        self.access_seq += 1
        folio.lru_seq = self.access_seq

    # ------------------------------------------------------------ §5 scanner hooks
    def tiering_skip_arming(self, folio):
        """S6: TIERING-only mode skips folios on top-tier nodes."""
        return (self.memory_tiering and self.numa_balancing == NUMA_BALANCING_MEMORY_TIERING
                and self.node_is_toptier(folio.node))

    def tiering_stamp(self, folio):
        """S6: an armed slow-tier folio gets the access time (folio_xchg_access_time)."""
        if self.memory_tiering and self.folio_use_access_time(folio):
            folio.last_cpupid = self.now_ms() & PAGE_ACCESS_TIME_MASK

    # ------------------------------------------------------------ §6 promotion
    def pgdat_free_space_enough(self, node):
        """P4: free > promo + max(1 GiB, node/16)."""
        room = max(PROMO_ROOM_MIN, self.node_pages[node] >> 4)
        return self.free[node] > self.wmark_promo[node] + room

    def numa_promotion_adjust_threshold(self, node, rate, ref_th):
        """P5, once per scan_period_max ms, per target node."""
        st, now = self.nbp[node], self.now_ms()
        period = self.scan_period_max_ms
        if now - st.nbp_th_start <= period:
            return
        st.nbp_th_start = now
        ref_cand = rate * period // 1000
        cand = self.node_vm[node]["pgpromote_candidate"]
        diff = cand - st.nbp_th_nr_cand
        unit = ref_th * 2 // 16
        th = st.nbp_threshold or ref_th
        if diff > ref_cand * 11 // 10:
            th = max(th - unit, unit)
        elif diff < ref_cand * 9 // 10:
            th = min(th + unit, ref_th * 2)
        st.nbp_th_nr_cand = cand
        st.nbp_threshold = th

    def numa_promotion_rate_limit(self, node, rate, nr):
        """P6: count the candidate, then refuse when the 1 s window is full."""
        st, now = self.nbp[node], self.now_ms()
        self.node_vm[node]["pgpromote_candidate"] += nr
        cand = self.node_vm[node]["pgpromote_candidate"]
        if st.nbp_rl_start is None or now - st.nbp_rl_start > 1000:
            st.nbp_rl_start = now
            st.nbp_rl_nr_cand = cand
        return cand - st.nbp_rl_nr_cand >= rate

    def should_promote(self, folio, dst):
        """P4-P6 for a slow-tier folio: True to try the migration."""
        if self.pgdat_free_space_enough(dst):
            self.nbp[dst].nbp_threshold = 0
            return True
        rate = self.promote_rate_limit_MBps << 8
        self.numa_promotion_adjust_threshold(dst, rate, self.hot_threshold_ms)
        th = self.nbp[dst].nbp_threshold or self.hot_threshold_ms
        now = self.now_ms() & PAGE_ACCESS_TIME_MASK
        latency = (now - folio.last_cpupid) & PAGE_ACCESS_TIME_MASK
        folio.last_cpupid = now                     # folio_xchg_access_time
        if latency >= th:
            return False
        return not self.numa_promotion_rate_limit(dst, rate, folio.nr)

    def promotion_gate_failed(self, dst):
        """P7: migrate_balanced_pgdat failed; with the TIERING bit wake dst's kswapd."""
        if self.memory_tiering and self.tiering_mode:
            self.wakeup_kswapd(dst)

    def count_promotion(self, src, dst, new, nr):
        """P8 / V1 and S7 after a successful NUMA-balancing migration."""
        if not self.memory_tiering:
            return
        crosses = not self.node_is_toptier(src) and self.node_is_toptier(dst)
        if crosses and (self.tiering_mode or self.tiering_profile == "6.1"):
            self.node_vm[dst]["pgpromote_success"] += nr
        self.reset_stamp_on_tier_change(src, dst, new)

    def reset_stamp_on_tier_change(self, src, dst, new):
        """S7 (folio_migrate_flags): between a top-tier and a slow node with the TIERING
        bit the new folio's cpupid is all ones, otherwise it is copied."""
        if self.tiering_mode and self.node_is_toptier(src) != self.node_is_toptier(dst):
            new.last_cpupid = PAGE_ACCESS_TIME_MASK

    # ------------------------------------------------------------ §4 allocation
    def wake_all_kswapds(self, zonelist):
        """A2: the slow path wakes each node of the list."""
        if self.memory_tiering:
            for node in zonelist:
                self.wakeup_kswapd(node)

    def wakeup_kswapd(self, node):
        """A4: nothing for a hopeless or balanced node; else a pending run."""
        st = self.nbp[node]
        if st.kswapd_failures >= MAX_RECLAIM_RETRIES or self.pgdat_balanced(node):
            return
        if st.kswapd_wake_ns is None:
            st.kswapd_wake_ns = self.now_ns

    def pgdat_balanced(self, node):
        """D2: free > promo with the TIERING bit, else free > high."""
        mark = self.wmark_promo if self.tiering_mode else self.wmark_high
        return self.free[node] > mark[node]

    def try_to_free_pages(self, zonelist):
        """D8: direct reclaim of SWAP_CLUSTER_MAX pages over the allocation's nodes."""
        if not self.memory_tiering:
            return
        left = SWAP_CLUSTER_MAX
        for _ in range(2):               # priority escalation: a second look after the
            for node in zonelist:        # first pass cleared the references
                if left <= 0:
                    return
                got = self.shrink_node(node, "direct", left)
                left -= got
                if got:
                    self.nbp[node].kswapd_failures = 0

    # ------------------------------------------------------------ §7 kswapd and demotion
    def run_kswapds_until(self, end_ns):
        """Run every pending kswapd whose first tick after its wake is <= end_ns, in time
        order (node order at equal times); returns False when none is due."""
        due = [(st.kswapd_wake_ns // MS + 1) * MS for st in self.nbp
               if st.kswapd_wake_ns is not None]
        if not due or min(due) > end_ns:
            return False
        t = min(due)
        if self.numa_balancing:
            self.run_numa_ticks(t)
        self.now_ns = max(self.now_ns, t)
        for node, st in enumerate(self.nbp):
            if st.kswapd_wake_ns is not None and (st.kswapd_wake_ns // MS + 1) * MS == t:
                st.kswapd_wake_ns = None
                self.balance_pgdat(node)
        return True

    def balance_pgdat(self, node):
        """D2: pageoutrun, then reclaim until balanced or nothing more can be freed; a run
        that frees nothing counts a failure (16 = hopeless)."""
        self.vm["pageoutrun"] += 1
        reclaimed = idle = 0
        while not self.pgdat_balanced(node) and idle < 2:
            # a pass that frees nothing has cleared the references; a second one finds
            # nothing either: every folio was examined twice without an access between
            got = self.shrink_node(node, "kswapd", self.node_pages[node] + 1)
            reclaimed += got
            idle = 0 if got else idle + 1
        st = self.nbp[node]
        st.kswapd_failures = 0 if reclaimed else st.kswapd_failures + 1

    def node_folios(self, node):
        """Every allocated folio on ``node`` on its LRU lists (unordered): not those
        isolated for a migration in progress."""
        seen = {}
        for proc in self.procs.values():
            for pte in proc.ptes.values():
                seen[id(pte.folio)] = pte.folio
            for pmd in proc.pmds.values():
                seen[id(pmd.folio)] = pmd.folio
            for vma in proc.vmas:
                if vma.obj is not None:
                    for folio in vma.obj.pages.values():
                        seen[id(folio)] = folio
        for folio in self.page_cache:
            seen[id(folio)] = folio
        return [f for f in seen.values() if not f.is_zero and not f.freed and f.node == node
                and id(f) not in self.isolated]

    def lru_candidates(self, node):
        """The node's folios, least recently accessed first."""
        return sorted(self.node_folios(node), key=lambda f: f.lru_seq)

    def shrink_node(self, node, who, want):
        """D3-D6 for one reclaimer pass: take the LRU-order candidates in batches of 32 pages,
        second chance for folios accessed since last examined, demote the victims
        (can_demote) or activate them (anon, no swap) / drop them (page cache). Returns
        the pages reclaimed (demoted + dropped)."""
        reclaimed = 0
        cands = self.lru_candidates(node)
        i = 0
        while i < len(cands) and reclaimed < want:
            batch, pages = [], 0                         # isolate_lru_folios: <= 32 pages
            while i < len(cands) and pages < SWAP_CLUSTER_MAX:   # (a THP alone is 512)
                batch.append(cands[i])
                pages += cands[i].nr
                i += 1
            victims = []
            for f in batch:
                self.vm[f"pgscan_{who}"] += f.nr
                self.vm["pgscan_file" if f.file else "pgscan_anon"] += f.nr
                if f.lru_seq > f.seen_seq:
                    f.seen_seq = self.access_seq          # referenced: one more chance
                    continue
                victims.append(f)
            reclaimed += self.reclaim_victims(node, who, victims)
            if who == "kswapd" and self.pgdat_balanced(node):
                return reclaimed
        return reclaimed

    def node_random(self):
        """T5's uniform draw, made reproducible: splitmix64 from state 0, one step per
        draw (the engine uses the same generator, so the two pick the same targets)."""
        self.tier_rng = (self.tier_rng + 0x9E3779B97F4A7C15) & (1 << 64) - 1
        z = self.tier_rng
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & (1 << 64) - 1
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB & (1 << 64) - 1
        return z ^ (z >> 31)

    def can_demote(self, node):
        """D1."""
        return self.demotion_enabled and bool(self.tiers.next_demotion_nodes(node))

    def reclaim_victims(self, node, who, victims):
        """D4/D5: demote to one random preferred target (then the tier's lower mask),
        stopping at the first failed allocation; the rest is dropped (page cache) or
        activated (anon without swap)."""
        done = 0
        rest = list(victims)
        if victims and self.can_demote(node):
            targets = self.tiers.next_demotion_nodes(node)
            target = targets[self.node_random() % len(targets)]
            fallback = [n for n in self.fallback[target] if n in self.tiers.lower[node]]
            while rest:
                f = rest[0]
                dst = self.alloc_demote_folio(target, fallback, f.order, node)
                if dst is None:
                    break
                rest.pop(0)
                new = self.move_folio(f, dst)
                self.reset_stamp_on_tier_change(node, dst, new)
                self.vm["pgmigrate_success"] += f.nr
                self.node_vm[node][f"pgdemote_{who}"] += f.nr
                self.count_steal(who, f)
                done += f.nr
        for f in rest:
            if f.file:                                   # clean page cache: dropped
                self.page_cache.remove(f)
                self.free_folio(f)
                self.count_steal(who, f)
                done += f.nr
            else:                                        # anon, no swap: activate_locked
                self.access_seq += 1                     # (protected like a referenced one)
                f.lru_seq = self.access_seq
        return done

    def count_steal(self, who, f):
        self.vm[f"pgsteal_{who}"] += f.nr
        self.vm["pgsteal_file" if f.file else "pgsteal_anon"] += f.nr

    def alloc_demote_folio(self, target, fallback, order, src):
        """A3: target only (low, then wake its kswapd and min), then the fallback list
        restricted to lower_tier_mask the same way. THP victims use the same test (the
        GFP_TRANSHUGE direct reclaim of a THP demotion is not modelled). numastat as any
        allocation, preferred = the list's first node, the reclaimer's CPU taken to be
        on the source node."""
        for zonelist in ([target], fallback):
            if not zonelist:
                continue
            node = self.get_page_from_freelist(order, zonelist, self.wmark_low)
            if node is None:
                for n in zonelist:
                    self.wakeup_kswapd(n)
                node = self.get_page_from_freelist(order, zonelist, self.wmark_min)
            if node is not None:
                self.free[node] -= 1 << order
                self.zone_statistics(zonelist[0], node, src)
                return node
        return None


__all__ = ["TieringMixin", "TIER_KNOBS", "NODE_COUNTERS", "RECLAIM_EVENTS",
           "PAGE_ACCESS_TIME_MASK", "HPAGE_PMD_ORDER"]
