"""The exception hierarchy lives in one module, arrowlog/errors.py, and its docstring draws it."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import arrowlog
import arrowlog.errors
import flight_server

# Modules that need an optional extra (the distributed one) are skipped when it is missing.
_OPTIONAL = {"arrowlog.distributed"}


def _import_everything() -> None:
    for package in (arrowlog, flight_server):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.endswith("__main__"):
                continue
            try:
                importlib.import_module(info.name)
            except ImportError:
                if info.name not in _OPTIONAL:
                    raise


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def test_every_arrowlog_error_is_declared_in_errors_py() -> None:
    _import_everything()
    elsewhere = {
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _subclasses(arrowlog.errors.ArrowlogError)
        if cls.__module__ != "arrowlog.errors" and not cls.__module__.startswith("tests.")
    }
    assert elsewhere == set()


def test_errors_all_lists_every_class_and_the_docstring_draws_it() -> None:
    declared = {
        name
        for name, value in vars(arrowlog.errors).items()
        if isinstance(value, type)
        and issubclass(value, arrowlog.errors.ArrowlogError)
        and value.__name__ == name  # not a former name kept as an alias
    }
    assert set(arrowlog.errors.__all__) == declared
    drawn = set(re.findall(r"[─└├]── (\w+)", arrowlog.errors.__doc__ or ""))
    assert drawn | {"ArrowlogError"} == declared


@pytest.mark.parametrize("name", arrowlog.errors.__all__)
def test_the_tree_shows_each_class_under_its_base(name: str) -> None:
    cls = getattr(arrowlog.errors, name)
    if cls is arrowlog.errors.ArrowlogError:
        return
    lines = (arrowlog.errors.__doc__ or "").splitlines()
    [at] = [i for i, line in enumerate(lines) if re.search(rf"── {name}\b", line)]
    depth = lines[at].index("──")
    parent = next(
        line for line in reversed(lines[:at]) if "──" not in line or line.index("──") < depth
    )
    assert re.findall(r"\w+", parent)[0] == cls.__bases__[0].__name__
