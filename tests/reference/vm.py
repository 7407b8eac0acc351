"""Address spaces of the reference model: mmap, munmap, madvise, VMA split and merge
(docs/api.md "Memory"; Linux mm/mmap.c, mm/vma.c, mm/madvise.c)."""
import errno

from fastnuma.constants import (HPAGE_PMD_NR, MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE,
                                MADV_NORMAL, MAP_ANONYMOUS, MAP_HUGETLB, MAP_PRIVATE,
                                MAP_SHARED, PAGE_SHIFT, PAGE_SIZE, PROT_EXEC, PROT_READ,
                                PROT_WRITE, TASK_SIZE)
from fastnuma.errors import raise_errno

from .mm import VM_HUGEPAGE, VM_NOHUGEPAGE, ShmObject, Vma
from .policy import U64, as_int, mpol_equal

MMAP_BASE = 0x7F0000000000            # docs/api.md: top of the top-down mmap area
MMAP_MIN_VPN = 1                      # the lowest page a top-down search may return
TASK_SIZE_VPN = TASK_SIZE >> PAGE_SHIFT


def page_align(length):
    """PAGE_ALIGN on an unsigned long (wraps to 0 near 2**64)."""
    return ((length & U64) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1) & U64


def check_range(addr, length, task_size=True):
    """The (start, len) of munmap/madvise/mbind/page_nodes in pages, Linux style: start
    page aligned (EINVAL), len rounded up as an unsigned long, end < start (wrap) EINVAL,
    a non-empty range ending beyond TASK_SIZE EINVAL (docs/api.md: such a range is
    invalid). Returns (lo, hi) in pages; lo == hi for an empty range (not checked against
    TASK_SIZE: Linux returns before looking at it)."""
    addr = as_int(addr, "addr")
    length = as_int(length, "length")
    if addr < 0 or addr > U64 or addr & (PAGE_SIZE - 1):
        raise_errno(errno.EINVAL, f"address {addr:#x} is not a page-aligned user address")
    end = (addr + page_align(length)) & U64
    if end < addr:
        raise_errno(errno.EINVAL, f"range {addr:#x}+{length:#x} wraps around")
    if task_size and end > TASK_SIZE and end != addr:      # munmap, queries; not
        # mbind/madvise: Linux's do_mbind and madvise have no TASK_SIZE check (a hole)
        raise_errno(errno.EINVAL, f"range {addr:#x}-{end:#x} ends beyond TASK_SIZE")
    return addr >> PAGE_SHIFT, end >> PAGE_SHIFT


class VmMixin:
    # ------------------------------------------------------------ VMA primitives
    def insert_vma(self, proc, vma):
        proc.vmas.append(vma)
        proc.vmas.sort(key=lambda v: v.start)
        if vma.obj is not None:
            vma.obj.refs += 1

    def remove_vma(self, proc, vma):
        """The VMA goes; a shared object without VMAs is destroyed with its pages and its
        policy tree."""
        proc.vmas.remove(vma)
        obj = vma.obj
        if obj is not None:
            obj.refs -= 1
            if obj.refs == 0:
                for folio in obj.pages.values():
                    self.free_folio(folio)
                obj.pages.clear()
                obj.tree.clear()

    def split_vma(self, proc, vma, at):
        """__split_vma: [start, at) stays ``vma``, [at, end) is returned; a PMD mapping
        across ``at`` is split (vma_adjust_trans_huge)."""
        self.split_pmd_at(proc, at)
        upper = vma.copy()
        upper.start, upper.pgoff = at, vma.pgoff_at(at)
        vma.end = at
        self.insert_vma(proc, upper)
        return upper

    def can_merge(self, left, right_obj, right_pgoff, vmflags, policy, prot, account):
        """is_mergeable_vma + can_vma_merge_*: same object (None for private anonymous),
        contiguous page offsets, equal flags (advice, protection, VM_ACCOUNT) and equal
        policy (mpol_equal). fastnuma ignores anon_vma compatibility."""
        return (left.obj is right_obj and left.vmflags == vmflags
                and left.prot == prot and left.account == account
                and mpol_equal(left.policy, policy)
                and left.pgoff + (left.end - left.start) == right_pgoff)

    def vma_modify(self, proc, vma, vmstart, vmend, **changes):
        """vma_modify (mm/vma.c): give [vmstart, vmend) of ``vma`` new attributes, merging
        with the previous/next VMA when the range reaches its edge and they match,
        otherwise splitting (ENOMEM when the process already has max_map_count VMAs).
        Returns the VMA holding the range; the caller sets the attributes. The NUMA
        scanner's state: a split copies it, a merge keeps the lower VMA's
        (docs/lazy-migration.md §6.2)."""
        vmflags = changes.get("vmflags", vma.vmflags)
        policy = changes.get("policy", vma.policy)
        prot = changes.get("prot", vma.prot)
        account = changes.get("account", vma.account)
        i = proc.vmas.index(vma)
        prev = proc.vmas[i - 1] if i > 0 and proc.vmas[i - 1].end == vma.start else None
        nxt = (proc.vmas[i + 1] if i + 1 < len(proc.vmas)
               and proc.vmas[i + 1].start == vma.end else None)
        merge_prev = (prev is not None and vmstart == vma.start
                      and self.can_merge(prev, vma.obj, vma.pgoff_at(vmstart), vmflags, policy,
                                         prot, account))
        merge_next = (nxt is not None and vmend == vma.end
                      and nxt.obj is vma.obj and nxt.vmflags == vmflags
                      and nxt.prot == prot and nxt.account == account
                      and mpol_equal(nxt.policy, policy) and vma.pgoff_at(vmend) == nxt.pgoff)
        if merge_prev and merge_next:
            prev.end = nxt.end
            prev.anon = prev.anon or vma.anon or nxt.anon
            self.remove_vma(proc, vma)
            self.remove_vma(proc, nxt)
            return prev
        if merge_prev:
            prev.anon = prev.anon or vma.anon
            if vmend == vma.end:
                prev.end = vma.end
                self.remove_vma(proc, vma)
            else:
                self.split_pmd_at(proc, vmend)
                prev.end = vmend
                vma.pgoff, vma.start = vma.pgoff_at(vmend), vmend
            return prev
        if merge_next:
            nxt.anon = nxt.anon or vma.anon          # (nxt keeps its own scan state)
            if vmstart == vma.start:
                nxt.start, nxt.pgoff = vma.start, vma.pgoff
                self.remove_vma(proc, vma)
            else:
                self.split_pmd_at(proc, vmstart)
                nxt.pgoff -= nxt.start - vmstart
                nxt.start = vmstart
                vma.end = vmstart
            return nxt
        if vma.start < vmstart:
            if len(proc.vmas) >= self.max_map_count:
                raise_errno(errno.ENOMEM, "a VMA split would exceed vm.max_map_count")
            vma = self.split_vma(proc, vma, vmstart)
        if vma.end > vmend:
            if len(proc.vmas) >= self.max_map_count:
                raise_errno(errno.ENOMEM, "a VMA split would exceed vm.max_map_count")
            self.split_vma(proc, vma, vmend)
        return vma

    # ------------------------------------------------------------ mmap
    def get_unmapped_area(self, proc, npages):
        """docs/api.md: top-down, the highest free range ending at or below MMAP_BASE,
        its start 2 MiB aligned when the length is a multiple of 2 MiB. ENOMEM when
        nothing fits."""
        align = HPAGE_PMD_NR if npages % HPAGE_PMD_NR == 0 else 1
        top = MMAP_BASE >> PAGE_SHIFT
        for v in reversed(proc.vmas):
            if v.end <= top:
                cand = (top - npages) // align * align
                if cand >= v.end and cand >= MMAP_MIN_VPN:
                    return cand
            top = min(top, v.start)
        cand = (top - npages) // align * align
        if cand < MMAP_MIN_VPN:
            raise_errno(errno.ENOMEM, f"no room for {npages} pages below MMAP_BASE")
        return cand

    def mmap(self, pid, length, flags=MAP_PRIVATE | MAP_ANONYMOUS, addr=None,
             prot=PROT_READ | PROT_WRITE):
        """docs/api.md mmap: anonymous only (EINVAL otherwise, and for MAP_HUGETLB), length
        0 EINVAL, length beyond TASK_SIZE ENOMEM, more than max_map_count VMAs ENOMEM,
        a fixed address: beyond TASK_SIZE ENOMEM, unaligned EINVAL, replaces the old
        mappings (munmap semantics); exactly one of MAP_SHARED/MAP_PRIVATE (EINVAL).
        A private mapping merges with equal neighbours; a shared one is a new object.
        Check order: the unmodelled kinds, then do_mmap's order. ``prot``: only
        PROT_READ/WRITE/EXEC count (calc_vm_prot_bits), other bits are ignored; a private
        writable mapping has VM_ACCOUNT (accountable_mapping); neighbours merge only with
        equal protection and VM_ACCOUNT."""
        proc = self.get_proc(pid)
        length = as_int(length, "length")
        flags = as_int(flags, "flags")
        prot = as_int(prot, "prot") & (PROT_READ | PROT_WRITE | PROT_EXEC)
        if addr is not None:
            addr = as_int(addr, "addr")
        if not flags & MAP_ANONYMOUS:
            raise_errno(errno.EINVAL, "only anonymous mappings are modelled")
        if flags & MAP_HUGETLB:
            raise_errno(errno.EINVAL, "MAP_HUGETLB is not modelled")
        if length == 0:
            raise_errno(errno.EINVAL, "mmap length 0")
        nbytes = page_align(length)
        if nbytes == 0 or nbytes > TASK_SIZE:
            raise_errno(errno.ENOMEM, f"mmap length {length:#x} too large")
        npages = nbytes >> PAGE_SHIFT
        if len(proc.vmas) > self.max_map_count:
            raise_errno(errno.ENOMEM, "more than vm.max_map_count mappings")
        if addr is None:
            lo = self.get_unmapped_area(proc, npages)
        else:
            if addr < 0 or addr > TASK_SIZE - nbytes:
                raise_errno(errno.ENOMEM, f"mapping at {addr:#x} beyond TASK_SIZE")
            if addr & (PAGE_SIZE - 1):
                raise_errno(errno.EINVAL, f"mmap address {addr:#x} not page aligned")
            lo = addr >> PAGE_SHIFT
        kind = flags & (MAP_SHARED | MAP_PRIVATE)
        if kind not in (MAP_SHARED, MAP_PRIVATE):
            raise_errno(errno.EINVAL, "exactly one of MAP_SHARED and MAP_PRIVATE")
        if addr is not None:
            self.do_munmap(proc, lo, lo + npages)
        hi = lo + npages
        if kind == MAP_SHARED:
            self.next_obj += 1
            self.insert_vma(proc, Vma(lo, hi, ShmObject(self.next_obj, npages), 0, prot=prot))
            return lo << PAGE_SHIFT
        vma = Vma(lo, hi, None, lo, prot=prot)
        i = next(k for k, v in enumerate(proc.vmas) if v.start >= hi) if any(
            v.start >= hi for v in proc.vmas) else len(proc.vmas)
        prev = proc.vmas[i - 1] if i > 0 and proc.vmas[i - 1].end == lo else None
        nxt = proc.vmas[i] if i < len(proc.vmas) and proc.vmas[i].start == hi else None
        if prev is not None and not self.can_merge(prev, None, lo, 0, None, vma.prot,
                                                   vma.account):
            prev = None
        if nxt is not None and not (nxt.obj is None and nxt.vmflags == 0
                                    and nxt.prot == vma.prot and nxt.account == vma.account
                                    and nxt.policy is None and nxt.pgoff == hi):
            nxt = None
        if prev is not None and nxt is not None:
            prev.end = nxt.end
            prev.anon = prev.anon or nxt.anon
            self.remove_vma(proc, nxt)
        elif prev is not None:
            prev.end = hi
        elif nxt is not None:
            nxt.start = nxt.pgoff = lo    # (the surviving nxt keeps its scan state)
        else:
            self.insert_vma(proc, vma)
        return lo << PAGE_SHIFT

    # ------------------------------------------------------------ munmap
    def do_munmap(self, proc, lo, hi):
        """do_vmi_munmap over pages [lo, hi): ENOMEM when punching a hole in one VMA of a
        process that already has max_map_count VMAs; otherwise split at the edges, zap the
        pages, remove the VMAs, free page tables no VMA overlaps."""
        vmas = proc.overlapping(lo, hi)
        if not vmas:
            return
        first, last = vmas[0], vmas[-1]
        if lo > first.start and hi < first.end and len(proc.vmas) >= self.max_map_count:
            raise_errno(errno.ENOMEM, "munmap would exceed vm.max_map_count")
        if lo > first.start:
            upper = self.split_vma(proc, first, lo)
            if last is first:
                last = upper
        if hi < last.end:
            self.split_vma(proc, last, hi)
        self.zap_page_range(proc, lo, hi)
        for v in proc.overlapping(lo, hi):
            self.remove_vma(proc, v)
        self.free_pgtables(proc, lo, hi)

    def munmap(self, pid, addr, length):
        """munmap(2): EINVAL for an unaligned start, a range beyond TASK_SIZE or length 0;
        holes are fine; pages are freed with their last mapping."""
        proc = self.get_proc(pid)
        lo, hi = check_range(addr, length)
        if lo == hi:
            raise_errno(errno.EINVAL, "munmap length 0")
        self.do_munmap(proc, lo, hi)

    # ------------------------------------------------------------ madvise
    def madvise(self, pid, addr, length, advice):
        """madvise(2) (mm/madvise.c): unknown advice EINVAL, then the range checks, length
        0 is a no-op; the mapped parts are advised VMA by VMA and a hole gives ENOMEM at
        the end. MADV_HUGEPAGE/NOHUGEPAGE change VMA flags (split/merge; a split beyond
        max_map_count gives EAGAIN, as madvise_update_vma turns ENOMEM into EAGAIN);
        MADV_NORMAL clears only the RANDOM/SEQUENTIAL hints, which are not modelled, so it
        changes nothing; MADV_DONTNEED zaps the pages (page tables stay)."""
        proc = self.get_proc(pid)
        advice = as_int(advice, "advice")
        if advice not in (MADV_NORMAL, MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE):
            raise_errno(errno.EINVAL, f"advice {advice} is not modelled")
        addr = as_int(addr, "addr")
        length = as_int(length, "length")
        if addr < 0 or addr > U64 or addr & (PAGE_SIZE - 1):
            raise_errno(errno.EINVAL, f"madvise start {addr:#x} not page aligned")
        if length and not page_align(length):
            raise_errno(errno.EINVAL, "madvise length rounds to 0")
        lo, hi = check_range(addr, length, task_size=False)
        if lo == hi:
            return
        unmapped = False
        start = lo
        while start < hi:
            vma = next((v for v in proc.vmas if v.end > start), None)
            if vma is None:
                raise_errno(errno.ENOMEM, "part of the range is not mapped")
            if start < vma.start:
                unmapped = True
                start = vma.start
                if start >= hi:
                    break
            end = min(hi, vma.end)
            if advice == MADV_DONTNEED:
                self.zap_page_range(proc, start, end)
            elif advice in (MADV_HUGEPAGE, MADV_NOHUGEPAGE):
                if advice == MADV_HUGEPAGE:
                    new = (vma.vmflags | VM_HUGEPAGE) & ~VM_NOHUGEPAGE
                else:
                    new = (vma.vmflags | VM_NOHUGEPAGE) & ~VM_HUGEPAGE
                if new != vma.vmflags:
                    try:
                        vma = self.vma_modify(proc, vma, start, end, vmflags=new)
                    except OSError as e:
                        if e.errno == errno.ENOMEM:
                            raise_errno(errno.EAGAIN, "VMA split beyond vm.max_map_count")
                        raise
                    vma.vmflags = new
                end = max(end, min(hi, vma.end))
            start = end
        if unmapped:
            raise_errno(errno.ENOMEM, "part of the range is not mapped")
