"""Long fuzzing and soak campaigns, on demand (before a release, or after touching the
reader, the replay loop or the kernels). Each runs a test of the suite's `soak` marker
with many examples and prints its rate:

    PYTHONPATH=src python tools/fuzz_campaign.py trace [EXAMPLES]     # trace reader fuzzing
    PYTHONPATH=src python tools/fuzz_campaign.py soak [PROGRAMS]      # differential soak

A failing trace is shrunk by hypothesis and printed; a differential mismatch is saved
as a reproducer under soak-failures/ (see tests/test_soak.py).
"""
import os
import sys
import time

TARGETS = {"trace": ("tests/test_fuzz_trace.py::test_fuzz_campaign", "FASTNUMA_FUZZ_EXAMPLES",
                     20000),
           "soak": ("tests/test_soak.py::test_differential_soak", "FASTNUMA_SOAK_PROGRAMS",
                    100000)}


def main(argv):
    if not argv or argv[0] not in TARGETS:
        print(__doc__)
        return 2
    test, env, default = TARGETS[argv[0]]
    count = int(argv[1]) if len(argv) > 1 else default
    os.environ[env] = str(count)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.chdir(root)
    import pytest
    t0 = time.perf_counter()
    rc = pytest.main(["-q", "-s", "-m", "soak", "-p", "no:cacheprovider", test])
    dt = time.perf_counter() - t0
    print(f"{argv[0]}: {count} examples in {dt:.0f} s ({count / dt:.1f}/s), exit {rc}")
    return int(rc)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
