"""Text from outside, made safe where it lands: one place for every edge and every output.

Two different jobs:

- `clean` / `clean_tree` normalise text as it comes in (webhook and API bodies, forms):
  a lone surrogate (valid in JSON as "\\ud800", not encodable as UTF-8) becomes U+FFFD and
  NUL becomes U+FFFD too. PostgreSQL refuses NUL in text and JSONB while SQLite stores it,
  and a lone surrogate stored anywhere later kills every UTF-8 encode of the row (the API's
  JSON, `escalator show`, a page). Replacing both at the edge makes the two backends accept
  exactly the same input and keeps stored text encodable.
- `escape` makes a value safe for a terminal or a line-oriented log: control characters
  (C0, DEL, C1, and the bidirectional overrides that reorder what a reader sees) are shown
  as `\\n`, `\\x1b`, `\\u202e`, so an alert name cannot move the cursor, recolour the
  terminal or forge a second `[escalator] PAGE` line. `one_line` folds text for a header
  (an e-mail subject); `slack` escapes Slack's markup characters.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"

# Lone surrogates and NUL: not storable the same way on both backends.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# What must never reach a terminal raw: C0 controls, DEL, C1 controls, bidi overrides and
# isolates, the line and paragraph separators (some terminals and editors break lines there).
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def clean(text: str) -> str:
    """`text` with lone surrogates and NUL replaced by U+FFFD (see the module docstring)."""
    if _UNSTORABLE.search(text) is None:
        return text
    return _UNSTORABLE.sub(REPLACEMENT, text)


def clean_tree(value: Any) -> Any:
    """`clean` applied to every string (keys too) in parsed JSON."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(k) if isinstance(k, str) else k: clean_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_tree(v) for v in value]
    return value


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(value: object) -> str:
    """`value` as text with every control character shown as an escape, never interpreted:
    for terminals (`serve`'s console channel, `list`, `show`) and log lines."""
    text = value if isinstance(value, str) else str(value)
    text = clean(text)
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(_visible, text)


def escape_lines(text: str) -> str:
    """Like `escape`, but keeps the line structure of text that has one (a rendered notice
    or `show`'s block): each line is escaped, the line breaks themselves stay."""
    return "\n".join(escape(line) for line in text.replace("\r\n", "\n").split("\n"))


def one_line(value: str) -> str:
    """Fold `value` onto one line for a header (an e-mail subject): runs of whitespace,
    line breaks included, become one space; other control characters are dropped."""
    text = clean(value).replace(REPLACEMENT, "?")
    text = re.sub(r"[\s\x85\u2028\u2029]+", " ", text)
    return _CONTROL.sub("", text).strip()


def slack(value: str) -> str:
    """Slack's mrkdwn escaping: `&`, `<` and `>` (so `<!channel>` or `<https://x|y>` in an
    alert's text shows as typed and notifies nobody)."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
