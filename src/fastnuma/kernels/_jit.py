"""The single kernel decorator: numba.njit, cached unless FASTNUMA_NUMBA_CACHE=0."""
import numba
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from .cache import cache_enabled

_CACHE = cache_enabled()


def kernel(fn=None, **opts):
    """numba.njit with fastnuma defaults: cached (unless FASTNUMA_NUMBA_CACHE=0), nogil."""
    opts = {"cache": _CACHE, "nogil": True, **opts}
    return numba.njit(**opts) if fn is None else numba.njit(**opts)(fn)


@intrinsic
def prefetch(typingctx, arr, idx):
    """Hint the CPU to fetch ``arr[idx]`` into cache for writing (llvm.prefetch, locality 3).

    Random accesses over page tables larger than the caches are bound by memory latency;
    prefetching entries a few events ahead keeps several misses in flight, as the C
    reference's loop does with __builtin_prefetch."""
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        aryty, idxty = signature.args
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]],
                                       wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(1), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen
