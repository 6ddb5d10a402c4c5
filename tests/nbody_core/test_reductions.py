"""ordered_sum: jnp.sum to round-off, and the same bytes under any vmap batch size."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nbody_core.physics.reductions import ordered_sum


@pytest.mark.parametrize("shape, axis", [((7,), 0), ((100, 3), 0), ((5, 33), 1), ((4, 6, 5), (0, 2)), ((3, 4), None)])
def test_equals_jnp_sum_to_round_off(shape, axis):
    x = np.random.default_rng(0).normal(size=shape)
    # Pairwise summation: error O(log2 n) ulps of sum |x| (Higham 1993); 1e-14 covers n <= 200.
    np.testing.assert_allclose(ordered_sum(jnp.asarray(x), axis), np.sum(x, axis=axis), rtol=0,
                               atol=1e-14 * np.sum(np.abs(x)))


def test_fixed_order_is_the_pairwise_tree():
    # (x0 + x2) + (x1 + x3), then + x4 (carried): a left-to-right sum gives 2e-16 here.
    x = jnp.asarray([1.0, 1e-16, -1.0, 1e-16, 1e-16])
    assert float(ordered_sum(x)) == ((1.0 + -1.0) + (1e-16 + 1e-16)) + 1e-16


def test_empty_and_scalar():
    assert ordered_sum(jnp.zeros((0, 3)), 0).shape == (3,)
    assert float(ordered_sum(jnp.asarray(2.5))) == 2.5
    with pytest.raises(ValueError, match="repeated axis"):
        ordered_sum(jnp.zeros((2, 2)), (0, 0))


def test_same_bytes_under_any_batch_size():
    # jnp.sum of the same rows differs by an ulp between batches of 4 and 16 members on the
    # CPU (XLA vectorizes along another axis); ordered_sum must not.
    x = np.random.default_rng(1).normal(size=(64, 100, 3))
    results = []
    for batch in (1, 4, 8, 16, 64):
        fn = jax.jit(jax.vmap(lambda row: ordered_sum(row[:, 0] * row[:, 1] + row[:, 2])))
        results.append(np.concatenate([np.asarray(fn(x[i:i + batch])) for i in range(0, 64, batch)]))
    for other in results[1:]:
        assert other.tobytes() == results[0].tobytes()
