"""Engine behaviours beyond the spec's checklist: memory layout, growth, THP, fork, shm."""
import errno

import numpy as np
import pytest

import fastnuma as fn
from fastnuma.constants import PAGE_SIZE
from fastnuma.kernels.invariants import pte_node_mismatch

MB = 1 << 20


def machine(nodes=2, pages=1 << 14, **knobs):
    return fn.Simulator(fn.Topology.uniform(nodes, 2, pages), **knobs)


def pages_of(addr, n):
    return addr + PAGE_SIZE * np.arange(n, dtype=np.int64)


def test_sparse_address_space_costs_what_is_touched():
    sim = machine(pages=1 << 16)
    pid = sim.spawn()
    rng = np.random.default_rng(1)
    addrs = np.unique(rng.integers(1, 1 << 35, 3000)) << 12          # scattered over 128 TiB
    for a in addrs[:50]:
        sim.mmap(pid, PAGE_SIZE, addr=int(a))
    sim.access(pid, addrs[:50], write=True)
    assert sim.pt.n_blocks == 50                                      # one PTE block each
    assert sim.pt.ptes.nbytes < 8 * MB
    assert (sim.page_nodes(pid, int(addrs[0]), PAGE_SIZE) == 0).all()


def test_results_do_not_depend_on_growth():
    def run(blocks, frames):
        sim = machine()
        sim.pt.reserve(blocks, frames)
        pid = sim.spawn()
        a = sim.mmap(pid, 40 * MB)
        rng = np.random.default_rng(7)
        sim.access(pid, a + (rng.integers(0, 10240, 20000) << 12), write=rng.random(20000) < .5)
        return sim.vmstat(), sim.numa_maps(pid), sim.page_nodes(pid, a, 40 * MB)
    small, big = run(2, 600), run(4096, 1 << 16)
    assert small[0] == big[0] and small[1] == big[1]
    assert (small[2] == big[2]).all()


def test_kernel_state_is_borrowed_and_held_by_the_proxy():
    """The kernels' SimState holds its arrays borrowed and takes no reference of its own:
    the Python proxy holds both (kernels/state.py). After growth and many kernel calls the
    struct still has exactly the proxy's reference, and the arrays kernels write are the
    ones Python reads."""
    import gc
    sim = machine()
    pid = sim.spawn()
    a = sim.mmap(pid, 64 * MB)
    sim.access(pid, pages_of(a, 16384), write=True)          # grows blocks and frames
    gc.collect()                                               # old arrays are gone
    assert sim.st._meminfo.refcount == 1
    assert sim.st.arrays["ptes"] is sim.pt.ptes and sim.st.ptes is sim.pt.ptes
    assert sim.vmstat()["pgfault"] == 16384
    assert (sim.page_nodes(pid, a, 64 * MB) >= 0).all()
    with pytest.raises(KeyError, match="no such SimState fields"):
        sim.st.replace(nope=np.zeros(1))


def test_access_batch_counts_local_and_remote_per_thread():
    sim = machine()
    pid = sim.spawn(cpu=0)
    t1 = sim.clone(pid, cpu=2)                                        # node 1
    a = sim.mmap(pid, MB)
    sim.access(pid, pages_of(a, 256), write=True)
    sim.access(t1, pages_of(a, 256))
    assert (sim.threads[pid].local, sim.threads[pid].remote) == (256, 0)
    assert (sim.threads[t1].local, sim.threads[t1].remote) == (0, 256)
    assert sim.access_counts[1, 0, 0] == 256 and sim.access_counts[0, 0, 1] == 256


def test_read_fault_maps_the_zero_page_and_write_allocates():
    sim = machine()
    pid = sim.spawn(cpu=2)
    a = sim.mmap(pid, MB)
    sim.access(pid, a)
    assert sim.vmstat()["numa_hit"] == 0
    assert sim.move_pages(pid, [a]).tolist() == [-errno.EFAULT]      # the zero page
    assert sim.page_nodes(pid, a, PAGE_SIZE).tolist() == [0]
    sim.access(pid, a, write=True)
    assert sim.move_pages(pid, [a]).tolist() == [1]
    assert sim.vmstat()["numa_hit"] == 1 and sim.vmstat()["pgfault"] == 2


def test_zero_page_off_allocates_on_read():
    sim = machine(zero_page=False)
    pid = sim.spawn(cpu=2)
    a = sim.mmap(pid, MB)
    sim.access(pid, a)
    assert sim.move_pages(pid, [a]).tolist() == [1]


def test_thp_fault_allocates_one_folio_per_aligned_pmd():
    sim = machine(thp="always")
    pid = sim.spawn()
    a = sim.mmap(pid, 4 * MB)                         # 2 MiB aligned (a multiple of 2 MiB)
    assert a % (2 * MB) == 0
    sim.access(pid, [a, a + 3 * MB], write=True)
    vm = sim.vmstat()
    assert vm["thp_fault_alloc"] == 2 and vm["numa_hit"] == 2
    assert sim.free_pages()[0] == (1 << 14) - 1024
    assert "anon=1024" in sim.numa_maps(pid)


def test_thp_madvise_needs_madv_hugepage():
    sim = machine(thp="madvise")
    pid = sim.spawn()
    a = sim.mmap(pid, 4 * MB)
    sim.access(pid, a, write=True)
    assert sim.vmstat()["thp_fault_alloc"] == 0
    sim.madvise(pid, a + 2 * MB, 2 * MB, fn.MADV_HUGEPAGE)
    sim.access(pid, a + 2 * MB, write=True)
    assert sim.vmstat()["thp_fault_alloc"] == 1
    assert sim.numa_maps(pid).count("\n") == 2       # the advice split the VMA


def test_thp_falls_back_to_base_pages_when_start_node_is_full():
    sim = machine(pages=1000, thp="always")           # < 512 free after the first THP
    pid = sim.spawn()
    a = sim.mmap(pid, 4 * MB)
    sim.access(pid, [a, a + 2 * MB], write=True)
    vm = sim.vmstat()
    assert vm["thp_fault_alloc"] == 1 and vm["thp_fault_fallback"] == 1
    assert sim.free_pages().tolist() == [1000 - 513, 1000]


def test_fork_shares_private_pages_until_a_write_copies_them():
    sim = machine()
    pid = sim.spawn(cpu=0)
    a = sim.mmap(pid, MB)
    sim.access(pid, pages_of(a, 4), write=True)
    child = sim.fork(pid)
    assert "mapmax=2" in sim.numa_maps(child)
    free = sim.free_pages().copy()
    sim.sched(child, 2)
    sim.access(child, a, write=True)                  # COW copy on the child's node
    assert sim.move_pages(child, [a]).tolist() == [1]
    assert sim.move_pages(pid, [a]).tolist() == [0]
    assert sim.free_pages()[1] == free[1] - 1
    sim.access(pid, a, write=True)                    # mapcount 1 now: reused, no copy
    assert sim.free_pages()[0] == free[0]
    sim.exit(child)
    sim.exit(pid)
    assert sim.free_pages().tolist() == [1 << 14, 1 << 14]


def test_shared_anonymous_memory_is_one_object_across_fork():
    sim = machine()
    pid = sim.spawn(cpu=0)
    a = sim.mmap(pid, MB, fn.MAP_SHARED | fn.MAP_ANONYMOUS)
    child = sim.fork(pid)
    sim.sched(child, 2)
    sim.access(child, pages_of(a, 8))                 # shmem allocates even on read
    sim.access(pid, pages_of(a, 8))                   # the parent maps the same pages
    assert sim.move_pages(pid, pages_of(a, 8)).tolist() == [1] * 8
    assert sim.vmstat()["numa_hit"] == 8
    assert "mapmax=2" in sim.numa_maps(pid) and "file=/dev/zero\\040(deleted)" in sim.numa_maps(pid)
    sim.exit(pid)
    assert sim.free_pages()[1] == (1 << 14) - 8       # the child still maps the object
    sim.exit(child)
    assert sim.free_pages()[1] == 1 << 14


def test_shared_policy_is_seen_by_every_process_mapping_the_object():
    sim = machine()
    pid = sim.spawn(cpu=0)
    a = sim.mmap(pid, MB, fn.MAP_SHARED | fn.MAP_ANONYMOUS)
    child = sim.fork(pid)
    sim.mbind(pid, a, MB, fn.MPOL_BIND, {1})
    sim.access(child, pages_of(a, 4))
    assert sim.move_pages(child, pages_of(a, 4)).tolist() == [1] * 4
    assert sim.get_mempolicy(child, a, fn.MPOL_F_ADDR) == (fn.MPOL_BIND, frozenset({1}))


def test_segfault_names_the_element_and_keeps_earlier_accesses():
    sim = machine()
    pid = sim.spawn()
    a = sim.mmap(pid, MB)
    with pytest.raises(fn.SegmentationFault) as e:
        sim.access(pid, [a, a + PAGE_SIZE, a + 2 * MB], write=True)
    assert e.value.errno == errno.EFAULT and e.value.index == 2
    assert "element 2" in str(e.value)
    assert sim.vmstat()["numa_hit"] == 2


@pytest.mark.parametrize("bad", [-PAGE_SIZE, 1 << 47, (1 << 64) - 1])
def test_access_beyond_the_address_space_is_a_segfault(bad):
    sim = machine()
    pid = sim.spawn()
    arr = np.array([bad], dtype=np.uint64 if bad >= 1 << 63 else np.int64)
    with pytest.raises(fn.SegmentationFault):
        sim.access(pid, arr)


def test_access_rejects_wrong_types():
    sim = machine()
    pid = sim.spawn()
    with pytest.raises(TypeError):
        sim.access(pid, np.array([1.5]))
    with pytest.raises(TypeError):
        sim.access(pid, "0x1000")
    with pytest.raises(ValueError):
        sim.access(pid, [0, 4096], write=[True])


def test_bind_oom_kills_the_process_and_frees_its_memory():
    sim = machine(pages=256)
    pid = sim.spawn(cpu=0)
    other = sim.spawn(cpu=2)
    sim.set_mempolicy(pid, fn.MPOL_BIND, {1})
    a = sim.mmap(pid, 2 * MB)
    with pytest.raises(fn.OutOfMemory) as e:
        sim.access(pid, pages_of(a, 512), write=True)
    assert e.value.errno == errno.ENOMEM and e.value.pid == pid
    assert sim.vmstat()["oom_kill"] == 1
    assert sim.free_pages().tolist() == [256, 256]       # never a page outside the mask
    with pytest.raises(OSError) as e:
        sim.access(pid, a)
    assert e.value.errno == errno.ESRCH
    assert sim.pids() == [other]


def test_munmap_splits_a_thp_and_frees_exactly_the_range():
    sim = machine(thp="always")
    pid = sim.spawn()
    a = sim.mmap(pid, 2 * MB)
    sim.access(pid, a, write=True)
    sim.munmap(pid, a + MB, MB)
    assert sim.free_pages()[0] == (1 << 14) - 256
    assert sim.vmstat()["thp_split_page"] == 1
    assert (sim.page_nodes(pid, a, MB) == 0).all()


def test_mmap_top_down_and_fixed_replacement():
    sim = machine()
    pid = sim.spawn()
    a = sim.mmap(pid, 2 * MB)
    b = sim.mmap(pid, PAGE_SIZE)
    assert a == 0x7F0000000000 - 2 * MB and b == a - PAGE_SIZE
    sim.access(pid, a, write=True)
    assert sim.mmap(pid, PAGE_SIZE, addr=a) == a                  # MAP_FIXED replaces
    assert sim.free_pages()[0] == 1 << 14
    assert sim.move_pages(pid, [a]).tolist() == [-errno.ENOENT]


def test_adjacent_private_mappings_merge():
    sim = machine()
    pid = sim.spawn()
    a = sim.mmap(pid, MB, addr=1 << 30)
    sim.mmap(pid, MB, addr=(1 << 30) + MB)
    assert sim.numa_maps(pid) == f"{a:08x} default\n"


def test_numa_maps_shows_the_leader_task_policy_for_vmas_without_policy():
    sim = machine()
    pid = sim.spawn()
    a = sim.mmap(pid, MB)
    sim.set_mempolicy(pid, fn.MPOL_INTERLEAVE | fn.MPOL_F_STATIC_NODES, {0, 1})
    assert sim.numa_maps(pid) == f"{a:08x} interleave=static:0-1\n"


def test_a_petabyte_machine_costs_what_is_touched():
    sim = fn.Simulator(fn.Topology.uniform(2, 2, 1 << 40))          # 2 x 4 PiB of memory
    pid = sim.spawn()
    a = sim.mmap(pid, 4 * MB)
    sim.access(pid, pages_of(a, 1024), write=True)
    assert sim.pt.frames.nbytes <= 12 << 20
    assert sim.free_pages()[0] == (1 << 40) - 1024


def test_frame_table_grows_past_its_initial_size():
    sim = fn.Simulator(fn.Topology.uniform(1, 1, 3 << 20), thp="madvise")
    pid = sim.spawn()
    a = sim.mmap(pid, 6 << 30)                                  # THPs first, then base pages
    sim.madvise(pid, a, 640 * 2 * MB, fn.MADV_HUGEPAGE)
    sim.access(pid, a + (2 * MB) * np.arange(640), write=True)  # 640 THPs = 327680 pages
    sim.access(pid, pages_of(a + 640 * 2 * MB, 1 << 20), write=True)
    assert sim.pt.frames.size > 1 << 20
    sim.set_mempolicy(pid, fn.MPOL_BIND, {0})
    assert (sim.move_pages(pid, [a], 0) == 0).all()
    assert sim.free_pages()[0] == (3 << 20) - 640 * 512 - (1 << 20)


def test_clone_inherits_the_interleave_position():
    sim = machine(nodes=3)
    pid = sim.spawn()
    sim.set_mempolicy(pid, fn.MPOL_INTERLEAVE, [0, 1, 2])
    assert sim.page_cache_read(pid, 2).tolist() == [0, 1]
    tid = sim.clone(pid)
    assert sim.get_mempolicy(tid, flags=fn.MPOL_F_NODE) == 2
    assert sim.page_cache_read(tid, 3).tolist() == [2, 0, 1]


def test_page_cache_read_beyond_memory_is_enomem_not_a_huge_scratch_array():
    sim = machine(pages=100)
    pid = sim.spawn()
    with pytest.raises(OSError) as e:
        sim.page_cache_read(pid, 10 ** 13)
    assert e.value.errno == errno.ENOMEM
    assert sim.free_pages().tolist() == [0, 0]
    sim.drop_caches()
    assert sim.free_pages().tolist() == [100, 100]


def accessed_as(sim, tid, addrs, write=False):
    """Access ``addrs`` by ``tid``; the access-matrix rows added must be what the frames'
    nodes give (the event loop reads the node cached in the PTE, dtypes.PTE_NODE_SHIFT)."""
    assert pte_node_mismatch(sim.st) == -1
    before = sim.access_counts.copy()
    sim.access(tid, addrs, write=write)
    th = sim.threads[tid]
    nodes = np.concatenate([sim.page_nodes(th.pid, int(x), PAGE_SIZE) for x in addrs])
    cpu_node = sim.topology.cpu_node[th.cpu]
    added = sim.access_counts - before
    assert added[cpu_node, :, int(write)].tolist() == \
        np.bincount(nodes, minlength=added.shape[1]).tolist()
    assert pte_node_mismatch(sim.st) == -1


@pytest.mark.parametrize("thp", ["never", "always"])
def test_node_cached_in_the_pte_follows_every_migration(thp):
    sim = machine(thp=thp)
    pid = sim.spawn(cpu=0)
    t1 = sim.clone(pid, cpu=2)                                        # node 1
    a = sim.mmap(pid, 4 * MB)
    pages = pages_of(a, 1024)
    accessed_as(sim, pid, pages[::3])                                 # zero pages (reads)
    accessed_as(sim, pid, pages, write=True)                          # node 0
    sim.move_pages(pid, pages[:8], [1] * 8)                           # a THP: split first
    accessed_as(sim, t1, pages)
    sim.mbind(pid, a, 2 * MB, fn.MPOL_LOCAL, flags=fn.MPOL_MF_MOVE | fn.MPOL_MF_LAZY)
    accessed_as(sim, t1, pages[:512])                                 # hinting faults
    assert sim.vmstat()["numa_pages_migrated"] > 0
    accessed_as(sim, pid, pages)
    child = sim.fork(pid)                                             # shared: not cached
    accessed_as(sim, child, pages)
    sim.migrate_pages(pid, [1], [0])
    accessed_as(sim, t1, pages)
    accessed_as(sim, child, pages[::2], write=True)                   # COW copies
    accessed_as(sim, pid, pages, write=True)                          # reuse: cached again
    sim.move_pages(pid, pages[512:], [1] * 512)
    accessed_as(sim, pid, pages)
    accessed_as(sim, child, pages)


def test_look_ahead_resumes_right_after_a_run():
    """A run of present-page events (kernels/events.py) skips the look-ahead; the event
    after it must not take the PTE block looked up for an event 32 back (another PMD)."""
    def run(one_at_a_time):
        sim = machine(pages=1 << 16)
        pid = sim.spawn(cpu=0)
        a = sim.mmap(pid, 64 * 2 * MB)
        sim.access(pid, pages_of(a + 40 * 2 * MB, 512), write=True)  # PMD 40: present
        last = a + 7 * 2 * MB + 5 * PAGE_SIZE
        touched = np.concatenate([a + np.arange(40) * 2 * MB,          # a page per PMD
                                  pages_of(a + 40 * 2 * MB, 100),      # a run of 100
                                  [last]])                             # then PMD 7 again
        for part in np.split(touched, touched.size) if one_at_a_time else [touched]:
            sim.access(pid, part)
        assert sim.page_nodes(pid, last, PAGE_SIZE)[0] >= 0
        return sim

    sim, one_by_one = run(False), run(True)
    assert sim.vmstat() == one_by_one.vmstat()
    assert (sim.access_counts == one_by_one.access_counts).all()
