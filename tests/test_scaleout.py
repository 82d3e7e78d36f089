"""The Dask versions of the convolutions against the NumPy ones.

- Over random shapes, strides, pads, dilations, dtypes and chunkings (uneven chunks, chunks of one
  example, chunks along rows, columns and channels, a NumPy or a Dask kernel, a NumPy input with a
  Dask kernel), every function gives NumPy's values in NumPy's dtype.
- Argument errors are raised by the call itself, before anything is computed, with NumPy's type and
  message.
- `import convutils` does not import dask.
- The 1-D and 3-D functions, with a stride and a dilation per spatial axis, give NumPy's values on
  an unevenly chunked batch, `dW` added up across the chunks, and raise NumPy's errors at the call.
The notebook `nbs/08_scaleout.ipynb` tests laziness, the task count, the summing tree and a run on a
`dask.distributed.LocalCluster`.
"""
import subprocess
import sys

import dask
import dask.array as da
import numpy as np
import pytest

import convutils
# The public functions, which send calls with a Dask array to convutils.scaleout: the route users take.
# (To test convutils.scaleout's functions alone, import them from there instead.)
from convutils import conv1D, conv1D_backward, conv2D, conv2D_backward, deconv2D, deconv2D_backward
from convutils import (conv3D, conv3D_backward, deconv1D, deconv1D_backward, deconv3D,
                       deconv3D_backward)

FORWARD = {'conv2D': (conv2D, convutils.conv2D), 'conv1D': (conv1D, convutils.conv1D),
           'deconv2D': (deconv2D, convutils.deconv2D)}
BACKWARD = {'conv2D': (conv2D_backward, convutils.conv2D_backward),
            'conv1D': (conv1D_backward, convutils.conv1D_backward),
            'deconv2D': (deconv2D_backward, convutils.deconv2D_backward)}
PADS = {'conv2D': [0, 1, 2, (1, 0), (0, 1, 2, 1), 'same', 'valid'],
        'conv1D': [0, 1, (2, 0), 'same', 'causal', 'valid'],
        'deconv2D': [0, 1, (1, 0), (1, 0, 0, 2), 'same', 'valid']}
DTYPES = [np.float32, np.float64, np.int32]


def refuse(graph, keys, **kwargs):
    raise AssertionError('something was computed')


def random_chunks(rng, n):
    "A random chunking of `n` items: one chunk, chunks of one, or uneven chunks."
    kind = rng.integers(3)
    if kind == 0 or n == 1: return (n,)
    if kind == 1: return (1,) * n
    cuts = np.sort(rng.choice(np.arange(1, n), size=rng.integers(1, n), replace=False))
    return tuple(int(c) for c in np.diff([0, *cuts, n]))


def random_dask(rng, a, batch_only=False):
    "`a` as a Dask array, chunked at random along the batch axis and, unless `batch_only`, the others."
    chunks = [random_chunks(rng, n) if (axis == 0 or not batch_only and rng.random() < 0.3) else (n,)
              for axis, n in enumerate(a.shape)]
    return da.from_array(a, chunks=tuple(chunks))


def random_array(rng, shape, dtype):
    values = rng.standard_normal(shape) * 3
    return values.round().astype(dtype) if np.issubdtype(dtype, np.integer) else values.astype(dtype)


def random_case(rng, name):
    "Random valid arguments `(X, W, stride, pad, dilation)` of the NumPy function `name`, as NumPy arrays."
    numpy_fn = FORWARD[name][1]
    while True:
        n_ex, in_ch, out_ch = int(rng.integers(1, 8)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
        spatial = [int(rng.integers(1, 9)) for _ in range(1 if name == 'conv1D' else 2)]
        kernel = [int(rng.integers(1, 4)) for _ in spatial]
        X_dtype, W_dtype = DTYPES[rng.integers(3)], DTYPES[rng.integers(3)]
        X = random_array(rng, (n_ex, *spatial, in_ch), X_dtype)
        W = random_array(rng, (*kernel, in_ch, out_ch), W_dtype)
        args = int(rng.integers(1, 4)), PADS[name][rng.integers(len(PADS[name]))], int(rng.integers(0, 2))
        try: numpy_fn(X[:0], W, *args)
        except ValueError: continue  # e.g. an empty output: draw again
        return X, W, *args


def assert_matches(got, want):
    "`got` (computed from Dask) equals `want` (NumPy's) to rounding, in the same dtype."
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype, got.shape, want.shape)
    tol = 1e-4 if want.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, float(np.abs(want).max(initial=0))))


@pytest.mark.parametrize('name', FORWARD)
def test_forward_matches_numpy(name):
    rng = np.random.default_rng(sum(map(ord, name)))
    dask_fn, numpy_fn = FORWARD[name]
    for _ in range(30):
        X, W, *args = random_case(rng, name)
        kernel_kind = rng.integers(3)  # NumPy kernel, Dask kernel, NumPy input with a Dask kernel
        X_in = X if kernel_kind == 2 else random_dask(rng, X)
        W_in = W if kernel_kind == 0 else random_dask(rng, W)
        with dask.config.set(scheduler=refuse):
            Z = dask_fn(X_in, W_in, *args)
        assert isinstance(Z, da.Array)
        want = numpy_fn(X, W, *args)
        assert (Z.shape, Z.dtype) == (want.shape, want.dtype)
        if kernel_kind < 2: assert Z.chunks[0] == X_in.chunks[0]
        assert_matches(Z.compute(scheduler='sync'), want)


@pytest.mark.parametrize('name', BACKWARD)
def test_backward_matches_numpy(name):
    rng = np.random.default_rng(sum(map(ord, name)) + 1)
    dask_fn, numpy_fn = BACKWARD[name]
    for _ in range(30):
        X, W, *args = random_case(rng, name)
        dZ = random_array(rng, FORWARD[name][1](X, W, *args).shape, DTYPES[rng.integers(3)])
        input_grad = bool(rng.random() < 0.8)
        X_in, dZ_in = random_dask(rng, X), random_dask(rng, dZ)
        if rng.random() < 0.2: X_in = X  # only dZ is a Dask array
        W_in = random_dask(rng, W) if rng.random() < 0.5 else W
        with dask.config.set(scheduler=refuse):
            dX, dW = dask_fn(dZ_in, X_in, W_in, *args, input_grad=input_grad)
        want_dX, want_dW = numpy_fn(dZ, X, W, *args, input_grad=input_grad)
        if input_grad:
            got_dX, got_dW = dask.compute(dX, dW, scheduler='sync')
            assert_matches(got_dX, want_dX)
        else:
            assert dX is None
            got_dW = dW.compute(scheduler='sync')
        assert_matches(got_dW, want_dW)


def test_dtypes():
    "float32 stays float32, mixed floats widen, integers are summed in float64, as in NumPy."
    X = da.ones((4, 6, 6, 2), dtype=np.float32, chunks=(3, 6, 6, 2))
    for W_dtype, want in [(np.float32, np.float32), (np.float64, np.float64), (np.int64, np.float32)]:
        assert conv2D(X, np.ones((3, 3, 2, 2), W_dtype), 1, 1).dtype == want
    assert conv2D(X.astype(np.int16), np.ones((3, 3, 2, 2), np.int64), 1, 1).dtype == np.float64
    dX, dW = conv2D_backward(da.ones((4, 6, 6, 2), dtype=np.float32), X, np.ones((3, 3, 2, 2), np.float32), 1, 1)
    assert (dX.dtype, dW.dtype) == (np.float32, np.float32)


def _error(call):
    try: call()
    except Exception as e: return type(e), str(e)
    raise AssertionError('no error raised')


X4, W4 = np.ones((6, 8, 8, 3), np.float32), np.ones((3, 3, 3, 4), np.float32)
X3, W3 = np.ones((6, 10, 3), np.float32), np.ones((3, 3, 4), np.float32)
BAD_FORWARD = [  # (name, X, W, stride, pad, dilation)
    ('conv2D', X4, W4[:, :, :2], 1, 1, 0),        # channels differ
    ('conv2D', X4, np.ones((9, 9, 3, 4)), 1, 0, 0),  # the output would be empty
    ('conv2D', X4, W4, 0, 1, 0),                  # stride 0
    ('conv2D', X4, W4, 1.5, 1, 0),                # stride not an integer
    ('conv2D', X4, W4, 1, 'causal', 0),           # a 1-D pad form
    ('conv2D', X4, W4, 1, (1, 2, 3), 0),          # three pad numbers
    ('conv2D', X4, W4, 1, -1, 0),                 # negative pad
    ('conv2D', X4, W4, 1, 1, -1),                 # negative dilation
    ('conv2D', X4[..., 0], W4, 1, 1, 0),          # X of 3 axes
    ('conv2D', X4, W4[0], 1, 1, 0),               # W of 3 axes
    ('conv1D', X3, W3[:, :2], 1, 'same', 0),
    ('conv1D', X3, np.ones((20, 3, 4)), 1, 0, 0),
    ('conv1D', X3, W3, 1, (1, 2, 3, 4), 0),
    ('conv1D', X4, W3, 1, 0, 0),
    ('deconv2D', X4, W4[:, :, :2], 2, 'same', 0),
    ('deconv2D', X4, W4, 0, 'same', 0),
    ('deconv2D', X4, W4, 1, 9, 0),                # crop larger than the output
    ('deconv2D', X4, W4, 2, 'causal', 0),
]


@pytest.mark.parametrize('case', BAD_FORWARD, ids=lambda case: case[0])
def test_forward_errors_match_numpy(case):
    name, X, W, *args = case
    dask_fn, numpy_fn = FORWARD[name]
    want = _error(lambda: numpy_fn(X, W, *args))
    with dask.config.set(scheduler=refuse):
        assert _error(lambda: dask_fn(da.from_array(X, chunks=4), W, *args)) == want
        assert _error(lambda: dask_fn(X, da.from_array(W, chunks=2), *args)) == want


@pytest.mark.parametrize('name', BACKWARD)
def test_backward_errors_match_numpy(name):
    X, W = (X3, W3) if name == 'conv1D' else (X4, W4)
    stride, pad = (2, 'same') if name == 'deconv2D' else (1, 1)
    dask_fn, numpy_fn = BACKWARD[name]
    dZ = FORWARD[name][1](X, W, stride, pad)
    bad = [(dZ[:-1], X, W, stride, pad),           # fewer examples than X
           (dZ[:, 1:], X, W, stride, pad),         # a row short
           (dZ[..., :-1], X, W, stride, pad),      # a channel short
           (dZ, X, W[..., :1, :], stride, pad),    # W's channels differ from X's
           (dZ, X, W, 0, pad),
           (dZ, X, W, stride, 'nonsense')]
    for dZ_bad, X_bad, W_bad, *args in bad:
        want = _error(lambda: numpy_fn(dZ_bad, X_bad, W_bad, *args))
        with dask.config.set(scheduler=refuse):
            got = _error(lambda: dask_fn(da.from_array(dZ_bad, chunks=2), da.from_array(X_bad, chunks=3),
                                         W_bad, *args))
        assert got == want


def test_unknown_chunk_sizes():
    X = da.ones((4, 5, 5, 3))[da.ones(4) > 0]
    with pytest.raises(ValueError, match=r'X has unknown chunk sizes.*compute_chunk_sizes'):
        conv2D(X, W4, 1, 1)


def test_import_does_not_import_dask():
    code = ("import sys, convutils; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == '[]'


def test_depthwise_and_grouped_options_pass_through_dask():
    "Depthwise convolutions, groups and padding modes keep a Dask array lazy and equal NumPy's."
    import convutils as cu
    rng = np.random.default_rng(3)
    X, W = rng.standard_normal((6, 7, 7, 4)), rng.standard_normal((3, 3, 4, 2))
    X_lazy = da.from_array(X, chunks=(2, 7, 7, 4))
    Z = cu.depthwise_conv2D(X_lazy, W, 1, 'same', pad_mode='reflect')
    assert isinstance(Z, da.Array)
    np.testing.assert_allclose(Z.compute(), cu.depthwise_conv2D(X, W, 1, 'same', pad_mode='reflect'))
    dZ = np.ones(Z.shape)
    dX, dW = cu.depthwise_conv2D_backward(da.from_array(dZ, chunks=(2, 7, 7, 8)), X_lazy, W, 1, 'same')
    expected = cu.depthwise_conv2D_backward(dZ, X, W, 1, 'same')
    np.testing.assert_allclose(dX.compute(), expected[0]); np.testing.assert_allclose(dW.compute(), expected[1])
    W_g = rng.standard_normal((3, 3, 2, 6))
    np.testing.assert_allclose(cu.conv2D(X_lazy, W_g, 2, 1, groups=2, pad_mode='wrap').compute(),
                               cu.conv2D(X, W_g, 2, 1, groups=2, pad_mode='wrap'))


def test_depthwise_keeps_a_dask_kernel_lazy():
    "A Dask kernel is checked from its shape and dtype: building the graph computes nothing."
    import convutils as cu
    rng = np.random.default_rng(4)
    X, W = rng.standard_normal((4, 6, 6, 3)), rng.standard_normal((3, 3, 3, 2))
    W_lazy = da.from_array(W, chunks=W.shape)
    with dask.config.set(scheduler=refuse):
        Z = cu.depthwise_conv2D(X, W_lazy, 1, 'same')
        dX, dW = cu.depthwise_conv2D_backward(np.ones(Z.shape), X, W_lazy, 1, 'same')
    assert all(isinstance(A, da.Array) for A in (Z, dX, dW))
    np.testing.assert_allclose(Z.compute(), cu.depthwise_conv2D(X, W, 1, 'same'))
    np.testing.assert_allclose(dW.compute(), cu.depthwise_conv2D_backward(np.ones(Z.shape), X, W, 1, 'same')[1])
    with pytest.raises(ValueError, match=r"W must be a 4-D array"):
        cu.depthwise_conv2D(X, W_lazy[0], 1, 'same')


# 1-D and 3-D, with a stride and a dilation per spatial axis.
ND_FUNCTIONS = {'conv3D': (conv3D, conv3D_backward), 'deconv1D': (deconv1D, deconv1D_backward),
                'deconv3D': (deconv3D, deconv3D_backward)}
ND_CASES = [  # (name, X shape, W shape, stride, pad, dilation, options)
    ('conv3D', (5, 4, 6, 7, 2), (2, 3, 2, 2, 4), (1, 2, 3), 1, (1, 0, 0), {}),
    ('conv3D', (5, 4, 6, 7, 4), (3, 2, 3, 2, 4), (2, 1, 1), 'same', (0, 0, 1),
     dict(groups=2, pad_mode='reflect', method='gemm')),
    ('deconv1D', (5, 9, 2), (3, 2, 3), (3,), 'same', (1,), {}),
    ('deconv1D', (5, 9, 4), (2, 4, 3), 2, (1, 0), 0, dict(groups=2)),
    ('deconv3D', (5, 3, 4, 3, 2), (2, 3, 2, 2, 3), (2, 1, 3), (0, 1, 0), (0, 1, 0), {}),
]
EXAMPLE_CHUNKS = (2, 1, 2)  # uneven, and a chunk of one example


def nd_case(case):
    "The Dask functions, NumPy arrays `X`, `W` and `X` as a Dask array, for a case of ND_CASES."
    name, X_shape, W_shape, *args, options = case
    rng = np.random.default_rng(len(X_shape) + sum(W_shape))
    X, W = rng.standard_normal(X_shape), rng.standard_normal(W_shape)
    # chunked along the examples, and along the first spatial axis too: merged into whole examples
    X_lazy = da.from_array(X, chunks=(EXAMPLE_CHUNKS, (X_shape[1] + 1) // 2, *X_shape[2:]))
    return ND_FUNCTIONS[name], X, W, X_lazy, args, options


def assert_equal_to_1e12(got, want):
    "`got` equals `want` in shape and dtype, and in value to 1e-12 of `want`'s largest magnitude."
    assert (got.shape, got.dtype) == (want.shape, want.dtype), (got.shape, want.shape)
    scale = max(1.0, float(np.abs(want).max(initial=0)))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * scale)


def case_id(case): return f"{case[0]}-{'-'.join(case[6]) or 'plain'}"


@pytest.mark.parametrize('case', ND_CASES, ids=case_id)
def test_nd_forward_matches_numpy(case):
    (forward, _), X, W, X_lazy, args, options = nd_case(case)
    with dask.config.set(scheduler=refuse):
        Z = forward(X_lazy, W, *args, **options)
    assert isinstance(Z, da.Array) and Z.chunks[0] == EXAMPLE_CHUNKS
    assert_equal_to_1e12(Z.compute(scheduler='sync'), forward(X, W, *args, **options))


@pytest.mark.parametrize('case', ND_CASES, ids=case_id)
def test_nd_backward_matches_numpy(case):
    "dX chunk by chunk, and dW added up across the chunks, equal one NumPy call on the batch."
    (forward, backward), X, W, X_lazy, args, options = nd_case(case)
    dZ = np.random.default_rng(0).standard_normal(forward(X, W, *args, **options).shape)
    dZ_lazy = da.from_array(dZ, chunks=3)  # chunked unlike X: rechunked to X's chunks
    with dask.config.set(scheduler=refuse):
        dX, dW = backward(dZ_lazy, X_lazy, W, *args, **options)
        no_dX, dW_alone = backward(dZ_lazy, X_lazy, W, *args, input_grad=False, **options)
    shares = [key for key in dW.__dask_graph__() if key[0].startswith('dW-shares')]
    assert len(shares) == len(EXAMPLE_CHUNKS)  # one share of dW per chunk, then their sum
    assert dX.chunks[0] == EXAMPLE_CHUNKS and no_dX is None
    want_dX, want_dW = backward(dZ, X, W, *args, **options)
    got_dX, got_dW = dask.compute(dX, dW, scheduler='sync')
    assert_equal_to_1e12(got_dX, want_dX)
    assert_equal_to_1e12(got_dW, want_dW)
    assert_equal_to_1e12(dW_alone.compute(scheduler='sync'), want_dW)


BAD_ND = [  # (case of ND_CASES it alters, stride, pad, dilation, options): one argument wrong
    (0, (1, 2), 1, 0, {}),                    # two strides for three axes
    (0, (1, 0, 1), 1, 0, {}),                 # a stride of 0 on one axis
    (0, (1, 1.5, 1), 1, 0, {}),               # a stride that is not an integer
    (0, 1, 1, (0, -1, 0), {}),                # a negative dilation on one axis
    (0, 1, 1, (0, 0), {}),                    # two dilations for three axes
    (0, 1, 'causal', 0, {}),                  # a 1-D pad form
    (0, 1, 1, 0, dict(method='winograd')),    # there is no 3-D Winograd route
    (1, 1, 1, 0, dict(groups=3)),             # groups that divide no channels
    (2, (2, 2), 'same', 0, {}),               # two strides for one axis
    (2, 2, 'same', (1, 1), {}),               # two dilations for one axis
    (4, (2, 1), 'same', 0, {}),
    (4, 2, 'causal', 0, {}),
    (4, 2, (1, 2), 0, {}),                    # two pad numbers for three axes
]


@pytest.mark.parametrize('bad', BAD_ND, ids=lambda bad: ND_CASES[bad[0]][0])
def test_nd_errors_at_the_call(bad):
    "A bad argument raises NumPy's error when the Dask function is called, computing nothing."
    case, *bad_args, bad_options = bad
    (forward, backward), X, W, X_lazy, args, options = nd_case(ND_CASES[case])
    dZ = np.ones(forward(X, W, *args, **options).shape)
    want = _error(lambda: forward(X, W, *bad_args, **bad_options))
    with dask.config.set(scheduler=refuse):
        assert _error(lambda: forward(X_lazy, W, *bad_args, **bad_options)) == want
        assert _error(lambda: forward(X, da.from_array(W), *bad_args, **bad_options)) == want
    want = _error(lambda: backward(dZ, X, W, *bad_args, **bad_options))
    with dask.config.set(scheduler=refuse):
        got = _error(lambda: backward(da.from_array(dZ, chunks=2), X_lazy, W, *bad_args,
                                      **bad_options))
    assert got == want


@pytest.mark.parametrize('case', ND_CASES[::2], ids=case_id)
def test_nd_dZ_shape_error_at_the_call(case):
    (forward, backward), X, W, X_lazy, args, options = nd_case(case)
    dZ = np.ones(forward(X, W, *args, **options).shape)[:, 1:]  # one position short on an axis
    want = _error(lambda: backward(dZ, X, W, *args, **options))
    with dask.config.set(scheduler=refuse):
        assert _error(lambda: backward(da.from_array(dZ, chunks=2), X_lazy, W, *args,
                                       **options)) == want
