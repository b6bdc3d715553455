"""Old path of :mod:`lidutils.book.factorial`, kept for one release (it is that module: monkeypatching works)."""
import sys; from lidutils.book import factorial as _m; sys.modules[__name__] = _m  # noqa: E401,E702
