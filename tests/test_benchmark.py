"""The benchmark as a program: `python -m convutils bench` takes the benchmark's own options.

The benchmark notebook tests `convutils.benchmark.main` itself (options, errors, progress lines,
`--quiet`, `--dask`). These tests run the installed commands in a fresh interpreter. Every run is
tiny (batch size 1, one round, no minimum time, workload A, one fresh process per line), so its
numbers mean nothing.
"""
import importlib.util
import json
import re
import subprocess
import sys

TINY = ['--n-ex', '1', '--repeats', '1', '--min-seconds', '0', '--workloads', 'A', '--processes', '1']


def run(*args):
    "Run `python ARGS...` in a fresh interpreter; return the completed process."
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)


def test_importing_the_benchmark_does_not_import_dask():
    code = "import sys, convutils.benchmark; print('dask' in sys.modules, 'convutils.scaleout' in sys.modules)"
    result = run('-c', code)
    assert result.stdout.split() == ['False', 'False'], result


def test_bench_help_is_the_benchmarks_help():
    result = run('-m', 'convutils', 'bench', '--help')
    assert result.returncode == 0, result
    for option in ('--repeats', '--min-seconds', '--n-ex', '--workloads', '--save', '--dask', '--quiet',
                   '--processes', '--blas-threads', '--torch'):
        assert option in result.stdout, (option, result.stdout)


def test_bench_takes_the_benchmarks_options():
    result = run('-m', 'convutils', 'bench', *TINY)
    assert result.returncode == 0, result
    assert result.stdout.startswith('convutils benchmark\n'), result
    assert '[1/11] conv A float32' in result.stderr.splitlines(), result.stderr
    result = run('-m', 'convutils', 'bench', *TINY, '--quiet')
    assert (result.returncode, result.stderr) == (0, ''), result


def test_bench_reports_a_bad_option_in_one_line_after_the_usage_with_status_2():
    result = run('-m', 'convutils', 'bench', '--repeats', '0')
    assert result.returncode == 2 and result.stdout == '', result
    usage, error = result.stderr.splitlines()
    assert usage == 'usage: python -m convutils bench [-h] [OPTIONS]' and '--repeats' in error, result.stderr


def test_each_line_pools_its_fresh_processes(tmp_path):
    out = tmp_path / 'r.json'
    result = run('-m', 'convutils', 'bench', *TINY[:-1], '2', '--blas-threads', '1', '--quiet',
                 '--save', str(out))
    assert result.returncode == 0, result
    results = json.loads(out.read_text())
    assert results['processes'] == 2 and 'with 1 threads' in results['machine'], results['machine']
    for line in results['conv'] + results['deconv'] + results['backward']:
        assert line['processes'] == 2 and len(line['rounds']['ratio']) == 2, line
        assert line['ratio_low'] <= line['ratio'] <= line['ratio_high'], line
        assert line['verdicts']['ratio'] in ('PASS', 'FAIL', 'UNSURE'), line
    pooling = results['pooling']
    assert pooling['processes'] == 2 and len(pooling['rounds']['reshape_ratio']) == 2, pooling
    assert 'UNSURE' in result.stdout or 'PASS' in result.stdout, result.stdout


def test_torch_column_or_a_clear_error():
    result = run('-m', 'convutils', 'bench', *TINY, '--quiet', '--torch')
    if importlib.util.find_spec('torch') is None:
        assert result.returncode == 2 and result.stdout == '', result
        assert result.stderr.splitlines()[-1] == ('python -m convutils bench: error: --torch needs PyTorch: '
                                                  'pip install torch'), result.stderr
    else:
        assert result.returncode == 0, result
        assert "against PyTorch's conv2d / conv1d" in result.stdout, result.stdout
        assert 'PyTorch, groups=C' in result.stdout, result.stdout
        for call in ('max_pool2d', 'backward', 'avg_pool2d'):  # the pooling line, with its target
            assert re.search(rf"vs PyTorch {call} .*<=1.5", result.stdout), (call, result.stdout)
