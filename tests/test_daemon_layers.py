"""neurond's sub-packages import only the layers below them (README "Layout"), so the chip
model can be read, tested and reused without the runtime or the server."""

import ast
from pathlib import Path

import neurontools.daemon

DAEMON = Path(neurontools.daemon.__file__).parent
# Bottom to top; a layer may import itself, errors.py and any layer before it.
LAYERS = ["device", "isa", "collectives", "runtime", "sysfs", "server"]


def daemon_imports(path: Path) -> set[str]:
    """The daemon sub-packages a module imports (`neurontools.daemon.X...` → X)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["neurontools", "daemon"] and len(parts) > 2:
                found.add(parts[2])
    return found


def test_every_daemon_module_lives_in_a_layer():
    loose = sorted(p.name for p in DAEMON.glob("*.py") if p.name not in {"__init__.py", "errors.py"})
    assert loose == []
    assert sorted(p.name for p in DAEMON.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(LAYERS)


def test_layers_import_only_downwards():
    upward = []
    for rank, layer in enumerate(LAYERS):
        allowed = set(LAYERS[: rank + 1]) | {"errors"}
        for path in sorted((DAEMON / layer).rglob("*.py")):
            for imported in daemon_imports(path) - allowed:
                upward.append(f"{path.relative_to(DAEMON)} imports daemon.{imported}")
    assert upward == []


def test_the_check_sees_an_upward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from neurontools.daemon.runtime import sessions\nimport neurontools.daemon.server.cli\n")
    assert daemon_imports(module) == {"runtime", "server"}
