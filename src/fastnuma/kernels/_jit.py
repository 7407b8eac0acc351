"""The single kernel decorator: numba.njit, cached unless FASTNUMA_NUMBA_CACHE=0."""
import numba
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from . import _background, _numba_inline
from .cache import cache_enabled

_CACHE = cache_enabled()
_numba_inline.install()        # inline="always" without a quadratic IR copy


def kernel(fn=None, **opts):
    """numba.njit with fastnuma defaults: cached (unless FASTNUMA_NUMBA_CACHE=0), nogil,
    and no C-callable wrapper (``no_cfunc_wrapper``: only first-class function values
    use it, and fastnuma passes none; one less function to generate and compile per
    kernel)."""
    opts = {"cache": _CACHE, "nogil": True, "no_cfunc_wrapper": True, **opts}
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


# ---------------------------------------------------------------- kernels called apart
#: kernels called through a pointer (``apart``), by name: the resolver's table
_APART = {}


def apart(disp, restype, background=False):
    """A call to the kernel ``disp`` that does not compile it into its caller.

    A kernel compiles with everything it calls: Numba links each callee's code into the
    caller's module and optimises and generates it again there. Paths that a default run
    never takes (COW, shmem, THP, PMD batching, tiering's reclaim) would cost every new
    user their compile time (README "Performance", cold start). A kernel calls them
    through ``apart(kernel, restype)(args...)`` instead: the call loads a pointer kept in
    the caller's code and, while it is null (the first call in a process), asks Python
    (taking the GIL for that once, as Numba's objmode does) to compile ``disp`` for these
    argument types or load it from the cache, and stores its address. Then it calls it as
    Numba calls any kernel: same calling convention, exceptions propagated (a failed
    compilation raises its Python exception). ``restype``: the kernel's return type
    (a numba type), checked when it compiles. A cached caller holds the callee's key
    (module, name, return type): clear the cache after renaming a kernel called apart.

    ``background``: when the caller compiles (a cold cache), ``disp`` starts compiling
    for these argument types in a second process at once (_background.py), and its
    first call waits for that process and loads the result from the cache. The call's
    ``compile_ahead(argtys)`` starts it sooner, before the caller compiles."""
    key = f"{disp.py_func.__module__}.{disp.py_func.__qualname__}:{restype}"
    _APART[key] = (disp, restype)

    @intrinsic
    def call(typingctx, *args):       # Numba passes the arguments as one tuple
        if background:
            _background.start(disp, key, tuple(types.unliteral(a) for a in args))
        return restype(types.StarArgTuple.from_types(args)), _apart_codegen(key, restype)

    call.__name__ = call.__qualname__ = f"apart_{disp.py_func.__name__}"
    call.compile_ahead = lambda argtys: _background.start(disp, key, tuple(argtys))
    return call


def _apart_codegen(key, restype):
    def codegen(context, builder, signature, args):
        given = signature.args[0].types
        argtys = tuple(types.unliteral(a) for a in given)
        vals = [context.cast(builder, v, t, u) for v, t, u in
                zip(cgutils.unpack_tuple(builder, args[0]), given, argtys)]
        voidptr = cgutils.voidptr_t
        mod = builder.module
        name = f"fastnuma.apart.{key}{argtys}"                 # a pointer per signature
        try:
            cell = mod.get_global(name)
        except KeyError:
            cell = ir.GlobalVariable(mod, voidptr, name=name)
            cell.linkage = "internal"
            cell.initializer = voidptr(None)
        with builder.if_then(cgutils.is_null(builder, builder.load(cell)), likely=False):
            pyapi = context.get_python_api(builder)
            gil = pyapi.gil_ensure()
            fn = pyapi.unserialize(pyapi.serialize_object(_resolve_apart))
            arg = pyapi.unserialize(pyapi.serialize_object((key, argtys)))
            res = pyapi.call_function_objargs(fn, [arg])
            pyapi.decref(fn)
            pyapi.decref(arg)
            with builder.if_then(cgutils.is_null(builder, res), likely=False):
                pyapi.gil_release(gil)                  # the exception stays set ...
                context.call_conv.return_exc(builder)   # ... and is raised by Python
            builder.store(pyapi.long_as_voidptr(res), cell)
            pyapi.decref(res)
            pyapi.gil_release(gil)
        fnty = context.call_conv.get_function_type(restype, argtys)
        status, res = context.call_conv.call_function(
            builder, builder.bitcast(builder.load(cell), fnty.as_pointer()), restype,
            argtys, vals)
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return res

    return codegen


def _resolve_apart(request):
    """The address of kernel ``key`` compiled (or loaded from the cache) for ``argtys``."""
    key, argtys = request
    disp, restype = _APART[key]
    _background.wait(key, argtys)            # then compile() finds it in the cache
    disp.compile(argtys)
    cres = disp.overloads[argtys]
    if cres.signature.return_type != restype:
        raise TypeError(f"kernel {key.split(':')[0]}{argtys} returns "
                        f"{cres.signature.return_type}, not {restype} (_jit.apart)")
    return cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
