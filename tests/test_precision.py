"""Tests of vgplib.precision: ranges from finfo, flushed fractions, the dynamic loss-scale rule, scaled gradients."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from vgplib import (
    LossScale,
    cast_floats,
    float_range,
    flushed_fraction,
    loss_scale_init,
    loss_scale_update,
    precision_table,
    scaled_grad,
)


def test_float16_range_is_ieee_half():
    r = float_range(jnp.float16)
    assert r.max == 65504.0 and r.smallest_normal == 2.0**-14 and r.smallest_subnormal == 2.0**-24
    assert float_range(jnp.bfloat16).smallest_normal == float_range(jnp.float32).smallest_normal
    assert "bfloat16" in precision_table()
    with pytest.raises(TypeError, match="dtype"):
        float_range(jnp.int32)


def test_flushed_fraction_counts_casts_to_zero():
    ref = {"a": jnp.array([1.0, 1e-9, 0.0, 1e-6]), "b": jnp.array([2e-8, 3.0])}
    low = cast_floats(ref, jnp.float16)
    # nonzero entries: 1, 1e-9, 1e-6, 2e-8, 3 -> 5; below 2^-25 (about 3e-8) round to 0: 1e-9, 2e-8
    assert float(flushed_fraction(ref, low)) == pytest.approx(2 / 5)
    assert float(flushed_fraction(ref, ref)) == 0.0
    with pytest.raises(ValueError, match="structure"):
        flushed_fraction(ref, {"a": ref["a"]})


def test_dynamic_rule_halves_on_overflow_and_doubles_after_period():
    s = loss_scale_init(8.0)
    s = loss_scale_update(s, False, period=2)
    assert float(s.scale) == 4.0 and int(s.good_steps) == 0
    s = loss_scale_update(s, True, period=2)
    assert float(s.scale) == 4.0 and int(s.good_steps) == 1
    s = loss_scale_update(s, True, period=2)
    assert float(s.scale) == 8.0 and int(s.good_steps) == 0
    s = loss_scale_update(LossScale(jnp.float32(1.0), jnp.int32(0)), False)
    assert float(s.scale) == 1.0  # never below min_scale
    with pytest.raises(ValueError, match="factor"):
        loss_scale_update(s, True, factor=1.0)
    with pytest.raises(TypeError, match="state"):
        loss_scale_update((1.0, 0), True)


def test_scaling_rescues_float16_underflow_and_detects_overflow():
    w = jnp.array([1.0, 2.0, 3.0])

    def loss(p):  # gradient 1e-8 * (1, 1, 1): below float16's smallest subnormal / 2
        p16 = p.astype(jnp.float16)
        return jnp.sum(p16 * jnp.float16(1e-4)) * jnp.float16(1e-4)

    _, g1, ok1 = scaled_grad(loss, w, scale=1.0)
    assert bool(ok1) and np.all(np.asarray(g1) == 0)  # flushed
    _, g2, ok2 = scaled_grad(loss, w, scale=2.0**15)
    assert bool(ok2) and g2.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(g2), 1e-8, rtol=2e-3)
    _, _, ok3 = scaled_grad(loss, w, scale=2.0**40)  # scaled cotangent overflows float16
    assert not bool(ok3)
    with pytest.raises(ValueError, match="scalar"):
        scaled_grad(lambda p: p * 2, w)
