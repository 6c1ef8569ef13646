"""A trigger definition compiled for the engine: condition program, parsed actions, what data it reads, its guard."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from retento.core.errors import DomainError
from retento.core.registry import Registry
from retento.customers import service as customers
from retento.orders import service as orders
from retento.sites.service import get_site
from retento.triggers import actions as registry, dispatch
from retento.triggers.conditions import Condition, compile_condition
from retento.triggers.schemas import TriggerIn

ORDER_FIELDS = frozenset(orders.FLAT) | {"id", "site", "external_id", "number", "created_at", "status_updated_at",
                                         "status_group"}
CUSTOMER_FIELDS = frozenset(customers.COLUMNS) | {"id", "site_id", "email_confirmed_at", "created_at", "tags",
                                                  "interests", "consents"}
FIELDS = {"order": ORDER_FIELDS, "customer": CUSTOMER_FIELDS}


@dataclass
class Compiled:
    id: int
    name: str
    active: bool
    spec: TriggerIn
    condition: Condition
    actions: list[tuple[registry.ActionSpec, Any]]
    site_ids: frozenset[int] | None
    needs_now: frozenset[str]  # entities the condition (or delay) needs on the event
    needs_fire: frozenset[str] = field(default_factory=frozenset)  # ... at fire time (condition and actions)
    needs_act: frozenset[str] = field(default_factory=frozenset)  # ... for the actions (templates, a webhook body)
    since: datetime | None = None  # events that occurred before the trigger existed are not reacted to
    version: int = 1
    guards: list[dispatch.Guard] = field(default_factory=list)  # `&&` parts it can be indexed on (see dispatch)
    binds: dict[str, frozenset[str] | None] = field(default_factory=dict)  # variable -> fields the condition reads
    debug_until: datetime | None = None  # until then every evaluation gets a run-log entry of its own
    _knowing: dict[int, Compiled] = field(default_factory=dict, repr=False, compare=False)

    def knowing(self, part: int) -> Compiled:
        """The trigger on an event on which part `part` of its condition is known to hold (its guard matched):
        the part is not run again."""
        found = self._knowing.get(part)
        if found is None:
            found = self._knowing[part] = replace(self, condition=self.condition.knowing(part), _knowing={})
        return found

    def debugging(self, now: datetime) -> bool:
        return self.debug_until is not None and now < self.debug_until


def compile_trigger(session: Session | None, spec: TriggerIn, *, actions: Registry[registry.ActionSpec],
                    trigger_id: int = 0, since: datetime | None = None, version: int = 1) -> Compiled:
    """Compile a validated definition with the application's `actions`; DomainError names the wrong part
    (condition, actions.N.x)."""
    try:
        condition = compile_condition(spec.condition, fields=FIELDS)
    except ValueError as exc:
        raise DomainError.one("condition", str(exc)) from None
    parsed = [registry.parse(actions, session, a.type, a.params, prefix=f"actions.{n}.")
              for n, a in enumerate(spec.actions)]
    site_ids = None
    if spec.sites and session is not None:  # a site a site-limited key may not use is a 403 naming `sites.N`
        site_ids = frozenset(get_site(session, code, field=f"sites.{n}").id for n, code in enumerate(spec.sites))
    cond_needs = condition.variables & {"order", "customer"}
    needs_now = cond_needs | ({"customer"} if spec.delay and spec.delay.at else set())
    needs_act = frozenset({"order", "customer"} if any(a.reads is None or a.reads(p) for a, p in parsed) else ())
    binds = {v: condition.fields.get(v) for v in condition.variables & {"event", "order", "customer", "changes"}}
    guards = dispatch.guards_of(text for text, _ in condition.parts)
    return Compiled(trigger_id, spec.name, spec.active, spec, condition, parsed, site_ids, frozenset(needs_now),
                    frozenset(cond_needs) | needs_act, needs_act, since, version, guards, binds)
