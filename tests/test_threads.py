"""The thread pool and its knob (convutils.threads): many callers at once, nesting, errors, the
environment variable, BLAS's thread count around our calls, determinism, and forks."""
import multiprocessing
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from convutils import threads
from convutils.threads import (blas_info, blas_libraries, get_num_threads, one_blas_thread,
                               run_blocks, run_shares, set_num_threads, sum_shares)

TIMEOUT = 60  # seconds: a call that takes this long has deadlocked


@pytest.fixture
def blas_at_2():
    "Every OpenBLAS at 2 threads for the test (the runner may start BLAS at 1), then as it was."
    libs = blas_libraries()
    if not libs: pytest.skip('no OpenBLAS found in this process')
    saved = [lib.get() for lib in libs]
    for lib in libs: lib.set(2)
    yield libs
    for lib, count in zip(libs, saved): lib.set(count)


def blas_counts(): return [d['num_threads'] for d in blas_info()]


def in_thread(fn, timeout=TIMEOUT):
    "fn() on a new thread; its result, or a failure if it has not returned within `timeout`."
    out = {}
    def target():
        try: out['value'] = fn()
        except BaseException as error: out['error'] = error
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f'no answer within {timeout} s: a deadlock'
    if 'error' in out: raise out['error']
    return out['value']


# a workload whose blocks write disjoint rows of one result, and a sum over the same blocks
rng = np.random.default_rng(0)
A = rng.standard_normal((2048, 192)).astype(np.float32)
B = rng.standard_normal((192, 48)).astype(np.float32)
ROWS = [slice(start, start + 128) for start in range(0, len(A), 128)]


def product_block(Z):
    def task(rows):
        np.matmul(A[rows] * np.float32(1.5), B, out=Z[rows])  # a ufunc pass and a product
        return rows.start
    return task


def gram_share(share):
    acc = np.zeros((A.shape[1], B.shape[1]), np.float32)
    for rows in share: acc += A[rows].T @ (A[rows] @ B)
    return acc


def serial_reference():
    "The blocks one after the other on this thread, BLAS at one thread as in every worker."
    Z = np.empty((len(A), B.shape[1]), np.float32)
    with one_blas_thread(): starts = [product_block(Z)(rows) for rows in ROWS]
    return Z, starts


def test_eight_callers_at_once_match_serial():
    Z_ref, starts_ref = serial_reference()
    with set_num_threads(2): G_ref = sum_shares(gram_share, ROWS)
    barrier = threading.Barrier(8)

    def caller():
        Z = np.empty_like(Z_ref)
        barrier.wait()
        with set_num_threads(2):
            starts = run_blocks(product_block(Z), ROWS)
            G = sum_shares(gram_share, ROWS)
        return Z, starts, G
    results = [None] * 8
    def run(k): results[k] = caller()
    callers = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(8)]
    for t in callers: t.start()
    for t in callers: t.join(TIMEOUT)
    assert not any(t.is_alive() for t in callers), 'a caller deadlocked'
    for Z, starts, G in results:
        assert np.array_equal(Z, Z_ref)
        assert starts == starts_ref
        assert np.array_equal(G, G_ref)


def test_thread_counts_agree():
    with set_num_threads(1): G1 = sum_shares(gram_share, ROWS)
    for n in (2, 3, 5):
        with set_num_threads(n): Gn = sum_shares(gram_share, ROWS)
        np.testing.assert_allclose(Gn, G1, rtol=0, atol=1e-5 * abs(G1).max())


def test_sum_is_deterministic_whatever_order_the_shares_finish():
    def jittery(share):  # shares finish in a different order on every run
        time.sleep(rng.uniform(0, 0.003))
        return gram_share(share)
    with set_num_threads(4):
        first = sum_shares(jittery, ROWS)
        for _ in range(10): assert np.array_equal(sum_shares(jittery, ROWS), first)


def test_shares_are_contiguous_and_in_order():
    with set_num_threads(3): shares = run_shares(list, range(10))
    assert shares == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    with set_num_threads(3): assert run_blocks(lambda b: b * b, iter(range(7))) == \
        [b * b for b in range(7)]


def test_nested_call_runs_serially_without_deadlock():
    def inner_task(share):
        return threading.current_thread().name, len(share)

    def outer_task(block):
        with set_num_threads(4):  # asks for the pool from inside a task: must not get it
            inner = run_shares(inner_task, range(8))
            deeper = run_blocks(lambda b: get_num_threads(), range(4))
        return threading.current_thread().name, inner, deeper

    def call():
        with set_num_threads(2): return run_blocks(outer_task, range(6))
    for name, inner, deeper in in_thread(call):
        assert inner == [(name, 8)]  # one share, on the task's own thread
        assert deeper == [1, 1, 1, 1]


def test_tasks_see_one_thread_and_the_pool_is_reused():
    with set_num_threads(2): names = run_blocks(lambda b: (threading.current_thread().name,
                                                           get_num_threads()), range(64))
    assert {count for _, count in names} == {1}
    pool, size = threads._pool, len(threads._pool.threads)  # earlier tests may have grown it
    for _ in range(20):
        with set_num_threads(2): run_blocks(lambda b: time.sleep(0.001), range(4))
    assert threads._pool is pool and len(pool.threads) == size >= 1
    assert all(t.daemon and t.name.startswith('convutils-worker') for t in pool.threads)


def test_other_threads_default_to_one_worker():
    def where(share): return threading.current_thread().name
    def from_a_thread():
        return get_num_threads(), run_shares(where, range(8)), threading.current_thread().name
    count, ran_on, caller = in_thread(from_a_thread)
    assert count == 1 and ran_on == [caller]

    def told_otherwise():
        with set_num_threads(2): return get_num_threads(), len(run_shares(where, range(8)))
    assert in_thread(told_otherwise) == (2, 2)


def test_context_manager_restores():
    before = get_num_threads()
    with set_num_threads(3) as handle:
        assert get_num_threads() == 3 and handle.n == 3
        with set_num_threads(1): assert get_num_threads() == 1
        assert get_num_threads() == 3
    assert get_num_threads() == before
    with pytest.raises(ZeroDivisionError):
        with set_num_threads(7): 1 / 0
    assert get_num_threads() == before


def test_bad_counts_name_the_argument_and_value():
    with pytest.raises(ValueError, match=r"n must be an integer >= 1, got -1"): set_num_threads(-1)
    with pytest.raises(TypeError, match=r"n must be an integer, got None of type NoneType"):
        set_num_threads(None)
    with pytest.raises(TypeError, match=r"got True of type bool"): set_num_threads(True)
    assert set_num_threads(np.int64(2)).__exit__(None, None, None) is None  # NumPy ints are ints


ENV_PROBE = 'from convutils.threads import get_num_threads; print(get_num_threads())'


def probe(value, code=ENV_PROBE):
    env = dict(os.environ, CONVUTILS_NUM_THREADS=value)
    return subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)


def test_environment_variable():
    assert probe('3').stdout.strip() == '3'
    assert probe(' 1 ').stdout.strip() == '1'
    assert probe('').stdout.strip() == '1'  # blank: unset, and the pool is opt-in
    for bad in ('zero', '0', '-2', '1.5'):
        res = probe(bad)
        assert res.returncode != 0
        assert f"ValueError: CONVUTILS_NUM_THREADS must be an integer >= 1, got '{bad}'" \
            in res.stderr
    # the import itself works; the first use fails
    assert probe('x', 'import convutils.threads; print("imported")').stdout.strip() == 'imported'


def test_blas_held_during_a_call_and_restored(blas_at_2):
    with set_num_threads(2): seen = run_blocks(lambda b: tuple(blas_counts()), range(6))
    assert set(seen) == {(1,) * len(blas_at_2)}
    assert blas_counts() == [2] * len(blas_at_2)


def test_blas_restored_after_an_error_in_a_task(blas_at_2):
    def task(block):
        if block == 3: raise KeyError(block)
        return block
    with set_num_threads(2), pytest.raises(KeyError):
        run_blocks(task, range(8))
    assert blas_counts() == [2] * len(blas_at_2)
    assert threads._blas_holders == 0


def test_small_calls_leave_blas_alone(blas_at_2):
    with set_num_threads(2):
        assert run_blocks(lambda b: blas_counts(), range(4), work=10) == [[2] * len(blas_at_2)] * 4


def test_one_worker_holds_blas_on_other_threads_only(blas_at_2):
    def counts_inside(): return run_blocks(lambda b: blas_counts(), range(4))
    assert threading.current_thread() is threading.main_thread()
    with set_num_threads(1):  # the main thread asked for one worker: BLAS as the user set it
        assert counts_inside() == [[2] * len(blas_at_2)] * 4
    # another thread is one of several calling BLAS: one thread each, even with one worker
    assert in_thread(counts_inside) == [[1] * len(blas_at_2)] * 4
    assert blas_counts() == [2] * len(blas_at_2)


def test_concurrent_calls_restore_only_when_the_last_ends(blas_at_2):
    inside, release = threading.Event(), threading.Event()
    def slow_task(block):
        if block == 0:
            inside.set()
            assert release.wait(TIMEOUT)
        return tuple(blas_counts())
    def slow_call():
        with set_num_threads(2): return run_blocks(slow_task, range(2))
    slow = threading.Thread(target=slow_call, daemon=True)
    slow.start()
    assert inside.wait(TIMEOUT)
    with set_num_threads(2): run_blocks(lambda b: None, range(4))  # a whole call, start to end
    assert blas_counts() == [1] * len(blas_at_2)  # the slow call still holds BLAS
    release.set()
    slow.join(TIMEOUT)
    assert blas_counts() == [2] * len(blas_at_2)


def test_same_view_as_threadpoolctl(blas_at_2):
    threadpoolctl = pytest.importorskip('threadpoolctl')
    def theirs():
        return {os.path.realpath(i['filepath']): i['num_threads']
                for i in threadpoolctl.threadpool_info() if i['internal_api'] == 'openblas'}
    def ours(): return {d['path']: d['num_threads'] for d in blas_info()}
    assert ours() == theirs() and set(ours().values()) == {2}
    with set_num_threads(2): during = run_blocks(lambda b: (ours(), theirs()), range(2))
    assert all(o == t and set(o.values()) == {1} for o, t in during)
    assert ours() == theirs()
    with threadpoolctl.threadpool_limits(1):  # a limit the caller set around our call stays
        with set_num_threads(2): run_blocks(lambda b: None, range(4))
        assert set(ours().values()) == {1}
    assert set(ours().values()) == {2}


def test_dask_threaded_scheduler():
    dask = pytest.importorskip('dask')
    with set_num_threads(2): expected = sum_shares(gram_share, ROWS)
    def task(_):
        with set_num_threads(2): return sum_shares(gram_share, ROWS), get_num_threads()
    def plain(_): return get_num_threads()
    parts = dask.compute(*[dask.delayed(task)(k) for k in range(6)], scheduler='threads',
                         num_workers=3)
    assert all(np.array_equal(G, expected) and n == 2 for G, n in parts)
    counts = dask.compute(*[dask.delayed(plain)(k) for k in range(6)], scheduler='threads',
                          num_workers=3)
    assert set(counts) == {1}  # a task on a scheduler's thread runs on that thread alone


def _child(pipe):
    with set_num_threads(2): pipe.send((sum_shares(gram_share, ROWS), threads._pool is not None,
                                        threads._blas_holders))


@pytest.mark.skipif('fork' not in multiprocessing.get_all_start_methods(), reason='no fork')
def test_fork_child_gets_a_fresh_pool():
    with set_num_threads(2): expected = sum_shares(gram_share, ROWS)  # the parent has a pool
    assert threads._pool is not None
    context = multiprocessing.get_context('fork')
    parent_end, child_end = context.Pipe()
    child = context.Process(target=_child, args=(child_end,))
    child.start()
    assert parent_end.poll(TIMEOUT), 'the child did not answer: a dead pool?'
    G, had_pool, holders = parent_end.recv()
    child.join(TIMEOUT)
    assert np.array_equal(G, expected) and had_pool and holders == 0


def test_fork_during_a_parallel_call_gives_blas_back_in_the_child(blas_at_2):
    context = multiprocessing.get_context('fork')
    def forks(block):
        if block: return None
        parent_end, child_end = context.Pipe()
        child = context.Process(target=lambda: child_end.send(blas_counts()))
        child.start()
        assert parent_end.poll(TIMEOUT)
        counts = parent_end.recv()
        child.join(TIMEOUT)
        return counts
    with set_num_threads(2): in_child = run_blocks(forks, range(2))[0]
    assert in_child == [2] * len(blas_at_2)
