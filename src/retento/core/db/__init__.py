"""The database layer: types, engine, transactions, locks, bulk statements, change log."""
