"""How the notebooks read, in numbers: `python tools/nb_metrics.py` prints one row per notebook and
the package-wide counts (private imports across modules, places that compute an output size,
mentions of the project's internal contract).
"""
import ast, io, json, re, statistics, tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = re.compile(r'\b(test_eq|test_ne|test_close|test_fail|test_is|test_shuffled|expect_fail|assert)\b')
DIRECTIVE = re.compile(r'^#\|\s*(\w+)', re.M)


def notebook_rows():
    for nb in sorted(ROOT.glob('nbs/*.ipynb')):
        code = [''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code']
        lines = [l for src in code for l in src.splitlines()]
        tests = [src for src in code if TESTS.search(src) and not {'export', 'exporti'} & set(DIRECTIVE.findall(src))]
        hidden = sum('hide' in DIRECTIVE.findall(src) for src in tests)
        yield (nb.name, statistics.median(len(src.splitlines()) for src in code) if code else 0,
               sum(len(l) > 100 for l in lines) / max(1, len(lines)), len(tests) - hidden, hidden)


def _code_only(source):
    "The source without its comments and string literals (docstrings mention formulas too)."
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return ' '.join(t.string for t in tokens if t.type not in (tokenize.COMMENT, tokenize.STRING))


def package_counts():
    lib = {p.name: p.read_text() for p in ROOT.glob('convutils/*.py') if p.name != '_modidx.py'}
    private = sum(alias.name.startswith('_') and not alias.name.endswith('__') for src in lib.values() for node in ast.walk(ast.parse(src))
                  if isinstance(node, ast.ImportFrom) and (node.level or (node.module or '').startswith('convutils'))
                  for alias in node.names)
    formula = r'//\s*stride\s*\+\s*1|stride\s*\*\s*\([^()]*-\s*1\s*\)\s*\+'
    sizes = sum(len(re.findall(formula, _code_only(src))) for src in lib.values())
    texts = [''.join(''.join(c['source']) for c in json.loads(p.read_text())['cells'])
             for p in ROOT.glob('nbs/*.ipynb')] + [(ROOT / 'README.md').read_text()]  # not figure data
    cites = sum(len(re.findall(r'\bSPEC\b|\bthe contract\b|\bissue #?\d|\bD\d{1,2}\b', t)) for t in texts)
    return dict(private_imports=private, output_size_formulas=sizes, contract_mentions=cites,
                build_docs_lines=len((ROOT / 'tools/build_docs.py').read_text().splitlines()))


if __name__ == '__main__':
    print(f"{'notebook':28} {'median lines':>12} {'lines >100':>10} {'visible tests':>13} {'hidden tests':>12}")
    for name, median, wide, visible, hidden in notebook_rows():
        print(f"{name:28} {median:12} {wide:10.1%} {visible:13} {hidden:12}")
    for k, v in package_counts().items(): print(f"{k}: {v}")
