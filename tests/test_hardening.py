"""Hostile and extreme inputs: what is not numbers is refused, errors name the argument, and work and
memory follow the size of the result, never the stride, the dilation or the padding."""
import numpy as np
import pytest
from convutils import (conv1D, conv1D_backward, conv2D, conv2D_backward, conv2D_naive, col2im,
                       deconv2D, deconv2D_backward, deconv2D_naive, dilate, im2col, pad1D, pad2D)
from measure import peak as _peak

X4, W4 = np.ones((1, 4, 4, 1)), np.ones((3, 3, 1, 1))


@pytest.mark.parametrize('bad', [np.full((1, 2, 2, 1), '2.5'), np.full((1, 2, 2, 1), None, object),
                                 np.full((1, 2, 2, 1), b'1'), np.zeros((1, 2, 2, 1), 'datetime64[s]'),
                                 np.zeros((1, 2, 2, 1), 'timedelta64[s]'), np.ones((1, 2, 2, 1), object)])
def test_non_numbers_are_refused(bad):
    W = np.ones((1, 1, 1, 1))
    with pytest.raises(TypeError, match=r"X must hold numbers \(bool, integer, float or complex\), got dtype"):
        conv2D(bad, W, 1, 0)
    with pytest.raises(TypeError, match=r"W must hold numbers"): deconv2D(np.ones((1, 2, 2, 1)), bad[:1, :1], 1, 0)
    with pytest.raises(TypeError, match=r"dZ must hold numbers"): conv2D_backward(bad, np.ones((1, 2, 2, 1)), W, 1, 0)


def test_complex_inputs_are_convolved():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2, 5, 5, 2)) + 1j * rng.standard_normal((2, 5, 5, 2))
    W = rng.standard_normal((3, 3, 2, 3)) - 2j * rng.standard_normal((3, 3, 2, 3))
    np.testing.assert_allclose(conv2D(X, W, 2, 1), conv2D_naive(X, W, 2, 1), atol=1e-12)
    assert conv2D(X.astype(np.complex64), W.astype(np.complex64), 1, 0).dtype == np.complex64
    Y = conv2D(X, W, 2, 1)
    np.testing.assert_allclose(deconv2D(Y, W.transpose(0, 1, 3, 2), 2, 1),
                               deconv2D_naive(Y, W.transpose(0, 1, 3, 2), 2, 1), atol=1e-12)


def test_masked_arrays_are_refused():
    masked = np.ma.masked_array(np.ones((1, 3, 3, 1)), mask=np.eye(3)[None, ..., None])
    for call in (lambda: conv2D(masked, W4[:2, :2], 1, 0), lambda: pad2D(masked, 1),
                 lambda: conv2D(X4, np.ma.masked_array(W4), 1, 0)):
        with pytest.raises(TypeError, match=r"is a masked array.*filled"): call()


@pytest.mark.parametrize('flag', ['no', 1, 0, None, np.array([True])])
def test_input_grad_takes_bools_only(flag):
    with pytest.raises(TypeError, match=r"input_grad must be a bool, got"):
        conv2D_backward(np.ones((1, 2, 2, 1)), X4, W4, 1, 0, input_grad=flag)
    with pytest.raises(TypeError, match=r"input_grad must be a bool"):
        conv1D_backward(np.ones((1, 2, 1)), X4[0], W4[0], 1, 0, input_grad=flag)


def test_numpy_bools_are_bools():
    dX, dW = conv2D_backward(np.ones((1, 2, 2, 1)), X4, W4, 1, 0, input_grad=np.False_)
    assert dX is None and dW.shape == W4.shape


@pytest.mark.parametrize('call, name', [
    (lambda: conv2D(X4, W4, 2 ** 63, 0), None), (lambda: conv2D(X4, W4, 10 ** 20, 'same'), None),
    (lambda: conv2D(X4, W4, 1, 10 ** 20), 'pad'), (lambda: conv2D(X4, W4, 1, 'same', 10 ** 20), None),
    (lambda: deconv2D(X4, W4, 10 ** 20, 0), 'stride'), (lambda: conv1D(X4[0], W4[0], 10 ** 30, 'same'), None)])
def test_huge_arguments_give_a_result_or_a_value_error_naming_them(call, name):
    try: Z = call()
    except ValueError as e:
        assert name is not None and name in str(e), str(e)
        return
    assert name is None and Z.size <= 4 ** 2


def test_dilate_of_an_empty_axis():
    assert dilate(np.ones((1, 0, 3, 1)), 1).shape == (1, 0, 5, 1)




@pytest.mark.parametrize('call', [
    lambda: deconv2D(np.ones((1, 1, 1, 1)), np.ones((3, 3, 1, 1)), 3000, 0),
    lambda: conv2D_backward(np.ones((1, 1, 1, 1)), np.ones((1, 4, 4, 1)), W4, 10 ** 5, 0),
    lambda: conv2D(X4, W4, 10 ** 4, 'same'),
    lambda: conv2D(X4, W4, 1, 'same', 10 ** 6),
    lambda: conv2D_backward(np.ones((1, 4, 4, 1)), X4, W4, 1, 'same', 10 ** 6),
    lambda: deconv2D(X4, W4, 1, 'same', 10 ** 6),
    lambda: conv1D(np.ones((1, 4, 1)), np.ones((3, 1, 1)), 10 ** 9, 'same'),
    lambda: conv2D(np.broadcast_to(np.float32(1), (1, 10 ** 5, 10 ** 5, 1)), W4.astype(np.float32),
                   5 * 10 ** 4, 0),
])
def test_work_and_memory_follow_the_result(call):
    _, peak, elapsed = _peak(call)
    assert peak < 1 << 20 and elapsed < 2, (peak, elapsed)


@pytest.mark.parametrize('stride', [1, 2])
def test_peak_memory_is_at_most_twice_the_result(stride):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 32, 32, 64)).astype(np.float32)
    W = rng.standard_normal((3, 3, 64, 64)).astype(np.float32)
    Z, Y = conv2D(X, W, stride, 1), deconv2D(X, W, stride, 1)
    for fn in (lambda: conv2D(X, W, stride, 1), lambda: deconv2D(X, W, stride, 1),
               lambda: conv2D_backward(Z, X, W, stride, 1)[0], lambda: deconv2D_backward(Y, X, W, stride, 1)[0]):
        out, peak, _ = _peak(fn)
        assert peak <= 2 * out.nbytes, (peak / out.nbytes)


def test_results_are_writeable_and_own_their_memory():
    rng = np.random.default_rng(1)
    X, W = rng.standard_normal((2, 3, 3, 4)), rng.standard_normal((1, 1, 4, 2))
    outs = [im2col(X, W.shape, 0, 1)[0], im2col(X, (3, 3, 4, 2), 0, 1)[0], pad2D(X, 0)[0],
            conv2D(X, W, 1, 0), conv2D_naive(X, W, 1, 0), deconv2D(X, W, 1, 0), deconv2D_naive(X, W, 1, 0),
            col2im(im2col(X, W.shape, 0, 1)[0], X.shape, W.shape, 0, 1), dilate(X, 0),
            conv1D(X[:, 0], W[0], 1, 0), pad1D(X[:, 0], 0)[0], *conv2D_backward(conv2D(X, W, 1, 0), X, W, 1, 0)]
    for out in outs:
        assert out.flags.writeable and not np.shares_memory(out, X) and not np.shares_memory(out, W)
        out *= 2


def test_a_pytorch_layout_gets_a_hint():
    with pytest.raises(ValueError, match=r"W_shape has 3 input channels but X has 16.*\(kernel_rows, kernel_cols, "
                                         r"in_ch, out_ch\).*PyTorch.*transpose"):
        conv2D(np.ones((1, 3, 16, 16)), np.ones((3, 3, 3, 8)), 1, 0)  # an NCHW input


def test_an_array_for_a_shape_prints_its_shape_not_its_values():
    with pytest.raises(ValueError) as e: im2col(np.ones((1, 5, 5, 1)), np.arange(10000.).reshape(100, 100), 'same', 1)
    assert len(str(e.value)) < 300 and '(100, 100)' in str(e.value)


@pytest.mark.parametrize('pad, hint', [('SAME', "'same'"), ('VALID', "'valid'"), ('Same', "'same'")])
def test_upper_case_pads_suggest_lower_case(pad, hint):
    with pytest.raises(ValueError, match=f"did you mean {hint}"): conv2D(X4, W4, 1, pad)
