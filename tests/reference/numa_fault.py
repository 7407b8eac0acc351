"""NUMA hinting of the reference model: marking pages (change_prot_numa) and the hinting
fault (do_numa_page), with the migrate-on-fault decision (docs/lazy-migration.md §3, §5;
linux-semantics.md §2.5, §4, §7, §8; Linux mm/mempolicy.c change_prot_numa and
mpol_misplaced, mm/mprotect.c change_pte_range, mm/huge_memory.c change_huge_pmd and
do_huge_pmd_numa_page, mm/memory.c do_numa_page, mm/migrate.c migrate_misplaced_folio,
kernel/sched/fair.c should_numa_migrate_memory; the 2012 series' do_pmd_numa_page and
numamigrate_update_ratelimit).

A mixin of RefMachine. Reads the switches self.pmd_numa_batching, self.shared_page_rule,
self.two_stage_filter, self.migrate_rate_limit, self.thp_update_count,
self.skip_local_single_thread; task_numa_fault is in numa_sched.py.
"""
from fastnuma.constants import (HPAGE_PMD_NR, HPAGE_PMD_ORDER, MPOL_BIND, MPOL_F_MOF,
                                MPOL_F_MORON, MPOL_LOCAL, MPOL_PREFERRED,
                                MPOL_PREFERRED_MANY, MPOL_WEIGHTED_INTERLEAVE)

from .mm import LAST_CPUPID_UNSET
from .policy import INTERLEAVE_MODES, Policy, interleave_nid, weighted_interleave_nid

TNF_MIGRATED = 1                 # task_numa_fault flags (include/linux/sched.h)
TNF_MIGRATE_FAIL = 2
MS = 1_000_000                   # ns per millisecond (one jiffy, HZ = 1000)
RATELIMIT_PAGES = 32768          # seed: 128 MiB ...
RATELIMIT_WINDOW_NS = 100 * MS   # ... per 100 ms per destination node
CPUPID_PID_MASK = 0xFF
CPUPID_CPU_MASK = 0x1FFF

# §5.2: the policy of a task without one, as mpol_misplaced sees it (default_policy)
DEFAULT_NUMA_POLICY = Policy(MPOL_LOCAL, MPOL_F_MOF | MPOL_F_MORON, system=True)


def cpu_pid_to_cpupid(cpu, pid):
    """§2: cpupid of (cpu, tid) = (cpu & 0x1FFF) << 8 | (tid & 0xFF)."""
    return (cpu & CPUPID_CPU_MASK) << 8 | (pid & CPUPID_PID_MASK)


def cpupid_pid_unset(cpupid):
    return cpupid & CPUPID_PID_MASK == CPUPID_PID_MASK


def hash_32(val, bits):
    """include/linux/hash.h hash_32."""
    return ((val * 0x61C88647) & 0xFFFFFFFF) >> (32 - bits)


class RateLimitWindow:
    """Seed per-node migration window (§5.3): end of the window (ns) and pages counted."""

    def __init__(self):
        self.window_end = 0
        self.pages = 0


class NumaFaultMixin:
    # ------------------------------------------------------------ §3 marking
    def change_prot_numa_range(self, proc, lo, hi, target_node):
        """§3 change_prot_numa(process, lo, hi, target_node): each VMA meeting [lo, hi), on
        its part of the range (change_prot_numa_vma). Returns the updates."""
        updates = 0
        for vma in proc.overlapping(lo, hi):
            if not vma.accessible():     # its callers skip PROT_NONE (vma_is_accessible)
                continue
            updates += self.change_prot_numa_vma(proc, vma, max(lo, vma.start),
                                                 min(hi, vma.end), target_node)
        return updates

    def change_prot_numa_vma(self, proc, vma, start, end, target_node):
        """Linux's change_prot_numa(vma, start, end), PMD by PMD; numa_pte_updates +=
        updates and, when anything changed, one TLB flush of the range
        (fastnuma_prot_numa_flushes; one per VMA, as Linux calls it per VMA)."""
        updates = 0
        hpn = start // HPAGE_PMD_NR
        while hpn * HPAGE_PMD_NR < end:
            pstart = max(start, hpn * HPAGE_PMD_NR)
            pend = min(end, (hpn + 1) * HPAGE_PMD_NR)
            updates += self.change_pmd_range(proc, vma, hpn, pstart, pend, target_node)
            hpn += 1
        self.vm["numa_pte_updates"] += updates
        if updates:
            self.vm["fastnuma_prot_numa_flushes"] += 1
        return updates

    def change_pmd_range(self, proc, vma, hpn, pstart, pend, target_node):
        """§3 steps 1-3 for one PMD: nothing without a page table; a PMD-mapped THP fully
        covered is marked as a unit (change_huge_pmd), partly covered it is split first
        (fastnuma splits the folio with it, as mbind's splits do); then the PTEs."""
        pmd = proc.pmds.get(hpn)
        if pmd is not None:
            if pstart == hpn * HPAGE_PMD_NR and pend == (hpn + 1) * HPAGE_PMD_NR:
                return self.change_huge_pmd(pmd)
            self.split_huge_pmd(proc, hpn)
        if hpn not in proc.pte_tables:
            return 0
        return self.change_pte_range(proc, vma, hpn, pstart, pend, target_node)

    def change_huge_pmd(self, pmd):
        """§3 step 2: skip the huge zero page, an already marked PMD, and (shared_page_rule)
        a folio mapped more than once; else mark the 512 entries. Counts thp_update_count
        (512 also adds numa_huge_pte_updates)."""
        folio = pmd.folio
        if folio.is_zero or pmd.numa:
            return 0
        if self.shared_page_rule and folio.mapcount() != 1:
            return 0
        if self.tiering_skip_arming(folio):          # docs/tiering.md S6
            return 0
        self.tiering_stamp(folio)
        pmd.numa = True
        if self.thp_update_count == HPAGE_PMD_NR:
            self.vm["numa_huge_pte_updates"] += 1
        return self.thp_update_count

    def change_pte_range(self, proc, vma, hpn, pstart, pend, target_node):
        """§3 step 3 (change_pte_range with MM_CP_PROT_NUMA): skip not present, already
        marked, the zero page, (shared_page_rule) mapcount != 1, a private VMA's folio
        mapped more than once (mainline rule 3), and (skip_local_single_thread) a private
        VMA's folio already on target_node in a single-threaded process (rule 5); mark the
        rest. pmd_numa_batching: a PMD with an entry marked by this call gets its flag."""
        private = vma.obj is None
        single_threaded = len(proc.tids) == 1
        marked = 0
        for vpn in range(pstart, pend):
            pte = proc.ptes.get(vpn)
            if pte is None or pte.numa or pte.folio.is_zero:
                continue
            folio = pte.folio
            if self.shared_page_rule and folio.mapcount() != 1:
                continue
            if private and folio.mapcount() > 1:
                continue
            if (self.skip_local_single_thread and private and single_threaded
                    and folio.node == target_node):
                continue
            if self.tiering_skip_arming(folio):      # docs/tiering.md S6
                continue
            self.tiering_stamp(folio)
            pte.numa = True
            marked += 1
        if marked and self.pmd_numa_batching:
            proc.pmd_numa.add(hpn)
        return marked

    # ------------------------------------------------------------ §5 the hinting fault
    def handle_numa_hint(self, thread, proc, vma, vpn):
        """§5, __handle_mm_fault's first test: an access to a marked THP
        (do_huge_pmd_numa_page), to any page of a PTE table whose PMD is marked (seed
        batching, do_pmd_numa_page) or to a marked PTE (do_numa_page) takes a hinting
        fault (pgfault += 1). The access itself is then retried by the caller
        (handle_mm_fault), which may fault again (a write to a read-only entry)."""
        hpn = vpn // HPAGE_PMD_NR
        pmd = proc.pmds.get(hpn)
        if pmd is not None:
            if pmd.numa:
                self.vm["pgfault"] += 1
                self.do_huge_pmd_numa_page(thread, proc, vma, hpn)
            return
        if hpn in proc.pmd_numa:
            self.vm["pgfault"] += 1
            self.do_pmd_numa_page(thread, proc, vma, hpn)
            return
        pte = proc.ptes.get(vpn)
        if pte is not None and pte.numa:
            self.vm["pgfault"] += 1
            self.do_numa_page(thread, proc, vma, vpn)

    def do_numa_page(self, thread, proc, vma, vpn):
        """§5.1 for one PTE: clear the mark, then numa_hint_fault."""
        pte = proc.ptes[vpn]
        pte.numa = False
        self.numa_hint_fault(thread, proc, vma, vpn, pte.folio)

    def do_huge_pmd_numa_page(self, thread, proc, vma, hpn):
        """§5.1 / spec §8 for a PMD-mapped THP: one unit (one fault, 512 pages)."""
        pmd = proc.pmds[hpn]
        pmd.numa = False
        self.numa_hint_fault(thread, proc, vma, hpn * HPAGE_PMD_NR, pmd.folio)

    def do_pmd_numa_page(self, thread, proc, vma, hpn):
        """Seed pmd_numa_batching (spec §7, rule 51; the seed's do_pmd_numa_page): clear
        the PMD's flag, then every marked PTE from max(PMD start, VMA start) to the PMD
        end -- crossing into the following VMAs -- as if touched by the faulting thread:
        clear the mark; a page mapped more than once is skipped (not counted); the others
        take §5.1 steps 2-6. Entries of a PROT_NONE VMA are left alone (the seed marked
        with its own bit, not protnone)."""
        proc.pmd_numa.discard(hpn)
        for vpn in range(max(hpn * HPAGE_PMD_NR, vma.start), (hpn + 1) * HPAGE_PMD_NR):
            pte = proc.ptes.get(vpn)
            if pte is None or not pte.numa:
                continue
            owner = proc.find_vma(vpn)
            if owner is not None and not owner.accessible():
                continue                 # PROT_NONE, not a mark (the seed's own pte_numa bit)
            pte.numa = False
            if pte.folio.mapcount() != 1:
                continue
            self.numa_hint_fault(thread, proc, owner, vpn, pte.folio)

    def numa_hint_fault(self, thread, proc, vma, vpn, folio):
        """§5.1 steps 2-6 (numa_migrate_check + the migration + task_numa_fault) for a
        folio whose mark was cleared; ``vpn`` is its first page in this mapping."""
        this_node = self.cpu_node[thread.cpu]
        self.vm["numa_hint_faults"] += 1
        if folio.node == this_node:
            self.vm["numa_hint_faults_local"] += 1
        self.vma_set_access_pid_bit(vma, thread)
        # docs/tiering.md P1: a slow-tier folio's field holds a time, not a cpupid
        old_cpupid = -1 if self.folio_use_access_time(folio) else folio.last_cpupid
        target = self.mpol_misplaced(thread, vma, vpn, folio)
        node, flags = folio.node, 0
        if target is not None:
            flags = self.migrate_misplaced_folio(folio, target, this_node)
            if flags == TNF_MIGRATED:
                node = target
        if self.memory_tiering and not self.node_is_toptier(node) and (
                self.tiering_mode or self.cpu_node.get(old_cpupid >> 8) is None):
            return                                   # P9: no statistics
        self.task_numa_fault(thread, old_cpupid, node, folio.nr, flags)

    def vma_set_access_pid_bit(self, vma, thread):
        """§5.1 step 2: the thread's bit hash_32(tid, 6) in the VMA's pids_active[1],
        only once the scanner gave the VMA its state (§6.2)."""
        if vma.numab is not None:
            vma.numab.pids_active[1] |= 1 << hash_32(thread.tid, 6)

    # ------------------------------------------------------------ §5.2 the decision
    def get_numa_policy(self, thread, vma, vpn):
        """§5.2: the VMA's policy (shared memory: the object's policy at that offset),
        else the thread's, else the system default LOCAL with MOF|MORON."""
        if vma.obj is not None:
            pol = vma.obj.lookup(vma.pgoff_at(vpn))
        else:
            pol = vma.policy
        if pol is None:
            pol = thread.policy
        return pol if pol is not None else DEFAULT_NUMA_POLICY

    def mpol_misplaced(self, thread, vma, vpn, folio):
        """§5.2 (mpol_misplaced): the node the folio should move to, or None."""
        pol = self.get_numa_policy(thread, vma, vpn)
        if not pol.flags & MPOL_F_MOF:
            return None
        this_node = self.cpu_node[thread.cpu]
        cur = folio.node
        polnid = None
        if pol.mode in INTERLEAVE_MODES:
            _, ilx = self.get_vma_policy(thread, vma, vpn, folio.order)
            if pol.mode == MPOL_WEIGHTED_INTERLEAVE:
                polnid = weighted_interleave_nid(pol, ilx, self.weights, this_node)
            else:
                polnid = interleave_nid(pol, ilx, this_node)
        elif pol.mode == MPOL_PREFERRED:
            if cur in pol.nodes:
                return None
            polnid = min(pol.nodes)
        elif pol.mode == MPOL_LOCAL:
            polnid = this_node
        elif pol.mode in (MPOL_BIND, MPOL_PREFERRED_MANY):
            if pol.flags & MPOL_F_MORON:
                if this_node not in pol.nodes:
                    return None
            else:
                if cur in pol.nodes:
                    return None
                polnid = next((n for n in self.fallback[this_node] if n in pol.nodes), None)
                if polnid is None:
                    return None
        if pol.flags & MPOL_F_MORON:
            polnid = this_node
            if not self.numa_moron_filter(thread, folio, cur, this_node):
                return None
        return polnid if polnid != cur else None

    def numa_moron_filter(self, thread, folio, cur, this_node):
        """§5.2 MORON step: the two-stage filter of ``two_stage_filter``."""
        if self.two_stage_filter == "last_node":
            last = folio.last_cpupid                 # the seed's page_xchg_last_nid
            folio.last_cpupid = this_node
            return last == this_node
        if cur == this_node:
            return False                             # rule 38: the cpupid is not touched
        return self.should_numa_migrate_memory(thread, folio, this_node)

    def should_numa_migrate_memory(self, thread, folio, dst_node):
        """§5.2 / spec §4.5 (should_numa_migrate_memory), no NUMA groups."""
        if dst_node not in self.memory_nodes:
            return False
        if self.folio_use_access_time(folio):        # docs/tiering.md P4-P6
            return self.should_promote(folio, dst_node)
        old = folio.last_cpupid
        folio.last_cpupid = cpu_pid_to_cpupid(thread.cpu, thread.tid)
        if (self.memory_tiering and not self.tiering_mode
                and not self.node_is_toptier(folio.node)
                and self.cpu_node.get(old >> 8) is None):
            return False                             # P3: no valid previous CPU
        same_pid = old & CPUPID_PID_MASK == thread.tid & CPUPID_PID_MASK
        if (cpupid_pid_unset(old) or same_pid) and (
                thread.numa_preferred_nid == -1 or thread.numa_scan_seq <= 4):
            return True
        if not cpupid_pid_unset(old) and self.cpupid_to_nid(old) != dst_node:
            return False
        return True                                  # same pid, or a group-less task

    def cpupid_to_nid(self, cpupid):
        """The node of the cpupid's CPU; -1 for a CPU the topology does not have."""
        return self.cpu_node.get(cpupid >> 8, -1)

    # ------------------------------------------------------------ §5.1 step 5 migration
    def migrate_misplaced_folio(self, folio, target, this_node):
        """§5.1 step 5 (migrate_misplaced_folio_prepare + migrate_misplaced_folio): the
        refusals in order, then one allocation on exactly ``target``. Returns the
        task_numa_fault flag: 0, TNF_MIGRATE_FAIL or TNF_MIGRATED."""
        nr = folio.nr
        is_thp = folio.order == HPAGE_PMD_ORDER
        if self.shared_page_rule and folio.mapcount() != 1:
            return 0
        if self.migrate_rate_limit and self.numamigrate_update_ratelimit(target, nr):
            return TNF_MIGRATE_FAIL
        if not self.migrate_balanced_pgdat(target, nr):
            self.promotion_gate_failed(target)       # docs/tiering.md P7
            return TNF_MIGRATE_FAIL
        node = self.alloc_misplaced_dst_folio(target, folio.order, this_node)
        if node is None:
            self.vm["pgmigrate_fail"] += nr
            self.vm["thp_migration_fail"] += is_thp
            return TNF_MIGRATE_FAIL
        src = folio.node
        new = self.move_folio(folio, node)           # keeps last_cpupid
        self.count_promotion(src, node, new, nr)     # docs/tiering.md P8, S7
        self.vm["pgmigrate_success"] += nr
        self.vm["numa_pages_migrated"] += nr
        self.vm["thp_migration_success"] += is_thp
        return TNF_MIGRATED

    def numamigrate_update_ratelimit(self, node, nr):
        """§5.3 (seed numamigrate_update_ratelimit): a new 100 ms window when the last one
        ended; refused when more than 32768 pages were counted in it; else count ``nr``
        (before the migration is tried)."""
        window = self.ratelimit[node]
        if self.now_ns > window.window_end:
            window.pages = 0
            window.window_end = self.now_ns + RATELIMIT_WINDOW_NS
        if window.pages > RATELIMIT_PAGES:
            return True
        window.pages += nr
        return False

    def migrate_balanced_pgdat(self, node, nr):
        """§5.1 step 5: the target needs free > wmark_high + nr_pages."""
        return self.free[node] > self.wmark_high[node] + nr

    def alloc_misplaced_dst_folio(self, node, order, cpu_node):
        """§5.1 step 5 (alloc_misplaced_dst_folio): exactly ``node`` (__GFP_THISNODE),
        against the low watermark only, no fallback; numastat with preferred node =
        ``node`` and the faulting CPU's node. Returns the node or None."""
        if node not in self.memory_nodes:
            return None
        if not self.zone_watermark_ok(node, order, self.wmark_low[node]):
            return None
        self.free[node] -= 1 << order
        self.zone_statistics(node, node, cpu_node)
        return node


__all__ = ["NumaFaultMixin", "LAST_CPUPID_UNSET", "TNF_MIGRATED", "TNF_MIGRATE_FAIL",
           "RateLimitWindow", "cpu_pid_to_cpupid", "hash_32", "MS"]
