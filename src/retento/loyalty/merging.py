"""Loyalty when duplicate customers are merged (`customers.merging`): a merged customer's account becomes the kept
customer's, ledger and all, where the kept customer has none in that program. Two accounts of one program are
refused: a ledger is append-only and its lots keep their own expiry and pending dates, so two of them do not
add up to one without rewriting history."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from retento.core.errors import Conflict
from retento.customers.merges import Merge
from retento.loyalty.models import Account

A = Account.__table__


def merge_customers(session: Session, merge: Merge) -> dict[str, int]:
    accounts: dict[int, list[tuple[int, int]]] = defaultdict(list)  # program -> [(customer, account)]
    for account_id, program_id, customer_id in session.execute(
            select(A.c.id, A.c.program_id, A.c.customer_id).where(A.c.customer_id.in_(merge.all_ids))
            .order_by(A.c.id).with_for_update()):
        accounts[program_id].append((customer_id, account_id))
    for program_id, owners in sorted(accounts.items()):
        if len(owners) > 1:
            who = ", ".join(f"customer {c} (account {a})" for c, a in sorted(owners))
            raise Conflict("merge", f"{who} each have an account in loyalty program {program_id}; two ledgers "
                                    "cannot be merged into one: merge customers of whom at most one is a member")
    return {"loyalty_accounts": merge.move(session, A, updated_at=merge.now)}
