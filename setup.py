"""Package metadata comes from settings.ini, the single source nbdev also reads.

The sdist carries settings.ini, README.md and LICENSE (see MANIFEST.in), so a wheel built from
the sdist is the same as one built from the tree.
"""
from configparser import ConfigParser
from pathlib import Path
import re
import setuptools

here = Path(__file__).resolve().parent
cfg = ConfigParser(delimiters=['='])
if not cfg.read(here / 'settings.ini', encoding='utf-8'):
    raise SystemExit(f'setup.py: settings.ini not found in {here}')
cfg = cfg['DEFAULT']

for key in ('version description keywords author author_email license min_python lib_name user '
            'git_url branch status audience language').split():
    assert key in cfg, f'settings.ini is missing {key!r}'

# settings.ini keeps nbdev's short license name; the metadata gets its SPDX expression.
licenses = {'apache2': 'Apache-2.0'}
statuses = {int(s[0]): s for s in ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta',
                                   '5 - Production/Stable', '6 - Mature', '7 - Inactive']}
py_versions = '3.10 3.11 3.12 3.13'.split()
min_python = cfg['min_python']
requirements = cfg.get('requirements', '').split()
tour_requirements = cfg.get('tour_requirements', '').split()
dask_requirements = cfg.get('dask_requirements', '').split()
dev_requirements = list(dict.fromkeys(cfg.get('dev_requirements', '').split()
                                      + tour_requirements + dask_requirements))


def long_description():
    "README.md, with its relative links made absolute so that they also work on PyPI."
    text = (here / 'README.md').read_text(encoding='utf-8')
    base = f"{cfg['git_url']}/blob/{cfg['branch']}/"
    return re.sub(r'\]\((?![a-zA-Z][a-zA-Z0-9+.-]*:|#|/)', '](' + base, text)


setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=long_description(),
    long_description_content_type='text/markdown',
    keywords=cfg['keywords'].split(),
    author=cfg['author'],
    author_email=cfg['author_email'],
    license_expression=licenses[cfg['license']],
    license_files=['LICENSE'],
    url=cfg['git_url'],
    project_urls={'Source': cfg['git_url'],
                  'Changelog': f"{cfg['git_url']}/blob/{cfg['branch']}/CHANGELOG.md"},
    classifiers=[f'Development Status :: {statuses[int(cfg["status"])]}',
                 f'Intended Audience :: {cfg["audience"].title()}',
                 f'Natural Language :: {cfg["language"].title()}']
                + [f'Programming Language :: Python :: {v}' for v in py_versions
                   if tuple(map(int, v.split('.'))) >= tuple(map(int, min_python.split('.')))],
    packages=setuptools.find_packages(include=[cfg['lib_name'], cfg['lib_name'] + '.*']),
    include_package_data=True,
    install_requires=requirements,
    extras_require={'tour': tour_requirements, 'dask': dask_requirements, 'dev': dev_requirements},
    python_requires='>=' + min_python,
    zip_safe=False,
    entry_points={'nbdev': [f'{cfg["lib_path"]}={cfg["lib_path"]}._modidx:d']},
)
