"""The package's shape: lower layers never import higher ones; public modules export __all__."""

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import weft

ROOT = Path(weft.__file__).parent
# A module may import only from its own layer and the layers below it.
LAYERS = ["core", "components", "tools", "chains", "graphs", "evals", "server", "testing", "cli"]
ALLOWED_BELOW = {
    "core": {"core"},
    "components": {"core", "components"},
    "tools": {"core", "components", "tools"},
    "chains": {"core", "components", "tools", "chains"},
    "graphs": {"core", "components", "tools", "chains", "graphs"},
    "evals": {"core", "components", "tools", "chains", "graphs", "evals"},
    "server": {"core", "components", "tools", "chains", "graphs", "evals", "server"},
    "testing": {"core", "components", "testing"},
    "cli": set(LAYERS),
}


def _layer(path: Path) -> str | None:
    rel = path.relative_to(ROOT).parts
    if rel[0] == "cli.py":
        return "cli"
    return rel[0] if rel[0] in ALLOWED_BELOW else None


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
    return [n for n in names if n.startswith("weft.")]


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_lower_layers_never_import_higher_ones(path: Path) -> None:
    layer = _layer(path)
    if layer is None:
        return
    for name in _imports(path):
        target = name.split(".")[1]
        target = "cli" if target == "cli" else target
        assert target in ALLOWED_BELOW[layer], f"{path.name} ({layer}) imports {name}"


def _public_modules() -> list[str]:
    out = []
    for info in pkgutil.walk_packages([str(ROOT)], "weft."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            out.append(info.name)
    return out


@pytest.mark.parametrize("module", _public_modules())
def test_public_modules_declare_all_and_export_what_they_name(module: str) -> None:
    mod = importlib.import_module(module)
    exported = getattr(mod, "__all__", None)
    assert exported is not None, f"{module} has no __all__"
    for name in exported:
        assert hasattr(mod, name), f"{module}.__all__ names missing {name}"


def test_package_ships_py_typed() -> None:
    assert (ROOT / "py.typed").exists()


def test_weft_exports_exactly_the_names_of_weft_core() -> None:
    import weft.core

    assert sorted(weft.__all__) == sorted([*weft.core.__all__, "__version__"])
    assert len(set(weft.core.__all__)) == len(weft.core.__all__)
    for name in weft.core.__all__:
        assert getattr(weft, name) is getattr(weft.core, name)


def test_handlers_can_be_removed_and_the_step_limit_caught_from_weft() -> None:
    from weft.core.callbacks import remove_handler
    from weft.core.errors import StepLimitError

    assert (weft.remove_handler, weft.StepLimitError) == (remove_handler, StepLimitError)


def test_one_public_name_makes_a_component_of_a_function() -> None:
    made = {"lambda_", "TypedLambda", "as_component"} & set(weft.__all__)
    assert made == {"lambda_"}


def test_ready_graphs_are_exported_and_every_factory_is_a_build_function() -> None:
    import weft.graphs

    factories = [n for n in weft.graphs.__all__ if n.endswith("_graph")]
    assert sorted(factories) == [
        "build_demo_graph",
        "build_health_graph",
        "build_hybrid_graph",
        "build_rag_graph",
        "build_resume_graph",
    ]
    assert "KnowledgeBase" in weft.graphs.__all__
    for name in weft.graphs.__all__:
        value = getattr(weft.graphs, name)
        assert value.__module__.startswith("weft.graphs."), name
    for module in _public_modules():
        if module.startswith("weft.graphs."):
            mod = importlib.import_module(module)
            names = [n for n in mod.__all__ if n.endswith("_graph") and callable(getattr(mod, n))]
            assert all(n.startswith("build_") for n in names), (module, names)
