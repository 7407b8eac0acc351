"""The single kernel decorator: numba.njit, cached unless FASTNUMA_NUMBA_CACHE=0."""
import os

import numba

_CACHE = os.environ.get("FASTNUMA_NUMBA_CACHE", "1") != "0"


def kernel(fn=None, **opts):
    """numba.njit with fastnuma defaults: cached (unless FASTNUMA_NUMBA_CACHE=0), nogil."""
    opts = {"cache": _CACHE, "nogil": True, **opts}
    return numba.njit(**opts) if fn is None else numba.njit(**opts)(fn)
