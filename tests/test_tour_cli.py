"""The tour's command line, `python -m convutils`: where it writes the figure, what it refuses (and
when), large images, the time it reports, the figure's panels, and the `bench` subcommand.

nbs/10_tour.ipynb shows one example of each; these tests check the edge cases. None of them runs the
benchmark itself: `convutils.benchmark.main` is replaced by a stub that records its arguments.
"""
import contextlib
import io
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

matplotlib = pytest.importorskip('matplotlib')
import matplotlib.pyplot as plt  # noqa: E402
import PIL.Image  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import convutils.benchmark  # noqa: E402
from convutils import conv2D  # noqa: E402
from convutils.tour import draw_tour, main, run_tour  # noqa: E402

_real_bench_main = convutils.benchmark.main  # before a fixture replaces it

ERROR = 'python -m convutils: error: '
USAGE = ('usage: python -m convutils [-h] [--version] [--image PATH] [--out PATH] [--quiet]\n'
         '       python -m convutils bench [-h] [OPTIONS]\n')


def error_of(err):
    "The one line of error in `err`, which must be the usage and then that line, as argparse prints."
    assert err.startswith(USAGE), err
    error = err[len(USAGE):]
    assert error.startswith(ERROR) and error.count('\n') == 1, err  # no progress, no traceback
    return error


def run_main(*argv):
    "Run `main(argv)` in this process; return its status, stdout and stderr."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


def figure_line(report):
    "The report's line that names the figure."
    return next(line for line in report.splitlines() if line.startswith('figure'))


@pytest.fixture(scope='module')
def small_image(tmp_path_factory):
    path = tmp_path_factory.mktemp('images') / 'small.png'
    plt.imsave(path, np.random.default_rng(0).random((40, 48, 3)))
    return path


@pytest.fixture(scope='module')
def tour_results():
    image = np.random.default_rng(1).random((96, 80, 3)).astype(np.float32)
    return run_tour(image)


# --out: the path written, and the path reported

def test_out_suffix_matplotlib_cannot_write_is_refused_before_the_tour(tmp_path, small_image):
    status, out, err = run_main('--image', str(small_image), '--out', str(tmp_path / 'out.txt'))
    assert (status, out) == (2, '')
    error_of(err)
    assert "'.txt'" in err and 'png' in err, err  # names the suffix and what would work
    assert not (tmp_path / 'out.txt').exists()


def test_out_with_a_format_matplotlib_lists_but_cannot_write_is_refused(tmp_path, small_image):
    if shutil.which('xelatex'): pytest.skip('xelatex is installed: matplotlib can write .pgf here')
    status, out, err = run_main('--image', str(small_image), '--out', str(tmp_path / 'fig.pgf'))
    assert status == 2 and 'xelatex' in error_of(err), err


@pytest.mark.parametrize('suffix', ['.png', '.PNG', '.svg', '.pdf', '.jpg'])
def test_out_in_a_format_matplotlib_writes(tmp_path, small_image, suffix):
    path = tmp_path / f'fig{suffix}'
    status, out, err = run_main('--image', str(small_image), '--out', str(path), '--quiet')
    assert (status, out, err) == (0, '', '')
    assert path.stat().st_size > 0 and sorted(tmp_path.iterdir()) == [path]


def test_out_folder_writes_into_it_and_reports_that_path(tmp_path, small_image):
    folder = tmp_path / 'figs'
    folder.mkdir()
    status, out, err = run_main('--image', str(small_image), '--out', str(folder))
    assert status == 0, err
    written = folder / 'convutils-tour.png'
    assert written.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert sorted(tmp_path.iterdir()) == [folder], 'nothing written beside the folder'
    assert str(written) in figure_line(out), out


def test_out_without_a_suffix_reports_the_png_it_writes(tmp_path, small_image):
    status, out, err = run_main('--image', str(small_image), '--out', str(tmp_path / 'fig'))
    assert status == 0, err
    assert sorted(tmp_path.iterdir()) == [tmp_path / 'fig.png']
    assert str(tmp_path / 'fig.png') in figure_line(out), out


def test_out_empty_is_refused(tmp_path, small_image, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = run_main('--image', str(small_image), '--out', '')
    assert (status, out) == (2, '')
    assert '--out' in error_of(err), err
    assert list(tmp_path.iterdir()) == [], 'no hidden .png'


def test_out_in_a_missing_folder_is_refused(tmp_path, small_image):
    for out_arg in (tmp_path / 'no' / 'x.png', f"{tmp_path / 'newdir'}{os.sep}"):
        status, out, err = run_main('--image', str(small_image), '--out', str(out_arg))
        assert status == 2 and 'no such directory' in error_of(err), err
    assert list(tmp_path.iterdir()) == []


def test_out_that_exists_keeps_its_contents_when_the_tour_fails(tmp_path):
    target = tmp_path / 'fig.png'
    target.write_bytes(b'keep me')
    status, out, err = run_main('--image', str(tmp_path / 'missing.jpg'), '--out', str(target))
    assert status == 2 and 'cannot read image' in error_of(err), err
    assert target.read_bytes() == b'keep me'


def _as_another_user():
    "A command prefix that runs as an unprivileged user (for whom permissions apply), or None."
    if os.geteuid() != 0: return []
    setpriv = shutil.which('setpriv')
    return [setpriv, '--reuid=65534', '--regid=65534', '--clear-groups'] if setpriv else None


def test_read_only_out_folder_is_refused_before_the_tour(small_image):
    prefix = _as_another_user()
    if prefix is None: pytest.skip('running as root without setpriv: permissions do not apply')
    base = Path(tempfile.mkdtemp())
    try:
        base.chmod(0o755)
        shutil.copy(small_image, base / 'small.png')
        (base / 'small.png').chmod(0o644)
        config = base / 'mplconfig'
        config.mkdir(mode=0o777)
        config.chmod(0o777)
        read_only = base / 'ro'
        read_only.mkdir()
        read_only.chmod(0o555)
        env = {**os.environ, 'MPLBACKEND': 'Agg', 'MPLCONFIGDIR': str(config)}
        # A clone (or its venv) in a folder other users cannot enter, such as one from `mktemp -d`
        # or under /root, keeps the unprivileged user from running this Python or importing from it
        probe = subprocess.run([*prefix, sys.executable, '-c', 'import convutils.tour, matplotlib'],
                               capture_output=True, text=True, cwd=base, env=env, timeout=120)
        if probe.returncode:
            reason = (probe.stderr.strip().splitlines() or [f'status {probe.returncode}'])[-1]
            pytest.skip(f'an unprivileged user cannot run {sys.executable} and import convutils '
                        f'(is the clone in a folder other users cannot enter?): {reason}')
        cmd = [*prefix, sys.executable, '-m', 'convutils', '--image', str(base / 'small.png'),
               '--out', str(read_only / 'x.png')]
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=base, env=env, timeout=120)
        assert res.returncode == 2, res
        assert res.stderr.splitlines()[-1].startswith(ERROR + 'cannot write the figure'), res.stderr
        assert 'Permission denied' in res.stderr, res.stderr
        assert '[1/' not in res.stderr, f'the tour ran before the check:\n{res.stderr}'
        assert list(read_only.iterdir()) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


# large images

def test_large_image_is_shrunk_and_the_report_says_so(tmp_path):
    path = tmp_path / 'large.png'
    rows, cols = np.mgrid[:1300, :900] / 1300
    plt.imsave(path, np.dstack([rows, cols, rows * cols]))
    status, out, err = run_main('--image', str(path), '--out', str(tmp_path / 'fig.png'))
    assert status == 0, err
    assert re.search(r'\(1300, 900, 3\), shrunk 3x to \(433, 300, 3\)', out), out


def test_run_tour_works_on_the_shrunk_image():
    results = run_tour(np.zeros((4000, 4000, 3), np.float32))
    assert results['image'].shape == (571, 571, 3)
    assert (results['input_shape'], results['shrink']) == ((4000, 4000, 3), 7)


def test_4000_by_4000_image_takes_seconds_and_little_memory(tmp_path):
    if not Path('/proc/self/status').exists(): pytest.skip('measures memory with /proc/self/status')
    path = tmp_path / 'large.png'
    ramp = np.linspace(0, 255, 4000).astype(np.uint8)
    gradient = np.broadcast_arrays(ramp[:, None], ramp[None, :], np.uint8(128))
    PIL.Image.fromarray(np.dstack(gradient)).save(path)
    # the peak resident memory of the process since it started (getrusage's ru_maxrss would also
    # count the memory of this test process, which the child inherits from the fork)
    script = ('import sys; from convutils.tour import main; status = main(sys.argv[1:]); '
              'print(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")), '
              'file=sys.stderr); sys.exit(status)')
    start = time.perf_counter()
    res = subprocess.run([sys.executable, '-c', script, '--image', str(path),
                          '--out', str(tmp_path / 'fig.png'), '--quiet'],
                         capture_output=True, text=True, env={**os.environ, 'MPLBACKEND': 'Agg'},
                         timeout=300)
    seconds = time.perf_counter() - start
    assert res.returncode == 0, res.stderr
    peak_mb = int(res.stderr.split()[-2]) / 1024  # VmHWM:  123456 kB
    assert peak_mb < 1000, f'peak memory {peak_mb:.0f} MB'
    assert seconds < 30, f'took {seconds:.1f} s'


# the time the report gives

def test_report_gives_the_time_the_user_waited(tmp_path, small_image):
    start = time.perf_counter()
    status, out, err = run_main('--image', str(small_image), '--out', str(tmp_path / 'fig.png'))
    waited = time.perf_counter() - start
    assert status == 0, err
    reported = float(re.search(r'took (\d+\.\d+) s', out).group(1))
    assert waited - 0.2 <= reported <= waited + 0.05, (reported, waited, out)


# the figure

def _drawn_figure(results, monkeypatch, tmp_path):
    "The Figure that `draw_tour` saves."
    drawn = []
    monkeypatch.setattr(Figure, 'savefig', lambda fig, *args, **kwargs: drawn.append(fig))
    draw_tour(results, tmp_path / 'fig.png')
    return drawn[0]


def _dilated_span(dilation):
    "How many pixels the tour's 3x3 blur spans with `dilation`, measured on an impulse."
    impulse = np.zeros((1, 31, 31, 1), np.float32)
    impulse[0, 15, 15] = 1
    response = conv2D(impulse, np.ones((3, 3, 1, 1), np.float32), 1, 'same', dilation=dilation)
    rows = np.flatnonzero(response[0, :, :, 0].any(axis=1))
    return rows[-1] - rows[0] + 1


def test_dilated_blur_panel_states_its_real_span(tour_results, monkeypatch, tmp_path):
    fig = _drawn_figure(tour_results, monkeypatch, tmp_path)
    titles = [ax.get_title() for ax in fig.axes]
    dilated = [t for t in titles if 'dilation=' in t]
    assert len(dilated) == 1, titles
    d, span = map(int, re.search(r'dilation=(\d+) \((\d+)x\d+ span\)', dilated[0]).groups())
    assert span == _dilated_span(d) == 2 * d + 3, dilated[0]


def test_random_filter_panels_share_a_scale_and_differ(tour_results, monkeypatch, tmp_path):
    fig = _drawn_figure(tour_results, monkeypatch, tmp_path)
    panels = [ax for ax in fig.axes if 'random' in ax.get_title().lower() and ax.images]
    maps = [ax for ax in panels if ax.images[0].get_array().ndim == 2
            and ax.images[0].get_array().shape == tour_results['image'].shape[:2]]
    assert len(maps) >= 2, [ax.get_title() for ax in panels]
    assert len({ax.images[0].get_clim() for ax in maps}) == 1, 'one colour scale for every map'
    arrays = [np.asarray(ax.images[0].get_array(), float).ravel() for ax in maps]
    assert sum(np.ptp(a) == 0 for a in arrays) <= 1, 'at most one map is blank'
    for i in range(len(arrays)):
        for j in range(i + 1, len(arrays)):
            with np.errstate(invalid='ignore'), warnings.catch_warnings():
                warnings.simplefilter('ignore', RuntimeWarning)
                correlation = np.corrcoef(arrays[i], arrays[j])[0, 1]  # nan for a blank map
            assert not correlation > 0.95, (i, j, correlation)



def test_smaller_images_are_drawn_at_true_scale_on_the_inputs_pixel_axes(tour_results, monkeypatch,
                                                                          tmp_path):
    fig = _drawn_figure(tour_results, monkeypatch, tmp_path)
    rows, cols = tour_results['image'].shape[:2]
    panels = {ax.get_title().split(':')[0]: ax for ax in fig.axes if ax.images}
    for name, key in [('blur, stride 2', 'strided_blur'), ('every 4th pixel', 'small'),
                      ('deconv2D x2', 'upsampled')]:
        ax = panels[name]
        assert (ax.get_xlim(), ax.get_ylim()) == ((0, cols), (rows, 0)), name
        image_rows, image_cols = tour_results[key].shape[:2]
        assert tuple(ax.images[0].get_extent()) == (0, image_cols, image_rows, 0), name


def test_signed_and_heat_panels_have_colour_bars(tour_results, monkeypatch, tmp_path):
    fig = _drawn_figure(tour_results, monkeypatch, tmp_path)
    titled = {ax.get_title(): ax for ax in fig.axes if ax.images}
    for start in ('Sobel x', 'Sobel y', 'edge magnitude', '8 random 3x3 filters'):
        ax = next(ax for title, ax in titled.items() if title.startswith(start))
        assert ax.images[0].colorbar is not None, start


def test_dilated_crop_is_small_and_boxed_in_the_input(tour_results, monkeypatch, tmp_path):
    fig = _drawn_figure(tour_results, monkeypatch, tmp_path)
    side = tour_results['crop'].shape[1]
    assert side <= 16 and tour_results['dilated'].shape[1] == 2 * side - 1
    (top, left), ax = tour_results['crop_at'], fig.axes[0]
    boxes = [p for p in ax.patches if (p.get_width(), p.get_height()) == (side, side)]
    assert [b.get_xy() for b in boxes] == [(left - 0.5, top - 0.5)], ax.patches
    crop = tour_results['image'][top:top + side, left:left + side].mean(axis=-1)
    np.testing.assert_allclose(tour_results['crop'][0, ..., 0], crop, rtol=1e-6)


def test_relu_zeros_are_drawn_grey_not_as_the_darkest_response(tour_results, monkeypatch, tmp_path):
    fig = _drawn_figure(tour_results, monkeypatch, tmp_path)
    maps = [ax.images[0] for ax in fig.axes if ax.get_title().startswith('random filter')]
    assert len(maps) == 3
    for image in maps:
        values = image.get_array()
        np.testing.assert_array_equal(np.ma.getmaskarray(values), np.asarray(values) == 0)
        assert tuple(image.get_cmap().get_bad()) != tuple(image.get_cmap()(0.0)), 'zero stands out'


# the bench subcommand

@pytest.fixture
def bench_calls(monkeypatch):
    calls = []
    def fake_bench(argv=None, **kwargs):
        calls.append(argv)
        return 0
    monkeypatch.setattr(convutils.benchmark, 'main', fake_bench)
    return calls


def test_bench_passes_every_argument_to_the_benchmark(bench_calls):
    status, out, err = run_main('bench', '--repeats', '3', '--n-ex', '2', '--workloads', 'B')
    assert (status, err) == (0, '')
    assert bench_calls == [['--repeats', '3', '--n-ex', '2', '--workloads', 'B']]


def test_bench_without_options_runs_the_default_benchmark(bench_calls):
    assert run_main('bench')[0] == 0
    assert bench_calls == [[]]


def test_bench_help_is_the_benchmarks_help():
    status, out, err = run_main('bench', '--help')
    assert status == 0, err
    assert '--repeats' in out and '--image' not in out, out
    assert out.startswith('usage: python -m convutils bench'), out


def test_bench_with_a_bad_option_exits_2_without_running():
    status, out, err = run_main('bench', '--no-such-option')
    assert status == 2 and 'unrecognized arguments: --no-such-option' in err, err


def test_bench_after_a_tour_option_is_refused(bench_calls):
    status, out, err = run_main('--quiet', 'bench')
    assert status == 2 and 'bench must come first' in error_of(err), err
    assert bench_calls == []


def test_python_dash_m_bench_help(tmp_path):
    res = subprocess.run([sys.executable, '-m', 'convutils', 'bench', '--help'],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert res.returncode == 0 and '--repeats' in res.stdout, res


# --version, and the usage on errors

def test_version_prints_the_package_version():
    import convutils
    assert run_main('--version') == (0, f'convutils {convutils.__version__}\n', '')


def test_python_dash_m_error_prints_the_usage_then_one_line(tmp_path):
    res = subprocess.run([sys.executable, '-m', 'convutils', '--no-such-option'],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert (res.returncode, res.stdout) == (2, ''), res
    assert error_of(res.stderr) == ERROR + 'unrecognized arguments: --no-such-option\n'


def test_bench_error_prints_the_usage_then_one_line(bench_calls):
    err = io.StringIO()
    with contextlib.redirect_stderr(err): status = _real_bench_main(['--n-ex', '0'])
    assert status == 2, err.getvalue()
    assert err.getvalue().splitlines() == [
        'usage: python -m convutils bench [-h] [OPTIONS]',
        "python -m convutils bench: error: argument --n-ex: must be an integer >= 1, got '0'"]
    assert bench_calls == []


def test_bench_help_names_the_workloads_and_the_time_of_a_full_run():
    status, out, err = run_main('bench', '--help')
    assert status == 0, err
    for name, w in convutils.benchmark.WORKLOADS.items():
        assert re.search(rf"^  {name}  X {re.escape(str(w['X']))} +W {re.escape(str(w['W']))} +stride ",
                         out, flags=re.M), (name, out)
    assert re.search(r'A full run takes about \d+ minutes', out), out

