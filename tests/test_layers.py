"""The package's folders are its layers, and every import runs one way: down. Read from the
source with ast, so a function-local import counts as much as one at the top. Private names
(``_x``) stay in their own package."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hdrepro"
#: bottom to top; a module may import from its own layer and the layers below
LAYERS = {"errors": 0, "config": 0, "progress": 0, "cli_help": 0, "cbuild": 0,
          "optim": 1, "autodiff": 2, "methods": 3, "engine": 4, "studies": 5, "report": 6,
          "cli": 7, "__main__": 7, "__init__": 7}
#: the report's table of equations links each to the line of code that implements it, private
#: helpers of hdrepro.optim among them
PRIVATE_ALLOWED = {("hdrepro.report.verification", "hdrepro.optim._hypergrad")}


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 2 else parts)


def _imports(path: Path):
    """(imported module, names, line) of every ``from … import …`` of hdrepro in `path`."""
    me = _module(path).split(".")
    package = me if path.name == "__init__.py" else me[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("hdrepro"):
                    yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if not target.startswith("hdrepro"):
                continue
            if node.module is None:   # from . import a, b: each name is a module
                for alias in node.names:
                    yield f"{target}.{alias.name}", [], node.lineno
            else:
                yield target, [a.name for a in node.names], node.lineno


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 else LAYERS["__init__"]


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_folder_and_top_module_has_a_layer():
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in MODULES}
    assert tops <= set(LAYERS), f"give these a layer: {sorted(tops - set(LAYERS))}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_down_the_layers(path):
    me = _module(path)
    up = [f"line {line}: {target}" for target, _, line in _imports(path)
          if _layer(target) > _layer(me)]
    assert not up, f"{me} (layer {_layer(me)}) imports from above: {up}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_private_names_stay_in_their_package(path):
    me = _module(path)
    mine = me.split(".")[:2]
    crossing = []
    for target, names, line in _imports(path):
        if target.split(".")[:2] == mine or (me, target) in PRIVATE_ALLOWED:
            continue
        private = [n for n in names if n.startswith("_") and not n.startswith("__")
                   and (me, f"{target}.{n}") not in PRIVATE_ALLOWED]
        if private or any(p.startswith("_") and not p.startswith("__")
                          for p in target.split(".")):
            crossing.append(f"line {line}: {target} {private}")
    assert not crossing, f"{me} reaches into another package's private names: {crossing}"


def _graph() -> dict[str, set[str]]:
    """module → the hdrepro modules it imports (a package's own __init__ left out)."""
    names = {_module(p) for p in MODULES}
    graph = {}
    for path in MODULES:
        me = _module(path)
        deps = set()
        for target, imported, _ in _imports(path):
            for name in imported or [None]:
                sub = f"{target}.{name}" if name else target
                deps.add(sub if sub in names else target)
        graph[me] = {d for d in deps if d in names and d != me and not me.startswith(d + ".")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    seen, done, cycles = [], set(), []

    def visit(m):
        seen.append(m)
        for d in sorted(graph[m]):
            if d in seen:
                cycles.append(seen[seen.index(d):] + [d])
            elif d not in done:
                visit(d)
        seen.pop()
        done.add(m)

    for m in sorted(graph):
        if m not in done:
            visit(m)
    return cycles


def test_no_two_modules_import_each_other_even_through_others():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert not _cycles({"a": {"b"}, "b": set()})
    cycles = _cycles(_graph())
    assert not cycles, f"import cycles: {cycles}"


def test_the_rule_catches_an_upward_import(tmp_path, monkeypatch):
    """The checks can fail: an engine module that imports a study is caught."""
    fake = PACKAGE / "engine" / "data.py"
    src = "from ..studies import grids\nfrom ..optim._hypergrad import dot\n"
    monkeypatch.setattr(Path, "read_text", lambda self: src if self == fake else
                        Path.read_bytes(self).decode())
    with pytest.raises(AssertionError, match="imports from above"):
        test_imports_run_down_the_layers(fake)
    with pytest.raises(AssertionError, match="private"):
        test_private_names_stay_in_their_package(fake)
