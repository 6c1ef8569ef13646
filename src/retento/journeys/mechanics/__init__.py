"""Ready-made journeys ("mechanics"): YAML files, each with its message templates in Russian and English, the
cascades its send steps use (by name) and the journey; `journeys.service.install_mechanic` installs one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from retento.core.errors import DomainError

HERE = Path(__file__).parent


def names() -> list[str]:
    return sorted(p.stem.replace("_", "-") for p in HERE.glob("*.yaml"))


def load(name: str) -> dict[str, Any]:
    path = HERE / f"{name.replace('-', '_')}.yaml"
    if not path.is_file():
        raise DomainError.one("mechanic", f"unknown mechanic {name!r}; available: {', '.join(names())}")
    return yaml.safe_load(path.read_text(encoding="utf-8"))
