"""Help that reads as a person writes it: TEXT, INTEGER, PATH, choices as a|b|c, flags without a type, -h, examples."""

from __future__ import annotations

from typing import Any

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "int range": "INTEGER", "float range": "NUMBER",
          "path": "PATH", "file": "FILE", "directory": "FOLDER", "dir": "FOLDER"}  # fmt: skip


def example(command: str) -> str:
    """Return a command's help epilog showing one example invocation."""
    return f"Example: {command}"


def readable_type(raw: str | None, is_flag: bool) -> str | None:
    """Return ``<list[str]>`` as ``TEXT...``, ``<bool>`` flags as nothing, choices as ``a|b|c``."""
    if is_flag or raw is None or raw == "<bool>":  # the help option is a flag click adds by itself
        return None
    inner = raw.strip().removeprefix("<").removesuffix(">").removesuffix("...")
    repeatable = inner.startswith("list[")
    if repeatable:
        inner = inner.removeprefix("list[").removesuffix("]")
    label = inner if "|" in inner else _NAMES.get(inner, inner.upper())
    return f"{label}..." if repeatable else label


def humanize(command: Any) -> None:
    """Rewrite the type column of every parameter under ``command`` (a built typer command tree), in place."""
    for param in command.params:
        original = getattr(param, "display_type_rich", None)
        if original is None:
            continue
        is_flag = bool(getattr(param, "is_flag", False))

        def display(ctx: Any, original: Any = original, is_flag: bool = is_flag) -> str | None:
            return readable_type(original(ctx), is_flag)

        param.display_type_rich = display
    original_help = command.get_help_option

    def help_option(ctx: Any, original_help: Any = original_help) -> Any:
        option = original_help(ctx)
        if option is not None:  # click builds it per context, after the loop above ran
            option.display_type_rich = lambda ctx: None
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        humanize(sub)
