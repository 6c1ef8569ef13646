"""Ready-made triggers: YAML files with parameters (`${name}`), installed with one command."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from retento.core.errors import DomainError

HERE = Path(__file__).parent
_WHOLE = re.compile(r"^\$\{(\w+)\}$")
_PART = re.compile(r"\$\{(\w+)\}")


def names() -> list[str]:
    return sorted(p.stem.replace("_", "-") for p in HERE.glob("*.yaml"))


def load(name: str) -> dict[str, Any]:
    path = HERE / f"{name.replace('-', '_')}.yaml"
    if not path.is_file():
        raise DomainError.one("template", f"unknown template {name!r}; available: {', '.join(names())}")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def render(name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trigger definition of a template with its parameters filled in (defaults for those not given)."""
    template = load(name)
    declared = template.get("params", {})
    for key in params or {}:
        if key not in declared:
            raise DomainError.one(f"params.{key}", f"template {name!r} has no parameter {key!r}; "
                                                   f"parameters: {', '.join(declared)}")
    values = {k: spec.get("default") for k, spec in declared.items()} | dict(params or {})
    return _fill(template["trigger"], values)


def _fill(node: Any, values: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {k: _fill(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill(v, values) for v in node]
    if isinstance(node, str):
        whole = _WHOLE.match(node)
        if whole:
            return values[whole.group(1)]  # keeps the type: numbers stay numbers
        return _PART.sub(lambda m: str(values[m.group(1)]), node)
    return node
