"""Every public function and method of the packages has a Google-style docstring.

Public means a name without a leading underscore, defined at module level or as a method of a
public module-level class. Dunder methods and click commands (whose docstring is the ``--help``
text) are exempt. A docstring must exist; it needs ``Args:`` when the function takes parameters
besides ``self``/``cls``, ``Returns:`` when its return annotation is there and not ``None``, and
``Yields:`` when it is a generator.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lesionpaste", "bank_builder", "synth", "train")
CLICK_DECORATORS = {"command", "group", "option", "argument", "pass_context", "version_option"}

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


def _decorator_names(node: FunctionNode) -> list[str]:
    """The dotted names of a function's decorators, calls unwrapped (``click.option``)."""
    names = []
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        names.append(ast.unparse(target))
    return names


def _is_click(node: FunctionNode) -> bool:
    """Whether a function is decorated by click (a command, group, option or the like)."""
    for name in _decorator_names(node):
        parts = name.split(".")
        if parts[0] == "click" or (len(parts) > 1 and parts[-1] in CLICK_DECORATORS):
            return True
    return False


def _is_generator(node: FunctionNode) -> bool:
    """Whether a function's own body (not a nested function's) holds ``yield``."""
    stack = list(node.body)
    while stack:
        child = stack.pop()
        if isinstance(child, (ast.Yield, ast.YieldFrom)):
            return True
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        stack.extend(ast.iter_child_nodes(child))
    return False


def _parameters(node: FunctionNode, method: bool) -> list[str]:
    """A function's parameter names, ``*args``/``**kwargs`` included, less ``self``/``cls``."""
    args = node.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    if method and names and names[0] in ("self", "cls"):
        names = names[1:]
    return names


def _public_functions(tree: ast.Module):
    """``(qualified name, node, is method)`` for each public function and method of a module."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if not node.name.startswith("_"):
                yield node.name, node, False
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                is_function = isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                if is_function and not item.name.startswith("_"):
                    yield f"{node.name}.{item.name}", item, True


def _problems(node: FunctionNode, method: bool) -> list[str]:
    """What a public function's docstring lacks; empty when it is complete."""
    doc = ast.get_docstring(node)
    if not doc:
        return ["no docstring"]
    problems = []
    if _parameters(node, method) and "Args:" not in doc:
        problems.append("no Args:")
    returns_none = isinstance(node.returns, ast.Constant) and node.returns.value in (None, "None")
    if _is_generator(node):
        if "Yields:" not in doc:
            problems.append("no Yields:")
    elif node.returns is not None and not returns_none and "Returns:" not in doc:
        problems.append("no Returns:")
    return problems


def _offenders() -> list[str]:
    """``path:line name: problems`` for every public function whose docstring is lacking."""
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for name, node, method in _public_functions(tree):
                if _is_click(node):
                    continue
                problems = _problems(node, method)
                if problems:
                    where = f"{path.relative_to(ROOT).as_posix()}:{node.lineno}"
                    offenders.append(f"{where} {name}: {', '.join(problems)}")
    return offenders


def test_packages_are_found():
    for package in PACKAGES:
        assert (ROOT / package / "__init__.py").is_file(), package


def test_public_functions_have_google_docstrings():
    offenders = _offenders()
    assert not offenders, "public functions lacking docstring sections:\n" + "\n".join(offenders)
