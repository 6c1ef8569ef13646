"""Loyalty programs: accounts, an append-only points ledger (operations, lots, moves), levels, accrual on completed
orders, expiry, redemption. See docs/loyalty.md."""
