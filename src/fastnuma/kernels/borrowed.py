"""Arrays the kernels hold without Numba counting references to them.

SimState (state.py) holds its arrays *borrowed*: the struct's copies carry no Numba
reference (a null meminfo) and the Python object keeps them alive. Counting references
to such an array does nothing, yet as a plain array type Numba still calls NRT_incref
and NRT_decref (out of line: a test of the null and a return) on every field read and
for every array an inlined helper takes (a stream of hinting faults with a trivial fault
in its place: 32 -> 18 ns per event without them, 2026-12-07). Here:

- ``UncountedArray``, the type of SimState's fields and of ``borrowed(...)``: an array
  in every way except that its data model lists no meminfo for Numba to count (a view
  of one is a plain array, borrowed too);
- ``borrowed(arr)``: an array without its reference, typed UncountedArray;
- ``invariant_getattr``: SimState's field reads as invariant loads, so that LLVM keeps
  the payload's address and the fields in registers across a kernel's stores.
"""
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.datamodel import models
from numba.core.imputils import impl_ret_borrowed, lower_getattr_generic
from numba.extending import intrinsic, lower_cast, register_model

#: NRT's MemInfo header (numba/core/runtime/nrt.cpp): refct, dtor, dtor_info, data, size
_MEMINFO_DATA = 3


class UncountedArray(types.Array):
    """An array whose Numba reference is not counted (see the module docstring)."""

    def __init__(self, dtype, ndim, layout, readonly=False, aligned=True):
        super().__init__(dtype, ndim, layout, readonly=readonly, aligned=aligned,
                         name=f"uncounted array({dtype}, {ndim}d, {layout})")


@register_model(UncountedArray)
class UncountedArrayModel(models.ArrayModel):
    """An array's layout, with no member for reference counting to visit."""

    def traverse(self, builder):
        return []


@lower_cast(types.Array, UncountedArray)
@lower_cast(UncountedArray, types.Array)
def _same_array(context, builder, fromty, toty, val):
    return val          # one layout: the cast changes only whether references count


def uncounted(typ):
    """``typ`` as an UncountedArray when it is an array type, else itself."""
    if isinstance(typ, types.Array) and not isinstance(typ, UncountedArray):
        return UncountedArray(typ.dtype, typ.ndim, typ.layout, readonly=not typ.mutable,
                              aligned=typ.aligned)
    return typ


@intrinsic
def borrowed(typingctx, arr):
    """``arr`` without its Numba reference (null meminfo and parent), typed
    UncountedArray. Whoever stores it must keep the array alive by other means."""
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, signature, args):
        ary = cgutils.create_struct_proxy(signature.args[0])(context, builder, value=args[0])
        ary.meminfo = cgutils.get_null_value(ary.meminfo.type)
        ary.parent = cgutils.get_null_value(ary.parent.type)
        return ary._getvalue()

    return uncounted(arr)(arr), codegen


def invariant_getattr(struct_type):
    """Read the fields of ``struct_type`` (a StructRef type class whose fields no kernel
    sets while it runs: Python replaces them between calls) with invariant loads. The
    getter registered last is the one Numba uses, so this replaces structref's. Without
    it LLVM loads the payload's address and then the field again before every array
    access that follows a store, two dependent loads each time (a stream of hinting
    faults in address order: 37.4 -> 29.7 ns per fault, 2026-12-07)."""

    @lower_getattr_generic(struct_type)
    def getattr_impl(context, builder, typ, val, attr):
        meminfo = cgutils.create_struct_proxy(typ)(context, builder, value=val).meminfo
        header = builder.bitcast(meminfo, ir.LiteralStructType(
            [cgutils.intp_t, cgutils.voidptr_t, cgutils.voidptr_t, cgutils.voidptr_t,
             cgutils.intp_t]).as_pointer())
        data = _invariant(builder, builder.load(
            cgutils.gep_inbounds(builder, header, 0, _MEMINFO_DATA)))
        payload = context.data_model_manager[typ.get_data_type()]
        data = builder.bitcast(data, payload.get_value_type().as_pointer())
        value = _invariant(builder, builder.load(
            cgutils.gep_inbounds(builder, data, 0, payload.get_field_position(attr))))
        return impl_ret_borrowed(context, builder, typ.field_dict[attr], value)

    return getattr_impl


def _invariant(builder, load):
    load.set_metadata("invariant.load", builder.module.add_metadata([]))
    return load
