"""kernels/_numba_inline: Numba's IR inliner copies a callee's blocks with one memo per
scope inside an inline_ir call (the cold start's quadratic copy), and only there; what is
inlined computes what the plain Python does."""
import copy

import numpy as np
from numba.core import inline_closurecall, ir

from fastnuma.kernels import _numba_inline
from fastnuma.kernels._jit import kernel


@kernel(cache=False, inline="always")
def clamp(x, lo, hi):
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


@kernel(cache=False, inline="always")
def clamped_sum(a, lo, hi):
    s = np.int64(0)
    for i in range(a.size):
        s += clamp(a[i], lo, hi)
    return s


@kernel(cache=False)
def two_windows(a):
    """The same inlined chain at two call sites, each with its own variables."""
    first = clamped_sum(a, np.int64(0), np.int64(10))
    second = clamped_sum(a, np.int64(-5), np.int64(3))
    return first * 1000 + second


def two_windows_reference(a):
    first = sum(min(max(int(x), 0), 10) for x in a)
    second = sum(min(max(int(x), -5), 3) for x in a)
    return first * 1000 + second


def test_installed_once_and_idempotent():
    assert _numba_inline.install()
    wrapped = inline_closurecall.InlineWorker.inline_ir
    assert getattr(wrapped, "fastnuma_shared_memos", False)
    assert _numba_inline.install()
    assert inline_closurecall.InlineWorker.inline_ir is wrapped      # not wrapped twice


def test_inlined_chains_compute_what_python_does():
    rng = np.random.default_rng(7)
    for _ in range(5):
        a = rng.integers(-20, 30, size=rng.integers(0, 50)).astype(np.int64)
        assert two_windows(a) == two_windows_reference(a)


def _two_block_ir():
    scope = ir.Scope(None, ir.Loc("f", 1))
    loc = ir.Loc("f", 1)
    blocks = []
    for name in ("x", "y"):
        b = ir.Block(scope, loc)
        b.append(ir.Assign(ir.Const(1, loc), scope.redefine(name, loc), loc))
        blocks.append(b)
    return scope, blocks


def test_blocks_copied_inside_inline_ir_share_one_scope_copy():
    scope, blocks = _two_block_ir()
    shim = inline_closurecall.copy
    _numba_inline._state.memos = {}
    try:
        copies = [shim.deepcopy(b) for b in blocks]
    finally:
        _numba_inline._state.memos = None
    assert copies[0].scope is copies[1].scope
    assert copies[0].scope is not scope and copies[0].scope == scope
    assert copies[0].body[0].target is not blocks[0].body[0].target


def test_copies_outside_inline_ir_stay_independent():
    scope, blocks = _two_block_ir()
    shim = inline_closurecall.copy
    a, b = shim.deepcopy(blocks[0]), shim.deepcopy(blocks[0])
    assert a is not b and a.scope is not b.scope
    assert shim.deepcopy([1, [2]]) == copy.deepcopy([1, [2]])
