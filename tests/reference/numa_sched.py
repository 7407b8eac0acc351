"""Automatic NUMA balancing of the reference model: per-task fault statistics and
placement, the scan period, scheduler ticks and the VMA scanner (docs/lazy-migration.md
§2, §5.4, §5.5, §6; linux-semantics.md §4.7, §5; Linux kernel/sched/fair.c
init_numa_balancing, task_numa_fault, task_numa_placement, update_task_scan_period,
task_scan_min/max/start, task_tick_numa, task_numa_work, vma_is_accessed;
mm/mempolicy.c vma_policy_mof).

A mixin of RefMachine. Times are ns (self.now_ns); periods are ms as in Linux.
"""
from fastnuma.constants import HPAGE_PMD_NR, MPOL_F_MOF

from .mm import LAST_CPUPID_UNSET, NumabState
from .numa_fault import DEFAULT_NUMA_POLICY, MS, TNF_MIGRATE_FAIL, TNF_MIGRATED, hash_32

TICK_NSEC = MS                   # HZ = 1000
MAX_SCAN_WINDOW = 2560           # MB (kernel/sched/fair.c)
NUMA_PERIOD_SLOTS = 10
NUMA_PERIOD_THRESHOLD = 7


class NumaSchedMixin:
    # ------------------------------------------------------------ §2 / §6.1 creation
    def init_numa_balancing_mm(self, proc):
        """§6.1 a new mm: numa_next_scan = now + scan_delay, seq 0, offset 0, one scan
        window."""
        proc.numa_next_scan = self.now_ns + self.scan_delay_ms * MS
        proc.numa_scan_seq = 0
        proc.numa_scan_offset = 0
        proc.scan_windows = 1

    def init_numa_balancing(self, thread, proc, new_thread=False):
        """§2 / §6.1 (init_numa_balancing) for a new task. A thread added by clone gets
        node_stamp = min(scan_max, leader's period x threads before the clone x 10**6) +
        2 ticks (Linux compares ms with ns there), and copies the leader's preferred node
        and numa_scan_period_max (dup_task_struct) and the mm's scan sequence."""
        thread.numa_scan_period = self.scan_delay_ms
        thread.numa_scan_period_max = 0
        thread.node_stamp = 0
        thread.start_ns = self.now_ns
        thread.numa_scan_seq = 0
        thread.numa_preferred_nid = -1
        thread.numa_migrate_retry = 0
        thread.numa_pages_migrated = 0
        thread.numa_faults_locality = [0, 0, 0]
        thread.faults = [[0, 0] for _ in range(self.n_nodes)]
        thread.faults_buffer = [[0, 0] for _ in range(self.n_nodes)]
        if new_thread:
            leader = self.threads[proc.tids[0]]
            delay = min(self.task_scan_max(proc),
                        leader.numa_scan_period * len(proc.tids) * MS)
            thread.node_stamp = delay + 2 * TICK_NSEC
            thread.numa_scan_seq = proc.numa_scan_seq
            thread.numa_preferred_nid = leader.numa_preferred_nid
            thread.numa_scan_period_max = leader.numa_scan_period_max

    # ------------------------------------------------------------ §6.4 period bounds
    def task_nr_scan_windows(self, proc):
        """§6.4: max(1, ceil(rss / (scan_size_mb * 256))); rss = pages the process maps
        (not the zero page; a THP 512). fastnuma: scan_size_mb 0 -> 1 window."""
        nr_scan_pages = self.scan_size_mb << 8
        if nr_scan_pages == 0:
            return 1
        rss = sum(1 for pte in proc.ptes.values() if not pte.folio.is_zero)
        rss += HPAGE_PMD_NR * sum(1 for pmd in proc.pmds.values() if not pmd.folio.is_zero)
        return max(1, -(-rss // nr_scan_pages))

    def task_scan_min(self, proc):
        """§6.4 task_scan_min with the mm's scan_windows snapshot."""
        size = self.scan_size_mb
        floor = 1000 // (MAX_SCAN_WINDOW // size) if 0 < size < MAX_SCAN_WINDOW else 1000
        return max(floor, self.scan_period_min_ms // proc.scan_windows)

    def task_scan_max(self, proc):
        """§6.4 task_scan_max (no NUMA groups)."""
        return max(self.task_scan_min(proc), self.scan_period_max_ms // proc.scan_windows)

    def task_scan_start(self, proc):
        """§6.4 task_scan_start = scan_min (no NUMA groups)."""
        return self.task_scan_min(proc)

    # ------------------------------------------------------------ §5.4 task_numa_fault
    def task_numa_fault(self, thread, last_cpupid, mem_node, nr, flags):
        """§5.4 (task_numa_fault), only with numa_balancing: private when the folio had
        no cpupid (or with the last_node filter) or the same pid; placement when the
        retry time passed; per-task counters and the fault buffer."""
        if not self.numa_balancing:
            return
        proc = self.procs[thread.pid]
        if last_cpupid == LAST_CPUPID_UNSET or self.two_stage_filter == "last_node":
            priv = 1
        else:
            priv = int(last_cpupid & 0xFF == thread.tid & 0xFF)
        if self.now_ns > thread.numa_migrate_retry:
            self.task_numa_placement(thread, proc)
            self.numa_migrate_preferred(thread)
        if flags == TNF_MIGRATED:
            thread.numa_pages_migrated += nr
        if flags == TNF_MIGRATE_FAIL:
            thread.numa_faults_locality[2] += nr
        thread.faults_buffer[mem_node][priv] += nr
        local = self.cpu_node[thread.cpu] == mem_node
        thread.numa_faults_locality[int(local)] += nr

    def numa_migrate_preferred(self, thread):
        """§5.4 (numa_migrate_preferred): with a preferred node, the next retry is
        min(1 s, period / 16) away. Threads are never moved (§8)."""
        if thread.numa_preferred_nid == -1:
            return
        interval = min(1000, thread.numa_scan_period // 16)
        thread.numa_migrate_retry = self.now_ns + interval * MS

    # ------------------------------------------------------------ §5.5 placement
    def task_numa_placement(self, thread, proc):
        """§5.5 (task_numa_placement), once per mm scan sequence: decay the memory
        faults by half and add the buffer; the node with the most faults (strictly more,
        so the lowest id on ties; > 0) becomes the preferred node, or the nearest node
        with CPUs; then update_task_scan_period."""
        seq = proc.numa_scan_seq
        if thread.numa_scan_seq == seq:
            return
        thread.numa_scan_seq = seq
        thread.numa_scan_period_max = self.task_scan_max(proc)
        fault_types = [0, 0]
        max_faults, max_nid = 0, -1
        for nid in range(self.n_nodes):
            faults = 0
            for priv in (0, 1):
                buf = thread.faults_buffer[nid][priv]
                diff = buf - thread.faults[nid][priv] // 2
                fault_types[priv] += buf
                thread.faults_buffer[nid][priv] = 0
                thread.faults[nid][priv] += diff
                faults += thread.faults[nid][priv]
            if faults > max_faults:
                max_faults, max_nid = faults, nid
        if max_faults:
            thread.numa_preferred_nid = self.numa_nearest_cpu_node(max_nid)
        self.update_task_scan_period(thread, proc, fault_types[0], fault_types[1])

    def numa_nearest_cpu_node(self, node):
        """numa_nearest_node(node, N_CPU): ``node`` if it has CPUs, else the node with
        CPUs at the smallest distance from it (lowest id on ties)."""
        cpu_nodes = sorted(set(self.cpu_node.values()))
        if node in cpu_nodes:
            return node
        dist = self.node_distance
        return min(cpu_nodes, key=lambda n: (dist[node][n], n))

    def update_task_scan_period(self, thread, proc, shared, private):
        """§5.5 / spec §5.4 (update_task_scan_period)."""
        remote, local, failed = thread.numa_faults_locality
        if local + shared == 0 or failed:
            thread.numa_scan_period = min(thread.numa_scan_period_max,
                                          thread.numa_scan_period << 1)
            proc.numa_next_scan = self.now_ns + thread.numa_scan_period * MS
            return
        period_slot = -(-thread.numa_scan_period // NUMA_PERIOD_SLOTS)
        lr_ratio = local * NUMA_PERIOD_SLOTS // (local + remote) if local + remote else 0
        ps_ratio = (private * NUMA_PERIOD_SLOTS // (private + shared)
                    if private + shared else 0)
        if ps_ratio >= NUMA_PERIOD_THRESHOLD:
            diff = max(1, ps_ratio - NUMA_PERIOD_THRESHOLD) * period_slot
        elif lr_ratio >= NUMA_PERIOD_THRESHOLD:
            diff = max(1, lr_ratio - NUMA_PERIOD_THRESHOLD) * period_slot
        else:
            diff = -(NUMA_PERIOD_THRESHOLD - max(lr_ratio, ps_ratio)) * period_slot
        period = thread.numa_scan_period + diff
        thread.numa_scan_period = min(max(period, self.task_scan_min(proc)),
                                      self.task_scan_max(proc))
        thread.numa_faults_locality = [0, 0, 0]

    # ------------------------------------------------------------ §6.1 ticks
    def run_numa_ticks(self, end_ns):
        """§6.1: scheduler ticks at every k ms (k >= 1) in (now, end_ns], each running
        task_tick_numa for every thread in increasing tid order. Between the ticks where
        some thread's runtime passes node_stamp + period nothing can happen (faults do
        not occur while time advances), so those ticks are skipped."""
        while True:
            tick = None
            for thread in self.threads.values():
                due = thread.start_ns + thread.node_stamp + thread.numa_scan_period * MS
                k = due // TICK_NSEC + 1                 # first tick with runtime > due
                tick = k if tick is None else min(tick, k)
            first = self.now_ns // TICK_NSEC + 1          # ticks strictly after now
            if tick is None or max(tick, first) * TICK_NSEC > end_ns:
                return
            self.now_ns = max(tick, first) * TICK_NSEC
            for tid in sorted(self.threads):
                if tid in self.threads:
                    self.task_tick_numa(self.threads[tid])

    def task_tick_numa(self, thread):
        """§6.1 (task_tick_numa): runtime = now - start. Past node_stamp + period: the
        first time the period becomes scan_start (the scan windows are sampled for it);
        node_stamp += period; task_numa_work when the mm's next scan time has come."""
        proc = self.procs[thread.pid]
        runtime = self.now_ns - thread.start_ns
        period = thread.numa_scan_period * MS
        if runtime > thread.node_stamp + period:
            if thread.node_stamp == 0:
                proc.scan_windows = self.task_nr_scan_windows(proc)
                thread.numa_scan_period = self.task_scan_start(proc)
            thread.node_stamp += period
            if self.now_ns >= proc.numa_next_scan:
                self.task_numa_work(thread, proc)

    # ------------------------------------------------------------ §6.2 the scanner
    def reset_ptenuma_scan(self, proc):
        proc.numa_scan_seq += 1
        proc.numa_scan_offset = 0

    def vma_policy_mof(self, thread, vma):
        """§6.2 (vma_policy_mof): shared memory looks only at the object's policy at the
        VMA's first page; otherwise the VMA's policy, else the thread's, else the default
        (which has MOF)."""
        if vma.obj is not None:
            pol = vma.obj.lookup(vma.pgoff)
            return pol is not None and bool(pol.flags & MPOL_F_MOF)
        pol = vma.policy or thread.policy or DEFAULT_NUMA_POLICY
        return bool(pol.flags & MPOL_F_MOF)

    def vma_is_accessed(self, thread, proc, vma):
        """§6.2 (vma_is_accessed)."""
        state = vma.numab
        if proc.numa_scan_seq - state.start_scan_seq < 2:
            return True
        pids = state.pids_active[0] | state.pids_active[1]
        if pids >> hash_32(thread.tid, 6) & 1:
            return True
        if proc.numa_scan_offset > vma.start:
            return True
        return proc.numa_scan_seq > state.prev_scan_seq + len(proc.tids)

    def first_vma_after(self, proc, offset):
        """vma_iter_init(offset) + vma_next: the index of the first VMA ending after
        ``offset`` (len(vmas) when none)."""
        for i, vma in enumerate(proc.vmas):
            if vma.end > offset:
                return i
        return len(proc.vmas)

    def task_numa_work(self, thread, proc):
        """§6.2 (task_numa_work) at tick time self.now_ns. A scan takes no time. The
        forced retry restarts from ``start``, the scan position where the first walk ended
        (the contract's "same start"; Linux 6.x re-reads mm->numa_scan_offset at its
        retry_pids label)."""
        now = self.now_ns
        if now < proc.numa_next_scan:
            return
        proc.scan_windows = self.task_nr_scan_windows(proc)   # the RSS now (task_scan_min)
        if thread.numa_scan_period == 0:
            thread.numa_scan_period_max = self.task_scan_max(proc)
            thread.numa_scan_period = self.task_scan_start(proc)
        proc.numa_next_scan = now + thread.numa_scan_period * MS
        thread.node_stamp += 2 * TICK_NSEC
        pages = self.scan_size_mb << 8
        virtpages = pages * 8
        if not pages:
            return
        delay = self.scan_delay_ms * MS
        target_node = self.cpu_node[thread.cpu]
        vmas = proc.vmas                          # scanning changes no VMA
        pids_skipped = pids_forced = False
        start = proc.numa_scan_offset
        i = self.first_vma_after(proc, start)
        if i == len(vmas):
            self.reset_ptenuma_scan(proc)
            start = 0
            i = 0
        while True:
            while i < len(vmas):
                vma = vmas[i]
                i += 1
                if not self.vma_policy_mof(thread, vma):
                    continue
                if not vma.accessible():            # NUMAB_SKIP_INACCESSIBLE
                    continue
                if vma.numab is None:
                    vma.numab = NumabState(proc.numa_scan_seq, now + delay,
                                           now + delay + 4 * delay, proc.numa_scan_seq - 1)
                state = vma.numab
                if proc.numa_scan_seq and now < state.next_scan:
                    continue
                if proc.numa_scan_seq and now > state.pids_active_reset:
                    state.pids_active_reset += 4 * delay
                    state.pids_active = [state.pids_active[1], 0]
                if state.prev_scan_seq == proc.numa_scan_seq:
                    proc.numa_scan_offset = vma.end
                    continue
                if not pids_forced and not self.vma_is_accessed(thread, proc, vma):
                    pids_skipped = True
                    continue
                while True:
                    start = max(start, vma.start)
                    end = min(-(-(start + pages) // HPAGE_PMD_NR) * HPAGE_PMD_NR, vma.end)
                    updated = self.change_prot_numa_vma(proc, vma, start, end, target_node)
                    if updated:
                        pages -= end - start
                    virtpages -= end - start
                    start = end
                    if pages <= 0 or virtpages <= 0:
                        proc.numa_scan_offset = start      # out: stopped inside a VMA
                        return
                    if end == vma.end:
                        break
                state.prev_scan_seq = proc.numa_scan_seq
                if pids_forced:
                    proc.numa_scan_offset = start          # out: one forced VMA only
                    return
            if not pids_forced and pids_skipped:
                pids_forced = True                         # retry from the same start
                i = self.first_vma_after(proc, start)
                continue
            self.reset_ptenuma_scan(proc)                  # out: end of the VMA list
            return
