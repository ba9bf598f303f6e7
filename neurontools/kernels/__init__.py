"""Kernels for the software NeuronCore-v2: a builder (builder.py) and a library of tiled operations
written with it (library.py)."""

from neurontools.kernels.builder import Kernel, KernelError, Pattern, Tensor, View

__all__ = ["Kernel", "KernelError", "Pattern", "Tensor", "View"]
