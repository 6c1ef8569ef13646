"""Grounded AI assist for support: imported past tickets, documentation sections and development tasks, searched by
vectors and BM25 together; similar tickets, suggested answers with sources, live documentation links, task
matching, near-duplicates, a shop's industry; the grounding guard; evaluation and usage (docs/assist.md)."""
