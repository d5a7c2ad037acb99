"""Every import of our own packages, anywhere in the repository's code and scripts, names a module and an
attribute that exist: a renamed module must not leave a script that fails only when run (a script
once imported `grpo.trl_patches` after it had become `grpo.patches`)."""

import ast
import importlib

from conftest import REPO

OURS = ("grpo", "eval", "tasks", "rewards")


def _our_imports():
    for folder in (*OURS, "scripts"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                        and node.module.split(".")[0] in OURS:
                    for alias in node.names:
                        yield path.relative_to(REPO), node.lineno, node.module, alias.name
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.split(".")[0] in OURS:
                            yield path.relative_to(REPO), node.lineno, alias.name, None


def test_every_import_of_our_packages_resolves():
    missing = []
    for path, line, module, name in _our_imports():
        try:
            imported = importlib.import_module(module)
        except ModuleNotFoundError as error:
            missing.append(f"{path}:{line}: {module} ({error})")
            continue
        if name and name != "*" and not hasattr(imported, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ModuleNotFoundError:
                missing.append(f"{path}:{line}: {module}.{name}")
    assert not missing, missing
