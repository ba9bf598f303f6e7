"""The daemon's registry of GpSimd custom operators (neurontools.daemon.isa.custom_ops)."""

from __future__ import annotations

import numpy as np
import pytest

from neurontools.daemon.isa import custom_ops


def test_registry_lists_the_real_operators():
    assert custom_ops.registered() == ["rmsnorm", "topk8"]
    for name in custom_ops.registered():
        op = custom_ops.REGISTRY[name]
        assert op.name == name and op.summary and op.inputs and op.outputs


def test_a_name_registers_once():
    with pytest.raises(ValueError, match="'topk8' is already registered"):
        custom_ops.register(custom_ops.REGISTRY["topk8"])


def test_topk8_orders_descending_keeps_the_first_of_ties_and_puts_nan_last():
    op = custom_ops.REGISTRY["topk8"]
    x = np.array([[1, 5, 5, 3, np.nan, 9, 0, 2, 7, 5]], np.float32)
    values, indices = op.compute([x], {})
    assert values.tolist() == [[9, 7, 5, 5, 5, 3, 2, 1]]
    assert indices.tolist() == [[5, 8, 1, 2, 9, 3, 7, 0]]
    assert op.output_shapes([(4, 10)], {}) == [(4, 8), (4, 8)]
    for free in (7, 16385):
        with pytest.raises(custom_ops.CustomOpError, match="8 to 16384 elements per partition"):
            op.output_shapes([(4, free)], {})


def test_rmsnorm_matches_numpy_and_checks_its_weight_and_eps():
    op = custom_ops.REGISTRY["rmsnorm"]
    rng = np.random.default_rng(3)
    x, weight = rng.standard_normal((8, 64)).astype(np.float32), rng.standard_normal((1, 64)).astype(np.float32)
    (y,) = op.compute([x, weight], {"eps": 1e-6})
    expected = x / np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=1, keepdims=True) + 1e-6) * weight
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    assert op.output_shapes([(8, 64), (8, 64)], {"eps": 1e-6}) == [(8, 64)]
    with pytest.raises(custom_ops.CustomOpError, match=r"weight must be \[1, 64\]"):
        op.output_shapes([(8, 64), (2, 64)], {"eps": 1e-6})
    with pytest.raises(custom_ops.CustomOpError, match="eps must be > 0"):
        op.output_shapes([(8, 64), (1, 64)], {"eps": 0.0})
    assert op.cycles([(8, 64), (1, 64)]) == 3 * 64
