"""Words of a text for the lexical index: lower-cased, split on letters and digits, stemmed with the Russian or
the English Snowball stemmer by the word's script (a ticket may mix both)."""

from __future__ import annotations

import re
from functools import lru_cache

import snowballstemmer

_WORD = re.compile(r"[0-9a-zа-яё]+", re.IGNORECASE)
_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
_RU = snowballstemmer.stemmer("russian")
_EN = snowballstemmer.stemmer("english")
STOP = frozenset(
    "a an and are as at be but by can do does for from has have how i if in is it its me my no not of on or our "
    "so that the their them there this to was we what when where which who why will with you your "
    "а без бы в во вы да для до его ее её если же за и из или им их к как ко ли мне мы на не нет но о об "
    "он она они от по при с со так то у уже что чтобы это я".split())


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    return (_RU if _CYRILLIC.search(word) else _EN).stemWord(word)


def words(text: str) -> list[str]:
    """The stemmed words of `text` without stop words."""
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in STOP and (len(w) > 1 or w.isdigit())]


def language(text: str) -> str:
    """`ru` when most letters are Cyrillic, else `en`."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "en"
    cyr = sum(1 for c in letters if _CYRILLIC.match(c))
    return "ru" if cyr * 2 >= len(letters) else "en"
