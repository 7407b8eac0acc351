"""asv benchmarks of fastnuma (see ../README.md). One module per area: bench_access.py
(the access path), bench_syscalls.py (mbind, move_pages, migrate_pages, fork/COW),
bench_import.py (import and Numba compile times), bench_sweep.py (sweep throughput on
2 Dask workers vs one process); helpers in common.py.

Not here yet, because the features are not: bench_replay.py (Simulator.replay of trace
files, end to end) and bench_numa_hinting.py (change_prot_numa scans and hinting faults).
"""
