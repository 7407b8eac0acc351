"""Numba kernels. They import only numpy, numba, ``dtypes`` and ``constants`` and return
status codes; orchestration and error messages live in the Python modules above."""
