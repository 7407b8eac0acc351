"""Page migration of the reference model: the page walk that queues folios (mbind,
migrate_pages) and migrate_pages() itself (linux-semantics.md §2.2, §2.4, §3.3, §3.4, §6,
§8; Linux mm/mempolicy.c queue_pages_range, mm/migrate.c migrate_pages)."""
import errno
from dataclasses import dataclass

from fastnuma.constants import (HPAGE_PMD_NR, HPAGE_PMD_ORDER, MPOL_MF_MOVE,
                                MPOL_MF_MOVE_ALL, MPOL_MF_STRICT)

from .mm import Folio

MPOL_MF_DISCONTIG_OK = 1 << 4
MPOL_MF_INVERT = 1 << 5
NR_MAX_BATCHED_MIGRATION = HPAGE_PMD_NR


@dataclass
class MigrateStats:
    nr_succeeded: int = 0
    nr_failed_pages: int = 0
    nr_thp_succeeded: int = 0
    nr_thp_failed: int = 0
    nr_thp_split: int = 0
    nr_split: int = 0


def strictly_unmovable(flags):
    return flags & (MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL) == MPOL_MF_STRICT


class MigrateMixin:
    # ------------------------------------------------------------ §2.2 queueing
    def migrate_folio_add(self, folio, flags, queued, isolated):
        """migrate_folio_add: a folio mapped by several processes is skipped (not a failure)
        unless MOVE_ALL; a folio that cannot be isolated (already isolated) fails."""
        if flags & MPOL_MF_MOVE_ALL or not folio.maybe_mapped_shared():
            if id(folio) in isolated:
                return False
            isolated.add(id(folio))
            queued.append(folio)
        return True

    def queue_pages_range(self, proc, lo, hi, nodes, flags):
        """§2.1 step 10 / §2.2 (queue_pages_range + queue_pages_test_walk +
        queue_folios_pte_range/pmd): walk the VMAs in [lo, hi). Hole checks per VMA
        (EFAULT unless DISCONTIG_OK; no VMA at all: EFAULT); pages are examined only with
        STRICT or MOVE*. A folio is "required" when its node is (INVERT: is not) in
        ``nodes``; zero pages and unmapped PTEs are skipped; a large folio is considered
        once. STRICT alone: the first required folio gives EIO.
        Returns (err, queued folios, nr_failed); err is 0 or -errno."""
        queued, isolated, nr_failed = [], set(), 0
        first, large = None, None
        invert = bool(flags & MPOL_MF_INVERT)
        vmas = proc.overlapping(lo, hi)
        for k, vma in enumerate(vmas):
            if first is None:
                first = vma
                if not flags & MPOL_MF_DISCONTIG_OK and lo < vma.start:
                    return -errno.EFAULT, [], 0
            nxt = proc.vmas[proc.vmas.index(vma) + 1] if vma is not proc.vmas[-1] else None
            if not flags & MPOL_MF_DISCONTIG_OK and vma.end < hi and (
                    nxt is None or vma.end < nxt.start):
                return -errno.EFAULT, [], 0
            if not flags & (MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL):
                continue
            start, end = max(lo, vma.start), min(hi, vma.end)
            hpn = start // HPAGE_PMD_NR
            while hpn * HPAGE_PMD_NR < end:
                pstart = max(start, hpn * HPAGE_PMD_NR)
                pend = min(end, (hpn + 1) * HPAGE_PMD_NR)
                pmd = proc.pmds.get(hpn)
                candidates = []
                if pmd is not None:
                    if not pmd.folio.is_zero:
                        candidates.append(pmd.folio)
                else:
                    for vpn in range(pstart, pend):
                        pte = proc.ptes.get(vpn)
                        if pte is not None and not pte.folio.is_zero:
                            candidates.append(pte.folio)
                for folio in candidates:
                    if (folio.node in nodes) == invert:
                        continue
                    if folio.order and pmd is None:
                        if folio is large:
                            continue
                        large = folio
                    if not flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL) or \
                            not self.migrate_folio_add(folio, flags, queued, isolated):
                        nr_failed += 1
                        if strictly_unmovable(flags):
                            break
                if nr_failed and strictly_unmovable(flags):
                    return -errno.EIO, [], 0
                hpn += 1
        if first is None:
            return -errno.EFAULT, [], 0
        return 0, queued, nr_failed

    # ------------------------------------------------------------ moving folios
    def move_folio(self, folio, node):
        """The copy on ``node`` (already allocated) replaces ``folio`` in every mapping
        and in its shared object; a dirty PTE dirties the page; the old pages are freed.
        The entries keep their NUMA marks and the copy the last_cpupid
        (folio_migrate_flags)."""
        dirty = folio.dirty or any(self.procs[pid].ptes[vpn].dirty for pid, vpn in folio.ptes)
        new = Folio(node, folio.order, folio.index, folio.obj, dirty)
        new.last_cpupid = folio.last_cpupid
        new.lru_seq, new.seen_seq, new.file = folio.lru_seq, folio.seen_seq, folio.file
        for (pid, vpn), sub in folio.ptes.items():
            self.procs[pid].ptes[vpn].folio = new
            new.ptes[(pid, vpn)] = sub
        for pid, hpn in folio.pmds:
            self.procs[pid].pmds[hpn].folio = new
            new.pmds.add((pid, hpn))
        if folio.obj is not None:
            folio.obj.pages[folio.index] = new
        folio.ptes, folio.pmds = {}, set()
        if folio.file:
            self.page_cache[self.page_cache.index(folio)] = new
        self.free_folio(folio)
        return new

    def split_folio(self, folio):
        """split_folio for migration: every PMD mapping is split first, then the THP
        becomes 512 base folios on its node (thp_split_page += 1); returns them, mapped or
        not, in page order."""
        for pid, hpn in sorted(folio.pmds):
            self.split_pmd_mapping(self.procs[pid], hpn)
        self.vm["thp_split_page"] += 1
        subs = [Folio(folio.node, 0, folio.index + i, folio.obj, folio.dirty)
                for i in range(folio.nr)]
        for sub in subs:
            sub.last_cpupid = folio.last_cpupid
        for (pid, vpn), sub in folio.ptes.items():
            self.procs[pid].ptes[vpn].folio = subs[sub]
            self.procs[pid].ptes[vpn].sub = 0
            subs[sub].ptes[(pid, vpn)] = 0
        folio.ptes = {}
        folio.freed = True                   # its pages now belong to the base folios
        return subs

    # ------------------------------------------------------------ migrate_pages
    def isolate(self, folios):
        """``folios`` (a split folio's parts) stay off the LRU until they move."""
        self.isolated.update((id(f), f) for f in folios)
        return folios

    def migrate_pages_batch(self, folios, get_new_folio, split_list, stats, nosplit):
        """migrate_pages_batch (one pass, nothing is ever busy in the model): for each
        folio in order: a partially mapped large folio is split (a failure; its pages go to
        ``split_list``); an unmapped folio counts as migrated and is freed; else a
        destination is allocated (get_new_folio -> node or None). An allocation failure of
        a large folio splits it (unless ``nosplit``); of a base folio it ends the batch
        (-ENOMEM, nr_failed_pages += 1, the rest untried). Then the folios with a
        destination move (their old pages are freed only now).
        Returns (rc, folios not moved)."""
        nr_failed, rc_saved, unmapped, left = 0, 0, [], []
        for k, folio in enumerate(folios):
            is_thp = folio.order == HPAGE_PMD_ORDER
            if folio.nr > 2 and folio.partially_mapped():
                split_list.extend(self.isolate(self.split_folio(folio)))
                nr_failed += 1
                stats.nr_thp_failed += is_thp
                stats.nr_thp_split += is_thp
                stats.nr_split += 1
                continue
            if folio.mapcount() == 0 and folio.obj is None:
                stats.nr_succeeded += folio.nr
                stats.nr_thp_succeeded += is_thp
                self.free_folio(folio)
                continue
            node = get_new_folio(folio)
            if node is None:
                nr_failed += 1
                stats.nr_thp_failed += is_thp
                if folio.order and not nosplit and split_list is not None:
                    split_list.extend(self.isolate(self.split_folio(folio)))
                    stats.nr_thp_split += is_thp
                    stats.nr_split += 1
                    continue
                stats.nr_failed_pages += folio.nr
                rc_saved = -errno.ENOMEM
                left = folios[k:]
                break
            unmapped.append((folio, node))
        for folio, node in unmapped:
            src = folio.node
            new = self.move_folio(folio, node)
            self.reset_stamp_on_tier_change(src, node, new)     # docs/tiering.md S7
            stats.nr_succeeded += folio.nr
            stats.nr_thp_succeeded += folio.order == HPAGE_PMD_ORDER
        return (rc_saved or nr_failed), left

    def mm_migrate_pages(self, folios, get_new_folio, nosplit=False):
        """mm/migrate.c migrate_pages() (MIGRATE_SYNC): chunks of at least 512 pages; each
        chunk first as one async batch (migrate_pages_sync), its split folios after it as
        one more batch (failures there not counted in rc). -ENOMEM stops everything.
        Returns -ENOMEM or the number of folios not migrated (0 when every page of the
        split folios moved); counts pgmigrate_* and thp_migration_*."""
        stats = MigrateStats()
        remaining, not_moved, rc_gather = list(folios), [], 0
        self.isolated = {id(f): f for f in folios}     # off the LRU: reclaim skips them
        while remaining:
            chunk, nr = [], 0
            while remaining:
                folio = remaining.pop(0)
                chunk.append(folio)
                nr += folio.nr
                if nr >= NR_MAX_BATCHED_MIGRATION:
                    break
            split_list, astats = [], MigrateStats()
            rc, left = self.migrate_pages_batch(chunk, get_new_folio, split_list, astats,
                                                nosplit)
            stats.nr_succeeded += astats.nr_succeeded
            stats.nr_thp_succeeded += astats.nr_thp_succeeded
            stats.nr_thp_split += astats.nr_thp_split
            stats.nr_split += astats.nr_split
            if rc < 0:
                stats.nr_failed_pages += astats.nr_failed_pages
                stats.nr_thp_failed += astats.nr_thp_failed
                rc_gather = rc
                break
            stats.nr_thp_failed += astats.nr_thp_split
            not_moved += left
            if split_list:
                _, left = self.migrate_pages_batch(split_list, get_new_folio, None, stats,
                                                   nosplit)
                not_moved += left
            rc_gather += astats.nr_split
        else:
            if not not_moved:
                rc_gather = 0
        self.isolated = {}                              # the ones not moved go back
        self.vm["pgmigrate_success"] += stats.nr_succeeded
        self.vm["pgmigrate_fail"] += stats.nr_failed_pages
        self.vm["thp_migration_success"] += stats.nr_thp_succeeded
        self.vm["thp_migration_fail"] += stats.nr_thp_failed
        self.vm["thp_migration_split"] += stats.nr_thp_split
        return rc_gather
