"""baselines_her/_native.pyi names every public function, class, method and argument of the
compiled module, with the argument names pybind11 reports."""
import ast
import os
import re

import pytest

native = pytest.importorskip("baselines_her._native")
STUB = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    "baselines_her", "_native.pyi")


def stub_tree():
    with open(STUB) as f:
        return ast.parse(f.read())


def stub_args(fn: ast.FunctionDef) -> list:
    return [a.arg for a in fn.args.args if a.arg != "self"]


def pybind_args(obj) -> list:
    """Argument names of the first signature line pybind11 writes into the docstring."""
    first = obj.__doc__.strip().splitlines()[0]
    inside = first[first.index("(") + 1:first.rindex(") ->")]
    names = re.findall(r"(?:^|, )(\w+):", inside)
    return [n for n in names if n != "self"]


def public(names):
    return {n for n in names if not n.startswith("_")}


def test_stub_matches_module():
    tree = stub_tree()
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    constants = {n.target.id for n in tree.body
                 if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    assert public(dir(native)) == set(functions) | set(classes) | constants
    for name, fn in functions.items():
        assert stub_args(fn) == pybind_args(getattr(native, name)), name
    for cname, cls in classes.items():
        methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}
        runtime = getattr(native, cname)
        assert public(dir(runtime)) == public(methods), cname
        for name, fn in methods.items():
            if name == "__len__" or isinstance(getattr(runtime, name, None), property):
                continue
            assert stub_args(fn) == pybind_args(getattr(runtime, name)), f"{cname}.{name}"
