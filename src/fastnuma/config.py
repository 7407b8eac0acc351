"""SimConfig: the simulator's kernel knobs, under their Linux names, checked once."""
from dataclasses import dataclass

from .constants import DEFAULT_MAX_MAP_COUNT
from .kernels.alloc import (DEFRAG_ALWAYS, DEFRAG_MADVISE, DEFRAG_NEVER, THP_ALWAYS,
                            THP_MADVISE, THP_NEVER)

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
        kernel.numa_balancing (the scanner arrives with the lazy-migration issue; here the
        value is validated and stored).
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
    """
    thp: str = "never"
    thp_defrag: str = "madvise"
    numa_balancing: int = 0
    interleave_weights: dict = None
    linux_strict_flags: bool = False
    max_map_count: int = DEFAULT_MAX_MAP_COUNT
    zero_page: bool = True
    numa_stat: bool = True

    def __post_init__(self):
        if self.thp not in _THP:
            raise ValueError(f"thp={self.thp!r}: expected one of {sorted(_THP)}")
        if self.thp_defrag not in _DEFRAG:
            raise ValueError(f"thp_defrag={self.thp_defrag!r}: expected one of "
                             f"{sorted(_DEFRAG)}")
        if self.numa_balancing not in (0, 1, 2, 3):
            raise ValueError(f"numa_balancing={self.numa_balancing!r}: expected 0, 1, 2 or 3")
        if not isinstance(self.max_map_count, int) or self.max_map_count < 1:
            raise ValueError(f"max_map_count={self.max_map_count!r}: expected an int >= 1")
        if self.interleave_weights is not None:
            if not isinstance(self.interleave_weights, dict):
                raise TypeError("interleave_weights must be a dict {node: weight}")
            for node, w in self.interleave_weights.items():
                if not isinstance(node, int) or not isinstance(w, int) or not 0 <= w <= 255:
                    raise ValueError(f"interleave_weights[{node!r}]={w!r}: weights are ints "
                                     f"0..255 keyed by node id")

    def check_against(self, topology):
        """Knobs that name nodes must name nodes of the topology."""
        for node in (self.interleave_weights or {}):
            if not 0 <= node < topology.n_nodes:
                raise ValueError(f"interleave_weights names node {node}; the topology has "
                                 f"nodes 0..{topology.n_nodes - 1}")

    def kernel_opts(self):
        """The opts[] array of kernels.state.SimState, in slot order."""
        return [_THP[self.thp], _DEFRAG[self.thp_defrag], int(self.zero_page),
                int(self.numa_stat)]
