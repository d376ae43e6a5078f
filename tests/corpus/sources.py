"""Where the corpus's notebooks come from, downloaded once into a cache folder.

- scikit-learn's gallery: the ``examples/`` of its source distribution at the installed version (sphinx-gallery
  scripts, converted to notebooks by ``gallery``);
- statsmodels' example notebooks: the ``examples/notebooks/*.ipynb`` of its source distribution, as they ship
  (markdown, pandas tables, matplotlib plots), outputs cleared.

Both are BSD-3-Clause and are downloaded at test time, not kept in this repository. ``pip download
--no-binary`` cannot fetch these sdists (it prepares their metadata, which needs their build backends), so the
``.tar.gz`` is taken from the index's simple page (pip's default index) and checked against its SHA-256.

The cache folder is ``MLOPS_NB_CORPUS_CACHE``, else ``~/.cache/mlops-nb-corpus``: a machine downloads each
sdist once.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import nbformat

from tests.corpus import gallery

CACHE_ENV = "MLOPS_NB_CORPUS_CACHE"
CONVERTER = 1  # bump when gallery's conversion changes: the notebooks are made again
# statsmodels notebooks that read data from the network or need packages the test environment lacks.
_STATSMODELS_ONLINE = ("get_rdataset", "pandas_datareader", "webuse", "!pip", "%pip", "pymc", "arviz")


@dataclass(frozen=True)
class Notebook:
    """One notebook of the corpus: ``sklearn/cluster/plot_kmeans_digits``, ``statsmodels/ols``."""

    name: str
    path: Path


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "mlops-nb-corpus")


def _index_files(project: str) -> list[dict]:
    from pip._internal.models.index import PyPI

    request = urllib.request.Request(
        f"{PyPI.simple_url}/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.load(answer)["files"]


def sdist(project: str) -> Path:
    """The source distribution of the installed version of ``project``, downloaded once (SHA-256 checked)."""
    version = metadata.version(project)
    folder = cache_dir() / "sdists"
    names = {f"{stem}-{version}.tar.gz" for stem in (project, project.replace("-", "_"))}
    for name in names:
        if (folder / name).is_file():
            return folder / name
    (found,) = [f for f in _index_files(project) if f["filename"] in names]
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / (found["filename"] + ".part")
    with urllib.request.urlopen(found["url"], timeout=300) as answer, partial.open("wb") as out:
        while chunk := answer.read(1 << 20):
            out.write(chunk)
    digest = hashlib.sha256(partial.read_bytes()).hexdigest()
    if digest != found["hashes"]["sha256"]:
        partial.unlink()
        raise RuntimeError(f"{found['filename']}: SHA-256 {digest}, the index says {found['hashes']['sha256']}")
    return partial.rename(folder / found["filename"])


def _examples(project: str, prefix: str) -> Path:
    """The sdist's files under ``prefix`` (such as ``examples/``), extracted once."""
    archive = sdist(project)
    target = cache_dir() / "src" / archive.name.removesuffix(".tar.gz")
    done = target / ".complete"
    if not done.is_file():
        with tarfile.open(archive) as tar:
            top = tar.getnames()[0].split("/")[0]
            members = [m for m in tar.getmembers() if m.name.startswith(f"{top}/{prefix}")]
            tar.extractall(target, members=members, filter="data")
        done.write_text("")
    (top,) = [p for p in target.iterdir() if p.is_dir()]
    return top / prefix


def sklearn_notebooks() -> list[Notebook]:
    """scikit-learn's gallery examples that need no network, converted to notebooks (once)."""
    examples = _examples("scikit-learn", "examples")
    out = cache_dir() / "notebooks" / f"sklearn-{metadata.version('scikit-learn')}-c{CONVERTER}"
    found = []
    for script in sorted(examples.rglob("*.py")):
        relative = script.relative_to(examples).with_suffix("")
        path = out / relative.with_suffix(".ipynb")
        if not path.is_file():
            try:
                nb = gallery.to_notebook(script.read_text())
            except SyntaxError:
                continue
            if gallery.online(nb):
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, path)
        found.append(Notebook(f"sklearn/{relative.as_posix()}", path))
    return found


def statsmodels_notebooks() -> list[Notebook]:
    """statsmodels' example notebooks that need no network, as shipped, outputs cleared (once)."""
    examples = _examples("statsmodels", "examples/notebooks")
    out = cache_dir() / "notebooks" / f"statsmodels-{metadata.version('statsmodels')}-c{CONVERTER}"
    found = []
    for source in sorted(examples.glob("*.ipynb")):
        path = out / source.name
        if not path.is_file():
            nb = nbformat.read(source, as_version=4)
            code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
            if gallery.online(nb) or any(marker in code for marker in _STATSMODELS_ONLINE):
                continue
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.outputs, cell.execution_count = [], None
            nb.metadata["kernelspec"] = dict(gallery.KERNELSPEC)
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, path)
        found.append(Notebook(f"statsmodels/{source.stem}", path))
    return found


def notebooks() -> list[Notebook]:
    """Every notebook of the corpus that needs no network."""
    return sklearn_notebooks() + statsmodels_notebooks()
