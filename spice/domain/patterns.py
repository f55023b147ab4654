"""User-supplied regular expressions, matched in linear time.

Python's `re` backtracks: a pattern such as `(a+)+$` on 30 characters runs for
seconds on the loop that serves every tenant. RE2 guarantees time linear in the
input and refuses what it cannot do that way (backreferences, lookaround), which
is then a 422 naming the field.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

MAX_PATTERN_LENGTH = 1_000
_MAX_PROGRAM_BYTES = 1 << 20  # RE2's memory budget per pattern (its default is 8 MiB)


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _MAX_PROGRAM_BYTES
    return options


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:
    """The compiled pattern, or ValueError with a message fit for the user."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"pattern must be at most {MAX_PATTERN_LENGTH} characters")
    try:
        return re2.compile(pattern, _options())
    except re2.error as error:
        reason = error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else error
        raise ValueError(f"pattern is not a regular expression this service accepts (RE2 syntax: "
                         f"no backreferences or lookaround): {reason}") from None


def pattern_matches(pattern: str, value: str) -> bool:
    return compile_pattern(pattern).fullmatch(value) is not None
