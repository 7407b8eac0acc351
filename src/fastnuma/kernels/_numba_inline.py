"""Numba's IR inliner without its quadratic copy (numba issue #8989, open in 0.68).

Before it inlines a kernel marked ``inline="always"``, Numba's ``InlineWorker.inline_ir``
deep-copies the callee's IR one block at a time, each with a fresh ``copy.deepcopy`` memo.
Every variable points at the function's ``ir.Scope``, which holds every variable, so each
block's copy takes a copy of the whole scope with it: the work grows as blocks x
variables. The fault path inlines a chain of large helpers (do_numa_page ->
numa_fault_folio -> mpol_misplaced, migrate_misplaced, ...), and this copy took about a
sixth of a new user's first replay, 4-5 s (benchmarks/README.md, "2026-12-07, fourth").

:func:`install` makes the blocks copied within one ``inline_ir`` call share one memo per
scope, so the scope and its variables are copied once, as a copy of the whole function
would: the callee's blocks then share one copied scope, as the original blocks share
theirs. The inlined code is the same (the kernels' machine code compared equal with and
without it). Copies made anywhere else, and two ``inline_ir`` calls, never share a memo.
Where Numba's inliner does not look as expected (another version), nothing is changed.
"""
import copy
import threading

from numba.core import inline_closurecall, ir

_state = threading.local()      # .memos: {id(scope): (scope, memo)} inside inline_ir


class _ScopeSharingCopy:
    """Stands for the ``copy`` module inside numba.core.inline_closurecall."""

    def deepcopy(self, x, memo=None):
        memos = getattr(_state, "memos", None)
        if memo is None and memos is not None and isinstance(x, ir.Block):
            entry = memos.get(id(x.scope))
            if entry is None:         # the scope is kept alive with its memo: ids stay unique
                entry = memos[id(x.scope)] = (x.scope, {})
            return copy.deepcopy(x, entry[1])
        return copy.deepcopy(x, memo)

    def __getattr__(self, name):
        return getattr(copy, name)


def _with_shared_memos(inline_ir):
    def wrapper(self, *args, **kwargs):
        outer = getattr(_state, "memos", None)
        _state.memos = {}
        try:
            return inline_ir(self, *args, **kwargs)
        finally:
            _state.memos = outer

    wrapper.__wrapped__ = inline_ir
    wrapper.fastnuma_shared_memos = True
    return wrapper


def install():
    """Apply the fix once; True when it is in place."""
    worker = getattr(inline_closurecall, "InlineWorker", None)
    inline_ir = getattr(worker, "inline_ir", None)
    if inline_ir is None:
        return False
    if getattr(inline_ir, "fastnuma_shared_memos", False):
        return True
    if inline_closurecall.__dict__.get("copy") is not copy:
        return False
    inline_closurecall.copy = _ScopeSharingCopy()
    worker.inline_ir = _with_shared_memos(inline_ir)
    return True
