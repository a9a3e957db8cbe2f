"""The jobs core stands alone: importing it loads no higher layer, and its modules import only earlier ones."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ORDER = ["model", "store", "transport", "fanout", "lifecycle", "runner", "reaper", "embedded", "worker", "service"]


def test_importing_core_jobs_loads_no_higher_layer() -> None:
    code = (
        "import json, sys; import core.jobs; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('index', 'generators', 'agent', 'api'))))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    assert json.loads(done.stdout) == []


def _imported_job_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("core.jobs"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("core.jobs"))
    return found


def test_each_jobs_module_imports_only_the_ones_before_it() -> None:
    package = ROOT / "core" / "jobs"
    assert sorted(p.stem for p in package.glob("*.py") if p.stem != "__init__") == sorted(ORDER)
    for position, name in enumerate(ORDER):
        allowed = {f"core.jobs.{earlier}" for earlier in ORDER[:position]}
        # embedded and worker are siblings: neither may import the other.
        if name == "worker":
            allowed.discard("core.jobs.embedded")
        imported = _imported_job_modules(package / f"{name}.py")
        assert imported <= allowed, f"core/jobs/{name}.py imports {sorted(imported - allowed)}"
