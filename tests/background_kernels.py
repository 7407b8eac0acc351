"""Kernels for tests/test_background_compile.py: a second process imports this module by
name to compile ``square_plus`` (the tests folder is on the child's sys.path, as on the
parent's)."""
import numpy as np
from numba.core import types

from fastnuma.kernels._jit import apart, kernel


@kernel
def square_plus(x, y):
    return x * x + y


square_plus_apart = apart(square_plus, types.int64, background=True)


@kernel
def caller(x):
    return square_plus_apart(x, np.int64(1)) + 1
