"""Roofline placement by hand, ceiling formulas on a scripted clock, and the plot."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from tinytorch.profiling.profiler import MachineCeilings, measure_ceilings, plot_roofline, roofline_point


def steady_clock(step_ns):
    ticks = iter(range(0, 10**15, step_ns))
    return lambda: next(ticks)


ROOFS = MachineCeilings(blas_gflops_1thread=80.0, copy_gbs=20.0)  # ridge at 4 FLOP/byte


@pytest.mark.parametrize("flops,nbytes,seconds,attainable,bound", [
    (1e9, 1e9, 1.0, 20.0, "memory"),      # I = 1: memory roof 1 * 20
    (3e9, 1e9, 0.5, 60.0, "memory"),      # I = 3: memory roof 3 * 20
    (8e9, 1e9, 1.0, 80.0, "compute"),     # I = 8: above the ridge
    (1e12, 1e6, 100.0, 80.0, "compute"),  # I = 1e6
])
def test_roofline_point_by_hand(flops, nbytes, seconds, attainable, bound):
    p = roofline_point(flops, nbytes, seconds, ROOFS, label="k")
    assert p.label == "k" and p.bound == bound
    assert p.intensity == pytest.approx(flops / nbytes, rel=1e-12)
    assert p.achieved_gflops == pytest.approx(flops / seconds / 1e9, rel=1e-12)
    assert p.attainable_gflops == pytest.approx(attainable, rel=1e-12)
    assert p.fraction_of_roof == pytest.approx(flops / seconds / 1e9 / attainable, rel=1e-12)


def test_ridge_is_where_the_roofs_meet():
    assert ROOFS.ridge_intensity == pytest.approx(4.0)
    at_ridge = roofline_point(4e9, 1e9, 1.0, ROOFS)
    assert at_ridge.attainable_gflops == pytest.approx(80.0)


@pytest.mark.parametrize("n,nbytes", [(16, 2**16), (48, 2**20)])
def test_ceiling_formulas_on_a_scripted_clock(n, nbytes):
    roofs = measure_ceilings(matmul_n=n, copy_bytes=nbytes, repeats=2, clock=steady_clock(2_000_000))
    assert roofs.blas_gflops_1thread == pytest.approx(2 * n**3 / 2e-3 / 1e9, rel=1e-12)
    assert roofs.copy_gbs == pytest.approx(2 * nbytes / 2e-3 / 1e9, rel=1e-12)


def test_real_ceilings_are_finite_and_positive():
    roofs = measure_ceilings(matmul_n=64, copy_bytes=2**20, repeats=2)
    assert np.isfinite(roofs.blas_gflops_1thread) and roofs.blas_gflops_1thread > 0
    assert np.isfinite(roofs.copy_gbs) and roofs.copy_gbs > 0


def test_plot_draws_the_roof_and_one_marker_per_point():
    import matplotlib.pyplot as plt

    points = [roofline_point(1e6, 1e6, 1e-3, ROOFS, label="relu"), roofline_point(1e9, 1e7, 1e-2, ROOFS, label="linear")]
    fig, ax = plt.subplots()
    try:
        assert plot_roofline(points, ROOFS, ax=ax) is ax
        roof = ax.get_lines()[0]
        xs, ys = roof.get_xdata(), roof.get_ydata()
        np.testing.assert_allclose(ys, np.minimum(80.0, 20.0 * xs), rtol=1e-12)
        markers = [line for line in ax.get_lines()[1:] if line.get_marker() == "o"]
        np.testing.assert_allclose([m.get_xydata()[0] for m in markers], [[1.0, 1.0], [100.0, 100.0]], rtol=1e-12)
        assert [t.get_text() for t in ax.texts] == ["relu", "linear"]
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    finally:
        plt.close(fig)
