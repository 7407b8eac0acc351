"""asv benchmarks of fastnuma (see ../README.md). One module per area: bench_access.py
(the access path), bench_syscalls.py (mbind, move_pages, migrate_pages, fork/COW),
bench_import.py (import and Numba compile times); helpers in common.py."""
