"""Ready-made journeys ("mechanics"): YAML files, each with its message templates in Russian and English, the
cascades its send steps use (by name) and the journey; `journeys.service.install_mechanic` installs one."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from retento.core.errors import DomainError

HERE = Path(__file__).parent


@cache
def _all() -> dict[str, dict[str, Any]]:
    """Every mechanic's YAML, parsed once per process (the files ship with the package and do not change)."""
    return {p.stem.replace("_", "-"): yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(HERE.glob("*.yaml"))}


def names() -> list[str]:
    return sorted(_all())


def load(name: str) -> dict[str, Any]:
    """A mechanic's definition (a copy: the caller may change it)."""
    found = _all().get(name.replace("_", "-"))
    if found is None:
        raise DomainError.one("mechanic", f"unknown mechanic {name!r}; available: {', '.join(names())}")
    return copy.deepcopy(found)
