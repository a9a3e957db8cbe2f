"""Print the pip requirement lines an image installs, read from pyproject.toml, so images and pyproject never drift.

Used by deploy/Dockerfile and deploy/Dockerfile.gpu before the source is copied (a cached dependency layer), and by
tests/deploy. Standard library only: it runs on a bare Python image before anything is installed.

    python requirements.py pyproject.toml --extra postgres --faiss gpu   # every dependency, faiss-gpu for faiss-cpu
    python requirements.py pyproject.toml --only torch,torchvision       # just these (installed from another index)
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
FAISS_PACKAGES = {"cpu": "faiss-cpu", "gpu": "faiss-gpu"}


def canonical(name: str) -> str:
    """Return a distribution name normalised as PEP 503 does (lower case, runs of -_. become -)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def split_requirement(line: str) -> tuple[str, str]:
    """Return (distribution name as written, the rest: extras, version specifier, markers) of a PEP 508 line."""
    match = _NAME.match(line)
    if match is None:
        raise ValueError(f"not a requirement: {line!r}")
    return match.group(1), line.strip()[len(match.group(1)) :]


def requirement_name(line: str) -> str:
    """Return the canonical distribution name a PEP 508 requirement line names."""
    return canonical(split_requirement(line)[0])


def requirements(pyproject: Path, extras: list[str], faiss: str) -> list[str]:
    """Return the project's dependencies plus ``extras``, with faiss-cpu swapped for the ``faiss`` build's package."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise ValueError(f"unknown extra {', '.join(unknown)}; pyproject has {', '.join(sorted(optional))}")
    lines = list(project["dependencies"]) + [line for extra in extras for line in optional[extra]]
    wanted = FAISS_PACKAGES[faiss]
    out: list[str] = []
    for line in lines:
        name, rest = split_requirement(line)
        if canonical(name) in FAISS_PACKAGES.values():
            # Both wheels install the module `faiss`: an image gets exactly one, at the version pyproject pins.
            line = wanted + rest
        if line not in out:
            out.append(line)
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the selected requirement lines, one per line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject", type=Path)
    parser.add_argument("--extra", action="append", default=[], help="optional-dependencies group (repeatable)")
    parser.add_argument("--faiss", choices=sorted(FAISS_PACKAGES), default="cpu")
    parser.add_argument("--only", default="", help="comma-separated names: print just these")
    parser.add_argument("--exclude", default="", help="comma-separated names: leave these out")
    args = parser.parse_args(argv)
    lines = requirements(args.pyproject, args.extra, args.faiss)
    only = {canonical(n) for n in args.only.split(",") if n.strip()}
    exclude = {canonical(n) for n in args.exclude.split(",") if n.strip()}
    missing = only - {requirement_name(line) for line in lines}
    if missing:
        parser.error(f"{', '.join(sorted(missing))} not among the dependencies")
    for line in lines:
        name = requirement_name(line)
        if (not only or name in only) and name not in exclude:
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
