"""Page-table storage shared by every kernel: PTE blocks behind a hash of PMD keys, and frames.

Page tables are sized by what is mapped, not by the address span: a block of 512 PTEs (one
page-table page, 2 MiB of address space) exists only where something was mapped, found
through an open-addressing hash keyed by ``asid << ASID_SHIFT | pmd``. An asid names an
address space: a process, or a shared memory object (whose "page table" is its page cache,
indexed by page offset). Python (``pagetable.py``) allocates and grows the arrays; kernels
report that they need room (ACCESS_NEED_GROW) before touching anything.
"""
import numpy as np
from numba.core import cgutils, types
from numba.core.datamodel import models
from numba.extending import NativeValue, box, register_model, unbox
from numba.experimental import structref

from ..constants import LAST_CPUPID_UNSET, PAGE_SHIFT, TASK_SIZE
from ..dtypes import (ASID_SHIFT, PMD_KEY_MASK, C_THP_SPLIT_PAGE, C_THP_SPLIT_PMD, CTL_HCOUNT, CTL_NBLOCKS,
                      CTL_NFRAMES, CTL_NFREE, FRAME_FREE, PTE_HUGE, PTE_NODE_MASK,
                      PTE_NODE_SHIFT, PTE_ZERO, PTRS_PER_PMD, PTRS_PER_PMD_SHIFT)
from ._jit import kernel
from .borrowed import borrowed, invariant_getattr, uncounted

EMPTY = -1                            # a free slot of the PMD hash
# PMD indices of the user address space (47-bit addresses: 2**26 PMDs); a larger or a
# negative PMD index is a segfault
USER_PMD_BITS = (TASK_SIZE.bit_length() - 1) - PAGE_SHIFT - PTRS_PER_PMD_SHIFT

STATE_FIELDS = (
    # page tables and frames (grown by pagetable.PageTable)
    "ptes", "blk_key", "blk_used", "blk_table", "blk_numa", "pmd_hash", "frames",
    "frame_free", "frame_lru", "ctl",
    # the machine (engine.Simulator): topology, free pages, counters, policies, knobs
    "cpu_node", "fallback", "free", "wmark_min", "wmark_low", "wmark_high", "il_weight",
    "numastat", "vm", "policies", "opts",
    # NUMA balancing (kernels/numa.py): threads, address spaces, nodes, the clock (ns)
    "tasks", "task_faults", "mms", "numa_nodes", "clock",
)


@structref.register
class SimStateType(types.StructRef):
    """Numba type of :class:`SimState`: its array fields are UncountedArray."""

    def preprocess_fields(self, fields):
        return tuple((name, uncounted(types.unliteral(typ))) for name, typ in fields)


invariant_getattr(SimStateType)     # replaces structref's getter (registered above)


@register_model(SimStateType)
class UncountedStructRefModel(models.StructModel):
    """SimStateType's data model: the payload's meminfo as a plain pointer, so kernels do
    not count references to the state when they pass it to each other. Numba's
    StructRefModel would, with an atomic increment and decrement around every call (a
    fence each: a fifth of the fault path's time, measured). The Python proxy owns the
    one reference (the constructor's); unboxing borrows it, as for any argument."""

    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, [("meminfo", types.voidptr)])


class SimState(structref.StructRefProxy):
    """Every array the kernels share, passed by reference as one argument.

    A StructRef rather than a namedtuple: a tuple of arrays is passed by value, and every
    call between kernels pays a reference-count update per member (about 5 ns each,
    measured); a StructRef with an uncounted model (UncountedStructRefModel) costs none.

    The arrays are held *borrowed*: the struct's copies carry no Numba reference (a null
    meminfo), and this Python object keeps the arrays alive (``arrays``). Counted, every
    read of a struct field (``st.ptes``) in a kernel was an atomic update: a fifth of the
    hinting-fault path's time, and, being fences, they kept the CPU from overlapping
    cache misses. The fields are typed UncountedArray (borrowed.py), so Numba counts no
    reference to them at all, and read with invariant loads. Replace arrays only with
    :meth:`replace`.
    """

    def __new__(cls, **arrays):
        # the cached constructor below: Numba's own (StructRefProxy.__new__) is compiled
        # again in every process, 1-2.5 s of each start (measured)
        self = _new_state(*(arrays[f] for f in STATE_FIELDS))
        self.arrays = {f: arrays[f] for f in STATE_FIELDS}
        # the constructor stored references: store the arrays again, borrowed
        _store_borrowed(self, *(self.arrays[f] for f in STATE_FIELDS))
        return self

    def replace(self, **arrays):
        """Hand the kernels new arrays for some fields (after a table grew)."""
        unknown = set(arrays) - set(STATE_FIELDS)
        if unknown:
            raise KeyError(f"no such SimState fields: {sorted(unknown)}")
        self.arrays.update(arrays)          # held here first: the struct only borrows them
        _store_borrowed(self, *(self.arrays[f] for f in STATE_FIELDS))


structref.define_constructor(SimState, SimStateType, list(STATE_FIELDS))


@kernel
def _new_state(ptes, blk_key, blk_used, blk_table, blk_numa, pmd_hash, frames, frame_free,
               frame_lru, ctl, cpu_node, fallback, free, wmark_min, wmark_low, wmark_high,
               il_weight, numastat, vm, policies, opts, tasks, task_faults, mms, numa_nodes,
               clock):
    """SimState's constructor, compiled once and cached (argument order: STATE_FIELDS)."""
    return SimState(ptes, blk_key, blk_used, blk_table, blk_numa, pmd_hash, frames,
                    frame_free, frame_lru, ctl, cpu_node, fallback, free, wmark_min, wmark_low,
                    wmark_high, il_weight, numastat, vm, policies, opts, tasks,
                    task_faults, mms, numa_nodes, clock)


@box(SimStateType)
def _box_state(typ, val, c):
    """The constructor's result to a SimState (as structref.define_boxing does)."""
    meminfo = cgutils.create_struct_proxy(typ)(c.context, c.builder, value=val).meminfo
    boxed_meminfo = c.box(types.MemInfoPointer(types.voidptr), meminfo)   # steals it
    ctor = c.pyapi.unserialize(c.pyapi.serialize_object(SimState._numba_box_))
    ty = c.pyapi.unserialize(c.pyapi.serialize_object(typ))
    res = c.pyapi.call_function_objargs(ctor, [ty, boxed_meminfo])
    c.pyapi.decref(ctor)
    c.pyapi.decref(ty)
    c.pyapi.decref(boxed_meminfo)
    return res


@unbox(SimStateType)
def _unbox_state(typ, obj, c):
    """A SimState argument, borrowed: the proxy holds the reference for the call (the
    uncounted model never releases one, so none is taken)."""
    mip = types.MemInfoPointer(types.voidptr)
    mi_obj = c.pyapi.object_getattr_string(obj, "_meminfo")
    meminfo = c.unbox(mip, mi_obj).value          # a new reference ...
    c.context.nrt.decref(c.builder, mip, meminfo)   # ... given back at once
    c.pyapi.decref(mi_obj)
    ref = cgutils.create_struct_proxy(typ)(c.context, c.builder)
    ref.meminfo = meminfo
    return NativeValue(ref._getvalue())


for _name in STATE_FIELDS:   # Python reads the arrays it holds (a borrowed one cannot be boxed)
    setattr(SimState, _name, property(lambda self, name=_name: self.arrays[name]))


@kernel
def _store_borrowed(st, ptes, blk_key, blk_used, blk_table, blk_numa, pmd_hash,
                     frames, frame_free, frame_lru, ctl, cpu_node, fallback, free, wmark_min,
                     wmark_low, wmark_high, il_weight, numastat, vm, policies, opts,
                     tasks, task_faults, mms, numa_nodes, clock):
    """Store every array into ``st``, borrowed (argument order: STATE_FIELDS)."""
    st.ptes = borrowed(ptes)
    st.blk_key = borrowed(blk_key)
    st.blk_used = borrowed(blk_used)
    st.blk_table = borrowed(blk_table)
    st.blk_numa = borrowed(blk_numa)
    st.pmd_hash = borrowed(pmd_hash)
    st.frames = borrowed(frames)
    st.frame_free = borrowed(frame_free)
    st.frame_lru = borrowed(frame_lru)
    st.ctl = borrowed(ctl)
    st.cpu_node = borrowed(cpu_node)
    st.fallback = borrowed(fallback)
    st.free = borrowed(free)
    st.wmark_min = borrowed(wmark_min)
    st.wmark_low = borrowed(wmark_low)
    st.wmark_high = borrowed(wmark_high)
    st.il_weight = borrowed(il_weight)
    st.numastat = borrowed(numastat)
    st.vm = borrowed(vm)
    st.policies = borrowed(policies)
    st.opts = borrowed(opts)
    st.tasks = borrowed(tasks)
    st.task_faults = borrowed(task_faults)
    st.mms = borrowed(mms)
    st.numa_nodes = borrowed(numa_nodes)
    st.clock = borrowed(clock)


@kernel(inline="always")
def hash_slot(key, mask):
    h = np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
    return np.int64(h >> np.uint64(20)) & mask


@kernel(inline="always")
def insert_block(pmd_hash, key, b):
    """Put (key, block b) in the first free slot of its probe sequence (open addressing)."""
    mask = pmd_hash.shape[0] - 1
    s = hash_slot(key, mask)
    while pmd_hash[s, 0] != EMPTY:
        s = (s + 1) & mask
    pmd_hash[s, 0] = key
    pmd_hash[s, 1] = b


@kernel(inline="always")
def lookup_block(pmd_hash, asid, pmd):
    """Index of the PTE block of (asid, pmd) in the PMD hash, or -1. A slot holds (key,
    block): one cache line per probe (separate key and block arrays took two: a minimal
    loop of random lookups ran 1.2-1.6x slower, and random present accesses 5-10%)."""
    key = (np.int64(asid) << ASID_SHIFT) | pmd
    mask = pmd_hash.shape[0] - 1
    s = hash_slot(key, mask)
    while True:
        k = pmd_hash[s, 0]
        if k == key:
            return pmd_hash[s, 1]
        if k == EMPTY:
            return np.int64(-1)
        s = (s + 1) & mask


@kernel(inline="always")
def block_of(pmd_hash, asid, pmd):
    """The PTE block of (asid, pmd), -1 when there is none or pmd is outside user space."""
    return lookup_block(pmd_hash, asid, pmd) if pmd >> USER_PMD_BITS == 0 else np.int64(-1)


@kernel(inline="always")
def block_vpn(blk_key, b):
    """The first vpn block ``b`` maps (its PMD number times 512)."""
    return (blk_key[b] & PMD_KEY_MASK) << PTRS_PER_PMD_SHIFT


@kernel(inline="always")
def entry_range(b, first, lo, hi):
    """Block ``b`` (mapping vpns from ``first``) over vpns [lo, hi): its first PTE index and
    the entries [i0, i1) of it inside the range (none when i0 >= i1)."""
    return b << PTRS_PER_PMD_SHIFT, max(lo - first, 0), min(hi - first, PTRS_PER_PMD)


@kernel(inline="always")
def block_span(blk_key, b, lo, hi):
    """The block walk's header, for every walk over page-table blocks: (base, first, i0,
    i1) of block ``b`` over vpns [lo, hi) (see block_vpn, entry_range)."""
    first = block_vpn(blk_key, b)
    base, i0, i1 = entry_range(b, first, lo, hi)
    return base, first, i0, i1


@kernel
def find_block(st, asid, pmd):
    """Index of the PTE block of (asid, pmd), or -1."""
    return lookup_block(st.pmd_hash, asid, pmd)


@kernel
def get_block(st, asid, pmd):
    """Index of the block of (asid, pmd), created empty if absent (the caller made room)."""
    b = find_block(st, asid, pmd)
    if b >= 0:
        return b
    key = (np.int64(asid) << ASID_SHIFT) | pmd
    b = st.ctl[CTL_NBLOCKS]
    st.ctl[CTL_NBLOCKS] = b + 1
    st.blk_key[b] = key
    st.blk_used[b] = 0
    st.blk_table[b] = 0
    st.blk_numa[b] = 0
    base = b << PTRS_PER_PMD_SHIFT
    for i in range(PTRS_PER_PMD):
        st.ptes[base + i]["frame"] = -1
        st.ptes[base + i]["flags"] = 0
    insert_block(st.pmd_hash, key, b)
    st.ctl[CTL_HCOUNT] += 1
    return b


@kernel(inline="always")
def pte_node_bits(node):
    """The PTE bits that cache ``node`` (dtypes.PTE_NODE_SHIFT): for an exclusive mapping
    of a fresh folio, or for the zero page."""
    return np.uint32((np.int64(node) + 1) << PTE_NODE_SHIFT)


@kernel(inline="always")
def set_pte_node(st, pi, node):
    """The folio mapped at pi moved to ``node``: the entry caching its node (a THP: its
    whole PMD) gets the new one. Only an exclusive mapping caches it, so there is no other."""
    fl = st.ptes[pi]["flags"]
    if not fl & PTE_NODE_MASK:
        return
    keep = ~np.uint32(PTE_NODE_MASK)
    bits = pte_node_bits(node)
    if fl & PTE_HUGE:
        base = (pi >> PTRS_PER_PMD_SHIFT) << PTRS_PER_PMD_SHIFT
        for i in range(PTRS_PER_PMD):
            st.ptes[base + i]["flags"] = (st.ptes[base + i]["flags"] & keep) | bits
    else:
        st.ptes[pi]["flags"] = (fl & keep) | bits


@kernel
def new_frame(st, node, order):
    """A frame record for a freshly allocated folio (the allocator already took the pages)."""
    nf = st.ctl[CTL_NFREE]
    if nf > 0:
        f = np.int64(st.frame_free[nf - 1])
        st.ctl[CTL_NFREE] = nf - 1
    else:
        f = st.ctl[CTL_NFRAMES]
        st.ctl[CTL_NFRAMES] = f + 1
    st.frames[f]["node"] = node
    st.frames[f]["order"] = order
    st.frames[f]["flags"] = 0
    st.frames[f]["mapcount"] = 0
    st.frames[f]["last_cpupid"] = LAST_CPUPID_UNSET
    st.frame_lru[f]["lru"] = 0              # never accessed, never examined (tiering)
    st.frame_lru[f]["seen"] = 0
    return f


@kernel
def release_frame(st, f):
    """Give a folio's pages back to its node and its record to the free list."""
    fr = st.frames[f]
    st.free[fr["node"]] += np.int64(1) << fr["order"]
    st.frames[f]["flags"] = FRAME_FREE
    st.frames[f]["mapcount"] = 0
    st.frame_free[st.ctl[CTL_NFREE]] = f
    st.ctl[CTL_NFREE] += 1


@kernel
def split_huge_pmd(st, b):
    """Split the PMD mapping of block b into 512 PTEs (__split_huge_pmd).

    fastnuma splits the folio with it (split_huge_page): a THP is either PMD-mapped
    everywhere or 512 base folios, so every process mapping the same THP sees the split.
    The huge zero page just becomes 512 zero-page PTEs.
    """
    base = b << PTRS_PER_PMD_SHIFT
    if not st.ptes[base]["flags"] & PTE_HUGE:
        return
    if st.ptes[base]["flags"] & PTE_ZERO:
        for i in range(PTRS_PER_PMD):
            st.ptes[base + i]["flags"] &= ~np.uint32(PTE_HUGE)
        st.blk_table[b] = 1
        st.vm[C_THP_SPLIT_PMD] += 1
        return
    f = np.int64(st.ptes[base]["frame"])
    node = st.frames[f]["node"]
    mapcount = st.frames[f]["mapcount"]
    cpupid = st.frames[f]["last_cpupid"]
    sub = np.empty(PTRS_PER_PMD, np.int64)
    sub[0] = f
    st.frames[f]["order"] = 0
    for i in range(1, PTRS_PER_PMD):
        sub[i] = new_frame(st, node, 0)
        st.frames[sub[i]]["mapcount"] = mapcount
        st.frames[sub[i]]["last_cpupid"] = cpupid
    for bb in range(st.ctl[CTL_NBLOCKS]):
        e = bb << PTRS_PER_PMD_SHIFT
        if st.ptes[e]["frame"] == f and st.ptes[e]["flags"] & PTE_HUGE:
            for i in range(PTRS_PER_PMD):
                st.ptes[e + i]["frame"] = sub[i]
                st.ptes[e + i]["flags"] &= ~np.uint32(PTE_HUGE)
            st.blk_table[bb] = 1                  # the PMD now points to a PTE table
            st.vm[C_THP_SPLIT_PMD] += 1
    st.vm[C_THP_SPLIT_PAGE] += 1


@kernel
def rehash(blk_key, n_blocks, pmd_hash):
    """Rebuild the PMD hash into a fresh (empty) table."""
    for b in range(n_blocks):
        insert_block(pmd_hash, blk_key[b], b)
