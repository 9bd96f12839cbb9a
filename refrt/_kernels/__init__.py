"""Typed Cython kernels.  This package knows nothing of the registry: backends bind
these functions to op names."""
