"""Every public name declared in ``lidutils._API`` resolves to a callable."""
import importlib

import pytest

import lidutils


@pytest.mark.parametrize("name", sorted(lidutils._API))
def test_public_name_resolves(name):
    obj = getattr(lidutils, name)
    assert callable(obj)
    assert obj is getattr(importlib.import_module(f"lidutils.{lidutils._API[name]}"), name)


def test_unknown_name_raises():
    with pytest.raises(AttributeError, match="no attribute"):
        lidutils.not_a_function  # noqa: B018


OLD_PATHS = ("paper", "claims", "zoo", "population", "measures", "simulate", "power", "intervention",
             "paper_tier", "plotting", "claims_page", "report", "factorial", "cli")


@pytest.mark.parametrize("name", OLD_PATHS)
def test_old_module_paths_are_the_book_modules(name):
    """``lidutils.<module>`` of the flat layout is still importable for a release: the same module object."""
    import importlib

    assert importlib.import_module(f"lidutils.{name}") is importlib.import_module(f"lidutils.book.{name}")


def test_readme_names_resolve():
    """Every ``lidutils.<name>`` / ``lu.<name>`` the README shows resolves."""
    import importlib
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for path in sorted(set(re.findall(r"\blidutils((?:\.\w+)+)", text)) | {"." + n for n in re.findall(r"\blu\.(\w+)\(", text)}):
        parts = path.strip(".").split(".")
        obj, i = None, len(parts)
        while i:  # the longest importable module prefix, then attributes
            try:
                obj = importlib.import_module(".".join(["lidutils", *parts[:i]]))
                break
            except ImportError:
                i -= 1
        obj = obj or importlib.import_module("lidutils")
        for attr in parts[i:]:
            obj = getattr(obj, attr)
