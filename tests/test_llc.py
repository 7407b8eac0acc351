"""The LLC filter kernel against a plain-Python set-associative LRU model."""
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fastnuma.kernels.llc import llc_filter, new_cache


def model(addrs, sockets, use, size, ways, n_sockets):
    """Per socket, per set: an OrderedDict of lines in LRU order."""
    sets = size // (64 * ways)
    caches = [[OrderedDict() for _ in range(sets)] for _ in range(n_sockets)]
    out = []
    for a, s, u in zip(addrs, sockets, use):
        if not u:
            out.append(0)
            continue
        line = a >> 6
        c = caches[s][line % sets]
        if line in c:
            c.move_to_end(line)
            out.append(0)
        else:
            if len(c) == ways:
                c.popitem(last=False)
            c[line] = True
            out.append(1)
    return out


def run(addrs, sockets, use, size, ways, n_sockets, split=None):
    cache = new_cache(n_sockets, size, ways)
    addrs = np.asarray(addrs, np.uint64)
    sockets = np.asarray(sockets, np.int64)
    use = np.asarray(use, np.bool_)
    miss = np.zeros(addrs.size, np.uint8)
    cut = addrs.size // 2 if split else addrs.size
    for lo, hi in ((0, cut), (cut, addrs.size)):           # state persists across batches
        part = miss[lo:hi]
        llc_filter(addrs[lo:hi], sockets[lo:hi], use[lo:hi], *cache, part)
    return miss.tolist()


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_kernel_equals_lru_model(data):
    ways = data.draw(st.sampled_from([1, 2, 4, 8]))
    sets = data.draw(st.sampled_from([1, 2, 4, 16]))
    n_sockets = data.draw(st.integers(1, 3))
    n = data.draw(st.integers(0, 400))
    lines = data.draw(st.integers(1, 4 * ways * sets + 1))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    addrs = (rng.integers(0, lines, n) * 64 + rng.integers(0, 64, n)).tolist()
    sockets = rng.integers(0, n_sockets, n).tolist()
    use = (rng.random(n) < 0.9).tolist()
    size = 64 * ways * sets
    assert run(addrs, sockets, use, size, ways, n_sockets, split=True) == \
        model(addrs, sockets, use, size, ways, n_sockets)


def test_hand_cases():
    # 2 ways, 1 set: A B A C B -> miss miss hit miss(evicts B) miss(evicts A)
    a = [0, 64, 0, 128, 64]
    assert run(a, [0] * 5, [True] * 5, 128, 2, 1) == [1, 1, 0, 1, 1]
    # same line from two sockets: each socket misses once
    assert run([0, 0, 8, 8], [0, 1, 0, 1], [True] * 4, 128, 2, 2) == [1, 1, 0, 0]
    with pytest.raises(ValueError, match="multiple of 64 x ways"):
        new_cache(1, 100, 2)
