"""Plain data of the reference model: folios, page-table entries, VMAs, shared objects,
threads and processes. No behaviour beyond counting mappings (rmap)."""
from fastnuma.constants import HPAGE_PMD_NR, PROT_EXEC, PROT_READ, PROT_WRITE

LAST_CPUPID_UNSET = 0x1FFFFF   # docs/lazy-migration.md §2: a folio never hint-faulted

VM_HUGEPAGE = 1 << 0           # MADV_HUGEPAGE was applied
VM_NOHUGEPAGE = 1 << 1         # MADV_NOHUGEPAGE was applied


class ZeroPage:
    """The shared zero page (or the huge zero page): mapped read-only, never counted,
    reads as node 0 (docs/api.md zero_page)."""

    node = 0
    is_zero = True

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


ZERO_PAGE = ZeroPage("ZERO_PAGE")
HUGE_ZERO_PAGE = ZeroPage("HUGE_ZERO_PAGE")


class Folio:
    """An allocation of 2**order pages on ``node``. ``index`` is folio->index (anonymous:
    the linear page index of its first page = its vpn; shared memory: the page offset in
    the object). The rmap: ``ptes`` {(pid, vpn): subpage}, ``pmds`` {(pid, hpn)}."""

    is_zero = False
    file = False        # a page-cache page (file LRU); shared memory is swap-backed (anon)
    lru_seq = 0         # docs/tiering.md §7: the access sequence number of the last access
    seen_seq = 0        # ... and of the last examination by reclaim

    def __init__(self, node, order, index, obj=None, dirty=True):
        self.node, self.order, self.index, self.obj = node, order, index, obj
        self.dirty = dirty
        self.ptes = {}
        self.pmds = set()
        self.freed = False
        self.last_cpupid = LAST_CPUPID_UNSET    # folio_last_cpupid (or the seed's last node)

    @property
    def nr(self):
        return 1 << self.order

    def mapcount(self):
        """folio_mapcount(): PTE mappings plus PMD mappings (a PMD counts once)."""
        return len(self.ptes) + len(self.pmds)

    def page_mapcount(self, sub):
        """folio_precise_page_mapcount() of subpage ``sub``."""
        return sum(1 for s in self.ptes.values() if s == sub) + len(self.pmds)

    def mms(self):
        return {pid for pid, _ in self.ptes} | {pid for pid, _ in self.pmds}

    def maybe_mapped_shared(self):
        """folio_maybe_mapped_shared(): small folio mapped more than once; large folio
        mapped by more than one process."""
        if self.order == 0:
            return self.mapcount() > 1
        return len(self.mms()) > 1

    def partially_mapped(self):
        """A large folio some (not all) of whose pages are mapped (it sits on the deferred
        split queue, folio_test_partially_mapped)."""
        if self.order == 0 or self.pmds or not self.ptes:
            return False
        return len(set(self.ptes.values())) < self.nr

    def __repr__(self):
        return f"Folio(node={self.node}, order={self.order}, index={self.index:#x})"


class Pte:
    """A present PTE: folio (or ZERO_PAGE) and subpage, the write bit, the dirty bit, the
    NUMA hinting mark (protnone; the entry stays present)."""

    __slots__ = ("folio", "sub", "write", "dirty", "numa")

    def __init__(self, folio, sub=0, write=True, dirty=True, numa=False):
        self.folio, self.sub, self.write, self.dirty = folio, sub, write, dirty
        self.numa = numa


class Pmd:
    """A PMD mapping a THP (or HUGE_ZERO_PAGE); ``numa``: the whole THP is marked."""

    __slots__ = ("folio", "write", "numa")

    def __init__(self, folio, write=True, numa=False):
        self.folio, self.write, self.numa = folio, write, numa


class ShmObject:
    """The object behind a MAP_SHARED|MAP_ANONYMOUS mapping (/dev/zero in shmem): pages by
    page offset, the shared policy tree [(start, end, Policy)], the number of VMAs using
    it."""

    def __init__(self, oid, npages):
        self.oid, self.npages = oid, npages
        self.pages = {}
        self.tree = []
        self.refs = 0

    def lookup(self, index):
        """mpol_shared_policy_lookup()."""
        for start, end, pol in self.tree:
            if start <= index < end:
                return pol
        return None

    def replace(self, start, end, pol):
        """shared_policy_replace(): [start, end) gets ``pol`` (None removes)."""
        out = []
        for s, e, p in self.tree:
            if e <= start or s >= end:
                out.append((s, e, p))
                continue
            if s < start:
                out.append((s, start, p))
            if e > end:
                out.append((end, e, p))
        if pol is not None:
            out.append((start, end, pol))
        self.tree = sorted(out, key=lambda t: t[0])


class NumabState:
    """struct vma_numab_state (docs/lazy-migration.md §6.2): the scanner's per-VMA state,
    created at the VMA's first visit by a scan. Times in ns."""

    def __init__(self, start_scan_seq, next_scan, pids_active_reset, prev_scan_seq):
        self.start_scan_seq, self.next_scan = start_scan_seq, next_scan
        self.pids_active_reset, self.prev_scan_seq = pids_active_reset, prev_scan_seq
        self.pids_active = [0, 0]

    def copy(self):
        new = NumabState(self.start_scan_seq, self.next_scan, self.pids_active_reset,
                         self.prev_scan_seq)
        new.pids_active = list(self.pids_active)
        return new


class Vma:
    """A VMA in pages [start, end). ``pgoff``: vm_pgoff (private anonymous: start;
    shared: offset in ``obj``). ``anon``: the VMA has an anon_vma (a page other than the
    zero page was faulted, or a THP fault ran). ``numab``: the scanner's NumabState or
    None (a copy -- a VMA split -- copies it). ``prot``: PROT_READ|WRITE|EXEC bits;
    ``account``: VM_ACCOUNT (mmap_region's accountable_mapping, kept by mprotect_fixup)."""

    def __init__(self, start, end, obj, pgoff, vmflags=0, policy=None, anon=False,
                 numab=None, prot=PROT_READ | PROT_WRITE, account=None):
        self.start, self.end, self.obj, self.pgoff = start, end, obj, pgoff
        self.vmflags, self.policy, self.anon = vmflags, policy, anon
        self.numab = numab
        self.prot = prot
        self.account = (obj is None and bool(prot & PROT_WRITE)) if account is None \
            else account

    def accessible(self):
        """vma_is_accessible: VM_READ, VM_WRITE or VM_EXEC."""
        return bool(self.prot & (PROT_READ | PROT_WRITE | PROT_EXEC))

    def copy(self):
        return Vma(self.start, self.end, self.obj, self.pgoff, self.vmflags, self.policy,
                   self.anon, self.numab.copy() if self.numab is not None else None,
                   self.prot, self.account)

    def pgoff_at(self, vpn):
        return self.pgoff + (vpn - self.start)

    def __repr__(self):
        return (f"Vma({self.start << 12:#x}-{self.end << 12:#x}, shared={self.obj is not None}, "
                f"flags={self.vmflags}, policy={self.policy})")


class Thread:
    """A task. The NUMA-balancing fields (docs/lazy-migration.md §2) are set by
    RefMachine.init_numa_balancing: numa_scan_period (ms), numa_scan_period_max (ms),
    node_stamp (ns), start_ns, numa_scan_seq, numa_preferred_nid, numa_migrate_retry (ns),
    numa_pages_migrated, numa_faults_locality [remote, local, failed], faults and
    faults_buffer [node][priv] (priv 0 shared, 1 private)."""

    def __init__(self, tid, pid, cpu, policy=None, il_prev=1023, il_weight=0):
        self.tid, self.pid, self.cpu, self.policy = tid, pid, cpu, policy
        self.il_prev, self.il_weight = il_prev, il_weight
        self.local = self.remote = 0       # accesses to the CPU's node / elsewhere


class Process:
    """An mm. NUMA-balancing fields (set by RefMachine.init_numa_balancing_mm):
    numa_next_scan (ns), numa_scan_seq, numa_scan_offset (vpn), scan_windows."""

    def __init__(self, pid, uid, cap_sys_nice):
        self.pid, self.uid, self.cap_sys_nice = pid, uid, cap_sys_nice
        self.tids = []
        self.vmas = []            # sorted, non-overlapping
        self.ptes = {}            # vpn -> Pte
        self.pmds = {}            # hpn -> Pmd
        self.pte_tables = set()   # hpn whose PMD points to a PTE table
        self.pmd_numa = set()     # hpn of PTE tables whose PMD is marked (seed batching)

    def find_vma(self, vpn):
        for v in self.vmas:
            if v.start <= vpn < v.end:
                return v
        return None

    def overlapping(self, lo, hi):
        return [v for v in self.vmas if v.start < hi and v.end > lo]

    def entry(self, vpn):
        """The mapping of page ``vpn``: (folio or zero page, subpage) or (None, 0)."""
        pmd = self.pmds.get(vpn // HPAGE_PMD_NR)
        if pmd is not None:
            return pmd.folio, vpn % HPAGE_PMD_NR
        pte = self.ptes.get(vpn)
        if pte is not None:
            return pte.folio, pte.sub
        return None, 0
