"""How long a 2**52 ns gap takes under NUMA balancing, by thread count (issue 18, fault 2).

    PYTHONPATH=src python tools/idle_gap.py [--gap NS] [--timeout S] 1 4 16

Two processes on a 2-node machine (the one of tests/test_idle_skip.py): one with N
threads, 2100 touched pages in two mappings; one with a touched shared mapping. Prints,
per N, the seconds ``advance(gap)`` took and the scheduler ticks run (after a warm-up
that compiles the kernels). Each N runs in a child process, stopped after --timeout s.
"""
import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))      # for tests.test_idle_skip


def machine(threads):
    """The machine of tests/test_idle_skip.py (its ``build``), engine side."""
    from tests.test_idle_skip import build
    return build("engine", threads=threads)[0]


def measure(threads, gap, out):
    from fastnuma.numa_balancing import NumaBalancing
    machine(threads).advance(10 ** 10)                      # compile
    ticks = [0]
    orig = NumaBalancing._task_tick_numa

    def counted(self, th):
        ticks[0] += 1
        return orig(self, th)

    NumaBalancing._task_tick_numa = counted
    m = machine(threads)
    t = time.perf_counter()
    m.advance(gap)
    out.put((time.perf_counter() - t, ticks[0]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("threads", nargs="*", type=int, default=[1, 4, 16])
    ap.add_argument("--gap", type=int, default=1 << 52, help="ns (default 2**52)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per thread count")
    args = ap.parse_args()
    for n in args.threads:
        q = mp.Queue()
        child = mp.Process(target=measure, args=(n, args.gap, q))
        child.start()
        child.join(args.timeout)
        if child.is_alive():
            child.terminate()
            child.join()
            print(f"threads={n}: stopped after {args.timeout:.0f} s", flush=True)
            continue
        secs, ticks = q.get()
        print(f"threads={n}: {secs:.3f} s, {ticks} ticks", flush=True)


if __name__ == "__main__":
    main()
