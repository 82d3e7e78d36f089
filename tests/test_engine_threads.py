"""Every route of the engine on convutils' own workers: 1 and N threads agree to rounding, a thread
count gives the same bits on every run, eight callers at once each get the serial result, and the
Dask threaded scheduler gets each chunk's serial result. The shapes are just large enough for the
calls to be shared out (`MIN_WORK`)."""
import threading
import numpy as np
import pytest
import convutils as cu
from convutils.threads import set_num_threads

rng = np.random.default_rng(23)
f32, f64 = np.float32, np.float64


def _arrays(*shapes, dtype=f64):
    return [rng.standard_normal(shape).astype(dtype) for shape in shapes]


X2, W2 = _arrays((16, 24, 24, 32), (3, 3, 32, 32))
XW, WW = _arrays((16, 16, 16, 64), (3, 3, 64, 64), dtype=f32)  # the Winograd route
X1, W1 = _arrays((16, 256, 32), (5, 32, 32))
X3, W3 = _arrays((2, 8, 16, 16, 16), (3, 3, 3, 16, 16))
XD, WD = _arrays((16, 24, 24, 32), (3, 3, 32, 2))
dZ2 = rng.standard_normal(cu.conv2D(X2, W2, 1, 1).shape)
dZR = rng.standard_normal(cu.conv2D(X2, W2, 2, 1).shape)
dZW = rng.standard_normal(cu.conv2D(XW, WW, 1, 1).shape).astype(f32)

ROUTES = {
    'conv2D gemm': lambda: cu.conv2D(X2, W2, 1, 1),
    'conv2D winograd': lambda: cu.conv2D(XW, WW, 1, 1),
    'conv2D grouped, per-axis stride': lambda: cu.conv2D(X2, W2[:, :, :8], (2, 1), 1, groups=4),
    'depthwise_conv2D': lambda: cu.depthwise_conv2D(XD, WD, 1, 1),
    'conv1D': lambda: cu.conv1D(X1, W1, 1, 'same'),
    'conv3D': lambda: cu.conv3D(X3, W3, (1, 2, 2), 1),
    'deconv2D stamps': lambda: cu.deconv2D(dZR, W2.swapaxes(2, 3), 2, 1),
    'conv2D_backward gemm': lambda: cu.conv2D_backward(dZ2, X2, W2, 1, 1),
    'conv2D_backward winograd': lambda: cu.conv2D_backward(dZW, XW, WW, 1, 1),
    'conv2D_backward reflect, stride 2': lambda: cu.conv2D_backward(dZR, X2, W2, 2, 1,
                                                                    pad_mode='reflect'),
}


def _flat(result):
    return [a for a in (result if isinstance(result, tuple) else (result,)) if a is not None]


def _on_a_thread(fn):
    "`fn()` on a thread of its own: the serial result, one BLAS thread."
    out = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start(); thread.join()
    return out[0]


@pytest.mark.parametrize('name', ROUTES)
def test_one_and_many_threads_agree_and_repeat_bit_for_bit(name):
    call = ROUTES[name]
    with set_num_threads(1): one = _flat(call())
    for n in (2, 8):
        with set_num_threads(n): first, again = _flat(call()), _flat(call())
        for a, b, c in zip(one, first, again):
            scale = np.abs(a).max()
            np.testing.assert_allclose(b, a, atol=(2e-5 if a.dtype == f32 else 1e-12) * scale)
            np.testing.assert_array_equal(b, c)  # the same bits on every run of a count


def test_eight_callers_at_once_each_get_the_serial_result():
    serial = {name: _flat(_on_a_thread(call)) for name, call in ROUTES.items()}
    results, errors = {}, []
    def caller(k):
        try:
            for name in list(ROUTES)[k % 3:] + list(ROUTES)[:k % 3]:  # in different orders
                results[k, name] = _flat(ROUTES[name]())
        except BaseException as error: errors.append(error)
    threads = [threading.Thread(target=caller, args=(k,)) for k in range(8)]
    for thread in threads: thread.start()
    for thread in threads: thread.join(120)
    assert not errors and not any(thread.is_alive() for thread in threads)
    for (k, name), got in results.items():
        for a, b in zip(serial[name], got): np.testing.assert_array_equal(b, a)


def test_dask_threaded_scheduler_gets_each_chunks_serial_result():
    dask = pytest.importorskip('dask')
    import dask.array as da
    X = da.from_array(X2, chunks=(4, -1, -1, -1))
    Z = cu.conv2D(X, W2, 1, 1)
    got = dask.compute(Z, scheduler='threads', num_workers=4)[0]
    expected = np.concatenate([_on_a_thread(lambda: cu.conv2D(X2[n:n + 4], W2, 1, 1))
                               for n in range(0, 16, 4)])
    np.testing.assert_array_equal(got, expected)
