"""The book's experiment: everything only the LID book uses, beside the small utility.

The utility (:mod:`lidutils`: neighbours, LID, global dimension, alignment, ridge, encoding,
RSA, statistics, the LID penalty, caches) knows nothing of this layer; this layer imports it.
Modules, by concern: ``paper`` (the paper's numbers and protocol), ``zoo`` (the controlled model
zoo), ``population`` (the models a chapter compares), ``measures`` (per-model measurements),
``claims`` (the analyses the claim chapters call), ``report`` (records and results files),
``simulate`` and ``power`` (validation worlds, power), ``intervention`` (C8), ``factorial``,
``paper_tier``, ``plotting`` (figures), ``claims_page``, ``cli``.
"""
