"""Progress a person can read: tqdm bars on the terminal, or a status file for the book's build.

The book's chapters execute in Jupyter kernels whose output nobody sees while they run.
``scripts/build_book.py`` therefore sets ``$LIDUTILS_PROGRESS_FILE`` for each kernel;
every bar and :func:`note` of this package then writes there (bars at most every few
seconds), and the build prints the file's last line with its own heartbeat.
"""
from __future__ import annotations

import os
import time

ENV = "LIDUTILS_PROGRESS_FILE"
_FILES = {}


def _status_file():
    path = os.environ.get(ENV)
    if not path:
        return None
    if path not in _FILES:
        _FILES[path] = open(path, "a", buffering=1)  # noqa: SIM115 - kept open for the process's bars
    return _FILES[path]


def bar(iterable=None, enabled=True, status=True, **kw):
    """A tqdm bar over ``iterable`` (or a manual one with ``total=``).

    On the terminal only when ``enabled``; into ``$LIDUTILS_PROGRESS_FILE`` whenever that
    is set (the book's build) and ``status`` (inner bars, e.g. the epochs of one network
    in a training worker, pass ``status=False``), whatever ``enabled`` says. Returns
    ``iterable`` itself when neither applies and an iterable was given.
    """
    fh = _status_file() if status else None
    if fh is not None:
        from tqdm import tqdm

        kw = {"mininterval": 3.0, "ascii": True, "ncols": 90, **kw, "file": fh, "disable": False}
        return tqdm(iterable, **kw)
    if not enabled:
        if iterable is not None:
            return iterable
        from tqdm import tqdm

        return tqdm(disable=True, **kw)
    from tqdm.auto import tqdm

    return tqdm(iterable, **kw)


def note(message):
    """One status line (``HH:MM:SS message``) in ``$LIDUTILS_PROGRESS_FILE``; nothing when unset."""
    fh = _status_file()
    if fh is not None:
        fh.write(f"\n{time.strftime('%H:%M:%S')} {message}\n")


def last_line(path, size=4096):
    """The latest status in a progress file: its last non-empty line or tqdm refresh."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    parts = [p.strip() for p in text.replace("\r", "\n").split("\n")]
    parts = [p for p in parts if p]
    return parts[-1] if parts else ""

