"""Readable, stable ids derived from labels, for clients that only give labels.

The rule (docs/bff.md repeats it for clients):
1. Take the label in the request's language (else the domain fallback order).
2. Romanise it: Hangul by the Revised Romanization of Korean, syllable by syllable
   (사람 → saram, 생년월일 → saengnyeonwolil; no sound-change rules, so the
   result is predictable from the spelling); every other script through anyascii
   (Москва → Moskva, 東京 → DongJing, Straße → Strasse).
3. Keep letters and digits; words become PascalCase for a class (birth place →
   BirthPlace) and snake_case for a property or predicate (birth place →
   birth_place). A result that does not start with a letter gets a prefix
   (C for classes, p_ for properties); an empty one becomes Class / property.
4. Cut at 60 characters; if the id is taken in the database (or class), add 2,
   3, ... (Saram, Saram2; birth_date, birth_date_2).
The same label and the same existing ids always give the same id.
"""
from __future__ import annotations

import re
from collections.abc import Collection

from anyascii import anyascii

HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3
INITIALS = ("g", "kk", "n", "d", "tt", "r", "m", "b", "pp", "s", "ss", "", "j", "jj",
            "ch", "k", "t", "p", "h")
MEDIALS = ("a", "ae", "ya", "yae", "eo", "e", "yeo", "ye", "o", "wa", "wae", "oe", "yo",
           "u", "wo", "we", "wi", "yu", "eu", "ui", "i")
FINALS = ("", "k", "k", "k", "n", "n", "n", "t", "l", "k", "m", "l", "l", "l", "p", "l",
          "m", "p", "p", "t", "t", "ng", "t", "t", "k", "t", "p", "t")
MAX_LENGTH = 60


def _hangul_syllable(char: str) -> str:
    index = ord(char) - HANGUL_FIRST
    initial, rest = divmod(index, 21 * 28)
    medial, final = divmod(rest, 28)
    return INITIALS[initial] + MEDIALS[medial] + FINALS[final]


def romanise(text: str) -> str:
    """ASCII rendering of any label; a Hangul word stays one word (사람 → saram)."""
    out: list[str] = []
    for char in text:
        if HANGUL_FIRST <= ord(char) <= HANGUL_LAST:
            out.append(_hangul_syllable(char))
        else:
            # anyascii capitalises the syllables of CJK text ("DongJing"); keep it, it
            # marks the syllable boundaries in the word.
            out.append(anyascii(char))
    return "".join(out)


def _words(label: str) -> list[str]:
    return [w for w in re.split(r"[^A-Za-z0-9]+", romanise(label)) if w]


def _unique(base: str, taken: Collection[str], separator: str) -> str:
    base = base[:MAX_LENGTH]
    if base not in taken:
        return base
    n = 2
    while f"{base}{separator}{n}" in taken:
        n += 1
    return f"{base}{separator}{n}"


def class_id_from_label(label: str, taken: Collection[str] = ()) -> str:
    words = _words(label)
    base = "".join(w[:1].upper() + w[1:] for w in words) or "Class"
    if not base[0].isalpha():
        base = "C" + base
    return _unique(base, taken, "")


def property_name_from_label(label: str, taken: Collection[str] = ()) -> str:
    words = _words(label)
    base = "_".join(_snake(w) for w in words) or "property"
    if not (base[0].isalpha() or base[0] == "_"):
        base = "p_" + base
    return _unique(base, taken, "_")


def _snake(word: str) -> str:
    # "DongJing" → "dong_jing", "birthDate" → "birth_date"; digits stay attached.
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", word).lower()
