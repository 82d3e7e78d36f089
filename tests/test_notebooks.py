"""Run every notebook in nbs/ through nbdev's own test runner: one pytest item per notebook.

Cells flagged with a `tst_flags` flag from settings.ini (e.g. `#| slow`) are skipped unless
the flag is listed in the environment variable CONVUTILS_TEST_FLAGS (space separated),
exactly as `nbdev_test --flags slow` would run them.
"""
import os
from pathlib import Path

import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_nb

NBS = sorted(p for p in Path(get_config().nbs_path).glob('*.ipynb') if not p.name.startswith(('_', '.')))


@pytest.mark.parametrize('notebook', NBS, ids=[p.stem for p in NBS])
def test_notebook(notebook, capsys):
    skip_flags = get_config().tst_flags.split()
    force_flags = os.environ.get('CONVUTILS_TEST_FLAGS', '').split()
    ok, _ = run_nb(notebook, skip_flags=skip_flags, force_flags=force_flags, showerr=True)
    if not ok:
        pytest.fail(f'{notebook.name} failed; its traceback is above', pytrace=False)
