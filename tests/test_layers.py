"""The layers a reader can rely on: app.py -> ui/, web/ -> chat/ -> storage/, and nothing reaches past the next one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRONT_ENDS = sorted([*ROOT.glob("ui/*.py"), *ROOT.glob("web/*.py")])
DOMAIN = sorted([*ROOT.glob("chat/*.py"), *ROOT.glob("chat/wings/*.py")])


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0}
    return {name.split(".")[0] for name in names}


def store_reaches(path: Path) -> list[int]:
    """Lines where a front end takes a service's store (`x.store`) to talk to storage itself."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "store"]


@pytest.mark.parametrize("path", FRONT_ENDS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_the_page_and_the_apis_reach_storage_only_through_chat(path):
    assert "storage" not in imported_packages(path)
    assert store_reaches(path) == []


@pytest.mark.parametrize("path", DOMAIN, ids=lambda path: str(path.relative_to(ROOT)))
def test_chat_knows_nothing_of_gradio_or_the_web(path):
    assert imported_packages(path).isdisjoint({"gradio", "ui", "web", "app", "fastapi", "starlette"})


CORE = sorted(path.stem for path in ROOT.glob("chat/*.py") if path.stem != "__init__")
WINGS = sorted(path.stem for path in ROOT.glob("chat/wings/*.py") if path.stem != "__init__")


def chat_modules_imported(path: Path) -> set[str]:
    """The chat/ modules a file imports, at any depth of its code (a late import counts too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    return {name for name in names if name.startswith("chat.")}


def test_the_core_and_its_wings_are_where_a_reader_looks_for_them():
    assert {"turns", "turn_hooks", "sessions", "recipes", "demo_model"} <= set(CORE)
    assert {"tools", "approvals", "context_policies", "journal", "mcp_servers"} <= set(WINGS)


@pytest.mark.parametrize("name", CORE)
def test_the_core_imports_no_wing(name):
    """Leaving a wing out of server.py leaves the app working: the core never names one."""
    imported = chat_modules_imported(ROOT / "chat" / f"{name}.py")
    assert not {module for module in imported if module.startswith("chat.wings")}


def test_the_entry_point_loads_only_the_settings_before_they_are_good():
    """`python app.py --help` or a wrong value answers at once: app.py's own imports are the settings table's."""
    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    top_level = {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    top_level |= {node.module or "" for node in tree.body if isinstance(node, ast.ImportFrom)}
    ours = {name for name in top_level if name.split(".")[0] in {"chat", "storage", "ui", "web", "server"}}
    assert ours == {"chat.options"}
    assert imported_packages(ROOT / "chat" / "options.py") - {"__future__"} <= {
        "argparse",
        "dataclasses",
        "os",
        "collections",
        "pathlib",
        "typing",
        "chat",
    }
    assert imported_packages(ROOT / "chat" / "config.py") - {"__future__"} <= {"dataclasses", "typing"}
