"""The Winograd route against the GEMM route, beyond the notebook's sweeps: larger random
geometries with realistic channel counts, and the memory the route holds, which is bounded by its
blocks and not by the batch."""
import tracemalloc

import numpy as np
import pytest

from convutils import conv1D_backward, conv2D, conv2D_backward, winograd
from convutils.engine import conv_forward, kernel_grad
from convutils.geometry import check_conv
from convutils.winograd import choose_method, winograd_conv, winograd_conv1D, winograd_kernel_grad

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
        ref = conv_forward(X, W, g)
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


# The input gradient: at stride 1 it is a convolution of dZ with the flipped kernel, and
# conv2D_backward / conv1D_backward run it by the route `method` names.
METHODS = ('gemm', 'winograd', 'auto')


def backward_by_method(backward, dZ, X, W, *args, **kwargs):
    return {m: backward(dZ, X, W, *args, method=m, **kwargs) for m in METHODS}


@pytest.mark.parametrize('seed', range(6))
def test_input_grad_matches_gemm_route(seed):
    "dX and dW by the Winograd route are the matrix products'; 'auto' takes it from 64 channels."
    rng = np.random.default_rng(300 + seed)
    for trial in range(10):
        n_ex, rows, cols = (int(v) for v in rng.integers([1, 1, 1], [5, 36, 36]))
        C, O = int(rng.choice([3, 16, 64, 65, 96])), int(rng.choice([1, 8, 64, 70]))
        dilation, dtype = int(rng.integers(0, 4)), (np.float32, np.float64)[trial % 2]
        pad = [1, 'same', 'valid', (0, 3, 2, 1), (2, 0), 4, (5, 3, 0, 6)][trial % 7]
        mode = 'reflect' if trial % 3 == 2 else 'constant'
        X = rng.standard_normal((n_ex, rows, cols, C)).astype(dtype)
        W = rng.standard_normal((3, 3, C, O)).astype(dtype)
        try: g = check_conv(X, W, 1, pad, dilation, pad_mode=mode)[2]
        except ValueError: continue
        dZ = rng.standard_normal(g.out_shape).astype(dtype)
        grads = backward_by_method(conv2D_backward, dZ, X, W, 1, pad, dilation, pad_mode=mode)
        dX_gemm, dW_gemm = grads['gemm']
        assert grads['winograd'][0].dtype == dX_gemm.dtype == dtype
        assert relative_error(grads['winograd'][0], dX_gemm) < TOLERANCE[dtype], (g, mode)
        auto = 'winograd' if min(C, O) >= 64 and dtype == np.float32 else 'gemm'
        assert grads['winograd'][1].dtype == dtype
        assert relative_error(grads['winograd'][1], dW_gemm) < TOLERANCE[dtype], (g, mode)
        for k in (0, 1): np.testing.assert_array_equal(grads['auto'][k], grads[auto][k])


@pytest.mark.parametrize('seed', range(2))
def test_input_grad_1D_matches_gemm_route(seed):
    "In 1-D, 'winograd' runs F(m, 3) on the flipped convolution; 'auto' keeps the matrix product."
    rng = np.random.default_rng(400 + seed)
    for trial in range(10):
        n_ex, length = int(rng.integers(1, 5)), int(rng.integers(1, 200))
        C, O = int(rng.choice([1, 16, 64])), int(rng.choice([1, 32, 64]))
        dilation, dtype = int(rng.integers(0, 4)), (np.float32, np.float64)[trial % 2]
        pad = ['same', 'causal', 'valid', 5, (0, 4)][trial % 5]
        X = rng.standard_normal((n_ex, length, C)).astype(dtype)
        W = rng.standard_normal((3, C, O)).astype(dtype)
        try: g = check_conv(X, W, 1, pad, dilation, n_dims=3)[2]
        except ValueError: continue
        dZ = rng.standard_normal(g.out_shape).astype(dtype)
        grads = backward_by_method(conv1D_backward, dZ, X, W, 1, pad, dilation)
        assert relative_error(grads['winograd'][0], grads['gemm'][0]) < TOLERANCE[dtype], g
        assert relative_error(grads['winograd'][1], grads['gemm'][1]) < TOLERANCE[dtype], g
        for k in (0, 1): np.testing.assert_array_equal(grads['auto'][k], grads['gemm'][k])


def test_input_grad_chooses_tiles_for_its_own_channels():
    "The flipped convolution sums over the forward output channels: beyond 512 in float32, F(2×2)."
    rng = np.random.default_rng(7)
    X = rng.standard_normal((2, 6, 7, 64)).astype(np.float32)
    W = (rng.standard_normal((3, 3, 64, 520)) / 30).astype(np.float32)
    dZ = rng.standard_normal((2, 6, 7, 520)).astype(np.float32)
    g = check_conv(X, W, 1, 1)[2]
    assert choose_method(g, np.float32) == 'winograd4'  # the forward pass sums over 64 channels
    flipped = check_conv(dZ, W.transpose(0, 1, 3, 2), 1, 1)[2]
    assert choose_method(flipped, np.float32) == 'winograd2'  # its input gradient over 520
    grads = backward_by_method(conv2D_backward, dZ, X, W, 1, 1)
    assert relative_error(grads['auto'][0], grads['gemm'][0]) < 2e-6  # F(2×2): as the product
    np.testing.assert_array_equal(grads['auto'][0], grads['winograd'][0])


@pytest.mark.parametrize('seed', range(3))
def test_input_grad_adjoint_identity(seed):
    "<conv2D(X, W), dZ> = <X, dX> with dX by the Winograd route, in float64."
    rng = np.random.default_rng(500 + seed)
    for trial in range(4):
        C, O = (int(v) for v in rng.integers(1, 80, 2))
        X = rng.standard_normal((int(rng.integers(1, 4)), *rng.integers(1, 20, 2), C))
        W = rng.standard_normal((3, 3, C, O))
        pad, dilation = int(rng.integers(0, 6)), int(rng.integers(0, 4))
        try: Z = conv2D(X, W, 1, pad, dilation, method='gemm')
        except ValueError: continue
        dZ = rng.standard_normal(Z.shape)
        dX = conv2D_backward(dZ, X, W, 1, pad, dilation, method='winograd')[0]
        assert np.isclose(np.sum(X * dX), np.sum(Z * dZ), rtol=1e-10, atol=1e-9)


def test_input_grad_unsupported_geometries():
    "'winograd' raises where the route cannot run, naming the geometry; 'auto' is then the product."
    rng = np.random.default_rng(8)
    X = rng.standard_normal((2, 12, 12, 64)).astype(np.float32)
    cases = [(3, 2, 0, 1, 'stride 2'), (5, 1, 0, 1, r'\(5, 5\)'), (3, 1, 4, 1, 'dilation 4'),
             (3, 1, 0, 2, 'groups 2')]
    for k, stride, dilation, groups, match in cases:
        W = rng.standard_normal((k, k, 64 // groups, 64)).astype(np.float32)
        Z = conv2D(X, W, stride, 1, dilation, groups=groups)
        dZ = rng.standard_normal(Z.shape).astype(np.float32)
        auto, gemm = (conv2D_backward(dZ, X, W, stride, 1, dilation, groups=groups, method=m)
                      for m in ('auto', 'gemm'))
        for a, b in zip(auto, gemm): np.testing.assert_array_equal(a, b)
        with pytest.raises(ValueError, match=f"method='winograd' needs .*{match}"):
            conv2D_backward(dZ, X, W, stride, 1, dilation, groups=groups, method='winograd')
    with pytest.raises(ValueError, match="method must be 'auto', 'gemm' or 'winograd', got 'bog"):
        conv2D_backward(dZ, X, W, stride, 1, dilation, groups=groups, method='bogus')
    with pytest.raises(ValueError, match=r"method='winograd' needs .*\(5,\)"):
        conv1D_backward(np.ones((1, 8, 2)), np.ones((1, 8, 2)), np.ones((5, 2, 2)), 1, 'same',
                        method='winograd')


PAD_FORMS = [lambda rng: int(rng.integers(0, 7)),
             lambda rng: tuple(int(v) for v in rng.integers(0, 7, 2)),
             lambda rng: tuple(int(v) for v in rng.integers(0, 7, 4)),
             lambda rng: 'same', lambda rng: 'valid']


@pytest.mark.parametrize('seed', range(6))
def test_kernel_grad_matches_gemm_route(seed):
    "dW by F(3×3, m×m) is kernel_grad's, over shapes, batches, channels, pads, dilations, dtypes."
    rng = np.random.default_rng(600 + seed)
    for trial in range(16):
        n_ex = 1 if trial % 4 == 0 else int(rng.integers(1, 6))
        rows, cols = (int(v) for v in rng.integers(1, 40, 2))
        C, O = int(rng.choice([1, 3, 16, 64, 70])), int(rng.choice([1, 5, 32, 64]))
        dilation, dtype = int(rng.integers(0, 4)), (np.float32, np.float64)[trial % 2]
        m = (2, 4)[trial // 2 % 2]
        X = rng.standard_normal((n_ex, rows, cols, C)).astype(dtype)
        W = np.zeros((3, 3, C, O), dtype)
        try: g = check_conv(X, W, 1, PAD_FORMS[trial % 5](rng), dilation)[2]
        except ValueError: continue
        dZ = rng.standard_normal(g.out_shape).astype(dtype)
        dW, ref = winograd_kernel_grad(X, dZ, g, m=m), kernel_grad(X, dZ, g)
        assert (dW.shape, dW.dtype) == (ref.shape, ref.dtype)
        assert relative_error(dW, ref) < TOLERANCE[dtype], (g, m)


def test_kernel_grad_long_sums_float32():
    "Over a batch of 16 32×32 images the sums run over 16 384 positions: still within 2e-5."
    rng = np.random.default_rng(9)
    X = np.maximum(rng.standard_normal((16, 32, 32, 64)), 0).astype(np.float32)
    dZ = rng.standard_normal((16, 32, 32, 64)).astype(np.float32)
    g = check_conv(X, np.zeros((3, 3, 64, 64), np.float32), 1, 1)[2]
    ref = kernel_grad(X.astype(np.float64), dZ.astype(np.float64), g)
    for m in (2, 4): assert relative_error(winograd_kernel_grad(X, dZ, g, m=m), ref) < 2e-5


def test_kernel_grad_finite_differences():
    "dW by the Winograd route against central differences of L = Σ R·sin(conv2D(X, W)), float64."
    rng = np.random.default_rng(10)
    X, W = rng.standard_normal((2, 7, 6, 3)), rng.standard_normal((3, 3, 3, 2))
    args = (1, (2, 0, 1, 3), 1)
    R = rng.standard_normal(conv2D(X, W, *args).shape)
    loss = lambda W_: float(np.sum(R * np.sin(conv2D(X, W_, *args, method='gemm'))))
    dW = conv2D_backward(R * np.cos(conv2D(X, W, *args)), X, W, *args, method='winograd')[1]
    numerical, h = np.zeros_like(W), 1e-5
    for index in np.ndindex(W.shape):
        step = np.zeros_like(W)
        step[index] = h
        numerical[index] = (loss(W + step) - loss(W - step)) / (2 * h)
    assert relative_error(dW, numerical) < 1e-7


@pytest.mark.parametrize('seed', range(2))
def test_kernel_grad_adjoint_identity(seed):
    "<conv2D(X, W), dZ> = <W, dW> with dW by the Winograd route, in float64, reflected pads too."
    rng = np.random.default_rng(700 + seed)
    for trial in range(4):
        C, O = (int(v) for v in rng.integers(1, 80, 2))
        X = rng.standard_normal((int(rng.integers(1, 4)), *rng.integers(4, 20, 2), C))
        W = rng.standard_normal((3, 3, C, O))
        pad, dilation = int(rng.integers(0, 3)), int(rng.integers(0, 2))
        mode = ('constant', 'reflect')[trial % 2]
        try: Z = conv2D(X, W, 1, pad, dilation, pad_mode=mode, method='gemm')
        except ValueError: continue
        dZ = rng.standard_normal(Z.shape)
        dW = conv2D_backward(dZ, X, W, 1, pad, dilation, pad_mode=mode, method='winograd')[1]
        assert np.isclose(np.sum(W * dW), np.sum(Z * dZ), rtol=1e-10, atol=1e-9)


# A tile mixes its whole input patch into each of its outputs; a NaN or inf must not follow it there.
BAD_VALUES = np.array([np.nan, np.inf, -np.inf])


def _with_bad_values(rng, A, share=0.003):
    "A copy of `A` with NaN, inf or -inf at random places (at least one), and where they are."
    bad = rng.random(A.shape) < share
    bad.flat[rng.integers(0, bad.size)] = True
    A = A.copy()
    A[bad] = rng.choice(BAD_VALUES, int(bad.sum())).astype(A.dtype)
    return A, bad


@pytest.mark.filterwarnings('ignore:invalid value:RuntimeWarning')  # inf - inf, as it should
@pytest.mark.parametrize('seed', range(3))
def test_non_finite_values_reach_exactly_their_windows(seed):
    """A non-finite value in X or in dZ makes non-finite exactly the outputs, dX and dW entries whose
    sums hold it, on every route and in both dtypes; the expected places come from the same sums over
    finite indicators (1 where the value is bad, 0 elsewhere)."""
    from convutils.geometry import PAD_MODES
    rng = np.random.default_rng(900 + seed)
    for trial in range(10):
        dtype, mode = (np.float32, np.float64)[trial % 2], PAD_MODES[trial % 5]
        rows, cols, dilation = int(rng.integers(3, 16)), int(rng.integers(3, 16)), int(rng.integers(0, 3))
        pad = [1, 'same', (0, 2, 1, 0), 'valid', 3][trial % 5]
        # positive values: no sum cancels an infinity into a finite number by chance
        X = (rng.random((2, rows, cols, 64)) + 0.5).astype(dtype)
        W = (rng.random((3, 3, 64, 64)) + 0.5).astype(dtype)
        try: g = check_conv(X, W, 1, pad, dilation, pad_mode=mode)[2]
        except ValueError: continue
        dZ = (rng.random(g.out_shape) + 0.5).astype(dtype)
        args, options = (1, pad, dilation), dict(pad_mode=mode)
        ones_W = np.ones(W.shape)
        X_bad, bad_X = _with_bad_values(rng, X)
        dZ_bad, bad_dZ = _with_bad_values(rng, dZ)
        holds_X = conv2D(bad_X.astype(float), ones_W, *args, method='gemm', **options) > 0
        _, holds_X_dW = conv2D_backward(np.ones(g.out_shape), bad_X.astype(float), ones_W, *args,
                                        method='gemm', **options)
        holds_dZ_dX, _ = conv2D_backward(bad_dZ.astype(float), np.ones(X.shape), ones_W, *args,
                                         method='gemm', **options)
        holds_dZ_dW = np.broadcast_to(bad_dZ.any(axis=(0, 1, 2)), W.shape)  # every tap meets dZ[..., o]
        for method in METHODS:
            Z = conv2D(X_bad, W, *args, method=method, **options)
            np.testing.assert_array_equal(~np.isfinite(Z), holds_X, err_msg=f'{method} {g}')
            dW = conv2D_backward(dZ, X_bad, W, *args, method=method, input_grad=False, **options)[1]
            np.testing.assert_array_equal(~np.isfinite(dW), holds_X_dW > 0, err_msg=f'{method} {g}')
            dX, dW = conv2D_backward(dZ_bad, X, W, *args, method=method, **options)
            np.testing.assert_array_equal(~np.isfinite(dX), holds_dZ_dX > 0, err_msg=f'{method} {g}')
            np.testing.assert_array_equal(~np.isfinite(dW), holds_dZ_dW, err_msg=f'{method} {g}')


def test_non_finite_values_in_1D_stay_in_their_windows():
    X = np.ones((1, 12, 4), np.float32)
    X[0, 1, 0] = np.nan
    W = np.ones((3, 4, 4), np.float32)
    from convutils import conv1D
    for method in METHODS:
        Z = conv1D(X, W, 1, 0, method=method)
        np.testing.assert_array_equal(np.isnan(Z[0, :, 0]), [True, True] + [False] * 8)
