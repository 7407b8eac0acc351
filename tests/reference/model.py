"""RefMachine: the plain-Python reference model of a fastnuma machine.

The oracle of the differential tests: it exposes the public methods of
``fastnuma.Simulator`` (docs/api.md) with the same signatures and return values, and
follows linux-semantics.md rule by rule, one method per Linux function (see alloc.py,
fault.py, vm.py, migrate.py, syscalls.py, numa_fault.py, numa_sched.py). Plain dicts,
lists and sets; numpy only for the arrays the API returns. Also page_cache_read/drop_caches,
access_counts and the threads' local/remote counts (docs/api.md), and lazy migration,
NUMA hinting faults and automatic NUMA balancing (docs/lazy-migration.md): the profile
and its switches, change_prot_numa, advance (ticks and the scanner), page_flags and
task_numa_stats. Out of scope: trace replay.
"""
import errno

import numpy as np

from fastnuma.constants import HPAGE_PMD_NR, PAGE_SHIFT, PAGE_SIZE, TASK_SIZE
from fastnuma.errors import OutOfMemory, SegmentationFault, raise_errno

from .alloc import AllocMixin
from .fault import FaultMixin, OomError
from .migrate import MigrateMixin
from .mm import Folio, Process, Thread
from .numa_fault import NumaFaultMixin, RateLimitWindow
from .numa_sched import NumaSchedMixin
from .policy import U64, as_int, mpol_to_str
from .protect import ProtectMixin
from .syscalls import SyscallMixin
from .tiering import TieringMixin
from .topology import RefTopology, build_zonelists, topology_arrays
from .vm import VmMixin, check_range

__all__ = ["RefMachine", "RefTopology"]

THP_MODES = ("never", "madvise", "always")
DEFRAG_MODES = ("always", "defer", "defer+madvise", "madvise", "never")
VMSTAT_NAMES = (
    "numa_hit", "numa_miss", "numa_foreign", "numa_interleave", "numa_local", "numa_other",
    "pgfault", "numa_pte_updates", "numa_huge_pte_updates", "numa_hint_faults",
    "numa_hint_faults_local", "numa_pages_migrated", "pgmigrate_success", "pgmigrate_fail",
    "thp_fault_alloc", "thp_fault_fallback", "thp_migration_success", "thp_migration_fail",
    "thp_migration_split", "thp_split_pmd", "thp_split_page", "oom_kill",
    "fastnuma_prot_numa_flushes",
)
NUMASTAT_NAMES = ("numa_hit", "numa_miss", "numa_foreign", "interleave_hit", "local_node",
                  "other_node")
# docs/lazy-migration.md §1: the switches of spec §7 and what each profile sets them to
PROFILES = {
    "mainline": dict(noop_mode=False, pmd_numa_batching=False, shared_page_rule=False,
                     pte_restore_timing="after", two_stage_filter="last_cpupid",
                     migrate_rate_limit=False, thp_update_count=512,
                     skip_local_single_thread=True, interleave_thp_index="order"),
    "seed": dict(noop_mode=True, pmd_numa_batching=True, shared_page_rule=True,
                 pte_restore_timing="before", two_stage_filter="last_node",
                 migrate_rate_limit=True, thp_update_count=1,
                 skip_local_single_thread=False, interleave_thp_index="base"),
}
SWITCH_VALUES = dict(noop_mode=(False, True), pmd_numa_batching=(False, True),
                     shared_page_rule=(False, True), pte_restore_timing=("after", "before"),
                     two_stage_filter=("last_cpupid", "last_node"),
                     migrate_rate_limit=(False, True), thp_update_count=(512, 1),
                     skip_local_single_thread=(False, True),
                     interleave_thp_index=("order", "base"))
# PTE flag bits of page_flags (docs/lazy-migration.md §2, fastnuma.dtypes PTE_*)
PTE_PRESENT, PTE_NUMA, PTE_WRITE, PTE_HUGE, PTE_ZERO, PTE_DIRTY = 1, 2, 4, 8, 16, 32

NUMASTAT_TO_VMSTAT = {"numa_hit": "numa_hit", "numa_miss": "numa_miss",
                      "numa_foreign": "numa_foreign", "interleave_hit": "numa_interleave",
                      "local_node": "numa_local", "other_node": "numa_other"}


class RefMachine(AllocMixin, FaultMixin, VmMixin, MigrateMixin, SyscallMixin, NumaFaultMixin,
                 NumaSchedMixin, TieringMixin, ProtectMixin):
    """RefMachine(topology, **same keyword options as fastnuma.Simulator).

    ``topology``: any object with node_pages, node_cpus, distance, wmark_min, wmark_low,
    wmark_high (e.g. :class:`RefTopology`); the fallback lists are computed here from the
    distance table (§1.6). Lazy-migration knobs: docs/lazy-migration.md §1 (``profile``
    sets the defaults of the switches; a switch given explicitly wins). Memory tiering
    (docs/tiering.md): numa_balancing 2 and 3 and the keywords of tiering.TIER_KNOBS
    (numa_balancing_promote_rate_limit_MBps, numa_balancing_hot_threshold_ms,
    demotion_enabled, min_free_kbytes, watermark_scale_factor, memory_tiering,
    tiering_profile).
    """

    def __init__(self, topology, *, thp="never", thp_defrag="madvise", numa_balancing=0,
                 interleave_weights=None, linux_strict_flags=False, max_map_count=65530,
                 zero_page=True, numa_stat=True, profile="mainline", noop_mode=None,
                 pmd_numa_batching=None, shared_page_rule=None, pte_restore_timing=None,
                 two_stage_filter=None, migrate_rate_limit=None, thp_update_count=None,
                 skip_local_single_thread=None, interleave_thp_index=None,
                 numa_balancing_scan_delay_ms=1000, numa_balancing_scan_period_min_ms=1000,
                 numa_balancing_scan_period_max_ms=60000, numa_balancing_scan_size_mb=256,
                 fault_around_bytes=65536, **tier_knobs):
        if thp not in THP_MODES:
            raise ValueError(f"thp={thp!r}: expected one of {THP_MODES}")
        if thp_defrag not in DEFRAG_MODES:
            raise ValueError(f"thp_defrag={thp_defrag!r}: expected one of {DEFRAG_MODES}")
        if numa_balancing not in (0, 1, 2, 3) or isinstance(numa_balancing, bool):
            raise ValueError(f"numa_balancing={numa_balancing!r}: expected 0, 1, 2 or 3")
        if not isinstance(max_map_count, int) or max_map_count < 1:
            raise ValueError(f"max_map_count={max_map_count!r}: expected an int >= 1")
        if profile not in PROFILES:
            raise ValueError(f"profile={profile!r}: expected one of {sorted(PROFILES)}")
        given = dict(noop_mode=noop_mode, pmd_numa_batching=pmd_numa_batching,
                     shared_page_rule=shared_page_rule, pte_restore_timing=pte_restore_timing,
                     two_stage_filter=two_stage_filter, migrate_rate_limit=migrate_rate_limit,
                     thp_update_count=thp_update_count,
                     skip_local_single_thread=skip_local_single_thread,
                     interleave_thp_index=interleave_thp_index)
        for name, value in given.items():
            if value is None:
                value = PROFILES[profile][name]
            elif value not in SWITCH_VALUES[name]:
                raise ValueError(f"{name}={value!r}: expected one of {SWITCH_VALUES[name]}")
            setattr(self, name, value)
        self.profile = profile
        for name, value, low in (("numa_balancing_scan_delay_ms", numa_balancing_scan_delay_ms, 0),
                                 ("numa_balancing_scan_period_min_ms",
                                  numa_balancing_scan_period_min_ms, 1),
                                 ("numa_balancing_scan_period_max_ms",
                                  numa_balancing_scan_period_max_ms, 1),
                                 ("numa_balancing_scan_size_mb", numa_balancing_scan_size_mb, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name}={value!r}: expected an int >= {low}")
        self.scan_delay_ms = numa_balancing_scan_delay_ms
        self.scan_period_min_ms = numa_balancing_scan_period_min_ms
        self.scan_period_max_ms = numa_balancing_scan_period_max_ms
        self.scan_size_mb = numa_balancing_scan_size_mb
        pages, cpus, dist, wmin, wlow, whigh = topology_arrays(topology)
        self.topology = topology
        self.node_distance = dist
        self.n_nodes = len(pages)
        self.node_pages = pages
        self.wmark_min, self.wmark_low, self.wmark_high = wmin, wlow, whigh
        self.memory_nodes = frozenset(n for n, p in enumerate(pages) if p > 0)
        self.cpu_node = {c: n for n, cs in enumerate(cpus) for c in cs}
        self.fallback = build_zonelists(topology)
        self.free = list(pages)
        self.isolated = {}         # id -> folio off the LRU for a migration in progress
        self.thp, self.thp_defrag = thp, thp_defrag
        self.numa_balancing = numa_balancing
        weights = dict(interleave_weights or {})
        for node, w in weights.items():
            if not 0 <= as_int(node, "node") < self.n_nodes or not 0 <= as_int(w, "w") <= 255:
                raise ValueError(f"interleave_weights[{node}]={w}: bad node or weight")
        self.weights = weights
        self.linux_strict_flags = bool(linux_strict_flags)
        self.max_map_count = max_map_count
        self.zero_page, self.numa_stat = bool(zero_page), bool(numa_stat)
        # debugfs fault_around_bytes, kept as fault_around_bytes_set keeps it: at most a
        # PTE table of pages, rounded down to a power of two, at least one page
        if (not isinstance(fault_around_bytes, int) or isinstance(fault_around_bytes, bool)
                or not 0 < fault_around_bytes < (HPAGE_PMD_NR + 1) * PAGE_SIZE):
            raise ValueError(f"fault_around_bytes={fault_around_bytes!r}: expected "
                             f"1..{(HPAGE_PMD_NR + 1) * PAGE_SIZE - 1}")
        around = 1
        while around * 2 * PAGE_SIZE <= fault_around_bytes:
            around *= 2
        self.fault_around_pages = around
        self.numastat_ = {n: dict.fromkeys(NUMASTAT_NAMES, 0) for n in range(self.n_nodes)}
        self.vm = dict.fromkeys(VMSTAT_NAMES[6:], 0)
        self.procs, self.threads = {}, {}
        self.next_id, self.next_obj = 0, 0
        self.now_ns = 0
        self.access_counts = np.zeros((self.n_nodes, self.n_nodes, 2), np.int64)
        self.page_cache = []          # folios of page_cache_read, until drop_caches
        self.ratelimit = [RateLimitWindow() for _ in range(self.n_nodes)]   # §5.3
        self.init_tiering(topology, tier_knobs)

    # ------------------------------------------------------------ lookups
    def get_proc(self, pid):
        pid = as_int(pid, "pid")
        proc = self.procs.get(pid)
        if proc is None:
            raise_errno(errno.ESRCH, f"no process {pid}")
        return proc

    def get_thread(self, tid):
        tid = as_int(tid, "tid")
        thread = self.threads.get(tid)
        if thread is None:
            raise_errno(errno.ESRCH, f"no thread {tid}")
        return thread

    def caller_thread(self, proc, tid):
        """The calling thread: ``tid`` (ESRCH unless it belongs to ``proc``) or the
        process's first thread."""
        if tid is None:
            return self.threads[proc.tids[0]]
        thread = self.get_thread(tid)
        if thread.pid != proc.pid:
            raise_errno(errno.ESRCH, f"thread {tid} is not in process {proc.pid}")
        return thread

    def check_cpu(self, cpu):
        cpu = as_int(cpu, "cpu")
        if cpu not in self.cpu_node:
            raise_errno(errno.EINVAL, f"no CPU {cpu}")
        return cpu

    @staticmethod
    def int_list(values, name):
        """An int or a 1-D sequence/array of ints as a list of Python ints."""
        if isinstance(values, np.ndarray):
            if values.ndim != 1 and values.ndim != 0:
                raise ValueError(f"{name} must be 1-D")
            if values.dtype.kind not in "iu":
                raise TypeError(f"{name} must hold integers, not {values.dtype}")
            return [int(v) for v in values.reshape(-1)]
        if isinstance(values, (list, tuple, range)):
            return [as_int(v, name) for v in values]
        return [as_int(values, name)]

    # ------------------------------------------------------------ processes
    def spawn(self, cpu=0, uid=0, cap_sys_nice=True):
        """A new process with one thread (tid == pid) on ``cpu`` (EINVAL if no such CPU);
        pids and tids share one counter starting at 1."""
        cpu = self.check_cpu(cpu)
        uid = as_int(uid, "uid")
        self.next_id += 1
        pid = self.next_id
        proc = Process(pid, uid, bool(cap_sys_nice))
        self.init_numa_balancing_mm(proc)
        proc.tids.append(pid)
        self.procs[pid] = proc
        self.threads[pid] = Thread(pid, pid, cpu)
        self.init_numa_balancing(self.threads[pid], proc)
        return pid

    def clone(self, pid, cpu=None):
        """A new thread of ``pid``; default CPU and task policy (with the interleave
        state) are those of the process's first thread."""
        proc = self.get_proc(pid)
        first = self.threads[proc.tids[0]]
        cpu = first.cpu if cpu is None else self.check_cpu(cpu)
        self.next_id += 1
        tid = self.next_id
        self.threads[tid] = Thread(tid, proc.pid, cpu, first.policy, first.il_prev,
                                   first.il_weight)
        self.init_numa_balancing(self.threads[tid], proc, new_thread=True)
        proc.tids.append(tid)
        return tid

    def fork(self, pid, tid=None):
        """fork: the child copies the VMAs (policies, advice; shared objects gain a user).
        copy_page_range runs only for private VMAs with an anon_vma: every present entry
        is copied, anonymous pages become mapped twice and both sides write-protected
        (zero pages too are copied); shared memory is not copied (the child faults it in).
        The child's thread copies the forking thread's CPU and task policy. NUMA hinting
        (docs/lazy-migration.md §6.1, §7): a new mm and task; the child's entries keep
        their marks; the child's VMAs start without scanner state (vm_area_dup)."""
        proc = self.get_proc(pid)
        thread = self.caller_thread(proc, tid)
        self.next_id += 1
        child = Process(self.next_id, proc.uid, proc.cap_sys_nice)
        self.init_numa_balancing_mm(child)
        child.tids.append(child.pid)
        self.procs[child.pid] = child
        self.threads[child.pid] = Thread(child.pid, child.pid, thread.cpu, thread.policy,
                                         thread.il_prev, thread.il_weight)
        self.init_numa_balancing(self.threads[child.pid], child)
        for vma in proc.vmas:
            copy = vma.copy()
            copy.numab = None
            self.insert_vma(child, copy)
            if vma.obj is not None or not vma.anon:
                continue
            first_h, last_h = vma.start // HPAGE_PMD_NR, (vma.end - 1) // HPAGE_PMD_NR
            for hpn in range(first_h, last_h + 1):
                if hpn in proc.pte_tables:
                    child.pte_tables.add(hpn)
                pmd = proc.pmds.get(hpn)
                if pmd is not None:
                    pmd.write = False
                    self.set_pmd(child, hpn, pmd.folio, write=False, numa=pmd.numa)
            for vpn in sorted(v for v in proc.ptes if vma.start <= v < vma.end):
                pte = proc.ptes[vpn]
                pte.write = False
                self.set_pte(child, vpn, pte.folio, pte.sub, write=False, dirty=pte.dirty,
                             numa=pte.numa)
        return child.pid

    def exit(self, pid):
        """The process ends; its mappings go and pages are freed with their last
        mapping (shared-memory pages with their object)."""
        proc = self.get_proc(pid)
        self.do_exit(proc)

    def do_exit(self, proc):
        self.zap_page_range(proc, 0, TASK_SIZE >> PAGE_SHIFT)
        for vma in list(proc.vmas):
            self.remove_vma(proc, vma)
        proc.pte_tables.clear()
        proc.pmd_numa.clear()
        for tid in proc.tids:
            del self.threads[tid]
        del self.procs[proc.pid]

    def oom_kill(self, proc):
        """OOM: fastnuma kills the faulting process (oom_kill += 1) and raises
        OutOfMemory."""
        self.vm["oom_kill"] += 1
        self.do_exit(proc)
        raise OutOfMemory(proc.pid, f"process {proc.pid} was OOM-killed")

    def sched(self, tid, cpu):
        """The thread now runs on ``cpu`` (EINVAL if no such CPU)."""
        thread = self.get_thread(tid)
        thread.cpu = self.check_cpu(cpu)

    def pids(self):
        return sorted(self.procs)

    def tids(self, pid):
        return list(self.get_proc(pid).tids)

    # ------------------------------------------------------------ access
    def access(self, tid, addrs, write=False):
        """Loads/stores by thread ``tid`` in order. An address outside every VMA, or an
        access its VMA's protection forbids (access_error, before any fault: no pgfault),
        raises SegmentationFault naming the element (earlier accesses took effect); an
        allocation failure OOM-kills the process (OutOfMemory). A marked entry first takes
        its NUMA hinting fault (docs/lazy-migration.md §5), then the access proceeds."""
        thread = self.get_thread(tid)
        proc = self.procs[thread.pid]
        if isinstance(addrs, np.ndarray) and addrs.ndim > 1:
            raise ValueError("addrs must be an int or a 1-D array")
        addrs = self.int_list(addrs, "addrs")
        if isinstance(write, np.ndarray):
            if write.dtype != np.bool_:
                raise TypeError("write must be a bool or a bool array")
            if write.shape != (len(addrs),):
                raise ValueError("write must have the length of addrs")
            writes = [bool(w) for w in write]
        elif isinstance(write, (bool, np.bool_)):
            writes = [bool(write)] * len(addrs)
        else:
            raise TypeError("write must be a bool or a bool array")
        for i, (addr, w) in enumerate(zip(addrs, writes)):
            vma = proc.find_vma(addr >> PAGE_SHIFT) if 0 <= addr <= U64 else None
            if vma is None or self.access_error(vma, w):
                raise SegmentationFault(proc.pid, i, addr)
            try:
                self.handle_numa_hint(thread, proc, vma, addr >> PAGE_SHIFT)
                self.handle_mm_fault(thread, proc, vma, addr >> PAGE_SHIFT, w)
            except OomError:
                self.oom_kill(proc)
            folio, _ = proc.entry(addr >> PAGE_SHIFT)
            if not folio.is_zero:
                self.touch_folio(folio)
            self.count_access(thread, proc, addr >> PAGE_SHIFT, w)

    def count_access(self, thread, proc, vpn, write):
        """docs/api.md access_counts[cpu node, memory node, read/write] and the thread's
        local/remote counts, for an access that took effect (the zero page is on node
        0)."""
        folio, _ = proc.entry(vpn)
        cpu_node = self.cpu_node[thread.cpu]
        self.access_counts[cpu_node, folio.node, int(write)] += 1
        if folio.node == cpu_node:
            thread.local += 1
        else:
            thread.remote += 1

    # ------------------------------------------------------------ page cache
    def page_cache_read(self, tid, n_pages=1):
        """docs/api.md page_cache_read: ``n_pages`` page-cache pages, allocated with no
        VMA under the thread's task policy and no interleave index (filemap_alloc_folio ->
        alloc_pages_mpol with NO_INTERLEAVE_INDEX: (weighted) interleave takes the per-task
        round robin, §1.5 and rule 16). Returns their nodes (int64). They stay until
        drop_caches(). A failed allocation raises ENOMEM after the pages so far (page
        cache is reclaimable: nobody is killed)."""
        thread = self.get_thread(tid)
        n_pages = as_int(n_pages, "n_pages")
        if n_pages < 0:
            raise ValueError(f"n_pages {n_pages} is negative")
        nodes = []
        pol = self.get_task_policy(thread)
        for _ in range(n_pages):
            node = self.alloc_pages_mpol(pol, 0, None, thread)
            if node is None:
                raise_errno(errno.ENOMEM, f"page cache: no memory after {len(nodes)} of "
                                          f"{n_pages} pages")
            folio = Folio(node, 0, len(self.page_cache))
            folio.file = True
            self.touch_folio(folio)
            self.page_cache.append(folio)
            nodes.append(node)
        return np.array(nodes, dtype=np.int64)

    def drop_caches(self):
        """echo 1 > /proc/sys/vm/drop_caches: every page-cache page is freed."""
        for folio in self.page_cache:
            self.free_folio(folio)
        self.page_cache = []

    def advance(self, ns):
        """Simulated time passes; with numa_balancing=1 the scheduler ticks of
        docs/lazy-migration.md §6.1 run on the way (each at its own time)."""
        ns = as_int(ns, "ns")
        if ns < 0:
            raise ValueError("time cannot go backwards")
        end = self.now_ns + ns
        while self.memory_tiering and self.run_kswapds_until(end):
            pass                                   # docs/tiering.md D2: kswapd's runs
        if self.numa_balancing:
            self.run_numa_ticks(end)
        self.now_ns = end

    def change_prot_numa(self, pid, addr, length, tid=None):
        """docs/lazy-migration.md §3 (a fastnuma extension): mark [addr, addr+length) of
        ``pid`` for NUMA hinting as the thread ``tid`` (default the first thread) would;
        its CPU's node is the target node. The range checks of mbind (EINVAL; length 0 ->
        0) and its hole checks (EFAULT, nothing marked). Returns the updates."""
        proc = self.get_proc(pid)
        thread = self.caller_thread(proc, tid)
        lo, hi = check_range(addr, length, task_size=False)
        if lo == hi:
            return 0
        self.check_no_holes(proc, lo, hi)
        return self.change_prot_numa_range(proc, lo, hi, self.cpu_node[thread.cpu])

    # ------------------------------------------------------------ observation
    def vmstat(self):
        """/proc/vmstat: the numa_* allocation counters summed over nodes, then the event
        counters."""
        out = {}
        for name, vname in NUMASTAT_TO_VMSTAT.items():
            out[vname] = sum(self.numastat_[n][name] for n in range(self.n_nodes))
        out.update((k, v) for k, v in self.vm.items() if k in VMSTAT_NAMES)
        if self.memory_tiering:                    # docs/tiering.md §8
            out.update(self.tier_vmstat())
        return out

    def numastat(self):
        return {n: dict(self.numastat_[n]) for n in range(self.n_nodes)}

    def free_pages(self):
        return np.array(self.free, dtype=np.int64)

    def page_flags(self, pid, addr, length):
        """Per page of [addr, addr+length): the entry's flag bits PRESENT 1, NUMA 2,
        WRITE 4, HUGE 8 (PMD-mapped THP), ZERO 16, DIRTY 32; 0 when this process maps
        nothing there. WRITE and DIRTY are the model's own bits (the write bit as the
        COW/zero-page rules need it, DIRTY as numa_maps counts it: a PMD-mapped THP is
        dirty); the differential test compares PRESENT|NUMA|HUGE|ZERO only."""
        proc = self.get_proc(pid)
        lo, hi = check_range(addr, length)
        out = np.zeros(hi - lo, np.int64)
        for hpn in range(lo // HPAGE_PMD_NR, (hi - 1) // HPAGE_PMD_NR + 1):
            first, last = max(lo, hpn * HPAGE_PMD_NR), min(hi, (hpn + 1) * HPAGE_PMD_NR)
            pmd = proc.pmds.get(hpn)
            if pmd is not None:
                flags = PTE_PRESENT | PTE_HUGE
                flags |= PTE_ZERO if pmd.folio.is_zero else PTE_DIRTY
                flags |= PTE_NUMA if pmd.numa else 0
                flags |= PTE_WRITE if pmd.write else 0
                out[first - lo:last - lo] = flags
                continue
            if hpn not in proc.pte_tables:           # no PTE table: nothing mapped
                continue
            for vpn in range(first, last):
                pte = proc.ptes.get(vpn)
                if pte is None:
                    continue
                flags = PTE_PRESENT
                flags |= PTE_ZERO if pte.folio.is_zero else 0
                flags |= PTE_NUMA if pte.numa else 0
                flags |= PTE_WRITE if pte.write else 0
                flags |= PTE_DIRTY if pte.dirty else 0
                out[vpn - lo] = flags
        return out

    def task_numa_stats(self, tid):
        """docs/lazy-migration.md §2: the NUMA-balancing fields of thread ``tid``."""
        t = self.get_thread(tid)
        return dict(numa_scan_period=t.numa_scan_period,
                    numa_scan_period_max=t.numa_scan_period_max, node_stamp=t.node_stamp,
                    numa_scan_seq=t.numa_scan_seq, numa_preferred_nid=t.numa_preferred_nid,
                    numa_migrate_retry=t.numa_migrate_retry,
                    numa_pages_migrated=t.numa_pages_migrated,
                    numa_faults_locality=list(t.numa_faults_locality),
                    faults=[list(f) for f in t.faults],
                    faults_buffer=[list(f) for f in t.faults_buffer])

    def page_nodes(self, pid, addr, length):
        """Per page of [addr, addr+length): its node, -1 when this process maps nothing
        there, 0 for the zero page."""
        proc = self.get_proc(pid)
        lo, hi = check_range(addr, length)
        out = np.full(hi - lo, -1, np.int16)
        for vpn in range(lo, hi):
            folio, _ = proc.entry(vpn)
            if folio is not None:
                out[vpn - lo] = folio.node
        return out

    def numa_maps(self, pid):
        """/proc/PID/numa_maps (fs/proc/task_mmu.c show_numa_map + gather_stats): per VMA
        "%08lx <policy>", the VMA policy (shared memory: the tree at vm_start) or else the
        task policy of the first thread; shared memory adds " file=/dev/zero\\040(deleted)";
        with pages: anon= (private), dirty=, mapped= (when pages differ from both),
        mapmax= (> 1), N<node>=, kernelpagesize_kB=4. Zero pages are not counted; the
        LRU "active=" field is not modelled."""
        proc = self.get_proc(pid)
        task_pol = self.threads[proc.tids[0]].policy
        lines = []
        for vma in proc.vmas:
            pol = vma.obj.lookup(vma.pgoff) if vma.obj is not None else vma.policy
            line = f"{vma.start << PAGE_SHIFT:08x} {mpol_to_str(pol or task_pol)}"
            if vma.obj is not None:
                line += " file=/dev/zero\\040(deleted)"
            pages = anon = dirty = mapmax = 0
            nodes = {}

            def gather(folio, nr, count, is_dirty):
                nonlocal pages, anon, dirty, mapmax
                pages += nr
                dirty += nr if is_dirty else 0
                anon += nr if folio.obj is None else 0
                mapmax = max(mapmax, count)
                nodes[folio.node] = nodes.get(folio.node, 0) + nr

            vpn = vma.start
            while vpn < vma.end:
                hpn = vpn // HPAGE_PMD_NR
                pmd = proc.pmds.get(hpn)
                if pmd is not None:
                    if not pmd.folio.is_zero:
                        gather(pmd.folio, HPAGE_PMD_NR, pmd.folio.page_mapcount(0), True)
                    vpn = (hpn + 1) * HPAGE_PMD_NR
                    continue
                pte = proc.ptes.get(vpn)
                if pte is not None and not pte.folio.is_zero:
                    gather(pte.folio, 1, pte.folio.page_mapcount(pte.sub),
                           pte.dirty or pte.folio.dirty)
                vpn += 1
            if pages:
                if anon:
                    line += f" anon={anon}"
                if dirty:
                    line += f" dirty={dirty}"
                if pages != anon and pages != dirty:
                    line += f" mapped={pages}"
                if mapmax > 1:
                    line += f" mapmax={mapmax}"
                for node in sorted(nodes):
                    line += f" N{node}={nodes[node]}"
                line += f" kernelpagesize_kB={PAGE_SIZE >> 10}"
            lines.append(line + "\n")
        return "".join(lines)
