"""Old path of :mod:`lidutils.book.power`, kept for one release (it is that module: monkeypatching works)."""
import sys; from lidutils.book import power as _m; sys.modules[__name__] = _m  # noqa: E401,E702
