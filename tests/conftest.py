import os
import subprocess
import sys

import pytest

# Figures are drawn without a display.
os.environ.setdefault('MPLBACKEND', 'Agg')

# pytest.ini runs one pytest-xdist worker per core. A BLAS that also starts a thread per core in
# each worker would put two busy threads on every core; one BLAS thread per worker does not.
if int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1')) > 1:
    for variable in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS'):
        os.environ.setdefault(variable, '1')

# `pip install -e ".[dev]"` installs dask[array,distributed]: the scale-out notebook and its tests
# need both. A dask beside a distributed from another release installs cleanly and then fails to
# import, minutes into the run; check it before the first test instead, in a fresh interpreter
# so that this process imports nothing a test might look for in sys.modules.
IMPORT_CHECK = 'import dask.array, dask.distributed'


def pytest_sessionstart(session):
    if hasattr(session.config, 'workerinput'): return  # an xdist worker: the controller checked
    res = subprocess.run([sys.executable, '-c', IMPORT_CHECK], capture_output=True, text=True)
    if res.returncode:
        last = (res.stderr.strip().splitlines() or ['no error message'])[-1]
        raise pytest.UsageError(f'`{IMPORT_CHECK}` fails in {sys.executable} ({last}); '
                                'reinstall with: pip install -e ".[dev]"')
