"""`spice config`: every setting with its environment name, its value in this
environment (secrets masked), its default and its bounds; `--markdown` prints the
reference table of docs/configuration.md."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

from spice.settings import PROJECT_ROOT, Settings

BOUNDS = (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"))


def shown(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "(set)" if value.get_secret_value() else "(unset)"
    if isinstance(value, Path):
        for base, name in ((PROJECT_ROOT, "<project>"), (PROJECT_ROOT.parent, "<project>/..")):
            if value.is_relative_to(base):
                return f"{name}/{value.relative_to(base)}"
        return str(value).replace(str(Path.home()), "~")
    return str(value)


def bounds(name: str) -> str:
    field = Settings.model_fields[name]
    out = []
    for rule in field.metadata:
        out += [f"{symbol} {getattr(rule, attr)}" for attr, symbol in BOUNDS
                if getattr(rule, attr, None) is not None]
        if getattr(rule, "pattern", None):
            out.append(f"`{rule.pattern}`")
    annotation = str(field.annotation)
    if "Literal[" in annotation:
        out.append("one of " + annotation.split("Literal[", 1)[1].rstrip("]").replace("'", ""))
    return ", ".join(out)


def rows(settings: Settings | None) -> list[tuple[str, str, str, str]]:
    table = []
    for name, field in Settings.model_fields.items():
        current = shown(getattr(settings, name)) if settings is not None else ""
        table.append((name.upper(), current, shown(field.default), bounds(name)))
    return table


def markdown() -> str:
    lines = ["| Variable | Default | Bounds |", "|---|---|---|"]
    lines += [f"| `{name}` | `{default}` | {rule} |" for name, _, default, rule in rows(None)]
    return "\n".join(lines)


def effective(settings: Settings) -> str:
    table = rows(settings)
    width = max(len(name) for name, *_ in table)
    return "\n".join(f"{name:<{width}}  {current}" + ("" if current == default else f"   (default {default})")
                     for name, current, default, _ in table)
