"""The test command itself: it stops at once, in one line, when dask.distributed cannot be imported
(tests/conftest.py), instead of failing the scale-out notebook minutes into the run."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_pytest_stops_in_one_line_when_dask_distributed_cannot_be_imported(tmp_path):
    fake = tmp_path / 'distributed'
    fake.mkdir()
    (fake / '__init__.py').write_text('raise ImportError("a distributed that does not fit this dask")\n')
    res = subprocess.run([sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-n', '0',
                          '--collect-only', '-q', 'tests/test_benchmark.py'],
                         capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, 'PYTHONPATH': str(tmp_path)})
    lines = [l for l in (res.stdout + res.stderr).splitlines() if l.strip()]
    assert res.returncode == 4, res  # pytest's status for a usage error
    assert len(lines) == 1 and lines[0].startswith('ERROR: ') and 'dask.distributed' in lines[0], res
    assert 'a distributed that does not fit this dask' in lines[0], lines
    assert 'collected' not in res.stdout, 'no test was collected before the check'
