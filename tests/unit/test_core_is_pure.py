import ast
from pathlib import Path

import proxy.config
import proxy.translate

IO_LIBRARIES = {"httpx", "starlette", "uvicorn", "structlog", "anyio", "asyncio", "socket", "os"}
# What the core may import from the rest of the bridge: itself and the shared vocabulary
# (the bridge's errors, the wire types, the model table), never an I/O part (edge,
# upstream, rollout, obs) nor the settings.
CORE_MAY_IMPORT = {"proxy.errors", "proxy.wire", "proxy.config.models"}


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def imported_roots(path: Path) -> set[str]:
    return {module.split(".")[0] for module in imported_modules(path)}


def test_translation_core_imports_no_io() -> None:
    """proxy/translate is sans-I/O: it never imports a network, server or logging library."""
    files = list(Path(proxy.translate.__file__).parent.glob("*.py"))
    assert len(files) >= 7
    for path in files:
        assert not imported_roots(path) & IO_LIBRARIES, path.name


def test_core_imports_only_itself_and_the_shared_vocabulary() -> None:
    """proxy/translate depends on no other part of the bridge: not the edge, the upstream,
    rollout, observability or the settings (docs/architecture.md)."""
    files = list(Path(proxy.translate.__file__).parent.glob("*.py"))
    for path in files:
        ours = {m for m in imported_modules(path) if m.split(".")[0] == "proxy"}
        outside = {m for m in ours if not m.startswith("proxy.translate")} - CORE_MAY_IMPORT
        assert not outside, (path.name, outside)
    used = set().union(*(imported_modules(path) for path in files))
    assert used >= CORE_MAY_IMPORT  # the allowance names modules that exist and are used
    # Importing proxy.config.models runs proxy/config/__init__.py: it must pull in nothing.
    assert not imported_modules(Path(proxy.config.__file__))


def test_core_has_no_await() -> None:
    """No coroutine in the core: it is testable without an event loop."""
    for path in Path(proxy.translate.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        assert not any(isinstance(n, ast.AsyncFunctionDef | ast.Await) for n in ast.walk(tree))
