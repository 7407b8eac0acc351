"""Memory protection in the reference model: mprotect (Linux mm/mprotect.c
do_mprotect_pkey, mprotect_fixup, change_protection) and the fault entry's protection
check (arch/x86/mm/fault.c access_error). docs/linux-semantics.md §3.6."""
import errno

from fastnuma.constants import (HPAGE_PMD_NR, PAGE_SHIFT, PAGE_SIZE, PROT_EXEC,
                                PROT_GROWSDOWN, PROT_GROWSUP, PROT_READ, PROT_SEM,
                                PROT_WRITE)
from fastnuma.errors import raise_errno

from .policy import U64, as_int

PROT_ACCESS = PROT_READ | PROT_WRITE | PROT_EXEC


class ProtectMixin:
    def access_error(self, vma, write):
        """access_error: a write needs VM_WRITE; a read needs the VMA to be accessible
        (vma_is_accessible: on x86 a writable or executable page is readable)."""
        if write:
            return not vma.prot & PROT_WRITE
        return not vma.accessible()

    def mprotect(self, pid, addr, length, prot):
        """do_mprotect_pkey, in its order: PROT_GROWSDOWN with PROT_GROWSUP EINVAL;
        unaligned start EINVAL; length 0 does nothing; a wrapping range ENOMEM; prot bits
        beyond READ|WRITE|EXEC|SEM EINVAL (arch_validate_prot); no VMA at the start
        ENOMEM; GROWSDOWN/GROWSUP EINVAL (no VMA grows); then VMA by VMA
        (mprotect_fixup), and a hole ENOMEM with the VMAs before it changed."""
        proc = self.get_proc(pid)
        addr = as_int(addr, "addr")
        length = as_int(length, "length") & U64
        prot = as_int(prot, "prot") & U64
        grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP)
        prot &= ~(PROT_GROWSDOWN | PROT_GROWSUP)
        if grows == PROT_GROWSDOWN | PROT_GROWSUP:
            raise_errno(errno.EINVAL, "GROWSDOWN and GROWSUP")
        if addr < 0 or addr & (PAGE_SIZE - 1):
            raise_errno(errno.EINVAL, f"mprotect start {addr:#x} not page aligned")
        if length == 0:
            return None
        end = addr + ((length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1) & U64)
        if end > U64 or end <= addr:
            raise_errno(errno.ENOMEM, "mprotect range wraps around")
        if prot & ~(PROT_ACCESS | PROT_SEM):
            raise_errno(errno.EINVAL, f"prot {prot:#x}")
        lo, hi = addr >> PAGE_SHIFT, end >> PAGE_SHIFT
        first = proc.overlapping(lo, hi)
        if not first:
            raise_errno(errno.ENOMEM, "no VMA in the range")
        if grows & PROT_GROWSDOWN:
            raise_errno(errno.EINVAL, "the VMA does not grow down")
        if first[0].start > lo:
            raise_errno(errno.ENOMEM, "a hole at the start of the range")
        if grows:
            raise_errno(errno.EINVAL, "the VMA does not grow up")
        new = prot & PROT_ACCESS
        cur = lo
        while cur < hi:
            vma = proc.find_vma(cur)
            if vma is None:
                raise_errno(errno.ENOMEM, "a hole in the range")
            stop = min(hi, vma.end)
            if vma.prot != new:
                self.mprotect_fixup(proc, vma, cur, stop, new)
            cur = stop
        return None

    def mprotect_fixup(self, proc, vma, start, end, new):
        """mprotect_fixup: VM_ACCOUNT (gained when a private mapping becomes writable,
        dropped when it stops being writable before it has an anon_vma), vma_modify_flags
        (split/merge; ENOMEM beyond max_map_count), then change_protection of [start,
        end)."""
        account = vma.account
        if new & PROT_WRITE:
            if not (vma.account or vma.prot & PROT_WRITE or vma.obj is not None):
                account = True
        elif vma.account and vma.obj is None and not vma.anon:
            account = False
        vma = self.vma_modify(proc, vma, start, end, prot=new, account=account)
        vma.prot, vma.account = new, account
        self.change_protection(proc, vma, start, end)

    def change_protection(self, proc, vma, start, end):
        """change_protection with the VMA's new vm_page_prot: every present entry of
        [start, end) gets pte_modify -- inaccessible (protnone: the ``numa`` bit, as x86
        encodes it) for PROT_NONE, else accessible (a NUMA hinting mark goes); writable
        only in a writable VMA: shared memory always (vm_page_prot, no write notify),
        private memory when can_change_pte_writable finds an exclusive anonymous page
        (fastnuma: one its write fault would reuse, do_wp_page). A PMD mapping is wholly
        inside (VMA boundaries split THPs) and changes as one."""
        inaccessible = not vma.accessible()
        writable = bool(vma.prot & PROT_WRITE)

        def may_write(folio):
            if not writable or folio.is_zero:
                return False
            if vma.obj is not None:
                return True
            return folio.mms() == {proc.pid} and (folio.order > 0 or folio.mapcount() == 1)

        for hpn, pmd in proc.pmds.items():
            if start <= hpn * HPAGE_PMD_NR < end:
                pmd.numa = inaccessible
                pmd.write = not inaccessible and may_write(pmd.folio)
        for vpn, pte in proc.ptes.items():
            if start <= vpn < end:
                pte.numa = inaccessible
                pte.write = not inaccessible and may_write(pte.folio)
