"""Old path of :mod:`lidutils.book.population`, kept for one release (it is that module: monkeypatching works)."""
import sys; from lidutils.book import population as _m; sys.modules[__name__] = _m  # noqa: E401,E702
