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
