"""The record layouts are a contract between kernels, Python and cached machine code."""
import numpy as np

from fastnuma import dtypes as d


def test_pte_layout_is_frozen():
    assert d.PTE_DTYPE.itemsize == 8
    assert d.PTE_DTYPE.names == ("frame", "flags")
    assert [d.PTE_DTYPE.fields[n][1] for n in d.PTE_DTYPE.names] == [0, 4]


def test_frame_layout_is_frozen():
    assert d.FRAME_DTYPE.itemsize == 12
    assert d.FRAME_DTYPE.names == ("node", "order", "flags", "mapcount", "last_cpupid")
    assert [d.FRAME_DTYPE.fields[n][1] for n in d.FRAME_DTYPE.names] == [0, 2, 3, 4, 8]


def test_vma_and_policy_layouts_are_frozen():
    assert d.VMA_DTYPE.itemsize == 48
    assert d.VMA_DTYPE.names[-1] == "pids" and d.VMA_DTYPE.fields["pids"][1] == 40
    assert d.POLICY_DTYPE.itemsize == 32


def test_flag_bits_are_disjoint():
    for group in ((d.PTE_PRESENT, d.PTE_NUMA, d.PTE_WRITE, d.PTE_HUGE, d.PTE_ZERO, d.PTE_DIRTY),
                  (d.VM_SHARED, d.VM_HUGEPAGE, d.VM_NOHUGEPAGE),
                  (d.FRAME_SHM, d.FRAME_FREE)):
        acc = 0
        for bit in group:
            assert bit & (bit - 1) == 0 and not acc & bit
            acc |= bit


def test_counter_names_are_unique_linux_names():
    names = d.VMSTAT_NAMES + d.NUMASTAT_VMSTAT_NAMES
    assert len(set(names)) == len(names)
    assert d.N_VMSTAT == len(d.VMSTAT_NAMES)
    assert np.arange(d.N_VMSTAT)[d.C_OOM_KILL] == d.VMSTAT_NAMES.index("oom_kill")
