"""Browser test of the offline docs: build them with tools/build_docs.py and open every page in headless Chromium.

Checks, on every page: it loads without console errors and fetches nothing from the network; no code
block scrolls sideways (code lines are at most 100 characters); every <img> has loaded (naturalWidth >
0); it shows at least as many figures as its notebook has visible figure outputs; the sidebar links
every page by its title and each link, and every other internal link and #anchor, resolves; every
exported function of the library has its rendered docs (show_doc) on its page, at the anchor nbdev's
cross-references point to.

Saves a screenshot of the home page (and of the page with the most figures) into `_site_offline/`,
where the tested site is copied too; set CONVUTILS_DOCS_OUT to use another folder.

Needs Chromium, chromedriver (Debian: `apt-get install chromium chromium-driver`) and selenium: the test
SKIPS without them, unless CONVUTILS_REQUIRE_BROWSER=1 (as in CI), when it fails instead.
"""
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / 'tools' / 'build_docs.py'
MARKER = '.convutils-offline-docs'
PAGE_LOAD_TIMEOUT = 30


def _find_browser():
    "(chromium binary, chromedriver binary), or a reason why the test cannot run."
    chromium = next(filter(None, map(shutil.which, ('chromium', 'chromium-browser', 'google-chrome'))), None)
    driver = shutil.which('chromedriver') or ('/usr/bin/chromedriver' if Path('/usr/bin/chromedriver').exists() else None)
    if not chromium: return None, 'chromium is not installed (apt-get install chromium chromium-driver)'
    if not driver: return None, 'chromedriver is not installed (apt-get install chromium-driver)'
    try: import selenium  # noqa: F401
    except ImportError: return None, 'selenium is not installed (pip install selenium)'
    return (chromium, driver), None


def _skip_or_fail(reason):
    if os.environ.get('CONVUTILS_REQUIRE_BROWSER') == '1': pytest.fail(f'browser test required but {reason}', pytrace=False)
    pytest.skip(reason)


def _start_browser(chromium, driver_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1366,900',
                '--force-device-scale-factor=1', '--hide-scrollbars', '--no-first-run', '--disable-extensions',
                '--disable-background-networking', '--disable-component-update', '--disable-sync'):
        opts.add_argument(arg)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    drv = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    drv.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
    return drv


def _visible_figures(nb_path):
    "How many figure outputs of the notebook the docs must show (nbdev drops hidden, exported and include:false cells)."
    nb = json.loads(nb_path.read_text(encoding='utf-8'))
    n = 0
    for cell in nb['cells']:
        if cell['cell_type'] != 'code': continue
        src = ''.join(cell['source'])
        head = [l.strip().replace(' ', '') for l in src.splitlines() if l.strip().startswith('#|')]
        if any(h in ('#|hide', '#|export', '#|exporti', '#|include:false', '#|output:false') or h.startswith('#|default_exp')
               for h in head): continue
        n += sum(1 for o in cell.get('outputs', []) if {'image/png', 'image/jpeg', 'image/svg+xml'} & set(o.get('data', {})))
    return n


def _documented_symbols():
    "{page: [(name, anchor)]} for every public function and class the library exports, from nbdev's _modidx."
    from convutils._modidx import d
    want = {}
    for mod_name, syms in d['syms'].items():
        try: mod = importlib.import_module(mod_name)
        except Exception as e: pytest.fail(f'cannot import {mod_name}: {e}', pytrace=False)
        for name in getattr(mod, '__all__', []):
            entry = syms.get(f'{mod_name}.{name}')
            if entry is None or not callable(getattr(mod, name, None)): continue
            page, _, anchor = entry[0].partition('#')
            want.setdefault(page, []).append((name, anchor))
    return want


_PAGE_FACTS_JS = r"""
const imgs = Array.from(document.images).map(i => ({src: i.currentSrc.slice(0, 80), alt: i.alt,
    complete: i.complete, w: i.naturalWidth, fig: !!i.closest('.jp-RenderedImage'), shown: i.getBoundingClientRect().width}));
const links = Array.from(document.querySelectorAll('a[href]')).map(a => ({href: a.href, raw: a.getAttribute('href'),
    text: a.textContent.trim(), sidebar: !!a.closest('nav.sidebar')}));
const ids = Array.from(document.querySelectorAll('[id]')).map(e => e.id);
const showdoc = Array.from(document.querySelectorAll('.celltag_showdoc h3[id], .celltag_showdoc h4[id]')).map(h => h.id);
const resources = performance.getEntriesByType('resource').map(r => r.name);
const wide = Array.from(document.querySelectorAll('main img')).filter(i => i.getBoundingClientRect().right >
    document.querySelector('main').getBoundingClientRect().right + 1).map(i => i.alt || i.src.slice(0, 40));
const rawTex = Array.from(document.querySelectorAll('.math > code')).map(c => c.textContent.slice(0, 60));
const scrolls = Array.from(document.querySelectorAll('main pre')).filter(p => p.scrollWidth > p.clientWidth + 1)
    .map(p => p.textContent.split('\n').reduce((a, l) => a.length >= l.length ? a : l, '').slice(0, 60));
return {title: document.title, h1: (document.querySelector('h1.title') || {}).textContent, imgs, links, ids, showdoc,
        resources, wide, rawTex, scrolls, ready: document.readyState};
"""


@pytest.fixture(scope='module')
def browser():
    found, reason = _find_browser()
    if not found: _skip_or_fail(reason)
    drv = _start_browser(*found)
    yield drv
    drv.quit()


def _build(out, *args):
    "Run tools/build_docs.py into `out`; return the finished process."
    return subprocess.run([sys.executable, str(BUILD), '--out', str(out), *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, 'MPLBACKEND': 'Agg'}, timeout=900)


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "The docs site, built once for the tests of this file; (its folder, the build's seconds)."
    t0 = time.perf_counter()
    out = tmp_path_factory.mktemp('docs') / 'site'
    res = _build(out)
    print(res.stdout)
    assert res.returncode == 0, f'tools/build_docs.py failed:\n{res.stdout}\n{res.stderr}'
    return out, time.perf_counter() - t0


def test_docs_in_chromium(browser, site):
    t0 = time.perf_counter()
    site, t_build = site

    from nbdev.config import get_config
    from nbdev.doclinks import _nbpath2html
    nbs = Path(get_config(path=ROOT).nbs_path)
    notebooks = sorted(p for p in nbs.rglob('*.ipynb') if not any(part.startswith(('_', '.')) for part in p.relative_to(nbs).parts))
    expected = {_nbpath2html(p.relative_to(nbs)).as_posix(): p for p in notebooks}
    built = {p.relative_to(site).as_posix() for p in site.rglob('*.html')}
    assert set(expected) == built, f'pages missing: {sorted(set(expected) - built)}; unexpected: {sorted(built - set(expected))}'
    assert 'index.html' in built, 'the home page index.html (from nbs/index.ipynb) is missing'

    problems, notes, facts = [], [], {}
    browser.get_log('browser')  # drop anything logged before the first page
    for page in sorted(expected, key=lambda p: (p != 'index.html', p)):
        browser.get((site / page).as_uri())
        f = facts[page] = browser.execute_script(_PAGE_FACTS_JS)
        errors = [e['message'] for e in browser.get_log('browser') if e['level'] == 'SEVERE']
        if errors: problems.append(f'{page}: console errors: {errors}')
        if f['ready'] != 'complete': problems.append(f'{page}: document not loaded ({f["ready"]})')
        if not (f['h1'] or '').strip(): problems.append(f'{page}: no title')
        broken = [i for i in f['imgs'] if not (i['complete'] and i['w'] > 0)]
        if broken: problems.append(f'{page}: {len(broken)} images did not load: {broken[:3]}')
        if f['wide']: problems.append(f'{page}: images wider than the page: {f["wide"][:3]}')
        if f['scrolls']: problems.append(f'{page}: {len(f["scrolls"])} code blocks scroll sideways at 1366 px: {f["scrolls"][:2]}')
        if f['rawTex']: problems.append(f'{page}: math shown as TeX (latex2mathml cannot read it): {f["rawTex"][:3]}')
        remote = [r for r in f['resources'] if not r.startswith(('file:', 'data:'))]
        if remote: problems.append(f'{page}: fetches from the network: {remote[:3]}')
        n_figs, n_shown = _visible_figures(expected[page]), sum(1 for i in f['imgs'] if i['fig'] and i['w'] > 0 and i['shown'] > 0)
        if n_shown < n_figs: problems.append(f'{page}: shows {n_shown} figures, its notebook has {n_figs}')

    # links: the sidebar lists every page by its title; every internal link and #anchor resolves
    titles = {page: f['h1'].strip() for page, f in facts.items()}
    for page, f in facts.items():
        side = [l for l in f['links'] if l['sidebar']]
        targets = {Path(unquote(urlparse(l['href']).path)).resolve() for l in side}
        if targets != {(site / p).resolve() for p in expected}: problems.append(f'{page}: sidebar does not link every page once')
        texts = {Path(unquote(urlparse(l['href']).path)).relative_to(site.resolve()).as_posix(): l['text'] for l in side}
        wrong = {p: t for p, t in texts.items() if titles.get(p) != t}
        if wrong: problems.append(f'{page}: sidebar texts are not the page titles: {wrong}')
        for l in f['links']:
            url, frag = urldefrag(l['href'])
            if not url.startswith('file:'): continue
            target = Path(unquote(urlparse(url).path))
            rel = target.relative_to(site.resolve()).as_posix() if target.is_relative_to(site.resolve()) else None
            if not target.exists(): problems.append(f'{page}: link {l["raw"]!r} points to a missing file')
            elif frag and rel in facts and unquote(frag) not in facts[rel]['ids']:
                msg = f'{page}: link {l["raw"]!r} points to a missing anchor'
                # nbdev links every backticked name in its index, private ones too, but documents only public ones:
                # those links dangle on the Quarto site as well, so they are reported, not failed
                if unquote(frag).startswith('_'): notes.append(msg + ' (a private name nbdev links but does not document)')
                else: problems.append(msg)

    # every exported public function/class has its show_doc docs on its page, at nbdev's anchor
    for page, syms in _documented_symbols().items():
        if page not in facts: problems.append(f'{page}: page of {[s for s, _ in syms]} was not built'); continue
        missing = [name for name, anchor in syms if anchor not in facts[page]['showdoc']]
        if missing: problems.append(f'{page}: no rendered docs for {missing}')

    # screenshots: the home page, and the page with the most figures
    out = Path(os.environ.get('CONVUTILS_DOCS_OUT', ROOT / '_site_offline'))
    shots = {'index.html': 'screenshot-home.png'}
    fig_page = max((p for p in facts if p != 'index.html'), key=lambda p: sum(i['fig'] for i in facts[p]['imgs']), default=None)
    if fig_page and any(i['fig'] for i in facts[fig_page]['imgs']): shots[fig_page] = f'screenshot-{Path(fig_page).stem}.png'
    for page, name in shots.items():
        browser.get((site / page).as_uri())
        if page == 'index.html':  # the whole home page (up to 6000 px)
            height = browser.execute_script('return document.documentElement.scrollHeight')
            browser.set_window_size(1366, min(max(height, 900), 6000))
        else:  # a screenful around the page's first figure
            browser.set_window_size(1366, 1300)
            browser.execute_script("document.querySelector('.jp-RenderedImage img').scrollIntoView({block: 'center'})")
        browser.save_screenshot(str(site / name))
        browser.set_window_size(1366, 900)
    if out.exists() and not (out / MARKER).exists() and any(out.iterdir()):
        pytest.fail(f'{out} exists and was not made by tools/build_docs.py; not overwriting it', pytrace=False)
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(site, out)
    print(f'tested site copied to {out}')
    for name in shots.values(): print(f'screenshot: {out / name}')
    print(f'{len(facts)} pages checked in {time.perf_counter() - t0:.1f} s (build {t_build:.1f} s)')

    for note in notes: warnings.warn(note)
    assert not problems, 'offline docs problems:\n' + '\n'.join(problems)


# Without a browser: the build writes every page, links nothing it did not write, and fails loudly

def _build_docs_module():
    "tools/build_docs.py, imported as a module."
    spec = importlib.util.spec_from_file_location('build_docs', BUILD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _expected_pages():
    from nbdev.config import get_config
    from nbdev.doclinks import _nbpath2html, nbglob
    nbs = Path(get_config(path=ROOT).nbs_path)
    return {_nbpath2html(p.relative_to(nbs)).as_posix() for p in nbglob(nbs, func=Path)}


def test_docs_build_writes_every_page_with_no_dead_link(site):
    site, _ = site
    built = {p.relative_to(site).as_posix() for p in site.rglob('*.html')}
    assert built == _expected_pages(), (sorted(_expected_pages() - built), sorted(built - _expected_pages()))
    assert _build_docs_module().dead_links(site) == []


class _SignatureErrors(HTMLParser):
    "The tokens pygments marks as errors (`<span class=\"err\">`) in the show_doc boxes of a page."
    def __init__(self, text):
        super().__init__()
        self.divs, self.errors = [], []  # divs: for each open <div>, whether it is a show_doc box
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get('class') or '').split()
        if tag == 'div': self.divs.append('celltag_showdoc' in classes)
        if tag == 'span' and 'err' in classes and any(self.divs): self.errors.append(self.getpos())

    def handle_endtag(self, tag):
        if tag == 'div' and self.divs: self.divs.pop()


def test_no_signature_shows_a_syntax_error(site):
    site, _ = site
    pages = {p.name: p.read_text(encoding='utf-8') for p in sorted(site.glob('*.html'))}
    assert sum(text.count('celltag_showdoc') for text in pages.values()) > 50, 'show_doc boxes to check'
    errors = {page: _SignatureErrors(text).errors for page, text in pages.items()}
    assert not any(errors.values()), {page: where[:5] for page, where in errors.items() if where}


def test_sidebar_keeps_the_tutorials_apart_from_the_reference_pages(site):
    site, _ = site
    text = (site / 'index.html').read_text(encoding='utf-8')
    start = text.index('class="sidebar"')
    sidebar = text[start:text.index('</nav>', start)]
    tutorials, _, reference = sidebar.partition('<h2>Reference</h2>')
    assert 'The command line' in reference and 'The package namespace' in reference, sidebar
    assert 'The command line' not in tutorials and 'padding.html' in tutorials, sidebar


def _notebook(path, *cells):
    "Write a notebook of `cells`: strings, markdown when they start with '#' and a space, else code."
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(c) if c.startswith('# ') else nbformat.v4.new_code_cell(c)
                for c in cells]
    nbformat.write(nb, path)


def test_a_failing_notebook_fails_the_build_and_no_page_links_to_it(tmp_path):
    nbs = tmp_path / 'nbs'
    nbs.mkdir()
    _notebook(nbs / 'index.ipynb', '# Home\n> a site with a broken page',
              '# Pages\nSee [the good page](01_good.ipynb) and [the broken one](02_broken.ipynb#g).')
    _notebook(nbs / '01_good.ipynb', '#| default_exp good', '# Good\n> it builds',
              '#| export\ndef f(x):\n    "Return `x`."\n    return x',
              '# More\n`g` is on [the broken page](02_broken.ipynb).')
    _notebook(nbs / '02_broken.ipynb', '#| default_exp broken', '# Broken\n> it does not build',
              '#| export\ndef g():\n    "Nothing."',
              "#| export\nraise RuntimeError('deliberately broken')")
    res = _build(tmp_path / 'site', '--nbs', str(nbs))
    assert res.returncode == 1, res
    errors = [line for line in res.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1, res.stderr
    assert 'nbs/02_broken.ipynb: cell 4 (id ' in errors[0], errors  # the file's 4th cell
    assert "raise RuntimeError('deliberately broken')" in errors[0], errors
    assert errors[0].endswith('failed: RuntimeError: deliberately broken'), errors
    site = tmp_path / 'site'
    assert sorted(p.name for p in site.glob('*.html')) == ['good.html', 'index.html']
    assert _build_docs_module().dead_links(site) == []
    for page in site.glob('*.html'):
        assert 'broken.html' not in page.read_text(encoding='utf-8'), page.name
    assert 'the broken one' in (site / 'index.html').read_text(encoding='utf-8'), 'the text stays'


def test_dead_links_finds_a_missing_page_and_a_missing_anchor(tmp_path):
    (tmp_path / 'a.html').write_text('<h2 id="here">x</h2><a href="b.html">b</a><a href="#there">t</a>'
                                     '<a href="a.html#here">ok</a><a href="#_private">p</a>'
                                     '<img src="data:image/png;base64,AA"><a href="https://example.org/x">w</a>')
    dead = _build_docs_module().dead_links(tmp_path)
    assert dead == ["a.html: 'b.html' points to a missing file", "a.html: '#there' points to a missing anchor"]
