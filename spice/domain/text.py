"""Multilingual text: a plain string or a map of language to text, stored as given."""
from __future__ import annotations

MultiText = str | dict[str, str]
FALLBACK_LANGUAGES = ("en", "ko")


def normalise_language(tag: str) -> str:
    """`ko-KR` and `KO` both mean `ko`: the primary subtag is what labels are keyed by."""
    return tag.strip().split("-")[0].split("_")[0].lower()


def pick(text: MultiText | None, language: str | None = None) -> str | None:
    """Requested language, then en, then ko, then any."""
    if text is None or isinstance(text, str):
        return text
    if not text:
        return None
    by_language = {normalise_language(k): v for k, v in text.items()}
    order = ([normalise_language(language)] if language else []) + list(FALLBACK_LANGUAGES)
    for lang in order:
        if lang in by_language:
            return by_language[lang]
    return next(iter(text.values()))


def all_texts(text: MultiText | None) -> list[str]:
    if text is None:
        return []
    return [text] if isinstance(text, str) else list(text.values())


def text_problem(text: object) -> str | None:
    if text is None or isinstance(text, str):
        return None
    if isinstance(text, dict):
        for lang, value in text.items():
            if not isinstance(lang, str) or not lang.strip():
                return "language keys must be non-empty strings"
            if not isinstance(value, str):
                return f"text for language '{lang}' must be a string"
        return None
    return "must be a string or a map of language to string"
