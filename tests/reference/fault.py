"""Page tables and page faults of the reference model (docs/api.md "Memory", Linux
mm/memory.c and mm/huge_memory.c; linux-semantics.md §1.4, §1.5, §8)."""
from fastnuma.constants import HPAGE_PMD_NR, HPAGE_PMD_ORDER, PROT_WRITE

from .mm import HUGE_ZERO_PAGE, VM_HUGEPAGE, VM_NOHUGEPAGE, ZERO_PAGE, Folio, Pmd, Pte


class OomError(Exception):
    """An allocation at fault time found no page: the caller OOM-kills the process."""


class FaultMixin:
    # ------------------------------------------------------------ rmap / page tables
    def set_pte(self, proc, vpn, folio, sub=0, write=True, dirty=True, numa=False):
        proc.ptes[vpn] = Pte(folio, sub, write, dirty, numa)
        proc.pte_tables.add(vpn // HPAGE_PMD_NR)
        if not folio.is_zero:
            folio.ptes[(proc.pid, vpn)] = sub

    def set_pmd(self, proc, hpn, folio, write=True, numa=False):
        proc.pmds[hpn] = Pmd(folio, write, numa)
        if not folio.is_zero:
            folio.pmds.add((proc.pid, hpn))

    def put_folio(self, folio):
        """After a mapping went: free an anonymous folio whose last mapping went
        (shared-memory pages live as long as their object). A THP left partly mapped is
        split at once and its unmapped pages are freed (docs/api.md: frees happen when
        the last mapping of a page goes; Linux queues it for the deferred split, which
        runs under memory pressure)."""
        if folio.obj is not None or folio.freed:
            return
        if folio.mapcount() == 0:
            self.free_folio(folio)
        elif folio.partially_mapped():
            self.deferred_split_folio(folio)

    def deferred_split_folio(self, folio):
        """split_folio of a partly mapped THP (thp_split_page += 1): its mapped pages
        become base folios (keeping the THP's last_cpupid), the others are freed."""
        self.vm["thp_split_page"] += 1
        subs = [Folio(folio.node, 0, folio.index + i, None, folio.dirty)
                for i in range(folio.nr)]
        for sub in subs:
            sub.last_cpupid = folio.last_cpupid
        for (pid, vpn), sub in folio.ptes.items():
            pte = self.procs[pid].ptes[vpn]
            pte.folio, pte.sub = subs[sub], 0
            subs[sub].ptes[(pid, vpn)] = 0
        folio.ptes = {}
        folio.freed = True
        for sub in subs:
            if not sub.ptes:
                self.free_folio(sub)

    def zap_pte(self, proc, vpn):
        """zap_present_ptes: the PTE goes; a dirty PTE of a shared page dirties the page."""
        pte = proc.ptes.pop(vpn)
        folio = pte.folio
        if folio.is_zero:
            return
        del folio.ptes[(proc.pid, vpn)]
        if pte.dirty and folio.obj is not None:
            folio.dirty = True
        self.put_folio(folio)

    def zap_pmd(self, proc, hpn):
        """zap_huge_pmd: the whole PMD mapping goes."""
        pmd = proc.pmds.pop(hpn)
        if not pmd.folio.is_zero:
            pmd.folio.pmds.discard((proc.pid, hpn))
            self.put_folio(pmd.folio)

    def split_huge_pmd(self, proc, hpn):
        """__split_huge_pmd: the PMD mapping becomes 512 PTEs (the huge zero page becomes
        512 zero-page PTEs). fastnuma splits the folio with it (docs/api.md, THP): a THP is
        either PMD-mapped wherever it is mapped or 512 base folios, so every other PMD
        mapping of the same THP is split too (thp_split_pmd += 1 each, thp_split_page += 1).
        Linux may keep the folio large and PTE-mapped."""
        folio = proc.pmds[hpn].folio
        if folio.is_zero:
            self.split_pmd_mapping(proc, hpn)
            return
        self.split_folio(folio)

    def split_pmd_mapping(self, proc, hpn):
        """__split_huge_pmd_locked: one PMD mapping becomes 512 PTEs; thp_split_pmd += 1.
        A NUMA mark of the PMD stays on each of the 512 PTEs (fastnuma's choice, as the
        2012 kernels did; marks are per page). The huge zero page's PTEs take the VMA's
        protection (__split_huge_zero_page_pmd: vm_page_prot), so a PROT_NONE VMA's stay
        inaccessible: the PMD's mark, which change_prot_numa never sets on it."""
        pmd = proc.pmds.pop(hpn)
        self.vm["thp_split_pmd"] += 1
        base = hpn * HPAGE_PMD_NR
        proc.pte_tables.add(hpn)
        if pmd.folio.is_zero:
            for i in range(HPAGE_PMD_NR):
                self.set_pte(proc, base + i, ZERO_PAGE, 0, write=False, dirty=False,
                             numa=pmd.numa)
            return
        folio = pmd.folio
        folio.pmds.discard((proc.pid, hpn))
        for i in range(HPAGE_PMD_NR):
            self.set_pte(proc, base + i, folio, i, write=pmd.write, dirty=True,
                         numa=pmd.numa)

    def split_pmd_at(self, proc, vpn):
        """vma_adjust_trans_huge / split_huge_pmd_address: a VMA boundary (or the edge of a
        zapped range) at a non-2 MiB-aligned page inside a PMD mapping splits it."""
        if vpn % HPAGE_PMD_NR and vpn // HPAGE_PMD_NR in proc.pmds:
            self.split_huge_pmd(proc, vpn // HPAGE_PMD_NR)

    def zap_page_range(self, proc, lo, hi):
        """unmap_page_range over [lo, hi): whole PMDs are zapped, partly covered PMDs are
        split first; page tables stay (free_pgtables is the caller's business)."""
        first, last = lo // HPAGE_PMD_NR, (hi - 1) // HPAGE_PMD_NR
        for hpn in sorted(h for h in proc.pmds if first <= h <= last):
            base = hpn * HPAGE_PMD_NR
            if lo <= base and base + HPAGE_PMD_NR <= hi:
                self.zap_pmd(proc, hpn)
            else:
                self.split_huge_pmd(proc, hpn)
        for vpn in [v for v in proc.ptes if lo <= v < hi]:
            self.zap_pte(proc, vpn)

    def free_pgtables(self, proc, lo, hi):
        """free_pgtables after an unmap of [lo, hi): a PTE table goes when no VMA overlaps
        its 2 MiB range any more (with the PMD's seed NUMA flag)."""
        first, last = lo // HPAGE_PMD_NR, (hi - 1) // HPAGE_PMD_NR
        for hpn in sorted(h for h in proc.pte_tables if first <= h <= last):
            if not proc.overlapping(hpn * HPAGE_PMD_NR, (hpn + 1) * HPAGE_PMD_NR):
                proc.pte_tables.discard(hpn)
                proc.pmd_numa.discard(hpn)

    # ------------------------------------------------------------ faults
    def thp_eligible(self, proc, vma, hpn):
        """§8 / thp_vma_allowable_order + thp_vma_suitable_order for an anonymous fault:
        THP enabled for the VMA (always, or madvise + MADV_HUGEPAGE; never with
        MADV_NOHUGEPAGE), private anonymous, the aligned 2 MiB inside the VMA, the PMD
        still empty (no PTE table)."""
        if self.thp == "never" or vma.obj is not None or vma.vmflags & VM_NOHUGEPAGE:
            return False
        if self.thp == "madvise" and not vma.vmflags & VM_HUGEPAGE:
            return False
        base = hpn * HPAGE_PMD_NR
        if base < vma.start or base + HPAGE_PMD_NR > vma.end:
            return False
        return hpn not in proc.pte_tables and hpn not in proc.pmds

    def thp_direct_reclaim(self, vma):
        """vma_thp_gfp_mask: may a THP fault reclaim directly (thp_defrag)?"""
        madvised = bool(vma.vmflags & VM_HUGEPAGE)
        return self.thp_defrag == "always" or (
            self.thp_defrag in ("madvise", "defer+madvise") and madvised)

    def alloc_anon_page(self, thread, vma, vpn):
        """vma_alloc_folio(order 0) for a fault at vpn; OomError when nothing is free."""
        pol, ilx = self.get_vma_policy(thread, vma, vpn, 0)
        node = self.alloc_pages_mpol(pol, 0, ilx, thread)
        if node is None:
            raise OomError(vpn)
        vma.anon = True
        return Folio(node, 0, vma.pgoff_at(vpn))

    def do_anonymous_page(self, thread, proc, vma, vpn, write):
        """do_anonymous_page: a read maps the zero page (zero_page=True), otherwise a page
        is allocated under the policy, mapped writable and dirty when the VMA is writable
        (a read fault in a read-only VMA maps it clean and read-only)."""
        if not write and self.zero_page:
            self.set_pte(proc, vpn, ZERO_PAGE, 0, write=False, dirty=False)
            return
        folio = self.alloc_anon_page(thread, vma, vpn)
        if vma.prot & PROT_WRITE:
            self.set_pte(proc, vpn, folio)
            return
        # a read fault in a read-only VMA: mk_pte(vm_page_prot), no pte_mkwrite(pte_mkdirty)
        folio.dirty = False
        self.set_pte(proc, vpn, folio, write=False, dirty=False)

    def do_huge_pmd_anonymous_page(self, thread, proc, vma, hpn, write):
        """§8 / do_huge_pmd_anonymous_page: a read maps the huge zero page; else a THP
        (order 9, ilx at THP granularity) per §1.5; thp_fault_alloc, or
        thp_fault_fallback and False (the caller then takes a base-page fault)."""
        vma.anon = True
        if not write and self.zero_page:
            self.set_pmd(proc, hpn, HUGE_ZERO_PAGE, write=False)
            return True
        base = hpn * HPAGE_PMD_NR
        pol, ilx = self.get_vma_policy(thread, vma, base, HPAGE_PMD_ORDER)
        node = self.alloc_pages_mpol(pol, HPAGE_PMD_ORDER, ilx, thread,
                                     self.thp_direct_reclaim(vma))
        if node is None:
            self.vm["thp_fault_fallback"] += 1
            return False
        self.vm["thp_fault_alloc"] += 1
        self.set_pmd(proc, hpn, Folio(node, HPAGE_PMD_ORDER, vma.pgoff_at(base)),
                     write=bool(vma.prot & PROT_WRITE))      # maybe_pmd_mkwrite
        return True

    def do_wp_page(self, thread, proc, vma, vpn):
        """do_wp_page on a write-protected PTE: the zero page is replaced by a new page; a
        page mapped by this process only is reused; otherwise it is copied (a new page
        under the writer's policy)."""
        pte = proc.ptes[vpn]
        folio = pte.folio
        if not folio.is_zero and folio.mms() == {proc.pid} and (
                folio.order or folio.mapcount() == 1):
            pte.write = True
            return
        new = self.alloc_anon_page(thread, vma, vpn)
        self.zap_pte(proc, vpn)
        self.set_pte(proc, vpn, new)

    def shmem_fault(self, thread, proc, vma, vpn, write):
        """shmem_fault for MAP_SHARED|MAP_ANONYMOUS: map the object's page at this page
        offset, allocating it (no zero page) under the shared policy or the task policy
        with ilx = page offset; a write fault dirties the page."""
        obj = vma.obj
        index = vma.pgoff_at(vpn)
        folio = obj.pages.get(index)
        if folio is None:
            pol = obj.lookup(index) or self.get_task_policy(thread)
            node = self.alloc_pages_mpol(pol, 0, index, thread)
            if node is None:
                raise OomError(vpn)
            folio = Folio(node, 0, index, obj=obj, dirty=False)
            obj.pages[index] = folio
        if write:
            folio.dirty = True
        # vm_page_prot: writable when the VMA is (shmem wants no write notification)
        self.set_pte(proc, vpn, folio, 0, write=bool(vma.prot & PROT_WRITE), dirty=write)

    def do_fault_around(self, proc, vma, vpn):
        """do_read_fault's fault-around (mm/memory.c do_fault_around, mm/filemap.c
        filemap_map_pages) on a shared anonymous VMA: the pages of the object already
        present at the offsets of a window around vpn are mapped where this process maps
        nothing (clean; writable when the VMA is: vm_page_prot of a shared mapping). The window starts at vpn rounded
        down to fault_around_pages pages, or at the VMA's start if later, and spans
        fault_around_pages pages from there, cut at the VMA's end and the PMD's end.
        No allocation, no counter. True when vpn's own page was mapped (VM_FAULT_NOPAGE:
        shmem_fault is not called)."""
        nr = self.fault_around_pages
        if nr <= 1:                                # should_fault_around
            return False
        start = max(vpn - vpn % nr, vma.start)
        pmd_end = (vpn // HPAGE_PMD_NR + 1) * HPAGE_PMD_NR
        end = min(start + nr, pmd_end, vma.end)
        hit = False
        for page in range(start, end):
            folio = vma.obj.pages.get(vma.pgoff_at(page))
            if folio is None or page in proc.ptes or page // HPAGE_PMD_NR in proc.pmds:
                continue
            self.set_pte(proc, page, folio, 0, write=bool(vma.prot & PROT_WRITE),
                         dirty=False)
            hit = hit or page == vpn
        return hit

    def handle_mm_fault(self, thread, proc, vma, vpn, write):
        """One access to a page of ``vma``. Counts pgfault when a fault is taken (not
        present, or a write to a write-protected mapping). May raise OomError."""
        hpn = vpn // HPAGE_PMD_NR
        pmd = proc.pmds.get(hpn)
        if pmd is not None:
            if not write or pmd.write:
                return
            self.vm["pgfault"] += 1
            folio = pmd.folio
            if not folio.is_zero and folio.mms() == {proc.pid}:
                pmd.write = True                   # do_huge_pmd_wp_page: reuse
                return
            self.split_huge_pmd(proc, hpn)         # huge zero page or shared THP: fallback
            self.do_wp_page(thread, proc, vma, vpn)
            return
        pte = proc.ptes.get(vpn)
        if pte is not None:
            if not write:
                return
            if pte.write:
                pte.dirty = True
                return
            self.vm["pgfault"] += 1
            self.do_wp_page(thread, proc, vma, vpn)
            return
        self.vm["pgfault"] += 1
        if vma.obj is not None:
            if write or not self.do_fault_around(proc, vma, vpn):   # do_read_fault
                self.shmem_fault(thread, proc, vma, vpn, write)
            return
        if self.thp_eligible(proc, vma, hpn):
            if self.do_huge_pmd_anonymous_page(thread, proc, vma, hpn, write):
                return
        self.do_anonymous_page(thread, proc, vma, vpn, write)
