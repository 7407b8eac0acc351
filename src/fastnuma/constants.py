"""Linux constants with their Linux values (include/uapi/linux/mempolicy.h, mman.h).

Plain ints, importable without Numba. fastnuma-only values say so in their name.
"""

# Memory policy modes
MPOL_DEFAULT = 0
MPOL_PREFERRED = 1
MPOL_BIND = 2
MPOL_INTERLEAVE = 3
MPOL_LOCAL = 4
MPOL_PREFERRED_MANY = 5
MPOL_WEIGHTED_INTERLEAVE = 6
MPOL_MAX = 7
# fastnuma: the seed's "apply the flags, keep the policies" mode of mbind (MPOL_NOOP of the
# 2012 lazy-migration series). 0x100 is neither a Linux mode (< MPOL_MAX) nor a mode flag
# (bits 13-15), so it cannot collide; Linux itself rejects it with EINVAL.
MPOL_NOOP = 0x100
SEED_MPOL_NOOP = 5                  # the seed's value of MPOL_NOOP (option noop_mode)

# Mode flags (or'ed into the mode argument)
MPOL_F_STATIC_NODES = 1 << 15
MPOL_F_RELATIVE_NODES = 1 << 14
MPOL_F_NUMA_BALANCING = 1 << 13
MPOL_MODE_FLAGS = MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES | MPOL_F_NUMA_BALANCING

# get_mempolicy flags
MPOL_F_NODE = 1 << 0
MPOL_F_ADDR = 1 << 1
MPOL_F_MEMS_ALLOWED = 1 << 2

# mbind flags
MPOL_MF_STRICT = 1 << 0
MPOL_MF_MOVE = 1 << 1
MPOL_MF_MOVE_ALL = 1 << 2
MPOL_MF_LAZY = 1 << 3
MPOL_MF_VALID = MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL

# Internal policy flags (never returned to users)
MPOL_F_MOF = 1 << 3
MPOL_F_MORON = 1 << 4

# last_cpupid of a folio: (cpu & 0x1FFF) << 8 | (pid & 0xFF); all ones = never faulted
LAST_CPUPID_PID_BITS = 8
LAST_CPUPID_CPU_BITS = 13           # NR_CPUS_BITS of a distribution kernel (8192 CPUs)
LAST_CPUPID_UNSET = (1 << (LAST_CPUPID_PID_BITS + LAST_CPUPID_CPU_BITS)) - 1

# fastnuma: a move_pages status Linux would leave unwritten (its positive return count)
MOVE_PAGES_UNWRITTEN = -(1 << 31)

# mmap flags
MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_HUGETLB = 0x40000

# mmap/mprotect protection (include/uapi/asm-generic/mman-common.h)
PROT_NONE = 0x0
PROT_READ = 0x1
PROT_WRITE = 0x2
PROT_EXEC = 0x4
PROT_SEM = 0x8                      # mprotect accepts it (arch_validate_prot); no effect
PROT_GROWSDOWN = 0x01000000         # mprotect only (no VMA here grows: EINVAL)
PROT_GROWSUP = 0x02000000

# madvise advice
MADV_NORMAL = 0
MADV_DONTNEED = 4
MADV_HUGEPAGE = 14
MADV_NOHUGEPAGE = 15

# Sizes
PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
HPAGE_PMD_ORDER = 9
HPAGE_PMD_NR = 1 << HPAGE_PMD_ORDER
HPAGE_PMD_SIZE = PAGE_SIZE * HPAGE_PMD_NR
TASK_SIZE = 1 << 47                 # x86-64 user address space, 4-level page tables
# fastnuma's time domain: trace ts and simulated time (ns) stay below 2**62 (146 years), so
# that tick and scan arithmetic (time + period, int64 in the kernels) cannot overflow
TIME_LIMIT_NS = 1 << 62
MAX_NUMNODES = 1024                 # CONFIG_NODES_SHIFT=10, as distribution kernels
MAX_SIM_NODES = 64                  # fastnuma: node masks are uint64 inside the engine
MAX_MASK_NODES = 8 * (1 << PAGE_SHIFT)  # nodes a node-mask argument may name (a page of bits)
DEFAULT_MAX_MAP_COUNT = 65530       # vm.max_map_count

# Time
NSEC_PER_MSEC = 1_000_000
TICK_NS = NSEC_PER_MSEC             # scheduler tick, HZ = 1000
NEVER = (1 << 63) - 1               # fastnuma: a time (ns) no event reaches

# NUMA balancing
MAX_SCAN_WINDOW = 2560              # MB (kernel/sched/fair.c)
RATELIMIT_PAGES = 32768             # seed: 128 MiB per destination per window
RATELIMIT_WINDOW_NS = 100 * NSEC_PER_MSEC
# hash_32(pid, ilog2(BITS_PER_LONG)) keeps the top 6 bits of the 32-bit product
GOLDEN_RATIO_32 = 0x61C88647
PID_BITS_SHIFT = 32 - 6

# Memory tiering (docs/tiering.md; Linux 6.12 values)
NUMA_BALANCING_NORMAL = 1           # kernel.numa_balancing bit 0
NUMA_BALANCING_MEMORY_TIERING = 2   # bit 1: promotion of slow-tier pages (TPP)
PAGE_ACCESS_TIME_MASK = LAST_CPUPID_UNSET   # folio_xchg_access_time: ms in the cpupid bits
PROMO_ROOM_MIN_PAGES = 262144       # pgdat_free_space_enough: 1 GiB (in 4 KiB pages)
SWAP_CLUSTER_MAX = 32               # reclaim batch (isolate_lru_folios), pages
MAX_RECLAIM_RETRIES = 16            # kswapd_failures at which a node is hopeless
DEFAULT_PROMOTE_RATE_LIMIT_MBPS = 65536   # numa_balancing_promote_rate_limit_MBps
DEFAULT_HOT_THRESHOLD_MS = 1000     # debugfs numa_balancing/hot_threshold_ms

# Trace event kinds (trace format v1)
OP_READ = 0
OP_WRITE = 1
OP_MMAP = 2
OP_MUNMAP = 3
OP_MBIND = 4
OP_SET_MEMPOLICY = 5
OP_MOVE_PAGES = 6
OP_SCHED = 7
OP_MADVISE = 8

MODE_NAMES = {
    MPOL_DEFAULT: "default",
    MPOL_PREFERRED: "prefer",
    MPOL_BIND: "bind",
    MPOL_INTERLEAVE: "interleave",
    MPOL_LOCAL: "local",
    MPOL_PREFERRED_MANY: "prefer (many)",
    MPOL_WEIGHTED_INTERLEAVE: "weighted interleave",
}
