"""Record layouts, flag bits and counter ids: the one source of truth for kernels and Python.

Editing this file needs the Numba cache cleared (``__pycache__/*.nbi``/``*.nbc``): cached
kernels froze these constants when they were compiled (see STYLE.md, .ci/run does it).
"""
import numpy as np

# --- page-table entry: 8 bytes -------------------------------------------------------
# frame: index into the frame (folio) table, -1 when none (not present, or the zero page)
PTE_DTYPE = np.dtype([("frame", np.int32), ("flags", np.uint32)], align=True)
PTE_PRESENT = 1 << 0      # maps a page (a frame, or the zero page)
PTE_NUMA = 1 << 1         # PROT_NONE for NUMA hinting (change_prot_numa, issue 3)
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
FRAME_ISOLATED = 1 << 4   # queued for migration by the running move_pages
ZERO_PAGE_NODE = 0        # the zero page lives in the kernel image, on node 0

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

# per-node allocation counters (/sys/devices/system/node/nodeN/numastat names)
NUMASTAT_NAMES = ("numa_hit", "numa_miss", "numa_foreign", "interleave_hit",
                  "local_node", "other_node")
NS_HIT, NS_MISS, NS_FOREIGN, NS_INTERLEAVE, NS_LOCAL, NS_OTHER = range(6)
N_NUMASTAT = len(NUMASTAT_NAMES)
# the same counters under their /proc/vmstat names
NUMASTAT_VMSTAT_NAMES = ("numa_hit", "numa_miss", "numa_foreign", "numa_interleave",
                         "numa_local", "numa_other")
