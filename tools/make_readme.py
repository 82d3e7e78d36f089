"""Write README.md from nbs/index.ipynb, without Quarto.

nbdev_readme needs Quarto, which cannot be installed everywhere. This renders the home notebook the
way the docs do: hidden cells are dropped, nbdev directives are stripped, code cells become python
blocks followed by their text output. `--check` exits 1 (printing a diff) if README.md is stale.
"""
import difflib, json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIRECTIVE = re.compile(r'^\s*#\s*\|\s*(.*)$')
NB_LINK = re.compile(r'\]\(([\w.-]+\.ipynb(?:#[\w-]*)?)\)')


def _directives(source):
    return [m.group(1).strip() for m in map(DIRECTIVE.match, source.splitlines()) if m]


def _strip_directives(source):
    return '\n'.join(line for line in source.splitlines() if not DIRECTIVE.match(line)).strip('\n')


def _text_output(outputs):
    texts = []
    for out in outputs:
        if out.get('output_type') == 'stream': texts.append(''.join(out['text']))
        elif 'text/plain' in out.get('data', {}) and not any(k.startswith('image/') for k in out['data']):
            texts.append(''.join(out['data']['text/plain']))
    return ''.join(t if t.endswith('\n') else t + '\n' for t in texts).rstrip('\n')


def render(nb_path=ROOT / 'nbs' / 'index.ipynb'):
    "README.md's text for the notebook at `nb_path`."
    cells = json.loads(Path(nb_path).read_text(encoding='utf-8'))['cells']
    parts = []
    for cell in cells:
        source = ''.join(cell['source'])
        directives = _directives(source)
        if any(d.startswith(('hide', 'default_exp', 'exporti')) for d in directives): continue
        if cell['cell_type'] == 'markdown':  # links between notebooks point into nbs/ from the repo root
            parts.append(NB_LINK.sub(r'](nbs/\1)', source.strip('\n')))
        elif cell['cell_type'] == 'code':
            code = _strip_directives(source)
            if code: parts.append(f'```python\n{code}\n```')
            output = _text_output(cell.get('outputs', []))
            if output: parts.append(f'```\n{output}\n```')
    return '<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->\n\n' + '\n\n'.join(parts) + '\n'


def main(argv=sys.argv[1:]):
    readme, text = ROOT / 'README.md', render()
    if '--check' in argv:
        old = readme.read_text(encoding='utf-8') if readme.exists() else ''
        if old != text:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), text.splitlines(True), 'README.md', 'from index.ipynb'))
            print('README.md is out of date: run `python tools/make_readme.py`')
            return 1
        return 0
    readme.write_text(text, encoding='utf-8')
    return 0


if __name__ == '__main__': sys.exit(main())
