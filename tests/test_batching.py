"""`minibatch`'s boolean flags and its memory use without shuffling.

The notebook nbs/04_batching.ipynb shows one example of each; these tests check them over every
argument and measure the memory a call allocates.
"""
import re
import tracemalloc

import numpy as np
import pytest

from convutils.batching import minibatch


class ShapeOnly:
    "A dataset that only knows its shape, like an HDF5 dataset or a memory map: never read."
    def __init__(self, *shape): self.shape = shape


@pytest.mark.parametrize('flag', ['shuffle', 'drop_last'])
@pytest.mark.parametrize('value', ['no', '', 'False', 1, 0, 1.0, None, [True], np.array([True]), np.int64(1)])
def test_flags_accept_only_bools(flag, value):
    message = f"{flag} must be a bool, got {value!r} of type {type(value).__name__}"
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        minibatch(np.zeros(10), 3, **{flag: value})


@pytest.mark.parametrize('value', [True, False, np.True_, np.False_])
def test_flags_accept_python_and_numpy_bools(value):
    for flag in ('shuffle', 'drop_last'):
        batches, n_batches = minibatch(np.zeros(10), 3, rng=0, **{flag: value})
        assert n_batches == (3 if flag == 'drop_last' and value else 4) == len(list(batches))


def test_numpy_bools_behave_like_python_bools():
    for shuffle in (True, False):
        for drop_last in (True, False):
            expected = minibatch(np.zeros(23), 5, shuffle, rng=4, drop_last=drop_last)
            got = minibatch(np.zeros(23), 5, np.bool_(shuffle), rng=4, drop_last=np.bool_(drop_last))
            assert got[1] == expected[1]
            for a, b in zip(got[0], expected[0], strict=True): np.testing.assert_array_equal(a, b)


def test_no_shuffle_does_not_build_the_index_array():
    "10**10 examples would need a 74.5 GiB index array: without shuffling, only one batch exists at a time."
    n_examples = 10**10
    tracemalloc.start()
    try:
        batches, n_batches = minibatch(ShapeOnly(n_examples, 3), 256, shuffle=False)
        first, second = next(batches), next(batches)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"minibatch allocated {peak} bytes up front"
    assert n_batches == -(-n_examples // 256) == 39_062_500
    np.testing.assert_array_equal(first, np.arange(256))
    np.testing.assert_array_equal(second, np.arange(256, 512))
    assert first.dtype == np.arange(n_examples - 1, n_examples).dtype


def test_lazy_batches_match_the_slices_of_arange():
    "Same values, dtypes and batch counts as slicing `np.arange(N)`, for every size and drop_last."
    for n_examples in range(0, 40):
        for batchsize in range(1, 12):
            for drop_last in (False, True):
                batches, n_batches = minibatch(range(n_examples), batchsize, False, drop_last=drop_last)
                indices = np.arange(n_examples)
                expected = [indices[i:i + batchsize] for i in range(0, n_examples, batchsize)]
                if drop_last and n_examples % batchsize: expected = expected[:-1]
                batches = list(batches)
                assert n_batches == len(expected) == len(batches)
                for got, want in zip(batches, expected):
                    assert got.dtype == want.dtype and got.shape == want.shape
                    np.testing.assert_array_equal(got, want)
