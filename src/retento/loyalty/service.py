"""Loyalty operations. Keyword-only functions that take a session (the caller owns the transaction). Every
change of points is an operation with an idempotency key (unique per account: a replay returns the first
operation and writes nothing), new lots and moves; no ledger row is ever updated. An operation first locks its
account's row (PostgreSQL `FOR UPDATE`), so concurrent charges of one account queue and never overdraw it, while
other accounts' operations go on in parallel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Numeric, and_, bindparam, func, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached

from retento.contacts import normalize_phone
from retento.core import bus
from retento.core.changes import ChangeContext
from retento.core.errors import Conflict, DomainError, NotFound
from retento.customers import queries as customer_queries, service as customers
from retento.loyalty import events as ev, ledger, rules
from retento.loyalty.ledger import ZERO, LotState, Take
from retento.loyalty.models import Account, Lot, Move, Operation, Program, Run
from retento.loyalty.schemas import AccountOut, JoinIn, Kind, LotOut, ProgramIn, ProgramOut, ProgramSettings
from retento.orders import service as orders, snapshots as order_snapshots
from retento.segments import analytics
from retento.segments.schemas import InitiativeIn
from retento.sites.models import Site
from retento.sites.service import get_site, site_code

ACTIVE, BLOCKED, HOLDOUT = "active", "blocked", "holdout"  # holdout: kept out of the program at enrolment


# --- programs ------------------------------------------------------------------------------------------------


def set_program(session: Session, *, site: str, data: ProgramIn, now: datetime) -> Program:
    """Create the site's program or replace its settings (the ledger is kept; new rules apply from now)."""
    site_id = get_site(session, site).id
    program = session.scalar(select(Program).where(Program.site_id == site_id))
    values = {"name": data.name, "currency": data.currency, "active": data.active,
              "settings": data.settings.model_dump(mode="json"), "updated_at": now}
    if program is None:
        program = Program(site_id=site_id, created_at=now, **values)
        session.add(program)
        analytics.record_initiative(session, source="automatic", now=now, data=InitiativeIn(
            site=site, kind="loyalty", name=data.name, started_at=now, idempotency_key=f"loyalty:{site_id}"))
    else:
        for name, value in values.items():
            setattr(program, name, value)
    session.flush()
    return program


def get_program(session: Session, site: str) -> Program:
    program = session.scalar(select(Program).where(Program.site_id == get_site(session, site).id))
    if program is None:
        raise NotFound("site", f"site {site!r} has no loyalty program")
    return program


def list_programs(session: Session) -> list[Program]:
    return list(session.scalars(select(Program).order_by(Program.id)))


def settings_of(program: Program) -> ProgramSettings:
    return ProgramSettings.model_validate(program.settings)


def program_out(session: Session, program: Program) -> ProgramOut:
    return ProgramOut(site=site_code(session, program.site_id), name=program.name, currency=program.currency,
                      active=program.active, settings=settings_of(program), created_at=program.created_at,
                      updated_at=program.updated_at)


# --- accounts ------------------------------------------------------------------------------------------------


def join(session: Session, *, data: JoinIn, ctx: ChangeContext, now: datetime) -> tuple[Account, bool]:
    """The customer's account in the site's program, joining it now if needed (with the welcome bonus and the
    `loyalty_joined` event). Returns (account, created)."""
    program = get_program(session, data.site)
    if not program.active:
        raise Conflict("site", "the site's loyalty program is not active")
    customer_id = data.customer_id or _by_phone(session, get_site(session, data.site), data.phone or "")
    customer = customers.get(session, customer_id)
    if customer.site_id != program.site_id:
        raise NotFound("customer_id", f"customer {customer_id} not found on site {data.site!r}")
    account = session.scalar(select(Account).where(Account.program_id == program.id,
                                                   Account.customer_id == customer_id))
    if account is not None:
        return account, False
    if data.card_number is not None:
        _card_free(session, program.id, data.card_number)
    settings = settings_of(program)
    held = rules.held_out(program.id, customer_id, settings.holdout_share)
    account = Account(program_id=program.id, site_id=program.site_id, customer_id=customer_id,
                      status=HOLDOUT if held else ACTIVE, level=None, card_number=data.card_number,
                      joined_at=now, updated_at=now)
    try:
        with session.begin_nested():
            session.add(account)
            session.flush()
    except IntegrityError:  # the same customer joined concurrently and committed first
        account = session.scalar(select(Account).where(Account.program_id == program.id,
                                                       Account.customer_id == customer_id))
        if account is None:
            raise
        return account, False
    if held:
        return account, True
    account.level = (lv.code if (lv := rules.level_for(settings.levels, ZERO)) else None)
    _emit(session, ev.JOINED, account, ctx, now, {"account_id": account.id, "site": data.site})
    if settings.welcome_bonus > 0:
        active_from, expires_at = rules.lot_times(settings, now, activation=False)
        _write(session, account, Kind.WELCOME, ctx, now, key="welcome", reason="welcome bonus",
               new_lot=(settings.welcome_bonus, active_from, expires_at))
        _emit(session, ev.WELCOME_BONUS, account, ctx, now,
              {"account_id": account.id, "amount": str(ledger.points(settings.welcome_bonus))})
    session.flush()
    return account, True


def _by_phone(session: Session, site: Site, phone: str) -> int:
    try:
        number = normalize_phone(phone, site.default_region)
    except ValueError as exc:
        raise DomainError.one("phone", str(exc)) from None
    found = customer_queries.find_by_contact(session, site_id=site.id, email=None, phone=number)
    if found is None:
        raise NotFound("phone", "no customer of the site has this phone")
    return found.id


def get_account(session: Session, account_id: int) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound("account_id", f"loyalty account {account_id} not found")
    return account


def account_of(session: Session, *, site_id: int, customer_id: int) -> Account | None:
    return session.scalar(select(Account).join(Program, Program.id == Account.program_id)
                          .where(Program.site_id == site_id, Account.customer_id == customer_id))


def _card_free(session: Session, program_id: int, card_number: str, account_id: int | None = None) -> None:
    owner = session.scalar(select(Account.id).where(Account.program_id == program_id,
                                                    Account.card_number == card_number))
    if owner is not None and owner != account_id:
        raise DomainError.one("card_number", "another member of the program has this card")


def find_account(session: Session, *, program_id: int | None = None, card_number: str | None = None,
                 customer_id: int | None = None) -> Account | None:
    """A member by card number or customer (in one program, or any the session sees)."""
    q = select(Account)
    if program_id is not None:
        q = q.where(Account.program_id == program_id)
    if card_number is not None:
        q = q.where(Account.card_number == card_number)
    if customer_id is not None:
        q = q.where(Account.customer_id == customer_id)
    return session.scalars(q.order_by(Account.id).limit(1)).first()


def edit_account(session: Session, *, account: Account, status: str | None = None, card_number: str | None = None,
                 now: datetime) -> Account:
    """Block / unblock an account and set its card number."""
    if card_number is not None and card_number != account.card_number:
        _card_free(session, account.program_id, card_number, account.id)
        account.card_number, account.updated_at = card_number, now
        session.flush()
    if status is not None:
        set_status(session, account=account, status=status, now=now)
    return account


def list_accounts(session: Session, *, program_id: int, after_id: int = 0, limit: int = 50,
                  status: str | None = None) -> list[Account]:
    """The program's accounts with id above `after_id`, oldest first (keyset pages)."""
    q = select(Account).where(Account.program_id == program_id, Account.id > after_id)
    if status:
        q = q.where(Account.status == status)
    return list(session.scalars(q.order_by(Account.id).limit(limit)))


def balances(session: Session, account_ids: Sequence[int], *, now: datetime) -> dict[int, Decimal]:
    """Points usable now of each account, in one query (what is left of its live lots)."""
    if not account_ids:
        return {}
    moved = (select(func.coalesce(func.sum(Move.amount), 0)).where(Move.lot_id == Lot.id)
             .correlate(Lot).scalar_subquery())
    q = (select(Lot.account_id, func.sum(Lot.amount + moved)).where(
        Lot.account_id.in_(account_ids), Lot.active_from <= now,
        (Lot.expires_at.is_(None)) | (Lot.expires_at > now)).group_by(Lot.account_id))
    found = {i: ledger.points(_dec(v)) for i, v in session.execute(q)}
    return {i: found.get(i, ZERO) for i in account_ids}


def set_status(session: Session, *, account: Account, status: str, now: datetime) -> Account:
    """Block (no earning or spending) or unblock an account; its points stay. A holdout stays one."""
    if account.status == HOLDOUT:
        raise Conflict("status", "the customer is in the holdout group, kept out of the program")
    if account.status != status:
        account.status, account.updated_at = status, now
        session.flush()
    return account


def account_out(session: Session, account: Account, *, now: datetime, with_lots: bool = False) -> AccountOut:
    program = session.get(Program, account.program_id)
    assert program is not None
    lots = lot_states(session, account.id)
    out = AccountOut(id=account.id, site=site_code(session, account.site_id), customer_id=account.customer_id,
                     status=account.status, level=account.level, card_number=account.card_number,
                     joined_at=account.joined_at,
                     currency=program.currency, balance=ledger.balance(lots, now), pending=ledger.pending(lots, now),
                     purchases=purchases(session, account.id, since=now - timedelta(
                         days=settings_of(program).level_period_days)))
    if with_lots:
        amounts = {i: a for i, a in session.execute(select(Lot.id, Lot.amount).where(Lot.account_id == account.id))}
        out.lots = [LotOut(id=lot.id, amount=amounts[lot.id], left=ZERO if lot.expired(now) else lot.left,
                           burnt=lot.left if lot.expired(now) else ZERO, active_from=lot.active_from,
                           expires_at=lot.expires_at, order_id=lot.order_id) for lot in lots]
    return out


def lot_states(session: Session, account_id: int, *, live_at: datetime | None = None) -> list[LotState]:
    """The account's lots with what is left of each (of a lot whose time has come: what was left then, which
    burnt); with `live_at`, only the lots live then (what a charge or a balance reads)."""
    rows = session.execute(_LIVE_LOTS if live_at is not None else _LOTS,
                           {"account_id": account_id, "live_at": live_at})
    return [LotState(i, ledger.points(amount + _dec(m)), a, e, o) for i, amount, m, a, e, o in rows]


# the single charge's reads, built once (building, coercing and keying a fresh select cost more Python than
# running it)
_MOVED = select(func.coalesce(func.sum(Move.amount), 0)).where(Move.lot_id == Lot.id).correlate(Lot).scalar_subquery()
_LOTS = (select(Lot.id, Lot.amount, _MOVED, Lot.active_from, Lot.expires_at, Lot.order_id)
         .where(Lot.account_id == bindparam("account_id")).order_by(Lot.id))
_LIVE_LOTS = _LOTS.where(Lot.active_from <= bindparam("live_at"),
                         Lot.expires_at.is_(None) | (Lot.expires_at > bindparam("live_at")))


def _dec(value: Any) -> Decimal:
    return Decimal(repr(value) if isinstance(value, float) else value or 0)


def purchases(session: Session, account_id: int, *, since: datetime) -> Decimal:
    """Completed purchases counted for levels since a time (net of returns)."""
    return ledger.points(_dec(session.scalar(select(func.sum(Operation.purchase)).where(
        Operation.account_id == account_id, Operation.created_at >= since))))


def list_operations(session: Session, *, account_id: int, after_id: int = 0, limit: int = 100) -> list[Operation]:
    get_account(session, account_id)
    return list(session.scalars(select(Operation).where(Operation.account_id == account_id, Operation.id > after_id)
                                .order_by(Operation.id).limit(limit)))


# --- manual credit and charge --------------------------------------------------------------------------------


def credit(session: Session, *, account_id: int, amount: Decimal, reason: str, idempotency_key: str,
           ctx: ChangeContext, now: datetime, expires_in_days: int | None = None,
           active_from: datetime | None = None, expires_at: datetime | None = None) -> Operation:
    """Credit points usable now (or from `active_from`), burning after the program's expiry, `expires_in_days`,
    or at `expires_at`."""
    account, done = _lock_for(session, account_id, idempotency_key, Kind.CREDIT, amount)
    if done is not None:
        return done
    _usable(account)
    settings = settings_of(_program(session, account))
    start = max(active_from or now, now)
    active_from, burns = rules.lot_times(settings, start, activation=False, expires_in_days=expires_in_days)
    if expires_at is not None:
        if expires_at <= start:
            raise DomainError.one("expires_at", "the points must burn after they become usable")
        burns = expires_at
    expires_at = burns
    before = ledger.balance(lot_states(session, account.id, live_at=now), now)
    op = _write(session, account, Kind.CREDIT, ctx, now, key=idempotency_key, reason=reason,
                new_lot=(amount, active_from, expires_at), checked=True)
    _thresholds(session, account, settings, before, before + amount, ctx, now)
    return op


def charge(session: Session, *, account_id: int, amount: Decimal, reason: str, idempotency_key: str,
           ctx: ChangeContext, now: datetime, order_id: int | None = None) -> Operation:
    """Take points from the live lots, oldest first. With `order_id`, the points pay for that order of the
    member: the program's minimum order sum and maximum share apply, and cancelling or returning the order
    gives them back in proportion."""
    account, done = _lock_for(session, account_id, idempotency_key, Kind.CHARGE, -amount)
    if done is not None:
        return done
    _usable(account)
    details = None
    if order_id is not None:
        order = _member_order(session, account, order_id)
        order_sum = rules_order_sum(order)
        already = -sum((o.amount for o in _order_ops(session, account.id, order_id, (Kind.CHARGE, Kind.REFUND))), ZERO)
        rules.check_redeem(settings_of(_program(session, account)), order_sum=order_sum, already=already,
                           amount=amount)
        details = {"order_sum": str(order_sum)}
    at = _burnt_at(session, account, now)
    takes = ledger.charge(lot_states(session, account.id, live_at=at), amount, at)
    return _write(session, account, Kind.CHARGE, ctx, now, key=idempotency_key, reason=reason, takes=takes,
                  order_id=order_id, details=details, checked=True)


def rules_order_sum(order: dict[str, Any]) -> Decimal:
    """What an order's items cost after discounts, before points (what redemption limits and refunds compare)."""
    return ledger.points(sum((paid for _, _, paid in rules.paid_lines(order, ZERO)), ZERO))


def paid_for_order(session: Session, account_id: int, order_id: int) -> Decimal:
    """Points paying for an order now: its charges net of refunds."""
    return -sum((o.amount for o in _order_ops(session, account_id, order_id, (Kind.CHARGE, Kind.REFUND))), ZERO)


def refund_order(session: Session, *, account_id: int, order_id: int, ctx: ChangeContext,
                 now: datetime) -> Decimal:
    """Give back every point paying for an order (the order stays as it is: it earns on its full sum then).
    Asking again changes nothing: the refund is keyed by the order's last charge. Returns the points given back
    (less than was paid when a lot has burnt since)."""
    account = _lock(session, account_id)
    paid = paid_for_order(session, account.id, order_id)
    last = session.scalar(select(func.max(Operation.id)).where(
        Operation.account_id == account.id, Operation.order_id == order_id, Operation.kind == Kind.CHARGE))
    if paid <= 0 or last is None:
        return ZERO
    return _refund(session, account, order_id, paid, ctx, now, f"cancel:{order_id}:{last}")


def _member_order(session: Session, account: Account, order_id: int) -> dict[str, Any]:
    try:
        order = order_snapshots.snapshot(session, orders.get(session, order_id))  # another site's order: not found
    except NotFound:
        order = None
    if order is None or order["customer_id"] != account.customer_id:
        raise NotFound("order_id", f"order {order_id} of this member not found")
    if orders.status_groups(session).get(order["status"]) == "cancel":
        raise DomainError.one("order_id", f"order {order_id} is cancelled")
    return order


# --- orders --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Synced:
    accrued: Decimal = ZERO  # points credited (+) or taken back (-)
    refunded: Decimal = ZERO


def sync_order(session: Session, *, order_id: int, ctx: ChangeContext, now: datetime, key: str) -> Synced | None:
    """Bring a member's points for an order in line with the order as it is now: a completed order earns its
    points (pending for the returns window); a cancelled one has its accrual taken back and the points that paid
    for it given back; a completed order whose sum fell (a return) has both done in proportion. `key` (the
    event's) makes each change once. None when the order is not a member's."""
    order = order_snapshots.snapshots(session, [order_id]).get(order_id)
    if order is None or order["customer_id"] is None:
        return None
    site_id = get_site(session, order["site"]).id
    found = account_of(session, site_id=site_id, customer_id=order["customer_id"])
    if found is None:
        return None
    account = _lock(session, found.id)
    program = _program(session, account)
    group = orders.status_groups(session).get(order["status"])
    if group not in ("complete", "cancel") or not program.active:
        return Synced()
    settings = settings_of(program)
    ops = _order_ops(session, account.id, order_id, tuple(Kind))
    accruals = [o for o in ops if o.kind == Kind.ACCRUAL]
    # points taken back, counting what could not be recovered (spent already): it is not taken back again
    accrued = sum((o.amount - Decimal((o.details or {}).get("not_recovered", 0))
                   for o in ops if o.kind in (Kind.ACCRUAL, Kind.REVERSAL)), ZERO)
    purchased = sum((o.purchase for o in ops), ZERO)
    charges = [o for o in ops if o.kind == Kind.CHARGE]
    paid = -sum((o.amount for o in ops if o.kind in (Kind.CHARGE, Kind.REFUND)), ZERO)
    order_sum = rules_order_sum(order)
    if group == "cancel":
        target, base, kept, detail = ZERO, ZERO, ZERO, {}
    else:
        kept = ledger.points(sum((-c.amount * min(Decimal(1), order_sum / Decimal(c.details["order_sum"]))
                                  for c in charges if Decimal(c.details["order_sum"]) > 0), ZERO))
        # the order keeps the level and time it first earned at
        first = (accruals[0].details or {}) if accruals else {}
        code = first["level"] if "level" in first else account.level
        level = next((lv for lv in settings.levels if lv.code == code), None)
        at = datetime.fromisoformat(first["at"]) if "at" in first else now
        birthday = customers.get(session, account.customer_id).birthday
        e = rules.earned(settings, order=order, level=level, birthday=birthday, redeemed=min(paid, kept), at=at)
        target, base = e.points, e.base
        detail = {**e.detail, "at": at.isoformat()}
        if not accruals and (account.status != ACTIVE or now < account.joined_at):
            target = ZERO  # a blocked member, or an order completed before the customer joined, earns nothing
    result = Synced()
    refund_due = paid - kept
    if refund_due > 0:
        result = Synced(refunded=_refund(session, account, order_id, refund_due, ctx, now, key))
    delta, purchase_delta = target - accrued, base - purchased
    if delta > 0 and purchase_delta >= 0:
        active_from, expires_at = rules.lot_times(settings, now, activation=True)
        _write(session, account, Kind.ACCRUAL, ctx, now, key=f"{key}:accrual", order_id=order_id,
               purchase=purchase_delta, new_lot=(delta, active_from, expires_at),
               details={"order_sum": str(order_sum), **detail})
        result = Synced(delta, result.refunded)
    elif delta < 0 or purchase_delta < 0:
        takes, short = ledger.reverse(lot_states(session, account.id), max(-delta, ZERO),
                                      _burnt_at(session, account, now), order_id=order_id)
        _write(session, account, Kind.REVERSAL, ctx, now, key=f"{key}:reversal", order_id=order_id,
               purchase=purchase_delta, takes=takes, details={"not_recovered": str(short)} if short else None)
        result = Synced(sum((t for _, t in takes), ZERO), result.refunded)
    review_level(session, account=account, settings=settings, ctx=ctx, now=now)
    return result


def _refund(session: Session, account: Account, order_id: int, amount: Decimal, ctx: ChangeContext, now: datetime,
            key: str) -> Decimal:
    held = session.execute(select(Move.lot_id, func.sum(Move.amount)).join(Operation, Operation.id == Move.operation_id)
                           .where(Operation.account_id == account.id, Operation.order_id == order_id,
                                  Operation.kind.in_((Kind.CHARGE, Kind.REFUND))).group_by(Move.lot_id)).tuples()
    taken: list[Take] = [(lot_id, ledger.points(_dec(s))) for lot_id, s in held if _dec(s) < 0]
    back = ledger.refund(taken, amount, lot_states(session, account.id), _burnt_at(session, account, now))
    _write(session, account, Kind.REFUND, ctx, now, key=f"{key}:refund", order_id=order_id, takes=back,
           details={"due": str(amount)})
    return sum((t for _, t in back), ZERO)


def _order_ops(session: Session, account_id: int, order_id: int, kinds: Sequence[str]) -> list[Operation]:
    return list(session.scalars(select(Operation).where(Operation.account_id == account_id,
                                                        Operation.order_id == order_id, Operation.kind.in_(kinds))))


# --- levels --------------------------------------------------------------------------------------------------


def review_level(session: Session, *, account: Account, settings: ProgramSettings, ctx: ChangeContext,
                 now: datetime) -> bool:
    """Move the member to the level its purchases over the period reach (up or down); True if it moved."""
    if not settings.levels:
        return False
    spent = purchases(session, account.id, since=now - timedelta(days=settings.level_period_days))
    level = rules.level_for(settings.levels, spent)
    return change_level(session, account=account, settings=settings, new=level.code if level else None,
                        ctx=ctx, now=now)


def change_level(session: Session, *, account: Account, settings: ProgramSettings, new: str | None,
                 ctx: ChangeContext, now: datetime) -> bool:
    old = account.level
    if new == old:
        return False
    rank = {lv.code: n for n, lv in enumerate(settings.levels)}
    direction = "up" if rank.get(new or "", -1) > rank.get(old or "", -1) else "down"
    account.level, account.updated_at = new, now
    _emit(session, ev.LEVEL_CHANGED, account, ctx, now,
          {"account_id": account.id, "old": old, "new": new, "direction": direction})
    return True


# --- the ledger's writes -------------------------------------------------------------------------------------


def _lock(session: Session, account_id: int) -> Account:
    """The account, its row locked until the transaction ends (PostgreSQL; SQLite has one writer)."""
    account = session.scalar(select(Account).where(Account.id == account_id).with_for_update()
                             .execution_options(populate_existing=True))
    if account is None:
        raise NotFound("account_id", f"loyalty account {account_id} not found")
    return account


def _program(session: Session, account: Account) -> Program:
    program = session.get(Program, account.program_id)
    assert program is not None
    return program


def _usable(account: Account) -> None:
    if account.status == HOLDOUT:
        raise Conflict("account_id", "the customer is in the holdout group, kept out of the program")
    if account.status != ACTIVE:
        raise Conflict("account_id", "the loyalty account is blocked")


def _lock_for(session: Session, account_id: int, key: str, kind: str,
              amount: Decimal) -> tuple[Account, Operation | None]:
    """The account locked as `_lock` does, and the operation already made with this key, if any, in one statement
    (a single charge's first round trip); the same key for another operation is a 409."""
    found = session.execute(_LOCK_FOR, {"account_id": account_id, "key": key}).first()
    if found is None:
        raise NotFound("account_id", f"loyalty account {account_id} not found")
    account, op_id = found
    op = session.get(Operation, op_id) if op_id is not None else None
    if op is not None and (op.kind != kind or op.amount != amount):
        raise Conflict("idempotency_key", "this key was already used for another operation")
    return account, op


EXPIRY_OPEN = "expiry_open"  # an expiry run begun in parts and not yet recorded (`runs.expire_in_parts`)
_BURNT_UNTIL = select(func.max(Run.up_to)).where(Run.program_id == bindparam("program_id"),
                                                 Run.kind.in_(("expiry", EXPIRY_OPEN)))


def _burnt_at(session: Session, account: Account, now: datetime) -> datetime:
    """The time that decides which lots are burnt for a change of this (locked) account: `now`, or the end of
    the program's latest expiry run when that is later. A lot the run burnt has no move of its own (what was
    left of it is what burnt), so a charge, reversal or refund whose `now` was taken before the lot's burn time
    and which got the account's lock only after the run's part committed must not take from it or give to it."""
    until = session.scalar(_BURNT_UNTIL, {"program_id": account.program_id})
    return max(now, until) if until is not None else now


_LOCK_FOR = (select(Account, Operation.id)
             .outerjoin(Operation, and_(Operation.account_id == Account.id,
                                        Operation.idempotency_key == bindparam("key")))
             .where(Account.id == bindparam("account_id")).with_for_update(of=Account.__table__)
             .execution_options(populate_existing=True))


def _write(session: Session, account: Account, kind: str, ctx: ChangeContext, now: datetime, *, key: str,
           reason: str | None = None, order_id: int | None = None, purchase: Decimal = ZERO,
           takes: Sequence[Take] = (), new_lot: tuple[Decimal, datetime, datetime | None] | None = None,
           details: dict[str, Any] | None = None, checked: bool = False) -> Operation:
    """One operation: its moves on existing lots and the lot it credits. Same key again: the first one
    (`checked`: the caller looked for it already, under the account's lock)."""
    if not checked and (existing := session.scalar(select(Operation).where(
            Operation.account_id == account.id, Operation.idempotency_key == key))) is not None:
        return existing
    amount = sum((t for _, t in takes), ZERO) + (new_lot[0] if new_lot else ZERO)
    op = Operation(account_id=account.id, site_id=account.site_id, kind=str(kind), amount=amount, purchase=purchase,
                   order_id=order_id, reason=reason, details=details, idempotency_key=key, source=ctx.source.value,
                   actor_type=ctx.actor_type.value, actor_id=ctx.actor_id, created_at=now)
    moves = [(lot_id, value) for lot_id, value in takes if value != 0]
    if new_lot is None and moves and session.get_bind().dialect.name == "postgresql":
        return _write_moves(session, op, moves)
    session.add(op)
    session.flush()
    session.add_all([Move(lot_id=lot_id, operation_id=op.id, account_id=account.id, site_id=account.site_id,
                          amount=value) for lot_id, value in takes if value != 0])
    if new_lot is not None:
        session.add(Lot(account_id=account.id, site_id=account.site_id, operation_id=op.id, order_id=order_id,
                        amount=new_lot[0], active_from=new_lot[1], expires_at=new_lot[2], created_at=now))
    session.flush()
    return op


_OP_COLUMNS = ("account_id", "site_id", "kind", "amount", "purchase", "order_id", "reason", "details",
               "idempotency_key", "source", "actor_type", "actor_id", "created_at")
# built once, so SQLAlchemy compiles it once (a statement carrying the moves as literal VALUES was compiled anew on
# every charge: 3-4 ms of a 9 ms charge); the moves come as two arrays
_MOVES_SQL = text(
    f"WITH op AS (INSERT INTO loyalty_operations ({', '.join(_OP_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _OP_COLUMNS)}) RETURNING id) "
    "INSERT INTO loyalty_moves (lot_id, operation_id, account_id, site_id, amount) "
    "SELECT t.lot_id, op.id, :account_id, :site_id, t.amount FROM op "
    "CROSS JOIN unnest(CAST(:lot_ids AS BIGINT[]), CAST(:amounts AS NUMERIC[])) AS t(lot_id, amount) "
    "RETURNING operation_id").bindparams(
    *(bindparam(c, type_=Operation.__table__.c[c].type) for c in ("amount", "purchase", "details", "created_at")),
    bindparam("lot_ids", type_=postgresql.ARRAY(BigInteger)), bindparam("amounts", type_=postgresql.ARRAY(Numeric)))


def _write_moves(session: Session, op: Operation, moves: Sequence[Take]) -> Operation:
    """PostgreSQL: an operation that only moves points (a charge, a reversal, a refund) and its moves in one
    statement, one round trip (`WITH op AS (INSERT ... RETURNING id) INSERT INTO loyalty_moves ...`); the
    operation joins the session as the row it is, as a flush would have left it."""
    params = {c: getattr(op, c) for c in _OP_COLUMNS}
    params.update(lot_ids=[lot_id for lot_id, _ in moves], amounts=[amount for _, amount in moves])
    op.id = session.execute(_MOVES_SQL, params).scalars().first()  # a row per move, all of the operation
    make_transient_to_detached(op)
    session.add(op)
    return op


def _thresholds(session: Session, account: Account, settings: ProgramSettings, before: Decimal, after: Decimal,
                ctx: ChangeContext, now: datetime) -> None:
    for threshold in rules.passed(settings.balance_thresholds, before, after):
        _emit(session, ev.BALANCE_PASSED, account, ctx, now,
              {"account_id": account.id, "threshold": str(ledger.points(threshold)), "balance": str(after)})


def _emit(session: Session, type_: str, account: Account, ctx: ChangeContext, now: datetime,
          payload: dict[str, Any]) -> None:
    bus.record(session, [bus.event_row(type_, ctx=ctx, now=now, site_id=account.site_id,
                                       customer_id=account.customer_id, payload=payload)])
