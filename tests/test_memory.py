"""Work and memory follow the result, whatever the padding mode, stride, dilation or pad: the input
gradient, im2col and col2im fold back only what the windows read, and the peak stays within twice
the result. Each case is checked against an explicit loop or an adjoint identity."""
import itertools
import numpy as np
import pytest
from convutils import (calc_conv_out_dims, col2im, conv1D_backward, conv2D, conv2D_backward,
                       conv2D_naive, depthwise_conv2D, depthwise_conv2D_backward, im2col, pad1D,
                       pad2D)
from convutils.geometry import ConvGeometry
from convutils.padding import mode_index
from measure import peak as _peak

MiB = 1 << 20




def _source(position, n, mode):
    "The input pixel a padded position copies, or -1 for a zero."
    return int(mode_index(position, n, mode))


def _loop_grads(dZ, X, W, stride, pad, dilation, mode, groups=1):
    "`(dX, dW)` of `conv2D` by explicit loops over the outputs and the taps."
    _, in_rows, in_cols, _ = X.shape
    kernel_rows, kernel_cols, group_in, out_ch = W.shape
    group_out, (top, _, left, _) = out_ch // groups, pad
    dX, dW = np.zeros(X.shape), np.zeros(W.shape)
    for a, b, i, j in itertools.product(range(dZ.shape[1]), range(dZ.shape[2]),
                                        range(kernel_rows), range(kernel_cols)):
        r = _source(a * stride + i * (dilation + 1) - top, in_rows, mode)
        c = _source(b * stride + j * (dilation + 1) - left, in_cols, mode)
        if r < 0 or c < 0: continue
        for k in range(groups):
            ins = slice(k * group_in, (k + 1) * group_in)
            outs = slice(k * group_out, (k + 1) * group_out)
            dX[:, r, c, ins] += dZ[:, a, b, outs] @ W[i, j, :, outs].T
            dW[i, j, :, outs] += X[:, r, c, ins].T @ dZ[:, a, b, outs]
    return dX, dW


def _loop_im2col(X, kernel, stride, pad, dilation, mode):
    "im2col's matrix by an explicit loop: row (c, i, j), column (a, b, n)."
    n_ex, in_rows, in_cols, in_ch = X.shape
    geometry = ConvGeometry.of(X.shape, (*kernel, in_ch, 1), stride, pad, dilation, pad_mode=mode)
    (out_rows, out_cols), (top, _, left, _) = geometry.out_dims, geometry.pad
    X_col = np.zeros((in_ch, *kernel, out_rows, out_cols, n_ex), X.dtype)
    for a, b, i, j in itertools.product(range(out_rows), range(out_cols), *map(range, kernel)):
        r = _source(a * stride + i * (dilation + 1) - top, in_rows, mode)
        c = _source(b * stride + j * (dilation + 1) - left, in_cols, mode)
        if r >= 0 and c >= 0: X_col[:, i, j, a, b] = X[:, r, c].T
    return X_col.reshape(in_ch * kernel[0] * kernel[1], -1)


RNG = np.random.default_rng(0)
X5, W5 = RNG.standard_normal((2, 5, 5, 3)), RNG.standard_normal((3, 3, 3, 2))
conv2D(X5, W5, 1, 1)  # NumPy imports numpy.ma on first use: before any peak is measured


@pytest.mark.parametrize('stride, pad, dilation, mode', [
    (10 ** 5, 'same', 0, 'reflect'),            # 400 003 padded rows
    (3000, 'same', 0, 'symmetric'), (3000, 3000, 0, 'edge'),
    (1, 'same', 10 ** 6, 'wrap'),               # 2 000 002 padded rows, a stride of 1
    (10 ** 6, (10 ** 6, 2, 3, 10 ** 6), 1, 'reflect')])
def test_input_gradient_with_a_pad_mode_follows_the_result(stride, pad, dilation, mode):
    g = ConvGeometry.of(X5.shape, W5.shape, stride, pad, dilation, pad_mode=mode)
    dZ = RNG.standard_normal(g.out_shape)
    (dX, dW), peak, elapsed = _peak(
        lambda: conv2D_backward(dZ, X5, W5, stride, pad, dilation, pad_mode=mode))
    assert peak < MiB and elapsed < 2, (peak, elapsed)
    expected_dX, expected_dW = _loop_grads(dZ, X5, W5, stride, g.pad, dilation, mode)
    np.testing.assert_allclose(dX, expected_dX, atol=1e-12)
    np.testing.assert_allclose(dW, expected_dW, atol=1e-12)


def test_1D_gradient_at_a_huge_dilation_follows_the_result():
    X, W = RNG.standard_normal((2, 5, 3)), RNG.standard_normal((3, 3, 2))
    dZ = RNG.standard_normal(calc_conv_out_dims(X.shape, W.shape, 1, 'causal', 10 ** 12))
    (dX, dW), peak, elapsed = _peak(
        lambda: conv1D_backward(dZ, X, W, 1, 'causal', 10 ** 12, pad_mode='edge'))
    assert peak < MiB and elapsed < 2, (peak, elapsed)  # 2·10**12 padded positions
    pad = (0, 0, *ConvGeometry.of(X.shape, W.shape, 1, 'causal', 10 ** 12).pad)
    expected_dX, expected_dW = _loop_grads(dZ[:, None], X[:, None], W[None], 1, pad, 10 ** 12,
                                           'edge')
    np.testing.assert_allclose(dX, expected_dX[:, 0], atol=1e-12)
    np.testing.assert_allclose(dW, expected_dW[0], atol=1e-12)


@pytest.mark.parametrize('pad', ['same', 3000])
def test_depthwise_gradient_at_a_huge_stride_follows_the_result(pad):
    X, W = RNG.standard_normal((2, 5, 5, 3)), RNG.standard_normal((3, 3, 3, 2))  # multiplier 2
    dZ = RNG.standard_normal(depthwise_conv2D(X, W, 3000, pad, pad_mode='reflect').shape)
    (dX, dW), peak, elapsed = _peak(
        lambda: depthwise_conv2D_backward(dZ, X, W, 3000, pad, pad_mode='reflect'))
    assert peak < MiB and elapsed < 2, (peak, elapsed)
    g = ConvGeometry.of(X.shape, (3, 3, 1, 6), 3000, pad, groups=3, pad_mode='reflect')
    expected_dX, expected_dW = _loop_grads(dZ, X, W.reshape(3, 3, 1, 6), 3000, g.pad, 0,
                                           'reflect', groups=3)
    np.testing.assert_allclose(dX, expected_dX, atol=1e-12)
    np.testing.assert_allclose(dW, expected_dW.reshape(W.shape), atol=1e-12)


@pytest.mark.parametrize('mode', ['constant', 'reflect', 'wrap'])
def test_im2col_and_col2im_at_a_huge_pad_and_stride_follow_the_result(mode):
    X = RNG.standard_normal((2, 5, 5, 3))
    X_col, peak, elapsed = _peak(lambda: im2col(X, (3, 3, 3, 1), 10 ** 6, 10 ** 6,
                                                pad_mode=mode)[0])
    assert peak < MiB and elapsed < 2, (peak, elapsed)  # 2 000 005² padded pixels
    np.testing.assert_array_equal(X_col, _loop_im2col(X, (3, 3), 10 ** 6, 10 ** 6, 0, mode))
    if mode != 'constant': return  # col2im knows no pad mode
    Y = RNG.standard_normal((27, 9 * 2))
    img, peak, elapsed = _peak(lambda: col2im(Y, X.shape, (3, 3, 3, 1), 10 ** 6, 10 ** 6))
    assert peak < MiB and elapsed < 2, (peak, elapsed)
    np.testing.assert_allclose(np.vdot(X_col, Y), np.vdot(X, img), rtol=1e-12)


def test_col2im_with_same_at_a_huge_stride_follows_the_result():
    X, Y = RNG.standard_normal((1, 5, 5, 1)), RNG.standard_normal((9, 25))
    img, peak, elapsed = _peak(lambda: col2im(Y, X.shape, (3, 3, 1, 1), 'same', 3000))
    assert peak < MiB and elapsed < 2, (peak, elapsed)  # 12 005 padded rows
    X_col = _loop_im2col(X, (3, 3), 3000, 'same', 0, 'constant')
    np.testing.assert_allclose(np.vdot(X_col, Y), np.vdot(X, img), rtol=1e-12)


def test_a_pad_beyond_numpy_integers_is_named():
    for call in (lambda: pad2D(np.ones((1, 5, 5, 1)), 10 ** 20),
                 lambda: pad2D(np.ones((0, 5, 5, 1)), (0, 10 ** 20)),
                 lambda: pad1D(np.ones((1, 5, 1)), (10 ** 20, 0), mode='edge')):
        with pytest.raises(ValueError, match=r"padded input would have shape .*"
                                             r"check pad=.*100000000000000000000"):
            call()


def test_a_pad_mode_far_beyond_the_span_of_one_window():
    X, W = RNG.standard_normal((1, 4, 4, 2)), RNG.standard_normal((3, 3, 2, 1))
    # one window, 10**29 rows below the top of the padding: a reflection period of 6 is the same
    expected = conv2D_naive(X, W, 100, (10 ** 29 % 6 + 6, 0, 0, 0), pad_mode='reflect')
    np.testing.assert_allclose(conv2D(X, W, 10 ** 30, (10 ** 29, 0, 0, 0), pad_mode='reflect'),
                               expected, atol=1e-12)


@pytest.mark.parametrize('alias, mode', [('zeros', 'constant'), ('replicate', 'edge'),
                                         ('circular', 'wrap')])
def test_pytorch_pad_mode_names_are_aliases(alias, mode):
    X, W = RNG.standard_normal((2, 5, 6, 3)), RNG.standard_normal((3, 2, 3, 4))
    dZ = RNG.standard_normal(conv2D(X, W, 2, 2).shape)
    np.testing.assert_array_equal(pad2D(X, 3, mode=alias)[0], pad2D(X, 3, mode=mode)[0])
    np.testing.assert_array_equal(pad1D(X[0], 3, mode=alias)[0], pad1D(X[0], 3, mode=mode)[0])
    np.testing.assert_array_equal(im2col(X, W.shape, 2, 2, pad_mode=alias)[0],
                                  im2col(X, W.shape, 2, 2, pad_mode=mode)[0])
    np.testing.assert_array_equal(conv2D(X, W, 2, 2, pad_mode=alias),
                                  conv2D(X, W, 2, 2, pad_mode=mode))
    for ours, theirs in zip(conv2D_backward(dZ, X, W, 2, 2, pad_mode=alias),
                            conv2D_backward(dZ, X, W, 2, 2, pad_mode=mode)):
        np.testing.assert_array_equal(ours, theirs)


def test_an_unknown_pad_mode_lists_ours_and_pytorchs():
    with pytest.raises(ValueError, match=r"pad_mode must be one of 'constant', 'reflect', "
                                         r"'symmetric', 'edge', 'wrap', or PyTorch's 'zeros' "
                                         r"\(= 'constant'\), 'replicate' \(= 'edge'\), "
                                         r"'circular' \(= 'wrap'\); got 'mirror'"):
        conv2D(X5, W5, 1, 1, pad_mode='mirror')


# The peak within twice the result (dX and dW for a backward pass), on calls that went beyond it:
# depthwise convolutions at stride 2, and the gradients of reflect-padded convolutions. The
# stride-1 gradient takes the Winograd route, whose fixed workspace needs a batch of 48 to be small.
def _arrays(n_ex, out_rows):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n_ex, 32, 32, 64), dtype=np.float32)
    dZ = rng.standard_normal((n_ex, out_rows, out_rows, 64), dtype=np.float32)
    return X, dZ, rng.standard_normal((3, 3, 64, 64), dtype=np.float32)


def _depthwise(X, dZ, W): return lambda: depthwise_conv2D(X, W[..., :1], 2, 1)
def _depthwise_backward(X, dZ, W):
    return lambda: depthwise_conv2D_backward(dZ, X, W[..., :1], 2, 1)
def _reflect_backward(stride):
    return lambda X, dZ, W: lambda: conv2D_backward(dZ, X, W, stride, 1, pad_mode='reflect')


@pytest.mark.parametrize('n_ex, stride, make_call', [
    pytest.param(16, 2, _depthwise, id='depthwise_conv2D-s2'),
    pytest.param(16, 2, _depthwise_backward, id='depthwise_conv2D_backward-s2'),
    pytest.param(48, 1, _reflect_backward(1), id='conv2D_backward-reflect-s1'),
    pytest.param(16, 2, _reflect_backward(2), id='conv2D_backward-reflect-s2')])
def test_peak_memory_is_at_most_twice_the_result(n_ex, stride, make_call):
    call = make_call(*_arrays(n_ex, 32 // stride))
    call()  # once first: nothing cached on the first call counts
    out, peak, _ = _peak(call)
    result = sum(a.nbytes for a in (out if isinstance(out, tuple) else (out,)))
    assert peak <= 2 * result, peak / result


@pytest.mark.parametrize('stride', [1, 2, (1, 2, 2)])
def test_volumes_peak_within_twice_the_result(stride):
    "conv3D, deconv3D and conv3D_backward hold a slab of each volume, not the whole padded input."
    from convutils import conv3D, conv3D_backward, deconv3D
    rng = np.random.default_rng(3)
    X = rng.standard_normal((2, 16, 32, 32, 32)).astype(np.float32)  # the workspace, not the
    W = rng.standard_normal((3, 3, 3, 32, 32)).astype(np.float32)    # fixed cost, decides here
    calls = [lambda: conv3D(X, W, stride, 1), lambda: conv3D_backward(Z, X, W, stride, 1),
             lambda: deconv3D(Z, W, stride, 1)]
    Z = calls[0]()
    for call in calls:
        call()  # the first call fills the caches of copy distances, once per geometry
        result, peak, _ = _peak(call)
        size = sum(a.nbytes for a in result) if isinstance(result, tuple) else result.nbytes
        assert peak <= 2 * size, (peak / size, stride)
