"""The benchmark as a program: `python -m convutils bench` takes the benchmark's own options.

The benchmark notebook tests `convutils.benchmark.main` itself (options, errors, progress lines,
`--quiet`, `--dask`). Most tests here run the installed commands in a fresh interpreter. Every run
is tiny (batch size 1, one round, no minimum time, workload A, one fresh process per line), so its
numbers mean nothing. The rest run in this process and measure nothing: how the options reach
`run_benchmark`, and how a line is left out when the installed convutils lacks its function or a
peer (PyTorch, JAX) is missing or fails.
"""
import importlib.metadata, importlib.util
import json
import re
import subprocess
import sys

import pytest

import convutils
from convutils import benchmark

TINY = ['--n-ex', '1', '--repeats', '1', '--min-seconds', '0', '--workloads', 'A',
        '--processes', '1']


def run(*args):
    "Run `python ARGS...` in a fresh interpreter; return the completed process."
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)


def test_importing_the_benchmark_imports_no_dask_and_no_peer():
    code = ("import sys, convutils.benchmark; "
            "print(*(m in sys.modules for m in ('dask', 'convutils.scaleout', 'torch', 'jax')))")
    result = run('-c', code)
    assert result.stdout.split() == ['False'] * 4, result


def test_bench_help_is_the_benchmarks_help():
    result = run('-m', 'convutils', 'bench', '--help')
    assert result.returncode == 0, result
    for option in ('--repeats', '--min-seconds', '--n-ex', '--workloads', '--save', '--dask',
                   '--quiet', '--processes', '--threads', '--blas-threads', '--torch', '--jax'):
        assert option in result.stdout, (option, result.stdout)


def test_bench_takes_the_benchmarks_options():
    result = run('-m', 'convutils', 'bench', *TINY)
    assert result.returncode == 0, result
    assert result.stdout.startswith('convutils benchmark\n'), result
    assert re.search(r'^\[1/\d+\] conv A float32$', result.stderr, flags=re.M), result.stderr
    result = run('-m', 'convutils', 'bench', *TINY, '--quiet')
    assert (result.returncode, result.stderr) == (0, ''), result


def test_bench_reports_a_bad_option_in_one_line_after_the_usage_with_status_2():
    result = run('-m', 'convutils', 'bench', '--repeats', '0')
    assert result.returncode == 2 and result.stdout == '', result
    usage, error = result.stderr.splitlines()
    assert usage == 'usage: python -m convutils bench [-h] [OPTIONS]', result.stderr
    assert '--repeats' in error, result.stderr


def test_each_line_pools_its_fresh_processes(tmp_path):
    out = tmp_path / 'r.json'
    result = run('-m', 'convutils', 'bench', *TINY[:-1], '2', '--threads', '1', '--quiet',
                 '--save', str(out))
    assert result.returncode == 0, result
    results = json.loads(out.read_text())
    assert results['processes'] == 2 and 'with 1 threads' in results['machine'], results['machine']
    assert results['threads'] == 1 and 'threads: 1 in BLAS' in result.stdout, result.stdout
    for line in results['conv'] + results['deconv'] + results['backward']:
        assert line['processes'] == 2 and len(line['rounds']['ratio']) == 2, line
        assert line['ratio_low'] <= line['ratio'] <= line['ratio_high'], line
        assert line['verdicts']['ratio'] in ('PASS', 'FAIL', 'UNSURE'), line
    pooling = results['pooling']
    assert pooling['processes'] == 2 and len(pooling['rounds']['reshape_ratio']) == 2, pooling
    scaling = results['scaling']  # two pairs of processes, one speed-up each
    assert scaling['processes'] == 2 and len(scaling['rounds']['conv2D_speedup']) == 2, scaling
    assert 'UNSURE' in result.stdout or 'PASS' in result.stdout, result.stdout


@pytest.mark.parametrize('peer, name, install', [('torch', 'PyTorch', 'pip install torch'),
                                                ('jax', 'JAX', "pip install 'jax[cpu]'")])
def test_a_peers_rows_or_a_clear_error(peer, name, install):
    result = run('-m', 'convutils', 'bench', *TINY, '--quiet', f'--{peer}')
    if importlib.util.find_spec(peer) is None:
        assert result.returncode == 2 and result.stdout == '', result
        error = f'python -m convutils bench: error: --{peer} needs {name}: {install}'
        assert result.stderr.splitlines()[-1] == error, result.stderr
        return
    assert result.returncode == 0, result
    assert "against PyTorch's and JAX's convolutions" in result.stdout, result.stdout
    # one peer is the faster one: its rows carry the targets
    assert re.search(rf"^A  float32 gemm +[\d.]+  {name} .*<=1.25", result.stdout,
                     flags=re.M), result.stdout
    for row in (rf'vs {name}, groups=C .*<=2.5', rf'vs {name} gradients .*<=1 ',
                rf'deconv2D .* vs {name} .*<=1.25'):
        assert re.search(row, result.stdout), (row, result.stdout)
    for call in ('maxpool2D 2', 'backward 3', 'avgpool2D 2'):  # the pooling line, with its target
        assert re.search(rf"{call} .*vs {name} .*<=1.5", result.stdout), (call, result.stdout)


def test_the_options_reach_run_benchmark(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(benchmark, 'run_benchmark', lambda *a, **kw: calls.append(kw) or {})
    monkeypatch.setattr(benchmark, 'format_table', lambda results: 'the table')
    monkeypatch.setattr(benchmark, '_check_peers', lambda peers: None)  # as if both were there
    assert benchmark.main(['--threads', '3', '--torch', '--jax', '--quiet']) == 0
    assert benchmark.main(['--blas-threads', '2', '--jax', '--quiet']) == 0  # the former name
    assert [(c['threads'], c['peers']) for c in calls] == [(3, ['torch', 'jax']), (2, ['jax'])]
    assert benchmark.main(['--quiet']) == 0
    assert (calls[-1]['threads'], calls[-1]['peers']) == (None, [])
    for args in (['--threads', '0'], ['--threads', 'two'], ['--threads', '2', '--processes', '0']):
        assert benchmark.main(args) == 2
        assert '--threads' in capsys.readouterr().err.splitlines()[-1], args


NEW_FUNCTIONS = ('conv3D', 'deconv1D', 'deconv3D', 'conv3D_backward')


def few_lines(monkeypatch, *starts):
    "Keep only the lines whose label starts with one of `starts`: the rest are not measured."
    lines = benchmark._lines
    monkeypatch.setattr(benchmark, '_lines', lambda *a, **kw: [
        line for line in lines(*a, **kw) if line.label.startswith(starts)])


def test_lines_of_missing_functions_are_listed_not_run(monkeypatch):
    for name in NEW_FUNCTIONS: monkeypatch.delattr(convutils, name, raising=False)
    few_lines(monkeypatch, 'conv F', 'deconv1D', 'memory 3-D')
    results = benchmark.run_benchmark(1, 1, 0, workloads='AF', processes=0)
    memory_3D = 'memory 3-D float32: convutils has no conv3D, deconv3D, conv3D_backward'
    assert results['skipped'] == ['conv F float32: convutils has no conv3D',
                                  'conv F float64: convutils has no conv3D',
                                  'deconv1D float32: convutils has no deconv1D',
                                  'deconv1D float64: convutils has no deconv1D', memory_3D]
    assert results['conv'] == results['deconv1D'] == [] and 'memory_3D' not in results, results
    table = benchmark.format_table(results)
    assert 'skipped:\n  conv F float32: convutils has no conv3D\n' in table, table
    assert table.endswith(f'\n  {memory_3D}'), table


def test_a_line_runs_once_its_function_exists(monkeypatch):
    monkeypatch.setattr(convutils, 'deconv1D', lambda X, W, stride, pad, dilation=0: X.copy(),
                        raising=False)
    few_lines(monkeypatch, 'deconv1D')
    results = benchmark.run_benchmark(1, 1, 0, dtypes=['float32'], processes=0)
    assert results['skipped'] == [] and len(results['deconv1D']) == 1, results
    line = results['deconv1D'][0]
    assert line['function'] == 'deconv1D' and 'speedup' not in line, line  # no loop in 1-D
    assert 'deconv1D, X (32,256,64)' in benchmark.format_table(results)


def test_a_missing_or_failing_peer_leaves_the_line_without_it(monkeypatch):
    find_spec = importlib.util.find_spec
    present = object()  # PyTorch counts as installed, whether it is or not: its worker fails
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None if name == 'jax' else
                        present if name == 'torch' else find_spec(name))
    version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, 'version',
                        lambda name: '0.0' if name == 'torch' else version(name))
    def fresh(function, task, threads=None):
        if function == 'peer': raise RuntimeError("a benchmark worker process failed: ImportError")
    monkeypatch.setattr(benchmark, '_fresh', fresh)
    few_lines(monkeypatch, 'pooling')
    results = benchmark.run_benchmark(1, 1, 0, processes=0, peers=('torch', 'jax'))
    failed = 'PyTorch on pooling float32: a benchmark worker process failed: ImportError'
    assert results['skipped'] == ['JAX: not installed', failed], results['skipped']
    assert not any(key.startswith(('torch', 'jax', 'peer')) for key in results['pooling']), results
    assert 'vs PyTorch' not in benchmark.format_table(results)
