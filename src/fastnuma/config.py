"""SimConfig: the simulator's kernel knobs, under their Linux names, checked once."""
from dataclasses import dataclass, fields

import numpy as np

from .constants import DEFAULT_MAX_MAP_COUNT, PAGE_SHIFT, PAGE_SIZE
from .dtypes import (OPT_DEMOTION_ENABLED, OPT_HOT_THRESHOLD_MS, OPT_MEMORY_TIERING,
                     OPT_PROMOTE_RATE, OPT_SCAN_PERIOD_MAX_MS, OPT_TIERING_61)
from .dtypes import OPT_FAULT_AROUND_PAGES, PTRS_PER_PMD
from .dtypes import (DEFRAG_ALWAYS, DEFRAG_MADVISE, DEFRAG_NEVER, N_OPTS, OPT_IL_THP_BASE,
                     OPT_LAST_NODE_FILTER, OPT_MIGRATE_RATE_LIMIT, OPT_NUMA_BALANCING,
                     OPT_NUMA_STAT, OPT_PMD_NUMA_BATCHING, OPT_SHARED_PAGE_RULE,
                     OPT_THP, OPT_THP_DEFRAG, OPT_ZERO_PAGE, THP_ALWAYS, THP_MADVISE, THP_NEVER)

_THP = {"never": THP_NEVER, "madvise": THP_MADVISE, "always": THP_ALWAYS}
# /sys/kernel/mm/transparent_hugepage/defrag: may a THP fault reclaim directly?
_DEFRAG = {"always": DEFRAG_ALWAYS, "defer+madvise": DEFRAG_MADVISE,
           "madvise": DEFRAG_MADVISE, "defer": DEFRAG_NEVER, "never": DEFRAG_NEVER}


@dataclass(frozen=True, slots=True, kw_only=True)
class SimConfig:
    """Kernel knobs of a :class:`~fastnuma.Simulator`.

    thp : "never" | "madvise" | "always"
        /sys/kernel/mm/transparent_hugepage/enabled.
    thp_defrag : "always" | "defer" | "defer+madvise" | "madvise" | "never"
        /sys/kernel/mm/transparent_hugepage/defrag: whether a THP fault that cannot be
        served by its start node may reclaim and fall back to other nodes (always; the
        madvise forms only in MADV_HUGEPAGE areas) or uses base pages.
    numa_balancing : 0 | 1 | 2 | 3
        kernel.numa_balancing: bit 0 (1) runs the NUMA scanner in simulated time
        (docs/lazy-migration.md §6); bit 1 (2, NUMA_BALANCING_MEMORY_TIERING) promotes hot
        slow-tier pages (docs/tiering.md §5, §6); 3 both.
    numa_balancing_promote_rate_limit_MBps, numa_balancing_hot_threshold_ms : int
        sysctl kernel.numa_balancing_promote_rate_limit_MBps (65536) and debugfs
        numa_balancing/hot_threshold_ms (1000), docs/tiering.md §6.
    demotion_enabled : bool
        /sys/kernel/mm/numa/demotion_enabled: reclaim demotes to the next tier (§7).
    min_free_kbytes, watermark_scale_factor : int, optional
        vm.min_free_kbytes, vm.watermark_scale_factor: given, the watermarks are
        recomputed as Linux does (docs/tiering.md §3); None keeps the topology's.
    memory_tiering : bool, optional
        Model tiers, promotion and reclaim; None (default): on with the TIERING bit or
        demotion_enabled. Off, every node is top tier (the machine of issue 1-15).
    tiering_profile : "6.12" | "6.1"
        The counters' meaning (docs/tiering.md §8, V1/V2).
    numa_balancing_scan_delay_ms, numa_balancing_scan_period_min_ms,
    numa_balancing_scan_period_max_ms, numa_balancing_scan_size_mb : int
        The scanner's knobs (sysctl kernel.numa_balancing_*), Linux's defaults.
    profile : "mainline" | "seed"
        The defaults of the switches below: today's kernel, or the 2012 lazy-migration
        design (docs/linux-semantics.md §7). A switch given explicitly wins over the profile.
    noop_mode, pmd_numa_batching, shared_page_rule, pte_restore_timing, two_stage_filter,
    migrate_rate_limit, thp_update_count, skip_local_single_thread, interleave_thp_index
        The differences of docs/linux-semantics.md §7, one switch each (docs/lazy-migration.md §1).
    interleave_weights : {node: weight}
        /sys/kernel/mm/mempolicy/weighted_interleave/nodeN (0 or absent = 1).
    linux_strict_flags : bool
        True: mbind rejects MPOL_MF_LAZY with EINVAL, as every released Linux does.
        False (default): LAZY is accepted, the design fastnuma models.
    max_map_count : int
        vm.max_map_count.
    zero_page : bool
        A read fault on unpopulated private anonymous memory maps the shared zero page
        (Linux); False allocates on any first touch.
    numa_stat : bool
        vm.numa_stat: count the numa_* allocation counters.
    fault_around_bytes : int
        debugfs fault_around_bytes (65536): a read fault on shared anonymous memory maps
        the neighbouring pages already in the object, in a naturally aligned window of
        this many bytes (do_fault_around). Stored as fault_around_bytes_set does: rounded
        down to a power of two, at least a page (4096 turns fault-around off); more than
        PTRS_PER_PMD pages (val / 4096 > 512) is a ValueError (Linux: EINVAL), and so
        is 0 (fastnuma's choice: Linux's rounddown_pow_of_two(0) is undefined).
    """
    thp: str = "never"
    thp_defrag: str = "madvise"
    numa_balancing: int = 0
    interleave_weights: dict = None
    linux_strict_flags: bool = False
    max_map_count: int = DEFAULT_MAX_MAP_COUNT
    zero_page: bool = True
    numa_stat: bool = True
    numa_balancing_scan_delay_ms: int = 1000
    numa_balancing_scan_period_min_ms: int = 1000
    numa_balancing_scan_period_max_ms: int = 60000
    numa_balancing_scan_size_mb: int = 256
    profile: str = "mainline"
    noop_mode: bool = None
    pmd_numa_batching: bool = None
    shared_page_rule: bool = None
    pte_restore_timing: str = None
    two_stage_filter: str = None
    migrate_rate_limit: bool = None
    thp_update_count: int = None
    skip_local_single_thread: bool = None
    interleave_thp_index: str = None
    numa_balancing_promote_rate_limit_MBps: int = 65536
    numa_balancing_hot_threshold_ms: int = 1000
    demotion_enabled: bool = False
    min_free_kbytes: int = None
    watermark_scale_factor: int = None
    memory_tiering: bool = None
    tiering_profile: str = "6.12"
    fault_around_bytes: int = 65536

    def __post_init__(self):
        if self.profile not in PROFILES:
            raise ValueError(f"profile={self.profile!r}: expected one of {sorted(PROFILES)}")
        for name, value in PROFILES[self.profile].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
            elif getattr(self, name) not in _SWITCH_VALUES[name]:
                raise ValueError(f"{name}={getattr(self, name)!r}: expected one of "
                                 f"{_SWITCH_VALUES[name]}")
        _check_tiering(self)
        object.__setattr__(self, "fault_around_bytes",
                           fault_around_bytes_set(self.fault_around_bytes))
        for f in fields(self):
            if f.name.startswith("numa_balancing_") and f.name not in _TIER_INTS:
                v = getattr(self, f.name)
                low = 1 if "period" in f.name else 0
                if not isinstance(v, int) or isinstance(v, bool) or not low <= v < 1 << 40:
                    raise ValueError(f"{f.name}={v!r}: expected an int >= {low}")
        if self.thp not in _THP:
            raise ValueError(f"thp={self.thp!r}: expected one of {sorted(_THP)}")
        if self.thp_defrag not in _DEFRAG:
            raise ValueError(f"thp_defrag={self.thp_defrag!r}: expected one of "
                             f"{sorted(_DEFRAG)}")
        if self.numa_balancing not in (0, 1, 2, 3) or isinstance(self.numa_balancing, bool):
            raise ValueError(f"numa_balancing={self.numa_balancing!r}: expected 0, 1, 2 "
                             "or 3")
        if not isinstance(self.max_map_count, int) or self.max_map_count < 1:
            raise ValueError(f"max_map_count={self.max_map_count!r}: expected an int >= 1")
        if self.interleave_weights is not None:
            if not isinstance(self.interleave_weights, dict):
                raise TypeError("interleave_weights must be a dict {node: weight}")
            for node, w in self.interleave_weights.items():
                if not isinstance(node, int) or not isinstance(w, int) or not 0 <= w <= 255:
                    raise ValueError(f"interleave_weights[{node!r}]={w!r}: weights are ints "
                                     f"0..255 keyed by node id")

    @property
    def tiering_on(self):
        """Memory tiering modelled: ``memory_tiering``, or by default the TIERING bit of
        numa_balancing or demotion_enabled."""
        if self.memory_tiering is not None:
            return bool(self.memory_tiering)
        return bool(self.numa_balancing & 2 or self.demotion_enabled)

    def describe(self):
        """Every knob and its value (a dict, JSON-ready)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def check_against(self, topology):
        """Knobs that name nodes must name nodes of the topology."""
        for node in (self.interleave_weights or {}):
            if not 0 <= node < topology.n_nodes:
                raise ValueError(f"interleave_weights names node {node}; the topology has "
                                 f"nodes 0..{topology.n_nodes - 1}")

    def kernel_opts(self) -> np.ndarray:
        """The opts[] array the kernels read (dtypes.OPT_*), each slot set by its name."""
        values = {
            OPT_THP: _THP[self.thp],
            OPT_THP_DEFRAG: _DEFRAG[self.thp_defrag],
            OPT_ZERO_PAGE: self.zero_page,
            OPT_NUMA_STAT: self.numa_stat,
            OPT_NUMA_BALANCING: self.numa_balancing,
            OPT_PMD_NUMA_BATCHING: self.pmd_numa_batching,
            OPT_SHARED_PAGE_RULE: self.shared_page_rule,
            OPT_LAST_NODE_FILTER: self.two_stage_filter == "last_node",
            OPT_MIGRATE_RATE_LIMIT: self.migrate_rate_limit,
            OPT_IL_THP_BASE: self.interleave_thp_index == "base",
            OPT_MEMORY_TIERING: self.tiering_on,
            OPT_DEMOTION_ENABLED: self.demotion_enabled,
            OPT_TIERING_61: self.tiering_profile == "6.1",
            OPT_PROMOTE_RATE: self.numa_balancing_promote_rate_limit_MBps << 8,  # pages/s
            OPT_HOT_THRESHOLD_MS: self.numa_balancing_hot_threshold_ms,
            OPT_SCAN_PERIOD_MAX_MS: self.numa_balancing_scan_period_max_ms,
            OPT_FAULT_AROUND_PAGES: self.fault_around_bytes >> PAGE_SHIFT,
        }
        if len(values) != N_OPTS:                  # every slot has its knob
            raise AssertionError(f"kernel_opts sets {len(values)} of {N_OPTS} options")
        opts = np.zeros(N_OPTS, np.int64)
        for slot, value in values.items():
            opts[slot] = int(value)
        return opts


# docs/linux-semantics.md §7: each difference between the 2012 design and today's kernel
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
_SWITCH_VALUES = dict(noop_mode=(False, True), pmd_numa_batching=(False, True),
                      shared_page_rule=(False, True), pte_restore_timing=("after", "before"),
                      two_stage_filter=("last_cpupid", "last_node"),
                      migrate_rate_limit=(False, True), thp_update_count=(512, 1),
                      skip_local_single_thread=(False, True),
                      interleave_thp_index=("order", "base"))


def fault_around_bytes_set(val):
    """mm/memory.c fault_around_bytes_set: EINVAL (here ValueError) above PTRS_PER_PMD
    pages, else the largest power of two <= val, at least PAGE_SIZE. Returns the bytes
    fault_around_bytes_get then reads."""
    if not isinstance(val, int) or isinstance(val, bool):
        raise ValueError(f"fault_around_bytes={val!r}: expected an int")
    if val <= 0 or val // PAGE_SIZE > PTRS_PER_PMD:
        raise ValueError(f"fault_around_bytes={val!r}: expected 1.."
                         f"{(PTRS_PER_PMD + 1) * PAGE_SIZE - 1} (at most {PTRS_PER_PMD} pages)")
    return max(1 << (val.bit_length() - 1), PAGE_SIZE)


_TIER_INTS = ("numa_balancing_promote_rate_limit_MBps", "numa_balancing_hot_threshold_ms")


def _check_tiering(cfg):
    """The tiering knobs' ranges (docs/tiering.md §9), as the reference model checks them."""
    for name in _TIER_INTS:
        v = getattr(cfg, name)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << 32:
            raise ValueError(f"{name}={v!r}: expected an int >= 0")
    if cfg.tiering_profile not in ("6.12", "6.1"):
        raise ValueError(f"tiering_profile={cfg.tiering_profile!r}: expected '6.12' or '6.1'")
    for name, lo, hi in (("min_free_kbytes", 0, 1 << 40), ("watermark_scale_factor", 1, 3000)):
        v = getattr(cfg, name)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)
                              or not lo <= v <= hi):
            raise ValueError(f"{name}={v!r}: expected an int {lo}..{hi}")
    for name in ("demotion_enabled", "memory_tiering"):
        v = getattr(cfg, name)
        if v is not None and not isinstance(v, (bool, int)):
            raise TypeError(f"{name}={v!r}: expected a bool")
