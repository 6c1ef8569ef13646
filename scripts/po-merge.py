#!/usr/bin/env python3
"""Git merge driver for gettext catalogs (.po / .pot): the union of both sides' messages, so two branches that
each add strings to the sorted catalogs merge without a conflict. Where both sides translate the same msgid
differently, the current side (%A) wins. Registered by `make install` (git config merge.po.driver) and
.gitattributes; compiled .mo files are rebuilt afterwards with `make translations`.

Usage (by git): po-merge.py BASE CURRENT OTHER  - writes the result to CURRENT."""

from __future__ import annotations

import sys

from babel.messages.pofile import read_po, write_po


def _read(path: str):
    with open(path, "rb") as f:
        return read_po(f)


def main(base: str, current: str, other: str) -> int:
    ours, theirs, old = _read(current), _read(other), _read(base)
    for message in theirs:
        if not message.id:
            continue
        mine = ours.get(message.id, message.context)
        if mine is None:
            if old.get(message.id, message.context) is None or message.string:
                ours[message.id] = message  # added on the other side (not one this side deleted on purpose)
        elif not mine.string and message.string:
            mine.string = message.string
    with open(current, "wb") as f:
        write_po(f, ours, sort_output=True, no_location=True, omit_header=current.endswith(".pot"), width=76)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
