"""Errors the service layer raises; every entry point turns them into a clear message naming the field."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError


@dataclass
class FieldError:
    field: str
    reason: str


@dataclass
class DomainError(Exception):
    """Bad input: one or more fields with a reason each. Nothing was stored."""

    errors: list[FieldError] = field(default_factory=list)
    status: int = 400

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @classmethod
    def one(cls, field_name: str, reason: str) -> DomainError:
        return cls([FieldError(field_name, reason)])

    @classmethod
    def from_pydantic(cls, exc: ValidationError, prefix: str = "", *, indexed: bool = False) -> DomainError:
        """`indexed`: the input was a list, so the first part of each location is an index, shown as `[n]`."""
        out = []
        for err in exc.errors():
            parts = [str(p) for p in err["loc"] if p != "[key]"]
            if indexed and parts:
                parts[0] = f"[{parts[0]}]"
            loc = ".".join(parts)
            msg = err["msg"].removeprefix("Value error, ")
            out.append(FieldError(f"{prefix}{loc}" if loc else prefix.rstrip(".") or "body", msg))
        return cls(out)

    @property
    def message(self) -> str:
        return "; ".join(f"{e.field}: {e.reason}" for e in self.errors)

    def as_dict(self) -> dict[str, str]:
        return {e.field: e.reason for e in self.errors}


class NotFound(DomainError):
    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__([FieldError(field_name, reason)], status=404)


class Conflict(DomainError):
    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__([FieldError(field_name, reason)], status=409)
