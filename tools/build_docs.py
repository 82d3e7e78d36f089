#!/usr/bin/env python
"""Build an offline HTML rendering of the docs site, without Quarto.

Every notebook in nbs/ becomes one page (`nbs/index.ipynb` is the home page, `index.html`), named
as Quarto names it (`00_padding.ipynb` -> `padding.html`), so nbdev's cross-reference links work.

How a page is made:
1. nbdev's own docs processors (`nbdev.processors.FilterDefaults`, the ones `nbdev_docs` runs before
   Quarto) process the notebook: `#| hide` and `#| export` cells are dropped, `#| exports` source is
   kept folded, and every exported function gets a `show_doc` cell, which is executed (only the
   imports, the exported cells and the `show_doc` calls run; stored outputs are kept as they are).
2. The Quarto bits of the result (YAML frontmatter, `#| echo: false` and friends, `:::` fenced divs,
   `{target=...}` link attributes, links to the published site) are translated to plain HTML, and
   nbconvert's HTML exporter renders the cells, with the stored outputs and figures embedded.
   Math is drawn offline by matplotlib's mathtext (no MathJax, no network).
3. Each page gets a header, a sidebar linking every page by its notebook title, and an
   "On this page" list of its sections.

The output is deterministic: the same notebooks give byte-identical files.

usage: python tools/build_docs.py [--out _site_offline] [--quiet]
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import html
import io
import os
import posixpath
import re
import shutil
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = '.convutils-offline-docs'  # a folder holding this file may be wiped and rebuilt


# ---------------------------------------------------------------------------------------------------
# Which notebooks, in which order, under which names

def page_name(nb_rel: Path) -> str:
    "The page Quarto makes from a notebook path relative to nbs/: `00_padding.ipynb` -> `padding.html`."
    from nbdev.doclinks import _nbpath2html
    return _nbpath2html(Path(nb_rel)).as_posix()


def list_notebooks(nbs_path: Path) -> list[Path]:
    "The notebooks nbdev's sidebar lists, in its order: index first, then by path."
    from nbdev.doclinks import nbglob
    files = nbglob(nbs_path, func=Path, skip_folder_re=r'(?:^[_.]|^www\$)')
    files = [Path(f) for f in files if Path(f).suffix == '.ipynb']

    def key(p):
        rel = p.relative_to(nbs_path)
        return (rel.parent.as_posix(), '00' if rel.name.startswith('index.') else rel.name)
    return sorted(files, key=key)


# ---------------------------------------------------------------------------------------------------
# Step 1: nbdev's docs processing

def nbdev_process(nb_path: Path):
    "Run nbdev's docs processors over the notebook at `nb_path`, as `nbdev_docs` does before Quarto."
    from execnb.nbio import read_nb
    from nbdev.processors import FilterDefaults
    nb = read_nb(nb_path)
    old_cwd, old_in_test = os.getcwd(), os.environ.get('IN_TEST')
    os.environ['IN_TEST'] = '1'  # as nbdev's docs worker sets it
    try:
        os.chdir(nb_path.parent)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            FilterDefaults()(nb)
    finally:
        os.chdir(old_cwd)
        if old_in_test is None: os.environ.pop('IN_TEST', None)
        else: os.environ['IN_TEST'] = old_in_test
    return nb, [str(w.message).strip() for w in caught]


# ---------------------------------------------------------------------------------------------------
# Step 2: from Quarto-flavoured notebook to plain nbformat

_re_fm = re.compile(r'^---\s*\n(.*?)\n---\s*$', re.DOTALL)
_re_qdir = re.compile(r'^\s*#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')
_re_link_attrs = re.compile(r'(\[[^\]\n]*\]\([^)\s]*\))\{([^}\n]*)\}')
_re_fenced_div = re.compile(r'^(:{3,})\s*(\{[^}]*\}|[\w-]+)?\s*$')


QUOTES = '"\''


def _attrs_html(spec: str) -> str:
    "Pandoc attributes `{.cls #id key=\"v\"}` as HTML attributes."
    classes, out = [], []
    for m in re.finditer(r'([.#])([\w-]+)|([\w-]+)=("[^"]*"|\'[^\']*\'|\S+)', spec):
        if m.group(1) == '.': classes.append(m.group(2))
        elif m.group(1) == '#': out.append(f'id="{html.escape(m.group(2))}"')
        else: out.append(f'{m.group(3)}="{html.escape(m.group(4).strip(QUOTES))}"')
    if classes: out.insert(0, f'class="{" ".join(classes)}"')
    return ' '.join(out)


def _link_with_attrs(m) -> str:
    "`[text](url){attrs}` -> an HTML link (mistune does not know Pandoc's link attributes)."
    text, url = re.match(r'\[([^\]]*)\]\(([^)]*)\)', m.group(1)).groups()
    return f'<a href="{html.escape(url)}" {_attrs_html(m.group(2))}>{text}</a>'


def quarto_md_to_plain(md: str) -> str:
    "Translate the Quarto-only markdown nbdev emits (link attributes, `:::` divs) for mistune."
    md = _re_link_attrs.sub(_link_with_attrs, md)
    out, fence = [], None
    for line in md.split('\n'):
        code_fence = re.match(r'^\s*(`{3,}|~{3,})', line)
        if code_fence and (fence is None or code_fence.group(1).startswith(fence)):
            fence = code_fence.group(1) if fence is None else None  # `:::` inside a code block is code
        m = None if fence else _re_fenced_div.match(line)
        if not m: out.append(line); continue
        spec = (m.group(2) or '').strip()
        if spec:  # an opening fence: blank lines around it let markdown inside be parsed
            if not spec.startswith('{'): spec = '{.' + spec + '}'
            out += ['', f'<div {_attrs_html(spec[1:-1])}>', '']
        else:
            out += ['', '</div>', '']
    return '\n'.join(out)


def _split_quarto_directives(source: str):
    "Split the leading `#| key: value` lines Quarto reads from the rest of a code cell."
    lines, opts = source.split('\n'), {}
    while lines and _re_qdir.match(lines[0]):
        k, v = _re_qdir.match(lines.pop(0)).groups()
        opts[k] = v.strip('"\'')
    return opts, '\n'.join(lines).strip('\n')


def _joined(v): return ''.join(v) if isinstance(v, list) else v


def _plain_output(o) -> dict:
    "A stored output as nbformat wants it: multi-line strings joined, show_doc's markdown made plain."
    o = {k: v for k, v in o.items()}
    if 'text' in o: o['text'] = _joined(o['text'])
    if 'data' in o:
        o['data'] = {mime: (_joined(v) if not mime.endswith('json') else v) for mime, v in o['data'].items()}
        if 'text/markdown' in o['data']: o['data']['text/markdown'] = quarto_md_to_plain(o['data']['text/markdown'])
    return o


def to_plain_nb(nb):
    "Turn nbdev's processed notebook into a plain nbformat notebook and its frontmatter dict."
    import nbformat
    import yaml
    fm, cells = {}, []
    for cell in nb.cells:
        src = cell.get('source') or ''
        if cell.cell_type == 'raw':
            m = _re_fm.match(src.strip())
            if m: fm.update(yaml.safe_load(m.group(1)) or {}); continue
            continue  # Quarto renders other raw cells only for matching formats
        if cell.cell_type == 'markdown':
            if src.strip().startswith('<!-- WARNING: THIS FILE WAS AUTOGENERATED'): continue
            md_cell = nbformat.v4.new_markdown_cell(quarto_md_to_plain(src))
            if cell.get('attachments'): md_cell['attachments'] = nbformat.from_dict(dict(cell['attachments']))
            cells.append(md_cell)
            continue
        opts, code = _split_quarto_directives(src)
        if opts.get('include') == 'false': continue
        outputs = [] if opts.get('output') == 'false' else [_plain_output(o) for o in cell.get('outputs', [])]
        echo = opts.get('echo') != 'false' and code.strip() != ''
        if not echo and not outputs: continue
        new = nbformat.v4.new_code_cell(code, outputs=[nbformat.from_dict(o) for o in outputs])
        new.execution_count = cell.get('execution_count')
        if not echo: new.metadata['transient'] = {'remove_source': True}
        if 'code-fold' in opts and opts['code-fold'] != 'false':
            new.metadata['code_fold'] = opts['code-fold']
            new.metadata['code_summary'] = opts.get('code-summary', 'Code')
        if re.match(r'\s*show_doc\(', code): new.metadata['tags'] = ['showdoc']
        cells.append(new)
    for i, c in enumerate(cells): c['id'] = f'cell-{i}'  # nbformat's new ids are random; pages must not change
    plain = nbformat.v4.new_notebook(cells=cells, metadata={'kernelspec': {'name': 'python3', 'language': 'python', 'display_name': 'python3'},
                                                            'language_info': {'name': 'python'}})
    return plain, fm


# ---------------------------------------------------------------------------------------------------
# Math, drawn offline with matplotlib's mathtext

# TeX commands mathtext lacks, and their mathtext spelling
_MATH_ALIASES = {'le': r'\leq', 'ge': r'\geq', 'ne': r'\neq', 'lvert': '|', 'rvert': '|', 'lVert': r'\Vert',
                 'rVert': r'\Vert', 'tfrac': r'\frac', 'dfrac': r'\frac', 'lbrace': r'\{', 'rbrace': r'\}',
                 'dots': r'\ldots', 'boldsymbol': r'\mathbf', 'bm': r'\mathbf', 'displaystyle': '', 'textstyle': '',
                 'mathrel': '', 'mathbin': '', 'mathord': '', 'mathpunct': '', 'mathop': r'\operatorname'}


class MathRenderer:
    "TeX -> data-URI SVG images of the glyph outlines, sized in `em` so they sit in the text like MathJax output."
    SIZE, PAD = 12.0, 0.6  # font size and padding around the ink, in points

    def __init__(self): self.cache, self.failed = {}, []

    def _svg(self, tex: str):
        "One mathtext parse: the outline path of `tex`, written as a small SVG. Returns (svg bytes, width, height, depth) in points."
        import matplotlib
        from matplotlib.font_manager import FontProperties
        from matplotlib.path import Path as MplPath
        from matplotlib.textpath import TextPath
        with matplotlib.rc_context({'mathtext.fontset': 'cm'}):  # Computer Modern, the look of LaTeX and MathJax
            path = TextPath((0, 0), f'${tex}$', size=self.SIZE, prop=FontProperties(size=self.SIZE))
        if not len(path.vertices): raise ValueError('empty formula')
        (x0, y0), (x1, y1) = path.vertices.min(0), path.vertices.max(0)
        x0, y0, x1, y1 = min(x0, 0) - self.PAD, y0 - self.PAD, x1 + self.PAD, y1 + self.PAD
        fmt = lambda v: f'{v:.2f}'.rstrip('0').rstrip('.')
        pt = lambda x, y: f'{fmt(x - x0)} {fmt(y1 - y)}'  # SVG's y axis points down
        d = []
        for verts, code in path.iter_segments(curves=True, simplify=False):
            v = verts.reshape(-1, 2)
            if code == MplPath.CLOSEPOLY: d.append('Z')
            else: d.append({MplPath.MOVETO: 'M', MplPath.LINETO: 'L', MplPath.CURVE3: 'Q', MplPath.CURVE4: 'C'}[code]
                           + ' '.join(pt(x, y) for x, y in v))
        w, h = x1 - x0, y1 - y0
        svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{fmt(w)}pt" height="{fmt(h)}pt" viewBox="0 0 {fmt(w)} {fmt(h)}">'
               f'<path d="{"".join(d)}" fill="#212529"/></svg>')
        return svg.encode(), w, h, -y0

    def __call__(self, tex: str, display: bool) -> str:
        key = (tex, display)
        if key in self.cache: return self.cache[key]
        svg = None
        for candidate in dict.fromkeys((' '.join(tex.split()), self._alias(' '.join(tex.split())))):
            try:
                svg, width, height, depth = self._svg(candidate)
                break
            except Exception: continue
        alt = html.escape(tex.strip(), quote=True)
        if svg is None:  # mathtext cannot draw it: show the TeX itself
            self.failed.append(tex)
            res = f'<code class="math-tex{" display" if display else ""}">{html.escape(tex.strip())}</code>'
        else:
            uri = 'data:image/svg+xml;base64,' + base64.b64encode(svg).decode()
            em = lambda v: f'{v / self.SIZE:.3f}em'
            res = (f'<img class="math{" display" if display else ""}" alt="{alt}" src="{uri}" '
                   f'style="width:{em(width)};height:{em(height)};vertical-align:-{em(depth)}">')
        if display: res = f'<div class="math-display">{res}</div>'
        self.cache[key] = res
        return res

    @staticmethod
    def _alias(tex: str) -> str:
        tex = re.sub(r'\\([A-Za-z]+)', lambda m: _MATH_ALIASES.get(m.group(1), m.group(0)), tex)
        # TeX takes a single token as an argument (`\sqrt 2`, `\frac12`); mathtext wants braces
        tex = re.sub(r'\\sqrt\s*([A-Za-z0-9])', r'\\sqrt{\1}', tex)
        return re.sub(r'\\frac\s*([A-Za-z0-9])\s*([A-Za-z0-9])', r'\\frac{\1}{\2}', tex)


# ---------------------------------------------------------------------------------------------------
# nbconvert, with Pandoc's heading ids and offline math

def pandoc_slug(text: str) -> str:
    "The id Pandoc (hence Quarto, hence nbdev's links) gives a heading with this text."
    s = html.unescape(re.sub(r'<[^>]+>', '', text))
    s = re.sub(r'[^\w\s.-]', '', s, flags=re.UNICODE).strip().lower()
    s = re.sub(r'\s+', '-', s)
    s = re.sub(r'^[^a-z]+', '', s)
    return s or 'section'


BODY_TEMPLATE = r"""{%- extends 'lab/base.html.j2' -%}
{% block input_group -%}
{%- if cell.metadata.get('code_fold') -%}
<details class="code-fold"{% if cell.metadata.get('code_fold') == 'show' %} open{% endif %}>
<summary>{{ cell.metadata.get('code_summary', 'Code') | escape_html }}</summary>
{{ super() }}
</details>
{%- else -%}
{{ super() }}
{%- endif -%}
{%- endblock input_group %}
{% block input %}
<div class="jp-CodeMirrorEditor jp-Editor jp-InputArea-editor" data-type="inline">
{{ cell.source | highlight_code(metadata=cell.metadata) }}
</div>
{%- endblock input %}
"""


def make_exporter(math: MathRenderer):
    from jinja2 import DictLoader, pass_context
    from nbconvert.exporters import HTMLExporter
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    class PageRenderer(IPythonRenderer):
        def __init__(self, *args, ids=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.ids = ids if ids is not None else {}

        def heading(self, text, level, **attrs):
            slug = base = pandoc_slug(text)
            n = self.ids.get(base, 0)
            if n: slug = f'{base}-{n}'  # Quarto's rule for repeated headings
            self.ids[base] = n + 1
            return (f'<h{level} id="{slug}">{text}<a class="anchor-link" href="#{slug}" '
                    f'aria-label="Link to this section">#</a></h{level}>\n')

        def inline_math(self, body): return math(body, display=False)
        def block_math(self, body): return math(body, display=True)
        def latex_environment(self, name, body): return math(f'\\begin{{{name}}}{body}\\end{{{name}}}', display=True)

    class OfflineHTMLExporter(HTMLExporter):
        ids: dict = {}

        @pass_context
        def markdown2html(self, context, source):
            cell = context.get('cell', {})
            path = context.get('resources', {}).get('metadata', {}).get('path', '')
            # embed_images stays off: it re-parses every inline HTML tag on its own and breaks `<a ...>text</a>`;
            # local images are embedded afterwards by `embed_local_images`
            renderer = PageRenderer(escape=False, attachments=cell.get('attachments', {}), embed_images=False,
                                    path=path, ids=self.ids)
            return MarkdownWithMath(renderer=renderer).render(source)

    exporter = OfflineHTMLExporter(template_name='lab', template_file='convutils_body.html.j2',
                                   extra_loaders=[DictLoader({'convutils_body.html.j2': BODY_TEMPLATE})],
                                   exclude_input_prompt=True, exclude_output_prompt=True)
    return exporter


# ---------------------------------------------------------------------------------------------------
# Step 3: pages

def _rel(from_page: str, to_page: str) -> str:
    "The relative URL from page `from_page` to `to_page` (both relative to the site root)."
    return posixpath.relpath(to_page, posixpath.dirname(from_page) or '.')


def rewrite_links(body: str, page: str, site_url: str, nb_pages: dict[str, str]) -> str:
    "Point links to the published site, or to notebooks, at the offline pages."
    def fix(m):
        attr, url = m.group(1), html.unescape(m.group(2))
        target, frag = (url.split('#', 1) + [''])[:2]
        frag = '#' + frag if frag else ''
        for prefix in (site_url + '/', site_url):
            if site_url and target.startswith(prefix):
                rest = target[len(prefix):] or 'index.html'
                if rest.endswith('/'): rest += 'index.html'
                return f'{attr}="{html.escape(_rel(page, rest) + frag)}"'
        if not re.match(r'^[a-z][\w+.-]*:', target) and target.endswith('.ipynb'):
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(page), target))
            if resolved in nb_pages: return f'{attr}="{html.escape(_rel(page, nb_pages[resolved]) + frag)}"'
        return m.group(0)
    return re.sub(r'\b(href)="([^"]*)"', fix, body)


def embed_local_images(body: str, nb_dir: Path) -> str:
    "Embed the local files `<img src=...>` points to (images referenced from markdown), so pages stand alone."
    import mimetypes
    def embed(m):
        src = html.unescape(m.group(2))
        if re.match(r'^[a-z][\w+.-]*:', src) or src.startswith('/'): return m.group(0)
        f = (nb_dir / src.split('#')[0].split('?')[0])
        mime = mimetypes.guess_type(f.name)[0]
        if not (f.is_file() and mime and mime.startswith('image/')): return m.group(0)
        return f'{m.group(1)}"data:{mime};base64,{base64.b64encode(f.read_bytes()).decode()}"'
    return re.sub(r'(<img\b[^>]*?\bsrc=)"([^"]*)"', embed, body)


def page_toc(body: str) -> list[tuple[int, str, str]]:
    "The (level, id, text) of the h2 and h3 headings of a page body."
    toc = []
    for m in re.finditer(r'<h([23])\b([^>]*)>(.*?)</h\1>', body, re.DOTALL):
        id_ = re.search(r'\bid="([^"]+)"', m.group(2))
        if not id_: continue
        text = re.sub(r'<a\b[^>]*class="anchor-link"[^>]*>.*?</a>', '', m.group(3), flags=re.DOTALL)
        text = re.sub(r'<[^>]+>', '', text).strip()
        toc.append((int(m.group(1)), id_.group(1), html.unescape(text)))
    return toc


def render_page(page: str, title: str, description: str, body: str, pages: list[dict], site: dict) -> str:
    esc = html.escape
    nav = []
    for p in pages:
        cur = ' class="active"' if p['page'] == page else ''
        aria = ' aria-current="page"' if p['page'] == page else ''
        nav.append(f'<li{cur}><a href="{esc(_rel(page, p["page"]))}"{aria}>{esc(p["title"])}</a></li>')
    toc = page_toc(body)
    toc_html = ''
    if toc:
        items = ''.join(f'<li class="toc-h{lvl}"><a href="#{esc(i)}">{esc(t)}</a></li>' for lvl, i, t in toc)
        toc_html = f'<nav class="page-toc" aria-label="On this page"><h2>On this page</h2><ul>{items}</ul></nav>'
    home = _rel(page, 'index.html')
    css = _rel(page, 'style.css')
    desc_html = f'<p class="description">{esc(description)}</p>' if description else ''
    repo_link = f'<a class="repo" href="{esc(site["git_url"])}">GitHub</a>' if site.get('git_url') else ''
    doc_title = esc(title if page == 'index.html' and title == site['title'] else f'{title} – {site["title"]}')
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="description" content="{esc(description or site.get('description', ''))}">
<title>{doc_title}</title>
<link rel="stylesheet" href="{esc(css)}">
</head>
<body>
<header class="site-header">
<a class="site-title" href="{esc(home)}">{esc(site['title'])}</a>
<span class="site-description">{esc(site.get('description', ''))}</span>
{repo_link}
</header>
<div class="layout">
<nav class="sidebar" aria-label="Pages">
<ul>
{chr(10).join(nav)}
</ul>
</nav>
<main class="content">
<header class="page-header">
<h1 class="title">{esc(title)}</h1>
{desc_html}
</header>
{body}
<footer class="page-footer">Offline rendering of <code>{esc(site['source'])}</code>, built by <code>tools/build_docs.py</code>.</footer>
</main>
{toc_html}
</div>
</body>
</html>
"""


SITE_CSS = r"""
:root {
  --text: #212529; --muted: #6c757d; --accent: #2780e3; --border: #dee2e6;
  --code-bg: #f6f8fa; --sidebar-w: 14rem; --toc-w: 13rem; --content-w: 58rem;
  --mono: "DejaVu Sans Mono", SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
}
* { box-sizing: border-box; }
html { font-size: 16px; }
body { margin: 0; color: var(--text); background: #fff; line-height: 1.6;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "DejaVu Sans", Arial, sans-serif; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }

.site-header { position: sticky; top: 0; z-index: 10; display: flex; align-items: baseline; gap: 1rem;
  padding: .6rem 1.5rem; background: var(--accent); color: #fff; }
.site-header a { color: #fff; }
.site-title { font-weight: 600; font-size: 1.2rem; }
.site-description { opacity: .85; font-size: .9rem; flex: 1; overflow: hidden; white-space: nowrap; text-overflow: ellipsis; }
.site-header .repo { font-size: .9rem; margin-left: auto; }

.layout { display: flex; align-items: flex-start; max-width: calc(var(--sidebar-w) + var(--content-w) + var(--toc-w) + 6rem); margin: 0 auto; }
.sidebar, .page-toc { position: sticky; top: 3.2rem; max-height: calc(100vh - 3.2rem); overflow-y: auto; padding: 1.5rem 1rem; font-size: .9rem; }
.sidebar { flex: 0 0 var(--sidebar-w); border-right: 1px solid var(--border); }
.sidebar ul, .page-toc ul { list-style: none; margin: 0; padding: 0; }
.sidebar li a { display: block; padding: .3rem .6rem; border-radius: .3rem; color: var(--text); }
.sidebar li a:hover { background: #f1f3f5; text-decoration: none; }
.sidebar li.active a { background: #e7f1fc; color: var(--accent); font-weight: 600; }
.page-toc { flex: 0 0 var(--toc-w); }
.page-toc h2 { font-size: .8rem; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); margin: 0 0 .5rem; }
.page-toc li a { display: block; padding: .15rem 0 .15rem .6rem; border-left: 2px solid var(--border); color: var(--muted); }
.page-toc li.toc-h3 a { padding-left: 1.4rem; font-size: .85rem; }
.page-toc li a:hover { color: var(--accent); border-left-color: var(--accent); text-decoration: none; }

.content { flex: 1 1 var(--content-w); min-width: 0; max-width: var(--content-w); padding: 1.5rem 2.5rem 3rem; }
.page-header { margin-bottom: 1.5rem; border-bottom: 1px solid var(--border); padding-bottom: 1rem; }
.page-header .title { font-size: 2.2rem; margin: 0 0 .3rem; line-height: 1.2; }
.page-header .description { margin: 0; font-size: 1.15rem; font-style: italic; color: var(--muted); }
.page-footer { margin-top: 3rem; padding-top: 1rem; border-top: 1px solid var(--border); color: var(--muted); font-size: .8rem; }

h1, h2, h3, h4 { line-height: 1.25; margin: 1.8rem 0 .8rem; }
[id] { scroll-margin-top: 4rem; }  /* anchors land below the sticky header */
h2 { font-size: 1.6rem; border-bottom: 1px solid var(--border); padding-bottom: .3rem; }
h3 { font-size: 1.25rem; }
.anchor-link { visibility: hidden; margin-left: .4rem; color: var(--muted); font-weight: normal; }
h1:hover .anchor-link, h2:hover .anchor-link, h3:hover .anchor-link, h4:hover .anchor-link { visibility: visible; }
p, ul, ol, table { margin: 0 0 1rem; }
code { font-family: var(--mono); font-size: .875em; background: var(--code-bg); padding: .1em .3em; border-radius: .25rem; color: #9a2e5a; }
a code { color: inherit; }
pre { margin: 0; font-family: var(--mono); font-size: .85rem; line-height: 1.45; white-space: pre; overflow-x: auto; }
pre code { background: none; padding: 0; color: inherit; font-size: inherit; }
.jp-RenderedMarkdown > pre, .jp-MarkdownCell pre { background: var(--code-bg); padding: .8rem 1rem; border-radius: .35rem; margin-bottom: 1rem; }
table { border-collapse: collapse; font-size: .9rem; display: block; overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid var(--border); padding: .35rem .7rem; text-align: left; vertical-align: top; }
thead th, tr:first-child th { background: #f8f9fa; }
blockquote { margin: 0 0 1rem; padding: .2rem 1rem; border-left: 4px solid var(--border); color: var(--muted); }
img { max-width: 100%; height: auto; }
img.math { max-width: none; display: inline-block; }
.math-display { text-align: center; margin: 1rem 0; overflow-x: auto; }
.math-display img.math { display: inline-block; font-size: 1.3em; }
code.math-tex { color: var(--text); }

/* notebook cells */
.jp-Cell { margin: 0 0 1rem; }
.jp-MarkdownCell + .jp-MarkdownCell { margin-top: -.25rem; }
.jp-CodeCell .jp-InputArea-editor, .jp-CodeCell .highlight { background: var(--code-bg); border-radius: .35rem; }
.jp-CodeCell .highlight pre { padding: .7rem 1rem; }
.jp-Collapser, .jp-InputPrompt, .jp-OutputPrompt { display: none; }
.jp-OutputArea-output pre { margin: .3rem 0 0 .8rem; padding: .2rem 0 .2rem .8rem; border-left: 2px solid lightsalmon; background: none; }
.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"] pre { border-left-color: #dc3545; background: #fdf2f2; }
.jp-RenderedImage { margin: .6rem 0 0; text-align: center; }
.jp-RenderedImage img { max-width: 100%; height: auto; }
.jp-RenderedHTML { overflow-x: auto; margin-top: .3rem; }
[class^="callout-"] { margin: 0 0 1rem; padding: .6rem 1rem; border-left: 4px solid var(--accent); background: #f3f8fe; border-radius: .3rem; }
[class^="callout-"] > :last-child { margin-bottom: 0; }
.callout-tip { border-left-color: #3fb618; background: #f3fbf1; }
.callout-warning, .callout-caution { border-left-color: #ff7518; background: #fff7f0; }
.callout-important { border-left-color: #ff0039; background: #fff1f4; }
details.code-fold > summary { cursor: pointer; color: var(--muted); font-size: .9rem; margin-bottom: .3rem; }

/* show_doc: the rendered docs of an exported function */
.celltag_showdoc { margin: 2rem 0 1rem; padding: .2rem 1.2rem .6rem; border: 1px solid var(--border); border-radius: .5rem;
  box-shadow: 0 1px 2px rgba(0,0,0,.05); background: #fcfdff; }
.celltag_showdoc hr { display: none; }
.celltag_showdoc h3, .celltag_showdoc h4 { margin: .8rem 0 .6rem; font-family: var(--mono); font-size: 1.15rem; border: none; }
.celltag_showdoc pre { background: var(--code-bg); border: none; border-radius: .35rem; margin: 0 0 .6rem; padding: .6rem 1rem; }
.celltag_showdoc .jp-OutputArea-output pre { border-left: none; }
.celltag_showdoc p { margin-bottom: .4rem; }
.celltag_showdoc a[target="_blank"] { font-size: .8rem; color: var(--muted); margin-top: .85rem; }
.celltag_showdoc a[target="_blank"]:hover { color: var(--accent); }
.celltag_showdoc p:has(> a[target="_blank"]:only-child) { margin: 0; height: 0; }

@media (max-width: 1200px) { .page-toc { display: none; } }
@media (max-width: 760px) {
  .layout { display: block; }
  .sidebar { position: static; max-height: none; border-right: none; border-bottom: 1px solid var(--border); }
  .sidebar ul { display: flex; flex-wrap: wrap; gap: .2rem; }
  .content { padding: 1rem; }
  .site-description { display: none; }
}
"""


def site_css() -> str:
    from pygments.formatters import HtmlFormatter
    return SITE_CSS + '\n/* syntax highlighting (pygments "default") */\n' + HtmlFormatter(style='default').get_style_defs('.highlight')


# ---------------------------------------------------------------------------------------------------

def build(out: Path | str = ROOT / '_site_offline', quiet: bool = False) -> dict:
    "Build the offline site into `out`. Returns {'pages': [...], 'errors': [...], 'warnings': [...]}."
    from nbdev.config import get_config
    out = Path(out).resolve()
    cfg = get_config(path=ROOT)
    nbs_path = Path(cfg.nbs_path)
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))

    if out.exists():
        if not (out / MARKER).exists() and any(out.iterdir()):
            raise SystemExit(f'error: {out} exists and was not made by this script; remove it or choose another --out')
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text('made by tools/build_docs.py; the folder is wiped on each build\n')

    site = dict(title=cfg.get('title', cfg.lib_name), description=cfg.get('description', ''),
                git_url=cfg.get('git_url', ''), source=nbs_path.relative_to(ROOT).as_posix() + '/')
    site_url = (cfg.get('doc_host', '') + cfg.get('doc_baseurl', '')).rstrip('/')

    notebooks = list_notebooks(nbs_path)
    nb_pages = {p.relative_to(nbs_path).as_posix(): page_name(p.relative_to(nbs_path)) for p in notebooks}
    math = MathRenderer()
    exporter = make_exporter(math)
    pages, errors, warns = [], [], []
    for nb_path in notebooks:
        rel = nb_path.relative_to(nbs_path).as_posix()
        t0 = time.perf_counter()
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # cells run for show_doc may print
                processed, w = nbdev_process(nb_path)
            warns += [f'{rel}: {m}' for m in w]
            plain, fm = to_plain_nb(processed)
            exporter.ids = {}
            body, _ = exporter.from_notebook_node(plain, resources={'metadata': {'path': str(nb_path.parent), 'name': nb_path.stem}})
        except Exception as e:  # keep going, so one broken notebook does not hide the others
            cause = f'\n  caused by {type(e.__cause__).__name__}: {e.__cause__}' if e.__cause__ else ''
            errors.append(f'{rel}: {type(e).__name__}: {e}{cause}')
            print(f'error: {errors[-1]}', file=sys.stderr, flush=True)
            continue
        page = nb_pages[rel]
        title = str(fm.get('title') or nb_path.stem)
        n_figs = sum(1 for c in plain.cells if c.cell_type == 'code' for o in c.outputs
                     if {'image/png', 'image/jpeg', 'image/svg+xml'} & set(o.get('data', {})))
        body = embed_local_images(body, nb_path.parent)
        pages.append(dict(nb=rel, page=page, title=title, description=str(fm.get('description') or ''),
                          body=body, figures=n_figs))
        say(f'{rel:28s} -> {page:22s} {n_figs:3d} figures  {time.perf_counter() - t0:5.1f} s')

    for p in pages:
        body = rewrite_links(p['body'], p['page'], site_url, nb_pages)
        dest = out / p['page']
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(render_page(p['page'], p['title'], p['description'], body, pages, site), encoding='utf-8')
    (out / 'style.css').write_text(site_css(), encoding='utf-8')
    if math.failed: warns += [f'math drawn as TeX (mathtext cannot parse it): {t}' for t in sorted(set(math.failed))]
    for w in warns: say(f'warning: {w}')
    say(f'{len(pages)} pages written to {out}' + (f'; {len(errors)} notebooks FAILED' if errors else ''))
    return dict(out=out, pages=[{k: v for k, v in p.items() if k != 'body'} for p in pages], errors=errors, warnings=warns)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', default=str(ROOT / '_site_offline'), help='output folder (default: %(default)s)')
    ap.add_argument('--quiet', action='store_true', help='print only errors')
    args = ap.parse_args(argv)
    os.environ.setdefault('MPLBACKEND', 'Agg')
    res = build(args.out, quiet=args.quiet)
    return 1 if res['errors'] else 0


if __name__ == '__main__':
    sys.exit(main())
