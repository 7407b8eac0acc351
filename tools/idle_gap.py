"""How long a 2**52 ns gap takes under NUMA balancing, by thread count (issue 18, fault 2).

    PYTHONPATH=src python tools/idle_gap.py [--gap NS] [--timeout S] 1 4 16

Two processes on a 2-node machine (the one of tests/test_idle_skip.py): one with N
threads, 2100 touched pages in two mappings; one with a touched shared mapping. Prints,
per N, the seconds ``advance(gap)`` took and the scheduler ticks run (after a warm-up
that compiles the kernels). Each N runs in a child process, stopped after --timeout s.
"""
import argparse
import multiprocessing as mp
import time

import numpy as np

PAGE = 4096


def machine(threads):
    import fastnuma as fn
    m = fn.Simulator(fn.Topology(node_cpus=[[0, 1], [2, 3]], node_pages=[4096, 4096]),
                     numa_balancing=1, numa_balancing_scan_delay_ms=100,
                     numa_balancing_scan_period_min_ms=20,
                     numa_balancing_scan_period_max_ms=1000,
                     numa_balancing_scan_size_mb=4)
    p = m.spawn(cpu=0)
    a = m.mmap(p, 3000 * PAGE)
    m.access(p, a + np.arange(2000, dtype=np.int64) * PAGE, True)
    b = m.mmap(p, 600 * PAGE)
    m.access(p, b + np.arange(100, dtype=np.int64) * PAGE, True)
    for k in range(threads - 1):
        m.clone(p, cpu=2 + k % 2)
    q = m.spawn(cpu=3)
    c = m.mmap(q, 1000 * PAGE, fn.MAP_SHARED | fn.MAP_ANONYMOUS)
    m.access(q, c + np.arange(700, dtype=np.int64) * PAGE, True)
    return m


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
