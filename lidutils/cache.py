"""Small on-disk cache helpers: content keys and atomic writes.

A file appears under its final name only once it is completely written
(write to a temporary file in the same folder, then ``os.replace``), so an
interrupted run never leaves a half-written cache entry behind.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no cross-process lock (each process computes its own copy)
    fcntl = None

import numpy as np


def default_cache_dir():
    """``$LIDUTILS_CACHE_DIR`` or ``~/.cache/lidutils``."""
    return Path(os.environ.get("LIDUTILS_CACHE_DIR", Path.home() / ".cache" / "lidutils"))


def hash_key(*parts):
    """Stable short SHA-256 key of JSON-serialisable parts (arrays hashed by bytes)."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(str((p.shape, p.dtype.str)).encode())
            h.update(np.ascontiguousarray(p).tobytes())
        elif isinstance(p, bytes):
            h.update(p)
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:20]


def file_sha256(path, chunk=1 << 20):
    """SHA-256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; move it into place on success only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def computing(path, wait=True):
    """Hold an exclusive lock while ``path`` is computed, so it is computed once.

    Processes that run side by side (the book executes several chapters at once) ask
    for the same cache entries; the second one blocks here until the first has
    written ``path``, then finds it and loads it. Use as::

        with computing(path):
            if not path.exists():
                save_npz(path, ...)

    With ``wait=False`` it does not block: it yields ``False`` when another process
    holds the lock (the caller can do other work first and come back), else ``True``.

    An advisory ``fcntl`` lock on ``<path>.lock`` (released when the process dies, so an
    interrupted run leaves no stale lock); a no-op where ``fcntl`` is missing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield True
        return
    with open(path.with_name(path.name + ".lock"), "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def save_npz(path, **arrays):
    """Atomically write arrays to ``path`` (.npz)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_npz(path):
    """Load every array of an .npz written by :func:`save_npz` into a dict."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def save_json(path, obj):
    """Atomically write ``obj`` as indented JSON."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")
