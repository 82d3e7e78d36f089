#!/usr/bin/env python
"""Build an offline HTML rendering of the docs site, without Quarto.

Every notebook in nbs/ becomes one page, named as Quarto names it (`00_padding.ipynb` -> `padding.html`)
so that nbdev's cross-reference links work. nbdev's docs processors (`FilterDefaults`, as `nbdev_docs`
runs them) drop hidden and exported cells and add, then run, a `show_doc` for each exported function;
one more processor applies the Quarto cell options nbdev leaves (`#| echo: false`, ...). nbconvert's
HTMLExporter renders the cells into a page with a sidebar; markdown-it-py renders the markdown, with
Pandoc's heading ids, and latex2mathml the math: the pages need no network and run no script.

A notebook whose docs cells fail (imports, exported cells, `show_doc`) gets no page; the build names
it and the failing cell, writes the other pages without a link to the missing one, and exits 1.
After writing, every internal link and `#anchor` of the site is checked; a dead one also exits 1.

usage: python tools/build_docs.py [--out _site_offline] [--nbs NBS] [--quiet]
"""
import argparse, base64, contextlib, html, io, mimetypes, os, posixpath, re, shutil, sys, textwrap, time
from html.parser import HTMLParser
from itertools import takewhile
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
from execnb.nbio import nb2dict, read_nb
from fastcore.xtras import working_directory
from jinja2 import DictLoader, pass_context
from latex2mathml.converter import convert as tex2mathml
from markdown_it import MarkdownIt
from mdit_py_plugins.anchors import anchors_plugin
from mdit_py_plugins.attrs import attrs_plugin
from mdit_py_plugins.dollarmath import dollarmath_plugin
from nbconvert import HTMLExporter
from nbformat.v4.rwbase import rejoin_lines
from nbdev.config import get_config
from nbdev.doclinks import _nbpath2html, nbglob
from nbdev.processors import FilterDefaults
from pygments import highlight, formatters, lexers, util

ROOT = Path(__file__).resolve().parents[1]
MARKER = '.convutils-offline-docs'  # a folder holding this file may be wiped and rebuilt


def quarto_options(cell):
    "Do what Quarto does with the `#| key: value` options nbdev leaves; drop raw (frontmatter) cells."
    cell['id'] = f'cell-{cell.idx_}'  # nbdev's new cells get random ids: the pages must not change
    if cell.cell_type == 'raw': del cell['source']
    if cell.cell_type != 'code': return
    opts = dict(re.findall(r'^\s*#\|\s*([\w-]+)\s*:\s*"?(.*?)"?\s*$', cell.source, flags=re.M))
    cell.source = re.sub(r'^\s*#\|.*(\n|$)', '', cell.source, flags=re.M).strip()
    if opts.get('include') == 'false': del cell['source']; return
    if opts.get('output') == 'false': cell.outputs = []
    if opts.get('echo') == 'false' or not cell.source: cell.metadata['transient'] = {'remove_source': True}
    if not re.match(r'show_doc\(', cell.source): return
    cell.metadata['tags'] = ['showdoc']
    for o in cell.get('outputs', []):
        if 'text/markdown' in o.get('data', {}):
            md = ''.join(o.data['text/markdown'])
            md = re.sub(r'(?<=```python\n)(.*?)(?=\n```)', lambda m: tidy_signature(m[1]), md, flags=re.S)
            o.data['text/markdown'] = re.sub(r'(?<=```\n\n)\*(.+)\*$', literal_stars, md, flags=re.M)


SIGNATURE_WIDTH = 100  # columns: the width of the docs' code column, as of the notebooks' code lines


def tidy_signature(code):
    "show_doc's signature as valid Python, in lines of at most `SIGNATURE_WIDTH` where it can."
    # show_doc writes a parameter's whole description after its `#`, newlines included: a line it
    # continues lost its `#`, and highlights as broken Python. Rejoin it, then wrap each long comment
    # onto lines of its own, each starting with a `#` under the first.
    lines = []
    code = re.sub(r'\[([^]\n]+)\]\([^)\s]+\)', r'\1', code)  # nbdev's links, which a code block shows raw
    for line in code.split('\n'):
        if lines and line.strip() and ' # ' in lines[-1] and not re.match(r'\s|\)|(async )?def |class ', line):
            lines[-1] += ' ' + line.strip()
        else: lines.append(line)
    wrapped = []
    for line in lines:
        at = line.find(' # ') + 1  # the comment's column; 0 for none
        if len(line) <= SIGNATURE_WIDTH: wrapped.append(line)
        elif at:
            parts = textwrap.wrap(line[at + 2:], max(SIGNATURE_WIDTH - at - 2, 40), break_on_hyphens=False)
            wrapped += [(line[:at] if i == 0 else ' ' * at) + '# ' + part for i, part in enumerate(parts)]
        else:  # parameters without comments: wrap between them, at the line's own indent
            indent = line[:len(line) - len(line.lstrip())]
            wrapped += textwrap.wrap(line.strip(), SIGNATURE_WIDTH, initial_indent=indent, subsequent_indent=indent,
                                     break_long_words=False, break_on_hyphens=False)
    return '\n'.join(wrapped)


def literal_stars(m):  # the docstring line show_doc puts in *italics*, with the `*` in it (kr*kc) kept
    return '*' + re.sub(r'(`[^`]*`)|\*', lambda k: k[1] or r'\*', m[1]) + '*'


class DocsProcessors(FilterDefaults):
    def xtra_procs(self): return super().xtra_procs() + [quarto_options]


class NotebookFailed(Exception):
    "A notebook's docs cells failed: the message names the notebook, the cell and the error."


def process(nb_path: Path):
    "The notebook at `nb_path` after nbdev's docs processing, as nbformat, and its frontmatter."
    nb = read_nb(nb_path)
    ids = [c.get('id') for c in nb.cells]  # the file's cells: nbdev drops and adds cells as it goes
    try:
        with working_directory(nb_path.parent), contextlib.redirect_stdout(io.StringIO()):
            DocsProcessors()(nb)  # runs the imports, exported cells and show_docs (they may print)
    except Exception as e:
        raise NotebookFailed(f'{failed_cell(e, nb.cells, ids)} failed: {error_line(e.__cause__ or e)}') from e
    return rejoin_lines(nbformat.from_dict(nb2dict(nb))), nb.frontmatter_


def failed_cell(e, cells, ids):
    "Which cell nbdev's `exec_show_docs` names in `e`, told as the notebook's own cell number and id."
    m = re.search(r' in cell (\d+) :', str(e))
    if not m: return 'its docs processing'
    cell = next((c for c in cells if c.idx_ == int(m[1])), None)
    if cell is None: return f'cell {m[1]}'
    line = (cell.source.strip().splitlines() or [''])[0][:70]
    if cell.get('id') in ids: return f'cell {ids.index(cell.id) + 1} (id {cell.id}, {line!r})'
    return f'the {line!r} cell nbdev adds'


def error_line(e):  # an exception in one line: its type and the first line of its message
    return f'{type(e).__name__}: {(str(e).strip().splitlines() or [""])[0]}'


def code_html(code, lang, attrs):  # None for a language pygments does not know: markdown-it escapes it
    with contextlib.suppress(util.ClassNotFound):
        return highlight(code, lexers.get_lexer_by_name(lang), formatters.HtmlFormatter(nowrap=True))


def math_html(tex, opts):  # MathML, which Chromium draws itself; `\_` in `\text{}` is a plain `_`
    tex = re.sub(r'\\text\{[^}]*\}', lambda m: m[0].replace(r'\_', '_'), tex)
    tex = re.sub(r'\\operatorname\{', r'\\mathrm{', tex)
    try: return tex2mathml(tex, display='block' if opts['display_mode'] else 'inline')
    except Exception: return f'<code>{html.escape(tex)}</code>'


class Markdown:
    "markdown-it-py, reading markdown as Pandoc does for Quarto: `$math$`, pipe tables, `{attrs}`."
    def __init__(self, site_url: str, nb_pages: dict):
        self.site_url, self.nb_pages, self.page = site_url, nb_pages, {}  # page: the resources of a page
        self.written = set(nb_pages.values())  # the pages the build writes: links to others are dropped
        self.md = MarkdownIt('commonmark', {'highlight': code_html}).enable(['table', 'strikethrough'])
        self.md.use(dollarmath_plugin, allow_space=False, allow_digits=False, renderer=math_html)
        self.md.use(attrs_plugin).use(anchors_plugin, max_level=6, slug_func=self.slug, permalink=True,
                                      permalinkSymbol='#')
        self.md.core.ruler.push('offline', self.offline)

    @pass_context
    def render(self, context, source):  # nbconvert renders a deep copy of the resources: use that one
        self.page = context['resources']
        return self.md.render(source)

    def slug(self, text):
        "Pandoc's heading id, which nbdev's links use; a repeat on the page gets `-1`, `-2`, ..."
        s = re.sub(r'[^\w\s.-]', '', text).strip().lower()
        s = re.sub(r'^[^a-z]+', '', re.sub(r'\s+', '-', s)) or 'section'
        n = self.page['ids'][s] = self.page['ids'].get(s, -1) + 1
        return s + (f'-{n}' if n else '')

    def offline(self, state):
        "Point links at the offline pages, embed local images, note the h2 and h3 for the toc."
        for i, tok in enumerate(state.tokens):
            if tok.type == 'heading_open' and tok.tag in ('h2', 'h3'):
                text = takewhile(lambda t: t.attrGet('class') != 'header-anchor', state.tokens[i + 1].children)
                self.page['toc'].append((tok.tag, tok.attrs['id'], ''.join(t.content for t in text).strip()))
            dropped = []  # the link_open tokens of links to a page the build did not write
            for t in tok.children or []:
                if t.type == 'link_open':
                    t.attrs['href'] = self.local_url(t.attrs['href'])
                    if t.attrs['href'] is None: t.hidden = True  # its text stays, as plain text
                    dropped.append(t)
                elif t.type == 'link_close' and dropped.pop().hidden: t.hidden = True
                f = self.page['nb_dir'] / t.attrs.get('src', '')
                if t.type == 'image' and not re.match(r'\w+:', t.attrs['src']) and f.is_file():
                    t.attrs['src'] = (f'data:{mimetypes.guess_type(f.name)[0]};base64,'
                                      + base64.b64encode(f.read_bytes()).decode())

    def local_url(self, url):
        "Where a link to the published site or to a notebook points in the offline site; None if unwritten."
        (path, _, frag), page = url.partition('#'), self.page['page']
        if self.site_url and (path + '/').startswith(self.site_url + '/'):
            path = path[len(self.site_url):].strip('/') or 'index.html'
        elif path.endswith('.ipynb') and not re.match(r'\w+:', path):
            path = self.nb_pages.get(posixpath.normpath(posixpath.join(posixpath.dirname(page), path)), path)
        else: return url
        if path in self.nb_pages.values() and path not in self.written: return None
        return posixpath.relpath(path, posixpath.dirname(page) or '.') + (f'#{frag}' if frag else '')


PAGE = r"""{%- extends 'lab/base.html.j2' -%}
{% block header %}{% set r = resources %}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ r.title | e }}{% if r.page != 'index.html' %} – {{ r.site.title | e }}{% endif %}</title>
<link rel="stylesheet" href="{{ r.root }}style.css"></head>
<body><header class="site-header"><a class="site-title"{% if r.site.home %} href="{{ r.root
  }}index.html"{% endif %}>{{ r.site.title | e }}</a>
<span>{{ r.site.description | e }}</span><a href="{{ r.site.git_url | e }}">GitHub</a></header>
<div class="layout"><nav class="sidebar" aria-label="Pages">
{% for group, pages in r.sidebar %}{% if group %}<h2>{{ group | e }}</h2>{% endif %}<ul>
{% for p in pages %}<li{% if p.page == r.page %} class="active"{% endif %}><a href="{{ r.root
  }}{{ p.page }}">{{ p.title | e }}</a></li>
{% endfor %}</ul>{% endfor %}</nav>
<main class="content"><header class="page-header"><h1 class="title">{{ r.title | e }}</h1>
{% if r.description %}<p class="description">{{ r.description | e }}</p>{% endif %}</header>
{% endblock header %}
{% block input %}{{ cell.source | highlight_code(metadata=cell.metadata) }}{% endblock input %}
{% block footer %}{# rendered after the cells, so the toc holds all their headings #}
<footer>Made from <code>{{ resources.src | e }}</code> by <code>tools/build_docs.py</code>.</footer>
</main>{% if resources.toc %}<nav class="page-toc" aria-label="On this page"><h2>On this page</h2><ul>
{% for tag, id, text in resources.toc %}<li class="{{ tag }}"><a href="#{{ id }}">{{ text | e }}</a></li>
{% endfor %}</ul></nav>{% endif %}</div></body></html>
{% endblock footer %}
"""


CSS = """
:root { --accent: #2780e3; --border: #dee2e6; --muted: #6c757d; --code-bg: #f6f8fa; }
body { margin: 0; color: #212529; line-height: 1.6; font-family: system-ui, "DejaVu Sans", sans-serif; }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .82rem; }
code { background: var(--code-bg); padding: .1em .3em; border-radius: .25rem; color: #9a2e5a; }
/* narrower windows shrink code, down to .68rem, so that a 100-character line fits down to 1024 px */
pre, pre code { font-size: clamp(.68rem, (100vw - 25rem) / 60.5, .82rem); }
pre code, a code { background: none; padding: 0; color: inherit; } [id] { scroll-margin-top: 4rem; }
pre { margin: 0 0 1rem; padding: .7rem 1rem; background: var(--code-bg); border-radius: 5px; overflow: auto; }
.site-header { position: sticky; top: 0; z-index: 1; display: flex; gap: 1rem; align-items: baseline;
  padding: .6rem 1.5rem; background: var(--accent); color: #fff; }
.site-header a { color: #fff; } .site-title { font-weight: 600; font-size: 1.2rem; }
.site-header span { flex: 1; opacity: .85; font-size: .9rem; white-space: nowrap; overflow: hidden; }
.layout { display: flex; align-items: flex-start; max-width: 92rem; margin: 0 auto; }
.sidebar, .page-toc { position: sticky; top: 3.2rem; flex: 0 0 11rem; max-height: calc(100vh - 4rem);
  overflow-y: auto; padding: 1.5rem 1rem; font-size: .9rem; }
.sidebar { flex-basis: 12rem; border-right: 1px solid var(--border); }
.sidebar ul, .page-toc ul { list-style: none; margin: 0; padding: 0; }
.sidebar a { display: block; padding: .3rem .6rem; border-radius: .3rem; color: inherit; }
.sidebar .active a { background: #e7f1fc; color: var(--accent); font-weight: 600; }
.sidebar h2 { margin: 1.4rem .6rem .3rem; border: 0; padding: 0; font-size: .75rem; text-transform: uppercase;
  letter-spacing: .04em; color: var(--muted); }
.page-toc h2 { font-size: .8rem; text-transform: uppercase; color: var(--muted); margin: 0 0 .5rem; }
.page-toc a { display: block; padding: 0 .6rem; border-left: 2px solid var(--border); color: var(--muted); }
.page-toc .h3 a { padding-left: 1.4rem; font-size: .85rem; }
/* at 1366 px the column, beside both navs, fits a 100-character code line: 100 x .602em of .82rem */
.content { flex: 1; min-width: 0; max-width: 62rem; padding: 1.5rem 2rem 3rem; }
.page-header { border-bottom: 1px solid var(--border); margin-bottom: 1.5rem; } .page-header h1 { margin: 0; }
.description { font-size: 1.15rem; font-style: italic; color: var(--muted); }
footer { margin-top: 3rem; border-top: 1px solid var(--border); color: var(--muted); font-size: .8rem; }
h2 { font-size: 1.6rem; border-bottom: 1px solid var(--border); padding-bottom: .3rem; }
h2, h3, h4 { margin: 1.8rem 0 .8rem; line-height: 1.25; }
.header-anchor { position: absolute; visibility: hidden; margin-left: .4rem; color: var(--muted); }
:hover > .header-anchor { visibility: visible; }
table { border-collapse: collapse; font-size: .9rem; display: block; overflow-x: auto; }
th, td { border: 1px solid var(--border); padding: .35rem .7rem; text-align: left; vertical-align: top; }
img { max-width: 100%; height: auto; } .jp-RenderedImage { text-align: center; }
math { font-family: "Latin Modern Math", "STIX Two Math", "DejaVu Math TeX Gyre", math; font-size: 1.1em; }
math[display=block] { margin: 1rem 0; overflow-x: auto; } .jp-Cell { margin-bottom: 1rem; }
.jp-RenderedText > pre { margin: .3rem 0 0 .8rem; padding: .2rem .8rem; background: none; white-space: pre-wrap;
  border-left: 2px solid lightsalmon; border-radius: 0; }
[data-mime-type="application/vnd.jupyter.stderr"] > pre { border-left-color: #dc3545; }
.celltag_showdoc { margin: 2rem 0 1rem; padding: .2rem .8rem .6rem; border: 1px solid var(--border);
  border-radius: .5rem; background: #fcfdff; box-shadow: 0 1px 2px rgba(0, 0, 0, .05); }
.celltag_showdoc h3, .celltag_showdoc h4 { margin: .8rem 0 .6rem; font-family: monospace; border: 0; }
.celltag_showdoc a[target] { float: right; color: var(--muted); }
.celltag_showdoc p:has(> a[target]:only-child) { margin: 0; } .celltag_showdoc hr { display: none; }
@media (max-width: 1350px) { .page-toc { display: none; } }
@media (max-width: 760px) { .layout { display: block; } .sidebar { position: static; } }
"""


REFERENCE = 'Reference'  # the sidebar's heading over the pages of `__main__`, `__init__` and the like


def sidebar_group(nb_path: Path):
    "None for a tutorial; `REFERENCE` for a notebook that exports a dunder module (the package's plumbing)."
    m = re.search(r'#\|\s*default_exp\s+([\w.]+)', nb_path.read_text(encoding='utf-8'))
    return REFERENCE if m and m[1].rpartition('.')[2].startswith('__') else None


def build(out: Path, quiet=False, nbs: Path = None) -> int:
    "Build the site into `out` from the notebooks in `nbs` (settings.ini's); returns how many problems."
    cfg, out = get_config(path=ROOT), Path(out).resolve()
    nbs, say = Path(nbs or cfg.nbs_path).resolve(), (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    if out.exists() and not (out / MARKER).exists() and any(out.iterdir()):
        sys.exit(f'error: {out} exists and was not made by this script; remove it or choose another --out')
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / MARKER).write_text('made by tools/build_docs.py; the folder is wiped on each build\n')
    rel_paths = sorted((p.relative_to(nbs) for p in nbglob(nbs, func=Path)),  # the sidebar's order
                       key=lambda p: (p.parent.as_posix(), '' if p.stem == 'index' else p.name))
    nb_pages = {p.as_posix(): _nbpath2html(p).as_posix() for p in rel_paths}
    pages, notebooks, failed = [], [], []
    for rel in rel_paths:
        t0 = time.perf_counter()
        try: nb, fm = process(nbs / rel)
        except NotebookFailed as e:  # go on, so that one broken notebook does not hide the others
            failed.append(rel.as_posix())
            print(f'error: {nbs.name}/{rel.as_posix()}: {e}', file=sys.stderr, flush=True)
            continue
        notebooks.append(nb)  # kept out of `pages`, which every page's resources copy
        pages.append(dict(rel=rel, page=nb_pages[rel.as_posix()], title=str(fm.get('title') or rel.stem),
                          description=str(fm.get('description') or ''), group=sidebar_group(nbs / rel)))
        say(f'{rel.as_posix():28s} -> {pages[-1]["page"]:22s} {time.perf_counter() - t0:5.1f} s')
    markdown = Markdown((cfg.get('doc_host', '') + cfg.get('doc_baseurl', '')).rstrip('/'), nb_pages)
    markdown.written = {p['page'] for p in pages}
    sidebar = [(group, [p for p in pages if p['group'] == group]) for group in (None, REFERENCE)]
    exporter = HTMLExporter(template_name='lab', template_file='page.html.j2', embed_images=True,
                            extra_loaders=[DictLoader({'page.html.j2': PAGE})], exclude_input_prompt=True,
                            exclude_output_prompt=True, filters={'markdown2html': markdown.render})
    site = dict(title=cfg.title, description=cfg.get('description', ''), git_url=cfg.get('git_url', ''),
                home='index.html' in markdown.written)
    for p, nb in zip(pages, notebooks):
        res = dict(p, site=site, sidebar=[(g, ps) for g, ps in sidebar if ps], ids={}, toc=[],
                   nb_dir=nbs / p['rel'].parent, root='../' * p['page'].count('/'),
                   src=f'{nbs.name}/{p["rel"].as_posix()}')
        (out / p['page']).parent.mkdir(parents=True, exist_ok=True)
        (out / p['page']).write_text(exporter.from_notebook_node(nb, resources=res)[0], encoding='utf-8')
    css = CSS + formatters.HtmlFormatter().get_style_defs(['.highlight', 'pre code'])  # code colours
    (out / 'style.css').write_text(css, encoding='utf-8')
    dead = dead_links(out)
    for line in dead: print(f'error: dead link: {line}', file=sys.stderr)
    say(f'{len(pages)} pages written to {out}')
    if failed or dead:
        print(f'docs build FAILED: {len(failed)} notebooks failed ({", ".join(failed) or "none"}), '
              f'{len(dead)} dead links', file=sys.stderr)
    return len(failed) + len(dead)


class PageLinks(HTMLParser):
    "The ids of an HTML page, and the targets of its links and images."
    def __init__(self, text):
        super().__init__()
        self.ids, self.urls = set(), []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get('id'): self.ids.add(attrs['id'])
        self.urls += [attrs[k] for k in ('href', 'src') if attrs.get(k)]


def dead_links(site: Path) -> list:
    "Each link or image of the site at `site` that points to a file it lacks, or to a missing `#anchor`."
    site = Path(site).resolve()
    unembed = lambda text: re.sub(r'(?<=["\'])data:[^"\']*', 'data:', text)  # the images: megabytes, no link
    pages = {f: PageLinks(unembed(f.read_text(encoding='utf-8'))) for f in sorted(site.rglob('*.html'))}
    dead = []
    for f, links in pages.items():
        for url in links.urls:
            parts = urlsplit(url)
            if parts.scheme or parts.netloc: continue  # the web, data: images
            target, frag = (f.parent / unquote(parts.path)).resolve() if parts.path else f, unquote(parts.fragment)
            where = f'{f.relative_to(site)}: {url[:80]!r} points to a missing'
            if not target.is_file(): dead.append(f'{where} file')
            # nbdev links backticked private names too, but documents only public ones: as on the Quarto site
            elif frag and target in pages and frag not in pages[target].ids and not frag.startswith('_'):
                dead.append(f'{where} anchor')
    return dead


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', default=str(ROOT / '_site_offline'), help='output folder (%(default)s)')
    ap.add_argument('--nbs', help="the notebooks' folder (settings.ini's nbs_path)")
    ap.add_argument('--quiet', action='store_true', help='print only errors')
    args = ap.parse_args()
    os.environ.setdefault('MPLBACKEND', 'Agg')
    os.environ['IN_TEST'] = '1'  # as nbdev's docs workers set it
    sys.exit(1 if build(args.out, args.quiet, args.nbs) else 0)
