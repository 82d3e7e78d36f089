"""The Winograd route against the GEMM route, beyond the notebook's sweeps: larger random
geometries with realistic channel counts, and the memory the route holds, which is bounded by its
blocks and not by the batch."""
import tracemalloc

import numpy as np
import pytest

from convutils import winograd
from convutils.engine import conv_forward
from convutils.padding import check_conv
from convutils.winograd import choose_method, winograd_conv, winograd_conv1D

TOLERANCE = {np.float32: 2e-5, np.float64: 1e-12}  # worst |error| / max |reference|


def relative_error(Z, ref):
    return float(np.abs(Z - ref).max() / max(np.abs(ref).max(), 1e-300))


@pytest.mark.parametrize('seed', range(6))
def test_2D_matches_gemm_route(seed):
    rng = np.random.default_rng(100 + seed)
    for trial in range(8):
        n_ex, rows, cols = (int(v) for v in rng.integers([1, 3, 3], [5, 40, 40]))
        C, O = int(rng.choice([3, 16, 37, 64])), int(rng.choice([1, 8, 33, 64]))
        dilation, dtype = int(rng.integers(0, 4)), (np.float32, np.float64)[trial % 2]
        pad = [1, 'same', 'valid', (0, 3, 2, 1), (2, 0)][trial % 5]
        X = rng.standard_normal((n_ex, rows, cols, C)).astype(dtype)
        W = rng.standard_normal((3, 3, C, O)).astype(dtype)
        try: X, W, g = check_conv(X, W, 1, pad, dilation)
        except ValueError: continue
        ref = conv_forward(X, W, g)
        for m in (2, 4):
            Z = winograd_conv(X, W, g, m=m)
            assert Z.shape == ref.shape and Z.dtype == ref.dtype
            assert relative_error(Z, ref) < TOLERANCE[dtype], (g, m)


@pytest.mark.parametrize('seed', range(3))
def test_1D_matches_gemm_route(seed):
    rng = np.random.default_rng(200 + seed)
    for trial in range(10):
        n_ex, length = int(rng.integers(1, 6)), int(rng.integers(1, 300))
        C, O = int(rng.choice([1, 16, 64])), int(rng.choice([1, 32]))
        dilation = int(rng.integers(0, 4))
        dtype = (np.float32, np.float64)[trial % 2]
        X = rng.standard_normal((n_ex, length, C)).astype(dtype)
        W = rng.standard_normal((3, C, O)).astype(dtype)
        pad = ['same', 'causal', 'valid', 2][trial % 4]
        try: X, W, g = check_conv(X, W, 1, pad, dilation, n_dims=3)
        except ValueError: continue
        ref = conv_forward(X[:, None], W[None], g.as_2D())[:, 0]
        for m in (2, 4):
            Z = winograd_conv1D(X, W, g, m=m)
            assert Z.shape == ref.shape and Z.dtype == ref.dtype
            assert relative_error(Z, ref) < TOLERANCE[dtype], (g, m)


def test_memory_bounded_by_blocks(monkeypatch):
    "Beyond its result, a call holds a few blocks' buffers, whatever the batch size."
    monkeypatch.setattr(winograd, 'WINOGRAD_BLOCK_VALUES', 1 << 18)
    rng = np.random.default_rng(0)
    extra = {}
    for n_ex in (32, 128):  # both beyond one block
        X = rng.standard_normal((n_ex, 32, 32, 16)).astype(np.float32)
        W = rng.standard_normal((3, 3, 16, 16)).astype(np.float32)
        X, W, g = check_conv(X, W, 1, 1)
        tracemalloc.start()
        Z = winograd_conv(X, W, g, m=4)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        extra[n_ex] = peak - Z.nbytes
    assert extra[128] < 24 * winograd.WINOGRAD_BLOCK_VALUES, extra
    assert extra[128] < 1.1 * extra[32], extra  # 4 times the batch, the same memory


def test_auto_never_picks_unsupported():
    for stride, k, dilation in [(2, 3, 0), (1, 5, 0), (1, 1, 0), (2, 3, 1), (1, 2, 0)]:
        g = check_conv(np.zeros((1, 16, 16, 64)), np.zeros((k, k, 64, 64)), stride, 1, dilation)[2]
        assert choose_method(g, np.float32) == 'gemm'
        with pytest.raises(ValueError, match=f'stride {stride}, kernel \\({k}, {k}\\)'):
            winograd_conv(np.zeros(g.in_shape), np.zeros(g.W_shape), g)
