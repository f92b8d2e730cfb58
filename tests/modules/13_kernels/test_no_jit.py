"""With NUMBA_DISABLE_JIT=1 every kernel runs as plain Python and still gives the same results."""

import os
import subprocess
import sys
import textwrap

CHECK = textwrap.dedent(
    """
    import numba
    import numpy as np
    from tinytorch.core import kernels as K

    assert numba.config.DISABLE_JIT, "the subprocess must run without the JIT"
    assert not hasattr(K._tiled_matmul_kernel, "signatures"), "kernels must be plain Python functions here"

    rng = np.random.default_rng(2)
    A = rng.standard_normal((9, 7)).astype(np.float32)
    B = rng.standard_normal((7, 6)).astype(np.float32)
    exact = A.astype(np.float64) @ B.astype(np.float64)
    for name, options in (("ijk_matmul", {}), ("ikj_matmul", {}), ("cache_friendly_matmul", {"block_size": 3}),
                          ("parallel_matmul", {"block_size": 3})):
        got = getattr(K, name)(A, B, **options)    # block 3 on 9x7 @ 7x6: full tiles, edge tiles, 4x4 blocks
        assert got.dtype == np.float32, name
        np.testing.assert_allclose(got, exact, rtol=1e-5, atol=1e-5, err_msg=name)

    qA = rng.integers(-128, 128, size=(5, 300)).astype(np.int8)
    qB = rng.integers(-128, 128, size=(300, 4)).astype(np.int8)
    got = K.int8_matmul(qA, qB, block_size=64)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, qA.astype(np.int64) @ qB.astype(np.int64))
    big = K.int8_matmul(np.full((1, 3000), 127, np.int8), np.full((3000, 1), 127, np.int8))
    assert int(big[0, 0]) == 3000 * 127 * 127, big
    print("NO-JIT OK")
    """
)


def test_kernels_are_correct_without_the_jit():
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    proc = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "NO-JIT OK" in proc.stdout
