import ast
from pathlib import Path

import proxy.translate

IO_LIBRARIES = {"httpx", "starlette", "uvicorn", "structlog", "anyio", "asyncio", "socket", "os"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_translation_core_imports_no_io():
    """proxy/translate is sans-I/O: it never imports a network, server or logging library."""
    files = list(Path(proxy.translate.__file__).parent.glob("*.py"))
    assert len(files) >= 7
    for path in files:
        assert not imported_roots(path) & IO_LIBRARIES, path.name


def test_core_has_no_await():
    """No coroutine in the core: it is testable without an event loop."""
    for path in Path(proxy.translate.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        assert not any(isinstance(n, ast.AsyncFunctionDef | ast.Await) for n in ast.walk(tree))
