"""How the notebooks read, in numbers: `python tools/nb_metrics.py` prints one row per notebook and
the package-wide counts (private imports across modules, places that compute an output size,
mentions of the project's internal contract).
"""
import glob, json, re, statistics
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


def package_counts():
    lib = {p.name: p.read_text() for p in ROOT.glob('convutils/*.py') if p.name != '_modidx.py'}
    private = sum(len(re.findall(r'\b_[a-z]\w*', m.group(1)))
                  for src in lib.values() for m in re.finditer(r'from \.\w+ import \(?([^)\n]*(?:\n[^)\n]*)*?)\)?$', src, re.M))
    sizes = sum(len(re.findall(r'//\s*stride\s*\+\s*1|stride\s*\*\s*\([^()]*-\s*1\)\s*\+', src)) for src in lib.values())
    texts = [p.read_text() for p in [*ROOT.glob('nbs/*.ipynb'), ROOT / 'README.md']]
    cites = sum(len(re.findall(r'\bSPEC\b|\bthe contract\b|\bissue #?\d|\bD\d{1,2}\b', t)) for t in texts)
    return dict(private_imports=private, output_size_formulas=sizes, contract_mentions=cites,
                build_docs_lines=len((ROOT / 'tools/build_docs.py').read_text().splitlines()))


if __name__ == '__main__':
    print(f"{'notebook':28} {'median lines':>12} {'lines >100':>10} {'visible tests':>13} {'hidden tests':>12}")
    for name, median, wide, visible, hidden in notebook_rows():
        print(f"{name:28} {median:12} {wide:10.1%} {visible:13} {hidden:12}")
    for k, v in package_counts().items(): print(f"{k}: {v}")
