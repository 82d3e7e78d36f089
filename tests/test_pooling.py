"""The pooling functions against PyTorch (when it is installed) and on Dask arrays; their memory.

- Over random shapes, pools, strides, pads and dilations, with many ties, every function and its
  gradient equal PyTorch's `max_poolNd`/`avg_poolNd` and their autograd, in channels-last layout.
- On Dask arrays chunked at random, every function gives NumPy's values in NumPy's dtype, lazily.
- Memory follows the result: at most twice its size, whatever the stride or the padding.
The loop references and the randomised checks against them are in `nbs/05b_pooling.ipynb`.
"""
from measure import peak as _peak

import numpy as np
import pytest

import convutils
from convutils import (avgpool1D, avgpool1D_backward, avgpool2D, avgpool2D_backward, avgpool3D,
                       avgpool3D_backward, maxpool1D, maxpool1D_backward, maxpool2D,
                       maxpool2D_backward, maxpool3D, maxpool3D_backward)

MAX = {1: (maxpool1D, maxpool1D_backward), 2: (maxpool2D, maxpool2D_backward),
       3: (maxpool3D, maxpool3D_backward)}
AVG = {1: (avgpool1D, avgpool1D_backward), 2: (avgpool2D, avgpool2D_backward),
       3: (avgpool3D, avgpool3D_backward)}


def random_case(rng, n_axes):
    "Random valid `(X, pool, stride, pad, dilation)` with ties; `pad` symmetric, as PyTorch's."
    while True:
        in_dims = [int(v) for v in rng.integers(1, 9, n_axes)]
        pool = [int(v) for v in rng.integers(1, 4, n_axes)]
        stride = [int(v) for v in rng.integers(1, 4, n_axes)]
        dilation = [int(v) for v in rng.integers(0, 3, n_axes)]
        pad = [int(rng.integers(0, k // 2 + 1)) for k in pool]  # PyTorch pads at most half a pool
        if n_axes == 1: pad = pad[0]  # in 1-D, two ints are (left, right), as in the convolutions
        X = rng.integers(-3, 4, (int(rng.integers(1, 4)), *in_dims, int(rng.integers(1, 4))))
        try: MAX[n_axes][0](X, pool, stride, pad, dilation)  # raises where no window fits
        except ValueError: continue
        return X, pool, stride, pad, dilation


def channels_first(a): return np.moveaxis(a, -1, 1)
def channels_last(a): return np.moveaxis(a, 1, -1)


@pytest.mark.parametrize('n_axes', [1, 2, 3])
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_max_and_its_gradient_are_pytorchs(n_axes, dtype):
    torch = pytest.importorskip('torch')
    F = torch.nn.functional
    torch_max = [F.max_pool1d, F.max_pool2d, F.max_pool3d][n_axes - 1]
    rng = np.random.default_rng(n_axes)
    forward, backward = MAX[n_axes]
    for _ in range(60):
        X, pool, stride, pad, dilation = random_case(rng, n_axes)
        X = X.astype(dtype)
        x = torch.tensor(channels_first(X), requires_grad=True)
        z = torch_max(x, pool, stride, pad, dilation=[d + 1 for d in dilation])
        Z = forward(X, pool, stride, pad, dilation)
        np.testing.assert_array_equal(Z, channels_last(z.detach().numpy()))
        dZ = rng.standard_normal(Z.shape).astype(dtype)
        z.backward(torch.tensor(channels_first(dZ)))
        np.testing.assert_allclose(backward(dZ, X, pool, stride, pad, dilation),
                                   channels_last(x.grad.numpy()), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('n_axes', [1, 2, 3])
@pytest.mark.parametrize('count_pad', [False, True])
def test_average_and_its_gradient_are_pytorchs(n_axes, count_pad):
    torch = pytest.importorskip('torch')
    F = torch.nn.functional
    torch_avg = [F.avg_pool1d, F.avg_pool2d, F.avg_pool3d][n_axes - 1]
    rng = np.random.default_rng(10 + n_axes)
    forward, backward = AVG[n_axes]
    for _ in range(60):
        X, pool, stride, pad, _ = random_case(rng, n_axes)
        try: Z = forward(X.astype(np.float64), pool, stride, pad, count_pad=count_pad)
        except ValueError: continue
        x = torch.tensor(channels_first(X.astype(np.float64)), requires_grad=True)
        try: z = torch_avg(x, pool, stride, pad, count_include_pad=count_pad)
        except RuntimeError: continue  # PyTorch's 3-D average wants the pool inside the input
        np.testing.assert_allclose(Z, channels_last(z.detach().numpy()), rtol=1e-12, atol=1e-12)
        dZ = rng.standard_normal(Z.shape)
        z.backward(torch.tensor(channels_first(dZ)))
        np.testing.assert_allclose(backward(dZ, X, pool, stride, pad, count_pad=count_pad),
                                   channels_last(x.grad.numpy()), rtol=1e-12, atol=1e-12)


def test_a_nan_wins_the_max_as_in_pytorch():
    torch = pytest.importorskip('torch')
    X = np.arange(32.).reshape(1, 4, 4, 2)
    X[0, 1, 2, 1] = np.nan
    z = torch.nn.functional.max_pool2d(torch.tensor(channels_first(X)), 2)
    np.testing.assert_array_equal(maxpool2D(X, 2), channels_last(z.numpy()))


@pytest.mark.parametrize('n_axes', [1, 2, 3])
def test_dask_arrays_give_numpys_values_lazily(n_axes):
    dask = pytest.importorskip('dask')
    import dask.array as da
    rng = np.random.default_rng(20 + n_axes)
    for _ in range(15):
        X, pool, stride, pad, dilation = random_case(rng, n_axes)
        X = X.astype([np.float32, np.float64, np.int16][rng.integers(3)])
        X_lazy = da.from_array(X, chunks=(int(rng.integers(1, len(X) + 1)), *X.shape[1:]))
        for (forward, backward), options in [(MAX[n_axes], dict(dilation=dilation)),
                                             (AVG[n_axes], dict(count_pad=bool(rng.random() < .5)))]:
            try: Z = forward(X, pool, stride, pad, **options)
            except ValueError: continue
            dZ = rng.standard_normal(Z.shape)
            with dask.config.set(scheduler=lambda *args, **kwargs: 1 / 0):  # nothing runs
                Z_lazy = forward(X_lazy, pool, stride, pad, **options)
                dX_lazy = backward(da.from_array(dZ, chunks=1), X_lazy, pool, stride, pad, **options)
            assert (Z_lazy.dtype, dX_lazy.dtype) == (Z.dtype, np.float64)
            assert Z_lazy.chunks[0] == dX_lazy.chunks[0] == X_lazy.chunks[0]
            np.testing.assert_array_equal(Z_lazy.compute(scheduler='sync'), Z)
            # blocks follow the chunk's size, so overlapping windows may add in another order
            np.testing.assert_allclose(dX_lazy.compute(scheduler='sync'),
                                       backward(dZ, X, pool, stride, pad, **options), rtol=1e-12,
                                       atol=1e-12)


def test_dask_errors_are_numpys_and_raised_by_the_call():
    pytest.importorskip('dask')
    import dask.array as da
    X = da.ones((5, 6, 6, 2), chunks=2)
    with pytest.raises(ValueError, match=r"pad=5 leaves window 0 of spatial axis 0"):
        maxpool2D(X, 3, 1, 5)
    with pytest.raises(ValueError, match=r"dZ must have the shape of avgpool2D's output, "
                                         r"\(5, 3, 3, 2\) \(for X of shape \(5, 6, 6, 2\)\)"):
        avgpool2D_backward(da.ones((5, 2, 2, 2)), X, 2)




@pytest.mark.parametrize('pool, stride, pad', [(2, 2, 0), (3, 2, 1), (3, 1, 'same'), (2, 3, 0)])
def test_peak_memory_is_at_most_twice_the_result(pool, stride, pad):
    X = np.random.default_rng(0).standard_normal((32, 32, 32, 64)).astype(np.float32)
    Z = maxpool2D(X, pool, stride, pad)
    for fn in (lambda: maxpool2D(X, pool, stride, pad), lambda: avgpool2D(X, pool, stride, pad),
               lambda: maxpool2D_backward(Z, X, pool, stride, pad),
               lambda: avgpool2D_backward(Z, X, pool, stride, pad)):
        out, peak, _ = _peak(fn)
        assert peak <= 2 * out.nbytes, peak / out.nbytes


@pytest.mark.parametrize('call', [
    lambda: maxpool2D(np.ones((1, 4, 4, 1)), 10 ** 6, 10 ** 9, 10 ** 6 - 2),
    lambda: avgpool1D(np.ones((1, 4, 1)), 10 ** 9, 1, (10 ** 9 - 1, 0)),
    lambda: maxpool1D_backward(np.ones((1, 1, 1)), np.ones((1, 4, 1)), 3, 10 ** 9, 10 ** 6,
                                       10 ** 6 - 1),
    lambda: maxpool3D(np.broadcast_to(np.float32(1), (1, 10 ** 4, 10 ** 4, 10 ** 4, 1)),
                      3, 5 * 10 ** 3),
])
def test_work_and_memory_follow_the_result(call):
    call()  # the first call of a process pays for lazy imports
    _, peak, elapsed = _peak(call)
    assert peak < 1 << 20 and elapsed < 2, (peak, elapsed)


def test_results_are_writeable_and_own_their_memory():
    X = np.random.default_rng(1).standard_normal((2, 5, 5, 3))
    Z = maxpool2D(X, 2)
    outs = [Z, avgpool2D(X, 2), maxpool2D(X, 1), avgpool2D(X, 1), maxpool2D_backward(Z, X, 2),
            avgpool2D_backward(Z, X, 2), maxpool1D(X[:, 0], 1), maxpool3D(X[:, None], 1)]
    for out in outs:
        assert out.flags.writeable and not np.shares_memory(out, X)
        out *= 2


def test_pooling_is_in_the_package_namespace():
    names = [n for n in convutils.__all__ if 'pool' in n]
    assert sorted(names) == sorted(f'{kind}pool{n}D{suffix}' for kind in ('max', 'avg')
                                   for n in (1, 2, 3) for suffix in ('', '_backward'))
