"""docs/api.md lists every scope an API key can hold (what `--scopes all` grants)."""

from __future__ import annotations

import re
from pathlib import Path

from retento.apikeys.schemas import SCOPES, parse_scopes

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_the_scope_table_lists_every_scope_all_grants():
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("| scope | allows |"):text.index("`--scopes all` grants")]
    listed = re.findall(r"^\| `([a-z]+:[a-z]+)` \|", table, flags=re.M)
    assert listed == list(SCOPES) == parse_scopes("all")
