"""Retento's benchmarks, outside the application: `retento bench ...` (see docs/benchmarks.md).

They need the `bench` extra (`pip install -e '.[bench]'`; `make install` includes it). `EXTRA` names, by import
name, what that extra installs, so `retento bench` can say what is missing without importing it.
"""

EXTRA = ("aiosmtpd", "duckdb")
