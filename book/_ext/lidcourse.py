"""Sphinx extension of the LID book: the course kit's student notebooks, generated at build time.

The assignments page links each assignment's student notebook with ``{download}`` roles to
``book/_course/<name>.ipynb``. Those files are not kept in the repository: when the book is
built, this extension runs ``course/build.py``'s ``otter assign`` (without running the
tests) on every master notebook in ``<source>/course/`` and copies the student copies there,
so the site always hands out the student version of the masters it was built from. A source
folder without ``course/`` (a small test book) is left alone.
"""
from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)


def student_notebooks(app):
    src = Path(app.srcdir)
    script = src / "course" / "build.py"
    if not script.is_file():
        return
    spec = importlib.util.spec_from_file_location("course_build", script)
    cb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cb)
    dest = src / "book" / "_course"
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, folder in cb.assign_all(cb.masters(course=src / "course"), tmp).items():
            shutil.copy2(Path(folder) / "student" / f"{name}.ipynb", dest / f"{name}.ipynb")
    logger.info(f"[lidcourse] student notebooks of {sorted(p.stem for p in dest.glob('*.ipynb'))}")


def setup(app):
    app.connect("builder-inited", student_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
