"""Package tests for the matmuls of tinytorch.optimization.acceleration: vectorized and tiled."""

import math

import numpy as np
import pytest

from tinytorch.optimization.acceleration import tiled_matmul, vectorized_matmul


def einsum_product(a, b):
    """The oracle: an explicit sum over the shared index, batch dimensions broadcast by einsum."""
    return np.einsum("...ik,...kj->...ij", a, b)


# --- vectorized_matmul -------------------------------------------------------------------------

@pytest.mark.parametrize("shape_a, shape_b, shape_out", [
    ((4, 3), (3, 5), (4, 5)),
    ((2, 4, 3), (3, 5), (2, 4, 5)),
    ((2, 1, 4, 3), (6, 3, 5), (2, 6, 4, 5)),
    ((1, 4, 3), (7, 3, 2), (7, 4, 2)),
])
def test_vectorized_matmul_broadcasts_batch_dimensions(shape_a, shape_b, shape_out):
    rng = np.random.default_rng(10)
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    got = vectorized_matmul(a, b)
    assert got.shape == shape_out
    np.testing.assert_allclose(got, einsum_product(a, b), rtol=1e-12, atol=1e-12)


def test_vectorized_matmul_keeps_float32():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((8, 16)).astype(np.float32)
    b = rng.standard_normal((16, 4)).astype(np.float32)
    got = vectorized_matmul(a, b)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, einsum_product(a.astype(np.float64), b.astype(np.float64)), rtol=1e-5, atol=1e-5)


def test_vectorized_matmul_inner_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 2\)"):
        vectorized_matmul(np.ones((3, 4)), np.ones((5, 2)))


def test_vectorized_matmul_batch_mismatch_names_batch_shapes():
    with pytest.raises(ValueError) as info:
        vectorized_matmul(np.ones((2, 3, 4)), np.ones((3, 4, 2)))
    assert "(2,)" in str(info.value) and "(3,)" in str(info.value)


@pytest.mark.parametrize("a, b", [(np.ones(4), np.ones((4, 2))), (np.ones((2, 4)), np.ones(4))])
def test_vectorized_matmul_rejects_vectors(a, b):
    with pytest.raises(ValueError):
        vectorized_matmul(a, b)


# --- tiled_matmul ------------------------------------------------------------------------------

@pytest.mark.parametrize("tile", [1, 5, 16, 33, 64, 1000])
def test_tiled_matmul_equals_oracle_for_any_tile(tile):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((45, 33)), rng.standard_normal((33, 21))
    np.testing.assert_allclose(tiled_matmul(a, b, tile_size=tile), einsum_product(a, b), rtol=1e-10, atol=1e-10)


def test_tiled_matmul_float32_close_to_float64_oracle():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((70, 90)).astype(np.float32)
    b = rng.standard_normal((90, 40)).astype(np.float32)
    got = tiled_matmul(a, b, tile_size=32)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, einsum_product(a.astype(np.float64), b.astype(np.float64)), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("tile", [4, 8, 10, 64])
def test_tile_size_decides_how_many_tile_products_run(tile):
    shapes = []

    def recording_kernel(x, y):   # really multiplies; the tile shapes are what we check
        shapes.append((x.shape, y.shape))
        return np.einsum("ik,kj->ij", x, y)

    m, k, n = 23, 17, 11
    result = tiled_matmul(np.ones((m, k)), np.ones((k, n)), tile_size=tile, tile_kernel=recording_kernel)
    np.testing.assert_array_equal(result, np.full((m, n), float(k)))
    assert len(shapes) == math.ceil(m / tile) * math.ceil(n / tile) * math.ceil(k / tile)
    assert all(max(sa + sb) <= tile for sa, sb in shapes)
    for (rows, depth_a), (depth_b, cols) in shapes:
        assert depth_a == depth_b


def test_tiled_matmul_integers_are_exact():
    rng = np.random.default_rng(4)
    a, b = rng.integers(-50, 50, (19, 26)), rng.integers(-50, 50, (26, 13))
    got = tiled_matmul(a, b, tile_size=6)
    assert np.issubdtype(got.dtype, np.integer)
    np.testing.assert_array_equal(got, einsum_product(a, b))


@pytest.mark.parametrize("tile", [0, -3])
def test_tiled_matmul_rejects_bad_tile_size(tile):
    with pytest.raises(ValueError, match="tile_size"):
        tiled_matmul(np.ones((2, 2)), np.ones((2, 2)), tile_size=tile)


def test_tiled_matmul_shape_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 2\)"):
        tiled_matmul(np.ones((3, 4)), np.ones((5, 2)))
