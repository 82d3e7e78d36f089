"""Convolutions in 1, 2 and 3 dimensions, against references written here from first principles.

The references are the definitions, as loops over kernel taps (one NumPy slice per tap, reading or
stamping every output position at once), with `np.pad` for the padding and nothing from convutils:

- `ref_conv`:    Z[n, o, :] = sum over taps t of X_pad[n, o*s + t*(d+1), group's channels] @ W[t]
- `ref_deconv`:  input pixel a stamps X[n, a] @ W[t] onto full position a*s + t*(d+1); then crop
- `ref_conv_dX`, `ref_conv_dW`, `ref_deconv_dX`, `ref_deconv_dW`: the chain rule on those sums,
  the padding's share of a convolution's input gradient folded back with `np.pad`'s index map
- `ref_im2col`:  rows (in_ch, k_1, ..., k_N), columns (out_1, ..., out_N, n_ex)

The references are themselves checked against scalar loops (one multiply-add at a time), against
today's 2-D and 1-D functions, and against PyTorch when it is installed. The functions under test
are looked up when a test runs, so this module imports even where they do not exist yet.
"""
import itertools
import math

import numpy as np
import pytest

import convutils

MODES = ('constant', 'reflect', 'symmetric', 'edge', 'wrap')
ALIASES = {'zeros': 'constant', 'replicate': 'edge', 'circular': 'wrap'}  # PyTorch's names
AXES = (1, 2, 3)
TOL = dict(rtol=1e-10, atol=1e-10)


def fn(name):
    "The convutils function `name`, looked up at test time."
    return getattr(convutils, name)


def per_axis(value, n_axes):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n_axes


def eff(kernel, dilation): return (dilation + 1) * (kernel - 1) + 1


def inner(A, B): return float(np.vdot(np.asarray(A, float), np.asarray(B, float)))


# ------------------------------------------------------------------------------------------------
# Pad forms, resolved by the contract's words
# ------------------------------------------------------------------------------------------------
def explicit_pads(pad, n_axes):
    "An int, N ints (symmetric per axis) or 2N ints ((before, after) per axis) as N pairs."
    if isinstance(pad, str):
        assert pad == 'valid', pad
        return [(0, 0)] * n_axes
    if not isinstance(pad, (tuple, list)): return [(pad, pad)] * n_axes
    if len(pad) == n_axes: return [(p, p) for p in pad]
    assert len(pad) == 2 * n_axes, pad
    return [tuple(pad[2 * i:2 * i + 2]) for i in range(n_axes)]


def conv_pads(pad, in_dims, kernel, stride, dilation):
    "A convolution's padding, (before, after) per axis; 'same' is the least giving out = in."
    n_axes = len(in_dims)
    if pad not in ('same', 'causal'): return explicit_pads(pad, n_axes)
    pads = []
    for n, k, s, d in zip(in_dims, kernel, per_axis(stride, n_axes), per_axis(dilation, n_axes)):
        total = max(0, s * (n - 1) + eff(k, d) - n)
        pads.append((total, 0) if pad == 'causal' else (total // 2, total - total // 2))
    return pads


def deconv_crops(pad, kernel, stride, dilation):
    "A transposed convolution's crop per axis; 'same' keeps stride*in (negative: zeros added)."
    n_axes = len(kernel)
    if pad != 'same': return explicit_pads(pad, n_axes)
    crops = []
    for k, s, d in zip(kernel, per_axis(stride, n_axes), per_axis(dilation, n_axes)):
        total = eff(k, d) - s
        crops.append((total // 2, total - total // 2) if total >= 0 else (0, total))
    return crops


def conv_out_dims(in_dims, pads, kernel, stride, dilation):
    n_axes = len(in_dims)
    return tuple((n + b + a - eff(k, d)) // s + 1 for n, (b, a), k, s, d in
                 zip(in_dims, pads, kernel, per_axis(stride, n_axes), per_axis(dilation, n_axes)))


def full_dims(in_dims, kernel, stride, dilation):
    n_axes = len(in_dims)
    return tuple(s * (n - 1) + eff(k, d) for n, k, s, d in
                 zip(in_dims, kernel, per_axis(stride, n_axes), per_axis(dilation, n_axes)))


# ------------------------------------------------------------------------------------------------
# References
# ------------------------------------------------------------------------------------------------
def np_pad(X, pads, mode):
    return np.pad(X, [(0, 0), *pads, (0, 0)], mode=ALIASES.get(mode, mode))


def taps_at(tap, count, stride, dilation):
    "Index of the `count` positions o*s + t*(d+1), o = 0..count-1, per axis, for every example."
    return (slice(None), *(slice(t * (d + 1), t * (d + 1) + s * (c - 1) + 1, s)
                           for t, c, s, d in zip(tap, count, stride, dilation)))


def groups_of(groups, in_ch, out_ch):
    "Group g's (input channels, output channels), as slices."
    i, o = in_ch // groups, out_ch // groups
    return [(slice(g * i, (g + 1) * i), slice(g * o, (g + 1) * o)) for g in range(groups)]


def shifted(A, offsets, lengths):
    "B[n, j, c] = A[n, j + offset, c] where that exists, else 0: a crop, or zeros added."
    B = np.zeros((A.shape[0], *lengths, A.shape[-1]), A.dtype)
    src, dst = [slice(None)], [slice(None)]
    for n, off, m in zip(A.shape[1:-1], offsets, lengths):
        lo, hi = max(0, off), min(n, off + m)
        if hi <= lo: return B
        src.append(slice(lo, hi)), dst.append(slice(lo - off, hi - off))
    B[tuple(dst)] = A[tuple(src)]
    return B


def ref_conv(X, W, stride, pads, dilation=0, mode='constant', groups=1):
    n_axes = X.ndim - 2
    X, W = np.asarray(X, float), np.asarray(W, float)
    stride, dilation = per_axis(stride, n_axes), per_axis(dilation, n_axes)
    X_pad, kernel = np_pad(X, pads, mode), W.shape[:n_axes]
    out = conv_out_dims(X.shape[1:-1], pads, kernel, stride, dilation)
    Z = np.zeros((len(X), *out, W.shape[-1]))
    for tap in itertools.product(*map(range, kernel)):
        window = X_pad[taps_at(tap, out, stride, dilation)]
        for cin, cout in groups_of(groups, X.shape[-1], W.shape[-1]):
            Z[..., cout] += window[..., cin] @ W[tap][:, cout]
    return Z


def ref_deconv(X, W, stride, crops, dilation=0, groups=1):
    n_axes = X.ndim - 2
    X, W = np.asarray(X, float), np.asarray(W, float)
    stride, dilation = per_axis(stride, n_axes), per_axis(dilation, n_axes)
    kernel, in_dims = W.shape[:n_axes], X.shape[1:-1]
    full = np.zeros((len(X), *full_dims(in_dims, kernel, stride, dilation), W.shape[-1] * groups))
    for tap in itertools.product(*map(range, kernel)):
        stamps = taps_at(tap, in_dims, stride, dilation)
        for cin, cout in groups_of(groups, X.shape[-1], full.shape[-1]):
            full[(*stamps, cout)] += X[..., cin] @ W[tap][cin]
    return shifted(full, [b for b, _ in crops],
                   [L - b - a for L, (b, a) in zip(full.shape[1:-1], crops)])


def fold_padding(dX_pad, in_dims, pads, mode):
    "Add each padded position's gradient onto the input pixel it copies (np.pad's index map)."
    mode = ALIASES.get(mode, mode)
    for axis, (n, (b, a)) in enumerate(zip(in_dims, pads), start=1):
        if mode == 'constant': source = np.pad(np.arange(n), (b, a), constant_values=-1)
        else: source = np.pad(np.arange(n), (b, a), mode=mode)
        moved = np.moveaxis(dX_pad, axis, 0)
        folded = np.zeros((n, *moved.shape[1:]))
        keep = source >= 0
        np.add.at(folded, source[keep], moved[keep])
        dX_pad = np.moveaxis(folded, 0, axis)
    return dX_pad


def ref_conv_dX(dZ, X_shape, W, stride, pads, dilation=0, mode='constant', groups=1):
    n_axes = len(X_shape) - 2
    W = np.asarray(W, float)
    stride, dilation = per_axis(stride, n_axes), per_axis(dilation, n_axes)
    in_dims = X_shape[1:-1]
    dX_pad = np.zeros((X_shape[0], *(n + b + a for n, (b, a) in zip(in_dims, pads)), X_shape[-1]))
    for tap in itertools.product(*map(range, W.shape[:n_axes])):
        window = taps_at(tap, dZ.shape[1:-1], stride, dilation)
        for cin, cout in groups_of(groups, X_shape[-1], W.shape[-1]):
            dX_pad[(*window, cin)] += dZ[..., cout] @ W[tap][:, cout].T
    return fold_padding(dX_pad, in_dims, pads, mode)


def ref_conv_dW(dZ, X, W_shape, stride, pads, dilation=0, mode='constant', groups=1):
    n_axes = X.ndim - 2
    stride, dilation = per_axis(stride, n_axes), per_axis(dilation, n_axes)
    X_pad, dW = np_pad(np.asarray(X, float), pads, mode), np.zeros(W_shape)
    for tap in itertools.product(*map(range, W_shape[:n_axes])):
        window = X_pad[taps_at(tap, dZ.shape[1:-1], stride, dilation)]
        for cin, cout in groups_of(groups, X.shape[-1], W_shape[-1]):
            dW[tap][:, cout] += (window[..., cin].reshape(-1, W_shape[-2]).T
                                 @ dZ[..., cout].reshape(-1, W_shape[-1] // groups))
    return dW


def deconv_full_grad(dZ, X_shape, kernel, stride, crops, dilation):
    "dZ put back where the crop took it from, on the full (uncropped) output."
    full = full_dims(X_shape[1:-1], kernel, stride, dilation)
    return shifted(np.asarray(dZ, float), [-b for b, _ in crops], full)


def ref_deconv_dX(dZ, X_shape, W, stride, crops, dilation=0, groups=1):
    n_axes = len(X_shape) - 2
    W = np.asarray(W, float)
    stride, dilation = per_axis(stride, n_axes), per_axis(dilation, n_axes)
    d_full = deconv_full_grad(dZ, X_shape, W.shape[:n_axes], stride, crops, dilation)
    dX = np.zeros(X_shape)
    for tap in itertools.product(*map(range, W.shape[:n_axes])):
        stamps = taps_at(tap, X_shape[1:-1], stride, dilation)
        for cin, cout in groups_of(groups, X_shape[-1], d_full.shape[-1]):
            dX[..., cin] += d_full[(*stamps, cout)] @ W[tap][cin].T
    return dX


def ref_deconv_dW(dZ, X, W_shape, stride, crops, dilation=0, groups=1):
    n_axes = X.ndim - 2
    X = np.asarray(X, float)
    stride, dilation = per_axis(stride, n_axes), per_axis(dilation, n_axes)
    d_full = deconv_full_grad(dZ, X.shape, W_shape[:n_axes], stride, crops, dilation)
    dW = np.zeros(W_shape)
    for tap in itertools.product(*map(range, W_shape[:n_axes])):
        stamps = taps_at(tap, X.shape[1:-1], stride, dilation)
        for cin, cout in groups_of(groups, X.shape[-1], d_full.shape[-1]):
            dW[tap][cin] += (X[..., cin].reshape(-1, X.shape[-1] // groups).T
                             @ d_full[(*stamps, cout)].reshape(-1, W_shape[-1]))
    return dW


def ref_im2col(X, kernel, stride, pads, dilation=0, mode='constant'):
    "Rows (in_ch, k_1, ..., k_N), columns (out_1, ..., out_N, n_ex)."
    n_axes = X.ndim - 2
    stride, dilation = per_axis(stride, n_axes), per_axis(dilation, n_axes)
    X_pad = np_pad(np.asarray(X), pads, mode)
    out = conv_out_dims(X.shape[1:-1], pads, kernel, stride, dilation)
    cols = np.zeros((X.shape[-1], *kernel, *out, len(X)), X.dtype)
    for tap in itertools.product(*map(range, kernel)):
        window = X_pad[taps_at(tap, out, stride, dilation)]  # (n_ex, *out, in_ch)
        cols[(slice(None), *tap)] = np.swapaxes(window, 0, -1)
    return cols.reshape(X.shape[-1] * math.prod(kernel), -1)


def ref_im2col_adjoint(C, X_shape, kernel, stride, pads, dilation):
    "Each entry of the columns added back onto the pixel `ref_im2col` read it from."
    n_axes = len(X_shape) - 2
    stride, dilation = per_axis(stride, n_axes), per_axis(dilation, n_axes)
    out = conv_out_dims(X_shape[1:-1], pads, kernel, stride, dilation)
    cols = C.reshape(X_shape[-1], *kernel, *out, X_shape[0])
    X_pad = np.zeros((X_shape[0], *(n + b + a for n, (b, a) in zip(X_shape[1:-1], pads)),
                      X_shape[-1]))
    for tap in itertools.product(*map(range, kernel)):
        X_pad[taps_at(tap, out, stride, dilation)] += np.swapaxes(cols[(slice(None), *tap)], 0, -1)
    return shifted(X_pad, [b for b, _ in pads], X_shape[1:-1])


# scalar loops, one multiply-add at a time: the references' own reference, on tiny cases
def scalar_conv(X, W, stride, pads, dilation, mode, groups):
    n_axes = X.ndim - 2
    stride, dilation = per_axis(stride, n_axes), per_axis(dilation, n_axes)
    X_pad, kernel = np_pad(X, pads, mode), W.shape[:n_axes]
    out = conv_out_dims(X.shape[1:-1], pads, kernel, stride, dilation)
    in_per, out_per = W.shape[-2], W.shape[-1] // groups
    Z = np.zeros((len(X), *out, W.shape[-1]))
    for n, o, pos, tap, c in itertools.product(range(len(X)), range(W.shape[-1]),
                                               itertools.product(*map(range, out)),
                                               itertools.product(*map(range, kernel)),
                                               range(in_per)):
        at = tuple(p * s + t * (d + 1) for p, t, s, d in zip(pos, tap, stride, dilation))
        Z[(n, *pos, o)] += X_pad[(n, *at, (o // out_per) * in_per + c)] * W[(*tap, c, o)]
    return Z


def scalar_deconv(X, W, stride, crops, dilation, groups):
    n_axes = X.ndim - 2
    stride, dilation = per_axis(stride, n_axes), per_axis(dilation, n_axes)
    kernel, in_per, out_per = W.shape[:n_axes], X.shape[-1] // groups, W.shape[-1]
    full = np.zeros((len(X), *full_dims(X.shape[1:-1], kernel, stride, dilation), out_per * groups))
    for n, a, c, tap, j in itertools.product(range(len(X)), itertools.product(
            *map(range, X.shape[1:-1])), range(X.shape[-1]), itertools.product(*map(range, kernel)),
            range(out_per)):
        at = tuple(p * s + t * (d + 1) for p, t, s, d in zip(a, tap, stride, dilation))
        full[(n, *at, (c // in_per) * out_per + j)] += X[(n, *a, c)] * W[(*tap, c, j)]
    out = [L - b - e for L, (b, e) in zip(full.shape[1:-1], crops)]
    Y = np.zeros((len(X), *out, full.shape[-1]))
    for idx in np.ndindex(*Y.shape):
        src = tuple(i + b for i, (b, _) in zip(idx[1:-1], crops))
        if all(s < L for s, L in zip(src, full.shape[1:-1])): Y[idx] = full[(idx[0], *src, idx[-1])]
    return Y


# ------------------------------------------------------------------------------------------------
# Random cases
# ------------------------------------------------------------------------------------------------
MAX_SIDE = {1: 9, 2: 7, 3: 5}
CHANNEL_KINDS = ('one group', 'two groups', 'depthwise')


def axis_arg(rng, low, high, n_axes, per_axis_args=True):
    "An int in [low, high], or (with `per_axis_args`) maybe one per axis, as a tuple or a list."
    form = int(rng.integers(3)) if per_axis_args else 0
    if form == 0: return int(rng.integers(low, high + 1))
    values = [int(v) for v in rng.integers(low, high + 1, n_axes)]
    return tuple(values) if form == 1 else values


def pad_forms(n_axes, causal=True):
    return ('int', 'per axis', 'before/after', 'same', 'valid') + (
        ('causal',) if n_axes == 1 and causal else ())


def draw_pad(rng, form, n_axes, high=3):
    if form == 'int': return int(rng.integers(0, high + 1))
    if form == 'per axis': return tuple(int(v) for v in rng.integers(0, high + 1, n_axes))
    if form == 'before/after':
        values = [int(v) for v in rng.integers(0, high + 1, 2 * n_axes)]
        return tuple(values) if rng.random() < 0.7 else values
    return form


def conv_channels(rng, kind):
    "(groups, in_ch, out_ch) of a convolution."
    if kind == 'one group': return 1, int(rng.integers(1, 5)), int(rng.integers(1, 5))
    if kind == 'two groups': return 2, 2 * int(rng.integers(1, 3)), 2 * int(rng.integers(1, 3))
    in_ch = int(rng.integers(1, 5))
    return in_ch, in_ch, in_ch * int(rng.integers(1, 3))


def mode_fits(mode, in_dims, pads, torch=False):
    "Whether `mode` can fill `pads` (reflect: less than the axis; PyTorch's circular: at most)."
    mode = ALIASES.get(mode, mode)
    if mode == 'reflect': return all(max(p) < n for n, p in zip(in_dims, pads))
    if mode == 'wrap' and torch: return all(max(p) <= n for n, p in zip(in_dims, pads))
    return True


class Case(dict):
    __getattr__ = dict.__getitem__


def conv_case(rng, n_axes, form, mode='constant', kind='one group', max_side=None,
              torch=False, per_axis_args=True):
    "A random convolution with `form`'s pad, `mode` and `kind`'s channels whose output exists."
    max_side = max_side or MAX_SIDE[n_axes]
    while True:
        in_dims = tuple(int(v) for v in rng.integers(1, max_side + 1, n_axes))
        kernel = tuple(int(v) for v in rng.integers(1, 4, n_axes))
        stride = axis_arg(rng, 1, 3, n_axes, per_axis_args)
        dilation = axis_arg(rng, 0, 2, n_axes, per_axis_args)
        pad = draw_pad(rng, form, n_axes)
        pads = conv_pads(pad, in_dims, kernel, stride, dilation)
        out = conv_out_dims(in_dims, pads, kernel, stride, dilation)
        if min(out) < 1 or not mode_fits(mode, in_dims, pads, torch): continue
        groups, in_ch, out_ch = conv_channels(rng, kind)
        n_ex = int(rng.integers(1, 3))
        X = rng.standard_normal((n_ex, *in_dims, in_ch))
        W = rng.standard_normal((*kernel, in_ch // groups, out_ch))
        dZ = rng.standard_normal((n_ex, *out, out_ch))
        return Case(X=X, W=W, dZ=dZ, stride=stride, pad=pad, dilation=dilation, mode=mode,
                    groups=groups, pads=pads, out=out)


def deconv_case(rng, n_axes, form, kind='one group', max_side=None, max_crop=3, per_axis_args=True):
    "A random transposed convolution with `form`'s crop whose output exists."
    max_side = max_side or MAX_SIDE[n_axes] - 2
    while True:
        in_dims = tuple(int(v) for v in rng.integers(1, max_side + 1, n_axes))
        kernel = tuple(int(v) for v in rng.integers(1, 4, n_axes))
        stride = axis_arg(rng, 1, 3, n_axes, per_axis_args)
        dilation = axis_arg(rng, 0, 2, n_axes, per_axis_args)
        pad = draw_pad(rng, form, n_axes, max_crop)
        crops = deconv_crops(pad, kernel, stride, dilation)
        out = tuple(L - b - a for L, (b, a) in
                    zip(full_dims(in_dims, kernel, stride, dilation), crops))
        if min(out) < 1: continue
        groups, in_ch, out_ch = conv_channels(rng, kind)
        n_ex = int(rng.integers(1, 3))
        X = rng.standard_normal((n_ex, *in_dims, in_ch))
        W = rng.standard_normal((*kernel, in_ch, out_ch // groups))
        dZ = rng.standard_normal((n_ex, *out, out_ch))
        return Case(X=X, W=W, dZ=dZ, stride=stride, pad=pad, dilation=dilation, groups=groups,
                    crops=crops, out=out)


def conv_cases(seed, n_axes, count, modes=MODES + tuple(ALIASES), **options):
    "`count` cases cycling through every pad form, pad mode and kind of channels."
    rng = np.random.default_rng(seed)
    forms = pad_forms(n_axes)
    for i in range(count):
        yield conv_case(rng, n_axes, forms[i % len(forms)], modes[i % len(modes)],
                        CHANNEL_KINDS[i % 3], **options)


def deconv_cases(seed, n_axes, count, forms=None, **options):
    rng = np.random.default_rng(seed)
    forms = forms or pad_forms(n_axes, causal=False)
    for i in range(count):
        yield deconv_case(rng, n_axes, forms[i % len(forms)], CHANNEL_KINDS[i % 3], **options)


def conv(n_axes, c, X=None, W=None, **kwargs):
    return fn(f'conv{n_axes}D')(c.X if X is None else X, c.W if W is None else W, c.stride,
                                c.pad, c.dilation, pad_mode=c.mode, groups=c.groups, **kwargs)


def deconv(n_axes, c, X=None, W=None):
    return fn(f'deconv{n_axes}D')(c.X if X is None else X, c.W if W is None else W, c.stride,
                                  c.pad, c.dilation, groups=c.groups)


def describe(c):
    return (f"X {c.X.shape}, W {c.W.shape}, stride {c.stride}, pad {c.pad!r}, "
            f"dilation {c.dilation}, mode {c.get('mode', 'constant')}, groups {c.groups}")


# ------------------------------------------------------------------------------------------------
# The references, checked
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('n_axes', AXES)
def test_references_agree_with_scalar_loops(n_axes):
    rng = np.random.default_rng(100 + n_axes)
    forms, crop_forms = pad_forms(n_axes), pad_forms(n_axes, causal=False)
    for i in range(12):
        c = conv_case(rng, n_axes, forms[i % len(forms)], MODES[i % 5], CHANNEL_KINDS[i % 3],
                      max_side=4)
        np.testing.assert_allclose(ref_conv(c.X, c.W, c.stride, c.pads, c.dilation, c.mode,
                                            c.groups),
                                   scalar_conv(c.X, c.W, c.stride, c.pads, c.dilation, c.mode,
                                               c.groups), **TOL, err_msg=describe(c))
        d = deconv_case(rng, n_axes, crop_forms[i % 5], CHANNEL_KINDS[i % 3], max_side=3)
        np.testing.assert_allclose(ref_deconv(d.X, d.W, d.stride, d.crops, d.dilation, d.groups),
                                   scalar_deconv(d.X, d.W, d.stride, d.crops, d.dilation,
                                                 d.groups), **TOL, err_msg=describe(d))


@pytest.mark.parametrize('n_axes', AXES)
def test_reference_gradients_are_adjoints(n_axes):
    "The gradient references are the forward references' adjoints, in X and in W."
    rng = np.random.default_rng(110 + n_axes)
    for c in conv_cases(120 + n_axes, n_axes, 20):
        X2, W2 = rng.standard_normal(c.X.shape), rng.standard_normal(c.W.shape)
        args = (c.stride, c.pads, c.dilation, c.mode, c.groups)
        dX = ref_conv_dX(c.dZ, c.X.shape, c.W, *args)
        dW = ref_conv_dW(c.dZ, c.X, c.W.shape, *args)
        assert np.isclose(inner(ref_conv(X2, c.W, *args), c.dZ), inner(X2, dX), **TOL)
        assert np.isclose(inner(ref_conv(c.X, W2, *args), c.dZ), inner(W2, dW), **TOL)
    for d in deconv_cases(130 + n_axes, n_axes, 20):
        X2, W2 = rng.standard_normal(d.X.shape), rng.standard_normal(d.W.shape)
        args = (d.stride, d.crops, d.dilation, d.groups)
        dX = ref_deconv_dX(d.dZ, d.X.shape, d.W, *args)
        dW = ref_deconv_dW(d.dZ, d.X, d.W.shape, *args)
        assert np.isclose(inner(ref_deconv(X2, d.W, *args), d.dZ), inner(X2, dX), **TOL)
        assert np.isclose(inner(ref_deconv(d.X, W2, *args), d.dZ), inner(W2, dW), **TOL)


def test_references_agree_with_todays_2D_and_1D_functions():
    """At one int stride and dilation, the 2-D and 1-D functions that exist today agree with the
    references (im2col's layout included): a check of the references now, of compatibility after."""
    rng = np.random.default_rng(7)
    for n_axes, forward, backward in ((2, convutils.conv2D, convutils.conv2D_backward),
                                      (1, convutils.conv1D, convutils.conv1D_backward)):
        forms = pad_forms(n_axes)
        for i in range(30):
            c = conv_case(rng, n_axes, forms[i % len(forms)], MODES[i % 5], CHANNEL_KINDS[i % 3],
                          per_axis_args=False)
            s, d = c.stride, c.dilation
            if n_axes == 1 and isinstance(c.pad, (tuple, list)) and len(c.pad) == 1: continue
            args = (c.stride, c.pads, c.dilation, c.mode, c.groups)
            opts = dict(pad_mode=c.mode, groups=c.groups)
            np.testing.assert_allclose(forward(c.X, c.W, s, c.pad, d, **opts),
                                       ref_conv(c.X, c.W, *args), **TOL, err_msg=describe(c))
            dX, dW = backward(c.dZ, c.X, c.W, s, c.pad, d, **opts)
            np.testing.assert_allclose(dX, ref_conv_dX(c.dZ, c.X.shape, c.W, *args), **TOL)
            np.testing.assert_allclose(dW, ref_conv_dW(c.dZ, c.X, c.W.shape, *args), **TOL)
            if n_axes == 1: continue
            W_shape, kernel = (*c.W.shape[:2], c.X.shape[-1], 1), c.W.shape[:2]
            X_col, _ = convutils.im2col(c.X, W_shape, c.pad, s, d, pad_mode=c.mode)
            np.testing.assert_array_equal(X_col, ref_im2col(c.X, kernel, s, c.pads, d, c.mode))
            np.testing.assert_allclose(convutils.col2im(X_col, c.X.shape, W_shape, c.pad, s, d),
                                       ref_im2col_adjoint(X_col, c.X.shape, kernel, s, c.pads, d),
                                       **TOL)
    for d in deconv_cases(8, 2, 30, per_axis_args=False):
        args = (d.stride, d.crops, d.dilation, d.groups)
        np.testing.assert_allclose(
            convutils.deconv2D(d.X, d.W, d.stride, d.pad, d.dilation, groups=d.groups),
            ref_deconv(d.X, d.W, *args), **TOL, err_msg=describe(d))
        dX, dW = convutils.deconv2D_backward(d.dZ, d.X, d.W, d.stride, d.pad, d.dilation,
                                             groups=d.groups)
        np.testing.assert_allclose(dX, ref_deconv_dX(d.dZ, d.X.shape, d.W, *args), **TOL)
        np.testing.assert_allclose(dW, ref_deconv_dW(d.dZ, d.X, d.W.shape, *args), **TOL)


# ------------------------------------------------------------------------------------------------
# Forward passes against the loops
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('n_axes', AXES)
def test_conv_is_the_loop(n_axes):
    "Every pad form, every pad mode (PyTorch's aliases too), groups, per-axis stride and dilation."
    for c in conv_cases(n_axes, n_axes, 48):
        Z = conv(n_axes, c)
        assert Z.dtype == np.float64 and Z.shape == (len(c.X), *c.out, c.W.shape[-1]), describe(c)
        np.testing.assert_allclose(Z, ref_conv(c.X, c.W, c.stride, c.pads, c.dilation, c.mode,
                                               c.groups), **TOL, err_msg=describe(c))


@pytest.mark.parametrize('n_axes', AXES)
def test_deconv_is_the_stamp_loop(n_axes):
    "Every crop form ('same' with kernels narrower than the stride too), groups, per-axis args."
    for d in deconv_cases(10 + n_axes, n_axes, 45):
        Y = deconv(n_axes, d)
        assert Y.dtype == np.float64 and Y.shape == (len(d.X), *d.out, d.dZ.shape[-1]), describe(d)
        np.testing.assert_allclose(Y, ref_deconv(d.X, d.W, d.stride, d.crops, d.dilation,
                                                 d.groups), **TOL, err_msg=describe(d))


@pytest.mark.parametrize('n_axes', AXES)
def test_deconv_same_multiplies_the_size_by_the_stride(n_axes):
    rng = np.random.default_rng(20 + n_axes)
    for _ in range(12):
        d = deconv_case(rng, n_axes, 'same', CHANNEL_KINDS[int(rng.integers(3))])
        Y = deconv(n_axes, d)
        assert Y.shape[1:-1] == tuple(s * n for s, n in
                                      zip(per_axis(d.stride, n_axes), d.X.shape[1:-1]))
        np.testing.assert_allclose(Y, ref_deconv(d.X, d.W, d.stride, d.crops, d.dilation,
                                                 d.groups), **TOL, err_msg=describe(d))


@pytest.mark.parametrize('n_axes', AXES)
def test_conv_same_keeps_the_size(n_axes):
    rng = np.random.default_rng(30 + n_axes)
    for i in range(12):
        c = conv_case(rng, n_axes, 'same', ('constant', 'edge', 'wrap')[i % 3])
        Z = conv(n_axes, c)
        assert Z.shape[1:-1] == c.X.shape[1:-1], describe(c)
        np.testing.assert_allclose(Z, ref_conv(c.X, c.W, c.stride, c.pads, c.dilation, c.mode,
                                               c.groups), **TOL, err_msg=describe(c))


@pytest.mark.parametrize('mode', MODES)
def test_3D_pad_modes(mode):
    "Each mode fills all three spatial axes, asymmetric pads included."
    rng = np.random.default_rng(40)
    X = rng.standard_normal((2, 4, 5, 3, 2))
    W = rng.standard_normal((3, 2, 3, 2, 3))
    pad = (1, 2, 0, 1, 2, 1)
    Z = fn('conv3D')(X, W, (1, 2, 1), pad, (0, 1, 0), pad_mode=mode)
    np.testing.assert_allclose(Z, ref_conv(X, W, (1, 2, 1), explicit_pads(pad, 3), (0, 1, 0),
                                           mode), **TOL)
    # against the padded input convolved with no padding, which checks the mode alone
    X_pad = np.pad(X, ((0, 0), (1, 2), (0, 1), (2, 1), (0, 0)), mode=mode)
    np.testing.assert_allclose(Z, fn('conv3D')(X_pad, W, (1, 2, 1), 0, (0, 1, 0)), **TOL)


def test_1D_pad_forms():
    "In 1-D an int pads both ends, a 1-tuple too (one per axis), (left, right) each end."
    rng = np.random.default_rng(41)
    X, W = rng.standard_normal((2, 7, 3)), rng.standard_normal((3, 3, 2))
    for pad, pads in ((2, [(2, 2)]), ((2,), [(2, 2)]), ([1], [(1, 1)]), ((0, 2), [(0, 2)]),
                      ([3, 1], [(3, 1)]), ('valid', [(0, 0)]), ('causal', [(2, 0)]),
                      ('same', [(1, 1)])):
        np.testing.assert_allclose(fn('conv1D')(X, W, 1, pad), ref_conv(X, W, 1, pads), **TOL,
                                   err_msg=repr(pad))
    # causal at stride 2 and dilation 1: eff 5, total 2*6 + 5 - 7 = 10, all on the left
    np.testing.assert_allclose(fn('conv1D')(X, W, (2,), 'causal', [1]),
                               ref_conv(X, W, 2, [(10, 0)], 1), **TOL)


# ------------------------------------------------------------------------------------------------
# Gradients
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('n_axes', AXES)
def test_conv_backward(n_axes):
    "dX and dW are the chain rule's sums, and the adjoints <conv(X), dZ> = <X, dX> = <W, dW>."
    rng = np.random.default_rng(50 + n_axes)
    backward = fn(f'conv{n_axes}D_backward')
    for c in conv_cases(60 + n_axes, n_axes, 40):
        args = (c.stride, c.pads, c.dilation, c.mode, c.groups)
        opts = dict(pad_mode=c.mode, groups=c.groups)
        dX, dW = backward(c.dZ, c.X, c.W, c.stride, c.pad, c.dilation, **opts)
        assert dX.shape == c.X.shape and dW.shape == c.W.shape, describe(c)
        np.testing.assert_allclose(dX, ref_conv_dX(c.dZ, c.X.shape, c.W, *args), **TOL,
                                   err_msg=describe(c))
        np.testing.assert_allclose(dW, ref_conv_dW(c.dZ, c.X, c.W.shape, *args), **TOL,
                                   err_msg=describe(c))
        # adjoints: conv is linear in X and in W, so any second X or W checks dX or dW
        X2, W2 = rng.standard_normal(c.X.shape), rng.standard_normal(c.W.shape)
        assert np.isclose(inner(conv(n_axes, c, X=X2), c.dZ), inner(X2, dX), **TOL), describe(c)
        assert np.isclose(inner(conv(n_axes, c, W=W2), c.dZ), inner(W2, dW), **TOL), describe(c)
        no_dX, dW_alone = backward(c.dZ, c.X, c.W, c.stride, c.pad, c.dilation,
                                   input_grad=False, **opts)
        assert no_dX is None
        np.testing.assert_allclose(dW_alone, dW, **TOL)


@pytest.mark.parametrize('n_axes', AXES)
def test_deconv_backward(n_axes):
    rng = np.random.default_rng(70 + n_axes)
    backward = fn(f'deconv{n_axes}D_backward')
    for d in deconv_cases(80 + n_axes, n_axes, 40):
        args = (d.stride, d.crops, d.dilation, d.groups)
        dX, dW = backward(d.dZ, d.X, d.W, d.stride, d.pad, d.dilation, groups=d.groups)
        assert dX.shape == d.X.shape and dW.shape == d.W.shape, describe(d)
        np.testing.assert_allclose(dX, ref_deconv_dX(d.dZ, d.X.shape, d.W, *args), **TOL,
                                   err_msg=describe(d))
        np.testing.assert_allclose(dW, ref_deconv_dW(d.dZ, d.X, d.W.shape, *args), **TOL,
                                   err_msg=describe(d))
        X2, W2 = rng.standard_normal(d.X.shape), rng.standard_normal(d.W.shape)
        assert np.isclose(inner(deconv(n_axes, d, X=X2), d.dZ), inner(X2, dX), **TOL), describe(d)
        assert np.isclose(inner(deconv(n_axes, d, W=W2), d.dZ), inner(W2, dW), **TOL), describe(d)
        no_dX, dW_alone = backward(d.dZ, d.X, d.W, d.stride, d.pad, d.dilation,
                                   input_grad=False, groups=d.groups)
        assert no_dX is None
        np.testing.assert_allclose(dW_alone, dW, **TOL)


@pytest.mark.parametrize('n_axes', AXES)
def test_deconv_is_the_adjoint_of_conv(n_axes):
    """<deconv(X, W), Y> = <X, conv(Y, W with its channel axes swapped)>, same stride, pad,
    dilation and groups; 'same' only at stride 1, where both mean the same padding."""
    rng = np.random.default_rng(90 + n_axes)
    forms = pad_forms(n_axes, causal=False)
    for i in range(40):
        d = deconv_case(rng, n_axes, forms[i % len(forms)], CHANNEL_KINDS[i % 3])
        if d.pad == 'same' and per_axis(d.stride, n_axes) != (1,) * n_axes: d['stride'] = 1
        Y_shape = (len(d.X), *d.out, d.dZ.shape[-1])
        if d.pad == 'same': Y_shape = (len(d.X), *d.X.shape[1:-1], d.dZ.shape[-1])
        Y = rng.standard_normal(Y_shape)
        deconv_XW = deconv(n_axes, d)
        conv_Y = fn(f'conv{n_axes}D')(Y, np.swapaxes(d.W, -1, -2), d.stride, d.pad, d.dilation,
                                      groups=d.groups)
        assert conv_Y.shape == d.X.shape, describe(d)
        assert np.isclose(inner(deconv_XW, Y), inner(d.X, conv_Y), **TOL), describe(d)


def sin_loss_grads(forward, X, W, R):
    "L = sum(R * sin(forward(X, W))), and dL/dZ = R * cos(Z)."
    Z = forward(X, W)
    return float(np.sum(R * np.sin(Z))), R * np.cos(Z)


@pytest.mark.parametrize('n_axes', AXES)
@pytest.mark.parametrize('transposed', [False, True], ids=['conv', 'deconv'])
def test_gradients_by_central_differences(n_axes, transposed):
    "A non-linear loss, a few entries of X and of W perturbed by +-h: dX and dW are the slopes."
    rng = np.random.default_rng(140 + n_axes + 10 * transposed)
    h = 1e-6
    for i in range(4):
        if transposed:
            c = deconv_case(rng, n_axes, pad_forms(n_axes)[i], CHANNEL_KINDS[i % 3])
            forward = lambda X, W, c=c: deconv(n_axes, c, X=X, W=W)
            backward = lambda dZ, c=c: fn(f'deconv{n_axes}D_backward')(
                dZ, c.X, c.W, c.stride, c.pad, c.dilation, groups=c.groups)
        else:
            c = conv_case(rng, n_axes, pad_forms(n_axes)[i], MODES[i + 1], CHANNEL_KINDS[i % 3])
            forward = lambda X, W, c=c: conv(n_axes, c, X=X, W=W)
            backward = lambda dZ, c=c: fn(f'conv{n_axes}D_backward')(
                dZ, c.X, c.W, c.stride, c.pad, c.dilation, pad_mode=c.mode, groups=c.groups)
        R = rng.standard_normal(c.dZ.shape)
        _, dZ = sin_loss_grads(forward, c.X, c.W, R)
        dX, dW = backward(dZ)
        for name, A, grad in (('X', c.X, dX), ('W', c.W, dW)):
            for flat in rng.choice(A.size, min(A.size, 5), replace=False):
                idx = np.unravel_index(flat, A.shape)
                plus, minus = A.copy(), A.copy()
                plus[idx] += h
                minus[idx] -= h
                args = lambda B: (B, c.W) if name == 'X' else (c.X, B)
                slope = (sin_loss_grads(forward, *args(plus), R)[0]
                         - sin_loss_grads(forward, *args(minus), R)[0]) / (2 * h)
                assert abs(slope - grad[idx]) <= 1e-6 * max(1, abs(slope)), (name, idx, c)


# ------------------------------------------------------------------------------------------------
# Per-axis stride and dilation
# ------------------------------------------------------------------------------------------------
def test_per_axis_stride_in_2D():
    rng = np.random.default_rng(150)
    X, W = rng.standard_normal((2, 8, 8, 2)), rng.standard_normal((3, 3, 2, 3))
    Z = fn('conv2D')(X, W, (2, 1), 1)  # halves the rows only
    assert Z.shape == (2, 4, 8, 3)
    np.testing.assert_allclose(Z, ref_conv(X, W, (2, 1), [(1, 1), (1, 1)]), **TOL)
    np.testing.assert_allclose(fn('conv2D')(X, W, [1, 2], 1), ref_conv(X, W, (1, 2), [(1, 1)] * 2),
                               **TOL)
    # 'same' keeps the input's size at any stride: rows pad 2*7 + 3 - 8 = 9, columns 2
    Z = fn('conv2D')(X, W, (2, 1), 'same')
    assert Z.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(Z, ref_conv(X, W, (2, 1), [(4, 5), (1, 1)]), **TOL)
    # per-axis dilation, and a stride tuple of equal values is the int
    np.testing.assert_allclose(fn('conv2D')(X, W, (1, 1), 2, (2, 0)),
                               ref_conv(X, W, 1, [(2, 2)] * 2, (2, 0)), **TOL)
    np.testing.assert_allclose(fn('conv2D')(X, W, (2, 2), 1), fn('conv2D')(X, W, 2, 1), **TOL)
    Y = fn('deconv2D')(X, W, (2, 1), 'same')  # doubles the rows only
    assert Y.shape == (2, 16, 8, 3)
    np.testing.assert_allclose(Y, ref_deconv(X, W, (2, 1), [(0, 1), (1, 1)]), **TOL)


def test_anisotropic_3D():
    rng = np.random.default_rng(151)
    X, W = rng.standard_normal((1, 6, 7, 5, 2)), rng.standard_normal((3, 3, 3, 2, 2))
    Z = fn('conv3D')(X, W, (1, 2, 3), 1)
    assert Z.shape == (1, 6, 4, 2, 2)
    np.testing.assert_allclose(Z, ref_conv(X, W, (1, 2, 3), [(1, 1)] * 3), **TOL)
    Z = fn('conv3D')(X, W, [3, 1, 2], (0, 1, 2, 0, 1, 1), (0, 1, 2))
    # depth (6 + 1 - 3)//3 + 1 = 2, rows (7 + 2 - 5)//1 + 1 = 5, columns (5 + 2 - 7)//2 + 1 = 1
    assert Z.shape == (1, 2, 5, 1, 2)
    np.testing.assert_allclose(Z, ref_conv(X, W, (3, 1, 2), [(0, 1), (2, 0), (1, 1)], (0, 1, 2)),
                               **TOL)
    np.testing.assert_allclose(fn('conv3D')(X, W, [3, 1, 2], (0, 1, 2, 0, 1, 1), (0, 1, 2),
                                            method='gemm'), Z, **TOL)
    Y = fn('deconv3D')(X, W, (1, 2, 3), 'same')
    assert Y.shape == (1, 6, 14, 15, 2)
    np.testing.assert_allclose(Y, ref_deconv(X, W, (1, 2, 3), deconv_crops('same', (3,) * 3,
                                                                           (1, 2, 3), (0,) * 3)),
                               **TOL)


# ------------------------------------------------------------------------------------------------
# im2col and col2im, pad3D, calc_pad_dims_3D, calc_conv_out_dims
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('n_axes', AXES)
def test_im2col_is_every_window(n_axes):
    "Rows (in_ch, k_1, ..., k_N), columns (out_1, ..., out_N, n_ex); the pad comes back resolved."
    for c in conv_cases(160 + n_axes, n_axes, 24):
        W_shape = (*c.W.shape[:n_axes], c.X.shape[-1], 2)
        X_col, pad = fn('im2col')(c.X, W_shape, c.pad, c.stride, c.dilation, pad_mode=c.mode)
        assert tuple(pad) == tuple(p for pair in c.pads for p in pair), describe(c)
        np.testing.assert_array_equal(X_col, ref_im2col(c.X, c.W.shape[:n_axes], c.stride,
                                                        c.pads, c.dilation, c.mode))


@pytest.mark.parametrize('n_axes', AXES)
def test_col2im_is_the_adjoint_of_im2col(n_axes):
    rng = np.random.default_rng(170 + n_axes)
    for c in conv_cases(180 + n_axes, n_axes, 24, modes=('constant',)):
        W_shape = (*c.W.shape[:n_axes], c.X.shape[-1], 2)
        X_col, _ = fn('im2col')(c.X, W_shape, c.pad, c.stride, c.dilation)
        C = rng.standard_normal(X_col.shape)
        img = fn('col2im')(C, c.X.shape, W_shape, c.pad, c.stride, c.dilation)
        assert img.shape == c.X.shape
        assert np.isclose(inner(X_col, C), inner(c.X, img), **TOL), describe(c)
        # and exactly: each column entry added back onto the pixel it was read from
        np.testing.assert_allclose(img, ref_im2col_adjoint(C, c.X.shape, c.W.shape[:n_axes],
                                                           c.stride, c.pads, c.dilation), **TOL)


@pytest.mark.parametrize('mode', MODES + ('replicate',))
def test_pad3D(mode):
    rng = np.random.default_rng(190)
    X = rng.standard_normal((2, 4, 3, 5, 2))
    for pad, pads in ((1, [(1, 1)] * 3), ((0, 2, 1), [(0, 0), (2, 2), (1, 1)]),
                      ((1, 0, 2, 1, 0, 3), [(1, 0), (2, 1), (0, 3)]), ('valid', [(0, 0)] * 3)):
        X_pad, resolved = fn('pad3D')(X, pad, mode=mode)
        assert tuple(resolved) == tuple(p for pair in pads for p in pair)
        np.testing.assert_array_equal(X_pad, np_pad(X, pads, mode))
    for kernel, stride, dilation in (((3, 3, 3), 1, 0), ((2, 3, 1), 1, 0), ((3, 2, 2), 2, 1),
                                     ((3, 2, 2), (1, 2, 3), (0, 1, 0))):
        pads = conv_pads('same', X.shape[1:-1], kernel, stride, dilation)
        if not mode_fits(mode, X.shape[1:-1], pads): continue
        X_pad, resolved = fn('pad3D')(X, 'same', kernel, stride, dilation, mode=mode)
        assert tuple(resolved) == tuple(p for pair in pads for p in pair), (kernel, stride)
        np.testing.assert_array_equal(X_pad, np_pad(X, pads, mode))


def test_calc_pad_dims_3D():
    rng = np.random.default_rng(200)
    for _ in range(40):
        in_dims = tuple(int(v) for v in rng.integers(1, 9, 3))
        kernel = tuple(int(v) for v in rng.integers(1, 5, 3))
        stride, dilation = axis_arg(rng, 1, 3, 3), axis_arg(rng, 0, 2, 3)
        unpadded = conv_out_dims(in_dims, [(0, 0)] * 3, kernel, stride, dilation)
        out_dim = tuple(max(1, u) + int(rng.integers(0, 4)) for u in unpadded)
        expected = []
        for n, o, k, s, d in zip(in_dims, out_dim, kernel, per_axis(stride, 3),
                                 per_axis(dilation, 3)):
            total = max(0, s * (o - 1) + eff(k, d) - n)  # the least padding giving o windows
            expected += [total // 2, total - total // 2]
        got = fn('calc_pad_dims_3D')((2, *in_dims, 3), out_dim, kernel, stride, dilation)
        assert tuple(got) == tuple(expected), (in_dims, out_dim, kernel, stride, dilation)
        pads = [tuple(got[2 * i:2 * i + 2]) for i in range(3)]
        assert conv_out_dims(in_dims, pads, kernel, stride, dilation) == out_dim


@pytest.mark.parametrize('n_axes', AXES)
def test_calc_conv_out_dims(n_axes):
    for c in conv_cases(220 + n_axes, n_axes, 20, modes=('constant',)):
        W_shape = (*c.W.shape[:n_axes], c.X.shape[-1], 5)
        got = fn('calc_conv_out_dims')(c.X.shape, W_shape, c.stride, c.pad, c.dilation)
        assert tuple(got) == (len(c.X), *c.out, 5), describe(c)


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------
def shapes(n_axes):
    "An input and kernels with no 1, 2 or 3 in their shapes but the ones that must be there."
    return np.ones((4, *(5,) * n_axes, 4)), np.ones((*(4,) * n_axes, 4, 4))


def raises_naming(call, *words):
    with pytest.raises(ValueError) as error: call()
    message = str(error.value)
    for word in words: assert word in message, (word, message)


@pytest.mark.parametrize('n_axes', AXES)
@pytest.mark.parametrize('name', ['stride', 'dilation'])
def test_per_axis_argument_of_the_wrong_length(n_axes, name):
    "The message names the argument and the number of spatial axes."
    X, W = shapes(n_axes)
    low = 1 if name == 'stride' else 0
    for length in {n_axes - 1, n_axes + 1} - {0}:
        value = (low,) * length
        args = {'stride': 1, 'dilation': 0, name: value}
        for prefix in ('conv', 'deconv'):
            call = fn(f'{prefix}{n_axes}D')
            raises_naming(lambda: call(X, W, args['stride'], 0, args['dilation']), name,
                          str(n_axes))
            backward = fn(f'{prefix}{n_axes}D_backward')
            dZ = np.ones((4, *(8 if prefix == 'deconv' else 2,) * n_axes, 4))
            raises_naming(lambda: backward(dZ, X, W, args['stride'], 0, args['dilation']), name)


def test_the_briefs_example_of_a_wrong_stride():
    X, W = shapes(2)
    raises_naming(lambda: fn('conv2D')(X, W, (2, 1, 1), 'same'), 'stride', '2')


@pytest.mark.parametrize('n_axes, pad', [(1, (1, 1, 1)), (2, (1, 1, 1)), (2, (1,) * 5),
                                         (3, (1, 1)), (3, (1, 1, 1, 1)), (3, (1,) * 7)])
def test_pad_of_the_wrong_length(n_axes, pad):
    X, W = shapes(n_axes)
    for prefix in ('conv', 'deconv'):
        raises_naming(lambda: fn(f'{prefix}{n_axes}D')(X, W, 1, pad), 'pad')


@pytest.mark.parametrize('n_axes', [2, 3])
def test_causal_is_1D_only(n_axes):
    X, W = shapes(n_axes)
    for name in (f'conv{n_axes}D', f'deconv{n_axes}D'):
        raises_naming(lambda: fn(name)(X, W, 1, 'causal'), 'pad')
    X_shape = (1, *(5,) * n_axes, 4)
    raises_naming(lambda: fn('calc_conv_out_dims')(X_shape, W.shape, 1, 'causal'), 'pad')


@pytest.mark.parametrize('n_axes', AXES)
@pytest.mark.parametrize('stride', [-1, 0, 'per axis'])
def test_stride_below_1_is_refused(n_axes, stride):
    X, W = shapes(n_axes)
    stride = (1,) * (n_axes - 1) + (-2,) if stride == 'per axis' else stride
    for prefix in ('conv', 'deconv'):
        raises_naming(lambda: fn(f'{prefix}{n_axes}D')(X, W, stride, 0), 'stride')


@pytest.mark.parametrize('n_axes', AXES)
def test_negative_dilation_is_refused(n_axes):
    X, W = shapes(n_axes)
    for dilation in (-1, (0,) * (n_axes - 1) + (-1,)):
        for prefix in ('conv', 'deconv'):
            raises_naming(lambda: fn(f'{prefix}{n_axes}D')(X, W, 1, 0, dilation), 'dilation')


@pytest.mark.parametrize('n_axes', AXES)
@pytest.mark.parametrize('mode', ['reflect', 'replicate', 'wrap'])
def test_transposed_convolutions_take_constant_padding_only(n_axes, mode):
    X, W = shapes(n_axes)
    raises_naming(lambda: fn(f'deconv{n_axes}D')(X, W, 1, 0, pad_mode=mode), 'pad_mode')
    dZ = np.ones((4, *(8,) * n_axes, 4))
    raises_naming(lambda: fn(f'deconv{n_axes}D_backward')(dZ, X, W, 1, 0, pad_mode=mode),
                  'pad_mode')


# ------------------------------------------------------------------------------------------------
# What worked before works the same
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('pad', [0, 2, (1, 2), (0, 1, 2, 1), [2, 0, 1, 0], 'same', 'valid'])
@pytest.mark.parametrize('stride', [1, 2, 3])
def test_2D_int_stride_and_old_pad_forms(pad, stride):
    rng = np.random.default_rng(stride)
    X, W = rng.standard_normal((2, 7, 6, 4)), rng.standard_normal((3, 2, 2, 4))
    pads = conv_pads(pad, (7, 6), (3, 2), stride, 1)
    Z = convutils.conv2D(X, W, stride, pad, 1, groups=2)
    np.testing.assert_allclose(Z, ref_conv(X, W, stride, pads, 1, groups=2), **TOL)
    dZ = rng.standard_normal(Z.shape)
    dX, dW = convutils.conv2D_backward(dZ, X, W, stride, pad, 1, groups=2)
    np.testing.assert_allclose(dX, ref_conv_dX(dZ, X.shape, W, stride, pads, 1, groups=2), **TOL)
    np.testing.assert_allclose(dW, ref_conv_dW(dZ, X, W.shape, stride, pads, 1, groups=2), **TOL)
    W_T = rng.standard_normal((3, 2, 4, 3))
    crops = deconv_crops(pad, (3, 2), stride, 1)
    Y = convutils.deconv2D(X, W_T, stride, pad, 1)
    np.testing.assert_allclose(Y, ref_deconv(X, W_T, stride, crops, 1), **TOL)
    dY = rng.standard_normal(Y.shape)
    dX, dW = convutils.deconv2D_backward(dY, X, W_T, stride, pad, 1)
    np.testing.assert_allclose(dX, ref_deconv_dX(dY, X.shape, W_T, stride, crops, 1), **TOL)
    np.testing.assert_allclose(dW, ref_deconv_dW(dY, X, W_T.shape, stride, crops, 1), **TOL)


@pytest.mark.parametrize('pad', [0, 3, (1, 2), [0, 3], 'same', 'causal', 'valid'])
@pytest.mark.parametrize('stride', [1, 2])
def test_1D_int_stride_and_old_pad_forms(pad, stride):
    rng = np.random.default_rng(10 + stride)
    X, W = rng.standard_normal((2, 9, 3)), rng.standard_normal((3, 3, 2))
    pads = conv_pads(pad, (9,), (3,), stride, 1)
    mode = 'reflect' if mode_fits('reflect', (9,), pads) else 'symmetric'
    Z = convutils.conv1D(X, W, stride, pad, 1, pad_mode=mode)
    np.testing.assert_allclose(Z, ref_conv(X, W, stride, pads, 1, mode), **TOL)
    dZ = rng.standard_normal(Z.shape)
    dX, dW = convutils.conv1D_backward(dZ, X, W, stride, pad, 1, pad_mode=mode)
    np.testing.assert_allclose(dX, ref_conv_dX(dZ, X.shape, W, stride, pads, 1, mode), **TOL)
    np.testing.assert_allclose(dW, ref_conv_dW(dZ, X, W.shape, stride, pads, 1, mode), **TOL)


def test_old_2D_helpers_keep_their_answers():
    X = np.arange(2 * 5 * 6 * 3, dtype=float).reshape(2, 5, 6, 3)
    # eff 5 at stride 2: rows 2*4 + 5 - 5 = 8, columns 2*5 + 5 - 6 = 9, the odd pixel after
    assert convutils.calc_pad_dims_2D(X.shape, (5, 6), (3, 3), 2, 1) == (4, 4, 4, 5)
    assert tuple(convutils.calc_conv_out_dims(X.shape, (3, 3, 3, 4), 2, (1, 0, 2, 1))) == \
        (2, 2, 4, 4)
    X_pad, pad = convutils.pad2D(X, (1, 2), mode='edge')
    assert pad == (1, 1, 2, 2)
    np.testing.assert_array_equal(X_pad, np_pad(X, [(1, 1), (2, 2)], 'edge'))


# ------------------------------------------------------------------------------------------------
# Dtypes, and inputs left alone
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('n_axes', AXES)
def test_dtype_rule(n_axes):
    rng = np.random.default_rng(230 + n_axes)
    c = conv_case(rng, n_axes, 'int', 'constant', 'two groups')
    d = deconv_case(rng, n_axes, 'int', 'two groups')
    for case, forward, reference in (
            (c, f'conv{n_axes}D', lambda X, W: ref_conv(X, W, c.stride, c.pads, c.dilation,
                                                        groups=c.groups)),
            (d, f'deconv{n_axes}D', lambda X, W: ref_deconv(X, W, d.stride, d.crops, d.dilation,
                                                            d.groups))):
        call = lambda X, W: fn(forward)(X, W, case.stride, case.pad, case.dilation,
                                        groups=case.groups)
        X32, W32 = case.X.astype(np.float32), case.W.astype(np.float32)
        Z = call(X32, W32)
        assert Z.dtype == np.float32, forward
        np.testing.assert_allclose(Z, reference(X32, W32), rtol=1e-4, atol=1e-4)
        Xi, Wi = np.round(3 * case.X).astype(np.int8), np.round(3 * case.W).astype(np.int16)
        Z = call(Xi, Wi)
        assert Z.dtype == np.float64, forward
        np.testing.assert_array_equal(Z, reference(Xi, Wi))
        dX, dW = fn(forward + '_backward')(case.dZ.astype(np.float32), X32, W32, case.stride,
                                           case.pad, case.dilation, groups=case.groups)
        assert dX.dtype == dW.dtype == np.float32, forward


@pytest.mark.parametrize('n_axes', AXES)
def test_inputs_are_never_modified(n_axes):
    rng = np.random.default_rng(240 + n_axes)
    c = conv_case(rng, n_axes, 'before/after', 'reflect', 'two groups')
    d = deconv_case(rng, n_axes, 'same', 'depthwise')
    calls = [
        (c, lambda X, W, dZ: conv(n_axes, c, X=X, W=W)),
        (c, lambda X, W, dZ: fn(f'conv{n_axes}D_backward')(
            dZ, X, W, c.stride, c.pad, c.dilation, pad_mode=c.mode, groups=c.groups)),
        (c, lambda X, W, dZ: fn('im2col')(X, (*W.shape[:-2], X.shape[-1], 1), c.pad, c.stride,
                                          c.dilation, pad_mode=c.mode)),
        (d, lambda X, W, dZ: deconv(n_axes, d, X=X, W=W)),
        (d, lambda X, W, dZ: fn(f'deconv{n_axes}D_backward')(
            dZ, X, W, d.stride, d.pad, d.dilation, groups=d.groups)),
    ]
    for case, call in calls:
        arrays = [case.X.copy(), case.W.copy(), case.dZ.copy()]
        result = call(*arrays)
        for before, after in zip((case.X, case.W, case.dZ), arrays):
            np.testing.assert_array_equal(after, before)
        for A in arrays: A.setflags(write=False)  # a write would raise, not pass unseen
        again = call(*arrays)
        as_list = lambda r: list(r) if isinstance(r, tuple) else [r]
        for r, s in zip(as_list(result), as_list(again)):
            if isinstance(r, np.ndarray): np.testing.assert_array_equal(r, s)
    X_col, _ = fn('im2col')(c.X, (*c.W.shape[:-2], c.X.shape[-1], 1), c.pad, c.stride, c.dilation)
    saved = X_col.copy()
    fn('col2im')(X_col, c.X.shape, (*c.W.shape[:-2], c.X.shape[-1], 1), c.pad, c.stride,
                 c.dilation)
    np.testing.assert_array_equal(X_col, saved)
    if n_axes == 3:
        X = c.X.copy()
        fn('pad3D')(X, 1, mode='reflect')
        np.testing.assert_array_equal(X, c.X)


# ------------------------------------------------------------------------------------------------
# PyTorch
# ------------------------------------------------------------------------------------------------
TORCH_MODES = {'constant': 'constant', 'reflect': 'reflect', 'edge': 'replicate',
               'wrap': 'circular'}


def channels_first(A): return np.ascontiguousarray(np.moveaxis(A, -1, 1))
def channels_last(A): return np.moveaxis(A, 1, -1)


def torch_pad_list(pads):
    "F.pad's order: the last axis first."
    return [p for pair in reversed(pads) for p in pair]


def torch_conv(torch, c, n_axes):
    "PyTorch's conv output, dX and dW for case `c`, in our layouts (the pad by F.pad)."
    F = torch.nn.functional
    x = torch.tensor(channels_first(c.X), requires_grad=True)
    w = torch.tensor(np.ascontiguousarray(np.transpose(c.W, (n_axes + 1, n_axes,
                                                             *range(n_axes)))),
                     requires_grad=True)
    x_pad = F.pad(x, torch_pad_list(c.pads), mode=TORCH_MODES[ALIASES.get(c.mode, c.mode)])
    z = getattr(F, f'conv{n_axes}d')(x_pad, w, stride=per_axis(c.stride, n_axes),
                                      dilation=tuple(d + 1 for d in per_axis(c.dilation, n_axes)),
                                      groups=c.groups)
    z.backward(torch.tensor(channels_first(c.dZ)))
    return (channels_last(z.detach().numpy()), channels_last(x.grad.numpy()),
            np.transpose(w.grad.numpy(), (*range(2, n_axes + 2), 1, 0)))


def torch_deconv(torch, d, n_axes):
    "PyTorch's conv_transpose output (full, then cropped or zero-extended), dX and dW."
    F = torch.nn.functional
    x = torch.tensor(channels_first(d.X), requires_grad=True)
    w = torch.tensor(np.ascontiguousarray(np.transpose(d.W, (n_axes, n_axes + 1,
                                                             *range(n_axes)))),
                     requires_grad=True)
    full = getattr(F, f'conv_transpose{n_axes}d')(
        x, w, stride=per_axis(d.stride, n_axes), groups=d.groups,
        dilation=tuple(v + 1 for v in per_axis(d.dilation, n_axes)))
    extend = [(0, max(0, -a)) for _, a in d.crops]
    if any(e for _, e in extend): full = F.pad(full, torch_pad_list(extend))
    z = full[(slice(None), slice(None), *(slice(b, b + o) for (b, _), o in zip(d.crops, d.out)))]
    z.backward(torch.tensor(channels_first(d.dZ)))
    return (channels_last(z.detach().numpy()), channels_last(x.grad.numpy()),
            np.transpose(w.grad.numpy(), (*range(2, n_axes + 2), 0, 1)))


def torch_conv_cases(seed, n_axes, count):
    rng = np.random.default_rng(seed)
    forms = ('int', 'per axis', 'before/after', 'same', 'valid')
    modes = tuple(TORCH_MODES)
    for i in range(count):
        yield conv_case(rng, n_axes, forms[i % 5], modes[i % 4], CHANNEL_KINDS[i % 3], torch=True)


@pytest.mark.parametrize('n_axes', AXES)
def test_references_are_pytorchs(n_axes):
    "The references of this file, against PyTorch: what the other PyTorch tests lean on."
    torch = pytest.importorskip('torch')
    for c in torch_conv_cases(250 + n_axes, n_axes, 15):
        args = (c.stride, c.pads, c.dilation, c.mode, c.groups)
        Z, dX, dW = torch_conv(torch, c, n_axes)
        np.testing.assert_allclose(ref_conv(c.X, c.W, *args), Z, **TOL, err_msg=describe(c))
        np.testing.assert_allclose(ref_conv_dX(c.dZ, c.X.shape, c.W, *args), dX, **TOL)
        np.testing.assert_allclose(ref_conv_dW(c.dZ, c.X, c.W.shape, *args), dW, **TOL)
    for d in deconv_cases(260 + n_axes, n_axes, 15):
        args = (d.stride, d.crops, d.dilation, d.groups)
        Y, dX, dW = torch_deconv(torch, d, n_axes)
        np.testing.assert_allclose(ref_deconv(d.X, d.W, *args), Y, **TOL, err_msg=describe(d))
        np.testing.assert_allclose(ref_deconv_dX(d.dZ, d.X.shape, d.W, *args), dX, **TOL)
        np.testing.assert_allclose(ref_deconv_dW(d.dZ, d.X, d.W.shape, *args), dW, **TOL)


@pytest.mark.parametrize('n_axes', AXES)
def test_conv_and_its_gradients_are_pytorchs(n_axes):
    torch = pytest.importorskip('torch')
    backward = fn(f'conv{n_axes}D_backward')
    for c in torch_conv_cases(270 + n_axes, n_axes, 30):
        Z, dX, dW = torch_conv(torch, c, n_axes)
        np.testing.assert_allclose(conv(n_axes, c), Z, **TOL, err_msg=describe(c))
        got_dX, got_dW = backward(c.dZ, c.X, c.W, c.stride, c.pad, c.dilation, pad_mode=c.mode,
                                  groups=c.groups)
        np.testing.assert_allclose(got_dX, dX, **TOL, err_msg=describe(c))
        np.testing.assert_allclose(got_dW, dW, **TOL, err_msg=describe(c))


@pytest.mark.parametrize('n_axes', AXES)
def test_symmetric_padding_is_pytorchs_padding_argument(n_axes):
    "With an int or one pad per axis, PyTorch's own `padding` gives the same convolution."
    torch = pytest.importorskip('torch')
    F = torch.nn.functional
    rng = np.random.default_rng(280 + n_axes)
    for i in range(10):
        c = conv_case(rng, n_axes, ('int', 'per axis')[i % 2], 'constant', CHANNEL_KINDS[i % 3])
        w = np.transpose(c.W, (n_axes + 1, n_axes, *range(n_axes)))
        z = getattr(F, f'conv{n_axes}d')(
            torch.tensor(channels_first(c.X)), torch.tensor(np.ascontiguousarray(w)),
            stride=per_axis(c.stride, n_axes), padding=[b for b, _ in c.pads],
            dilation=tuple(d + 1 for d in per_axis(c.dilation, n_axes)), groups=c.groups)
        np.testing.assert_allclose(conv(n_axes, c), channels_last(z.numpy()), **TOL,
                                   err_msg=describe(c))


@pytest.mark.parametrize('n_axes', AXES)
def test_deconv_and_its_gradients_are_pytorchs(n_axes):
    torch = pytest.importorskip('torch')
    backward = fn(f'deconv{n_axes}D_backward')
    for d in deconv_cases(290 + n_axes, n_axes, 30):
        Y, dX, dW = torch_deconv(torch, d, n_axes)
        np.testing.assert_allclose(deconv(n_axes, d), Y, **TOL, err_msg=describe(d))
        got_dX, got_dW = backward(d.dZ, d.X, d.W, d.stride, d.pad, d.dilation, groups=d.groups)
        np.testing.assert_allclose(got_dX, dX, **TOL, err_msg=describe(d))
        np.testing.assert_allclose(got_dW, dW, **TOL, err_msg=describe(d))
