"""Record layouts, flag bits and counter ids: the one source of truth for kernels and Python.

Editing this file needs the Numba cache cleared (``__pycache__/*.nbi``/``*.nbc``): cached
kernels froze these constants when they were compiled (README.md says how; .ci/run does it).
"""
import numpy as np

# --- page-table entry: 8 bytes -------------------------------------------------------
# frame: index into the frame (folio) table, -1 when none (not present, or the zero page)
PTE_DTYPE = np.dtype([("frame", np.int32), ("flags", np.uint32)], align=True)
PTE_PRESENT = 1 << 0      # maps a page (a frame, or the zero page)
PTE_NUMA = 1 << 1         # protnone: NUMA hinting (change_prot_numa, issue 3), or an
                          # entry of a PROT_NONE VMA (mprotect: x86 uses the same encoding;
                          # the VMA tells them apart, so the fault entry checks it first)
PTE_WRITE = 1 << 2        # writable; clear for COW-shared and zero-page entries
PTE_HUGE = 1 << 3         # part of a PMD mapping of a THP (all 512 entries carry it)
PTE_ZERO = 1 << 4         # maps the shared zero page (no frame)
PTE_DIRTY = 1 << 5        # the page was written through this mapping
PTE_FLAG_MASK = 0xFF      # the flag bits above (what page_flags reports)
# bits 8-15: the node of the mapped page + 1, cached for the event loop (one memory load
# per access instead of two: the PTE, then its frame); 0 = not cached, read the frame.
# Invariant: only an exclusive mapping caches it (a private anonymous folio with
# mapcount 1; a THP's 512 entries are one mapping) or the zero page, so a migration
# updates the one PTE (or PMD) it came through (kernels/state.set_pte_node); fork strips it.
PTE_NODE_SHIFT = 8
PTE_NODE_MASK = 0xFF << PTE_NODE_SHIFT

PTRS_PER_PMD_SHIFT = 9
PTRS_PER_PMD = 1 << PTRS_PER_PMD_SHIFT       # PTEs per page-table page (one 2 MiB PMD)

# --- frames (folios): 12 bytes --------------------------------------------------------
FRAME_DTYPE = np.dtype([("node", np.int16), ("order", np.uint8), ("flags", np.uint8),
                        ("mapcount", np.int32), ("last_cpupid", np.int32)], align=True)
FRAME_SHM = 1 << 0        # page of a shared (MAP_SHARED anonymous) object: held by the object
FRAME_FREE = 1 << 1       # on the free list
FRAME_DIRTY = 1 << 2      # PageDirty (shared memory: written, or a dirty mapping went)
FRAME_PTE_DIRTY = 1 << 3  # some mapping of the page was dirtied (a migration dirties it)
FRAME_ISOLATED = 1 << 4   # off the LRU: queued by the running move_pages, or migrating
FRAME_FILE = 1 << 5       # a page-cache page (file LRU): reclaim drops it
ZERO_PAGE_NODE = 0        # the zero page lives in the kernel image, on node 0
# per frame, outside FRAME_DTYPE (touched only with memory tiering on): the access sequence
# number of its last access and of its last examination by reclaim (docs/tiering.md §7)
LRU_DTYPE = np.dtype([("lru", np.int64), ("seen", np.int64)])

# --- VMAs as the kernels see them (one row per policy segment), 48 bytes ---------------
# pids: bits hash_32(tid, 6) of threads that took a NUMA hinting fault here since the view
# was last read (vma_set_access_pid_bit); Python folds them into the VMA's scan state.
VMA_DTYPE = np.dtype([("start", np.int64), ("end", np.int64), ("pgoff", np.int64),
                      ("flags", np.int32), ("policy", np.int32), ("shm", np.int32),
                      ("pad", np.int32), ("pids", np.uint64)], align=True)
VM_SHARED = 1 << 0        # MAP_SHARED anonymous memory
VM_HUGEPAGE = 1 << 1      # MADV_HUGEPAGE
VM_NOHUGEPAGE = 1 << 2    # MADV_NOHUGEPAGE
VM_ANON = 1 << 3          # the VMA has an anon_vma (fork copies its page tables)
# the VMA's protection (calc_vm_prot_bits of PROT_READ/WRITE/EXEC): Python keeps it in
# Vma.prot, the kernels' view has these bits; the fault entry tests them (access_error)
VM_READ = 1 << 4
VM_WRITE = 1 << 5
VM_EXEC = 1 << 6
VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC   # vma_is_accessible
# a row after the first of one VMA (kernel_view cuts shared VMAs at shared-policy
# boundaries): fault-around finds the VMA's extent through it (kernels/fault_around.py)
VM_ROW_CONT = 1 << 8

# --- memory policies, 32 bytes ---------------------------------------------------------
POLICY_DTYPE = np.dtype([("mode", np.int32), ("flags", np.int32), ("nodes", np.uint64),
                         ("user_nodes", np.uint64), ("home_node", np.int32),
                         ("pad", np.int32)], align=True)
NO_POLICY = -1            # "no policy here": the next level applies (MPOL_DEFAULT is never stored)
NO_INTERLEAVE_INDEX = -1

# --- counters (/proc/vmstat names) -------------------------------------------------------
VMSTAT_NAMES = (
    "pgfault",
    "numa_pte_updates", "numa_huge_pte_updates",
    "numa_hint_faults", "numa_hint_faults_local", "numa_pages_migrated",
    "pgmigrate_success", "pgmigrate_fail",
    "thp_fault_alloc", "thp_fault_fallback",
    "thp_migration_success", "thp_migration_fail", "thp_migration_split",
    "thp_split_pmd", "thp_split_page",
    "oom_kill",
    "fastnuma_prot_numa_flushes",   # fastnuma's own: change_prot_numa calls that changed
)                                   # something (one TLB flush of the range each)
(C_PGFAULT, C_NUMA_PTE_UPDATES, C_NUMA_HUGE_PTE_UPDATES, C_NUMA_HINT_FAULTS,
 C_NUMA_HINT_FAULTS_LOCAL, C_NUMA_PAGES_MIGRATED, C_PGMIGRATE_SUCCESS, C_PGMIGRATE_FAIL,
 C_THP_FAULT_ALLOC, C_THP_FAULT_FALLBACK, C_THP_MIGRATION_SUCCESS, C_THP_MIGRATION_FAIL,
 C_THP_MIGRATION_SPLIT, C_THP_SPLIT_PMD, C_THP_SPLIT_PAGE, C_OOM_KILL,
 C_PROT_NUMA_FLUSHES) = range(len(VMSTAT_NAMES))
N_VMSTAT = len(VMSTAT_NAMES)
# reclaim events (docs/tiering.md §8), kept in vm[] after VMSTAT_NAMES; vmstat() lists them
# only with memory tiering on (as the reference model does)
TIER_VMSTAT_NAMES = ("pgscan_kswapd", "pgscan_direct", "pgscan_khugepaged", "pgscan_anon",
                     "pgscan_file", "pgsteal_kswapd", "pgsteal_direct", "pgsteal_khugepaged",
                     "pgsteal_anon", "pgsteal_file", "pageoutrun")
(C_PGSCAN_KSWAPD, C_PGSCAN_DIRECT, C_PGSCAN_KHUGEPAGED, C_PGSCAN_ANON, C_PGSCAN_FILE,
 C_PGSTEAL_KSWAPD, C_PGSTEAL_DIRECT, C_PGSTEAL_KHUGEPAGED, C_PGSTEAL_ANON, C_PGSTEAL_FILE,
 C_PAGEOUTRUN) = range(N_VMSTAT, N_VMSTAT + len(TIER_VMSTAT_NAMES))
N_VM_ALL = N_VMSTAT + len(TIER_VMSTAT_NAMES)

# per-node allocation counters (/sys/devices/system/node/nodeN/numastat names)
NUMASTAT_NAMES = ("numa_hit", "numa_miss", "numa_foreign", "interleave_hit",
                  "local_node", "other_node")
NS_HIT, NS_MISS, NS_FOREIGN, NS_INTERLEAVE, NS_LOCAL, NS_OTHER = range(6)
N_NUMASTAT = len(NUMASTAT_NAMES)
# the same counters under their /proc/vmstat names
NUMASTAT_VMSTAT_NAMES = ("numa_hit", "numa_miss", "numa_foreign", "numa_interleave",
                         "numa_local", "numa_other")

# --- page-table storage (kernels/state.py, pagetable.py) ---------------------------------
# A PTE block is found through a hash keyed by asid << ASID_SHIFT | pmd: 47-bit addresses
# have 2**26 PMDs per address space, so 27 bits leave room for the key's pmd part.
ASID_SHIFT = 27
PMD_KEY_MASK = (1 << ASID_SHIFT) - 1
# ctl[] words: blocks in use, frame records in use, frame records on the free list, hash
# slots taken
CTL_NBLOCKS, CTL_NFRAMES, CTL_NFREE, CTL_HCOUNT = range(4)
# memory tiering: the access sequence (the LRU approximation's clock, docs/tiering.md §7)
# and the splitmix64 state of the demotion target draw (T5)
CTL_ACCESS_SEQ, CTL_TIER_RNG = 4, 5
N_CTL = 6
# headroom a kernel needs before handling one more event (a fault may create a block and
# its page table's neighbour, and a THP's 512 frame records plus one)
ROOM_BLOCKS = 2
ROOM_FRAMES = PTRS_PER_PMD + 1

# --- opts[]: the knobs the kernels read (config.SimConfig.kernel_opts fills them by name;
# knobs only Python reads, such as thp_update_count, are not here) ---------------------
OPT_NAMES = ("thp", "thp_defrag", "zero_page", "numa_stat", "numa_balancing",
             "pmd_numa_batching", "shared_page_rule", "last_node_filter",
             "migrate_rate_limit", "il_thp_base",
             # memory tiering (docs/tiering.md): on/off, demotion_enabled, 6.1 profile,
             # promote rate limit in pages/s (MB/s << 8), hot threshold and
             # scan_period_max in ms (the threshold's adjustment period)
             "memory_tiering", "demotion_enabled", "tiering_61", "promote_rate_pages",
             "hot_threshold_ms", "scan_period_max_ms",
             # debugfs fault_around_bytes in pages (1: no fault-around)
             "fault_around_pages")
(OPT_THP, OPT_THP_DEFRAG, OPT_ZERO_PAGE, OPT_NUMA_STAT, OPT_NUMA_BALANCING,
 OPT_PMD_NUMA_BATCHING, OPT_SHARED_PAGE_RULE, OPT_LAST_NODE_FILTER, OPT_MIGRATE_RATE_LIMIT,
 OPT_IL_THP_BASE, OPT_MEMORY_TIERING, OPT_DEMOTION_ENABLED, OPT_TIERING_61,
 OPT_PROMOTE_RATE, OPT_HOT_THRESHOLD_MS, OPT_SCAN_PERIOD_MAX_MS,
 OPT_FAULT_AROUND_PAGES) = range(len(OPT_NAMES))
N_OPTS = len(OPT_NAMES)
# values of opts[OPT_THP] and opts[OPT_THP_DEFRAG]
THP_NEVER, THP_MADVISE, THP_ALWAYS = 0, 1, 2
DEFRAG_ALWAYS, DEFRAG_MADVISE, DEFRAG_NEVER = 0, 1, 2

# --- tasks[slot, T_*]: a thread's row (NUMA-balancing state; times in ns, periods in ms) --
(T_TID, T_ASID, T_START, T_NODE_STAMP, T_SCAN_PERIOD, T_SCAN_PERIOD_MAX, T_SCAN_SEQ,
 T_PREFERRED, T_MIGRATE_RETRY, T_PAGES_MIGRATED, T_LOC_REMOTE, T_LOC_LOCAL,
 T_LOC_FAILED) = range(13)
# ... and what the event loop reads and writes: the thread's process, CPU, policy row, and
# its accesses to memory on its CPU's node / elsewhere (T_ACC_REMOTE = T_ACC_LOCAL + 1)
T_PID, T_CPU, T_POLICY, T_ACC_LOCAL, T_ACC_REMOTE = range(13, 18)
N_TASK = 18
# task_faults[slot, node, F_*]: memory faults (decayed) and the buffer since placement
F_MEM_SHARED, F_MEM_PRIVATE, F_BUF_SHARED, F_BUF_PRIVATE = range(4)
N_TASK_FAULTS = 4
# mms[asid, M_*]: an address space's scan state; scan_min/max are the latest snapshot
M_NEXT_SCAN, M_SCAN_SEQ, M_SCAN_OFFSET, M_SCAN_MIN, M_SCAN_MAX = range(5)
N_MM = 5
# numa_nodes[node, N_*]: the seed's migration rate-limit window, and the nearest CPU node
N_RATE_END, N_RATE_PAGES, N_NEAREST_CPU_NODE = range(3)
# ... memory tiering (docs/tiering.md; kernels/tiering.py, kernels/reclaim.py): the node's
# tier facts (top tier 0/1, WMARK_PROMO, promo + max(1 GiB, node/16) of P4, demotion targets as node bitmasks), pgdat's nbp_*
# promotion state (threshold ms, candidates at the last adjustment, its start ms, the
# rate-limit window's start ms (NBP_NONE: none yet) and candidates then), kswapd (wake
# time ns, -1 none; failures), and the per-node counters of node_vmstat()
(N_TOPTIER, N_WMARK_PROMO, N_PROMO_ROOM, N_DEMOTE_PREFERRED, N_DEMOTE_LOWER, N_NBP_THRESHOLD,
 N_NBP_TH_NR_CAND, N_NBP_TH_START, N_NBP_RL_START, N_NBP_RL_NR_CAND, N_KSWAPD_WAKE,
 N_KSWAPD_FAILURES, N_PGPROMOTE_SUCCESS, N_PGPROMOTE_CANDIDATE, N_PGDEMOTE_KSWAPD,
 N_PGDEMOTE_DIRECT, N_PGDEMOTE_KHUGEPAGED) = range(3, 20)
N_NODE = 20
NODE_VMSTAT_NAMES = ("pgpromote_success", "pgpromote_candidate", "pgdemote_kswapd",
                     "pgdemote_direct", "pgdemote_khugepaged")   # columns N_PGPROMOTE_SUCCESS..
NBP_NONE = -(1 << 62)        # nbp_rl_start before the first candidate
# task_numa_fault flags (TNF_*)
TNF_MIGRATED, TNF_MIGRATE_FAIL = 1, 2

# --- migration (kernels/migrate.py) ----------------------------------------------------
TARGET_POLICY, TARGET_NODE = 0, 1            # how destinations are chosen
# stats[] slots (struct migrate_pages_stats) and the result slots after them
S_SUCCEEDED, S_FAILED_PAGES, S_THP_SUCCEEDED, S_THP_FAILED, S_THP_SPLIT, S_SPLIT = range(6)
N_STATS = 6

# --- the event loop's status codes (kernels/events.py; the index reached is in pos[0]) --
(EV_DONE, EV_NEED_GROW, EV_SEGV, EV_OOM, EV_CONTROL, EV_NEW_THREAD, EV_TIME, EV_BAD_PID,
 EV_BAD_CPU) = range(9)
