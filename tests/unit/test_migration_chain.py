"""The migration chain is one line: one head, and every file's number is its place in the chain (two helpers
landing the same number at once made two heads, which `retento migrate` refuses)."""

from alembic.script import ScriptDirectory

from retento.migrate import alembic_config


def test_one_head_and_numbers_follow_the_chain():
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(scripts.get_heads()) == 1, scripts.get_heads()
    chain = [s.revision for s in reversed(list(scripts.walk_revisions()))]
    recent = [int(r.split("_")[0]) for r in chain[chain.index("0016_console_users"):]]  # older ones predate the rule
    assert recent == list(range(16, 16 + len(recent))), chain
