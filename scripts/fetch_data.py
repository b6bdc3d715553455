#!/usr/bin/env python
"""Fetch (or verify) every data file of the offline tier through the pinned registry.

The Algonauts 2019 92-image set and the 1000 ImageNet-sample photos come through
:func:`lidutils.datasets.fetch_files` (pooch, SHA-256 of ``lidutils/registry/data.txt``);
Fashion-MNIST through :func:`lidutils.loaders.load_fashion_mnist` (the publisher's MD5, then
the registry's SHA-256 of the decompressed bytes); Animal-MNIST ships on PyPI. With
``$LIDUTILS_DATA_DIR`` set, the mirror is verified instead of downloading. Binder runs this in
``binder/postBuild``, so a launched chapter starts with its data; elsewhere the chapters fetch
what they need on first use and this script is optional.

    python scripts/fetch_data.py
"""
from __future__ import annotations

import sys


def main():
    from lidutils import datasets, loaders

    rels = [r for r in datasets.registry() if not r.startswith("fashion_mnist/")]
    paths = datasets.fetch_files(rels, progress=sys.stdout.isatty())
    loaders.load_fashion_mnist()
    print(f"[fetch_data] {len(paths)} registry files and Fashion-MNIST verified "
          f"({datasets._resolve_data_dir(None) or 'downloaded into the cache'})")


if __name__ == "__main__":
    main()
