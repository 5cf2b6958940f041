"""Jinja filter used by the template: `{{ value | quoted }}`.

It renders a free-text answer as a double-quoted string literal that is valid, and means the
same text, in Python, TOML and YAML alike. Jinja's own `tojson` is not enough: it writes
characters outside the BMP (emoji) as UTF-16 surrogate pairs, which TOML rejects.
"""

import json

from jinja2.ext import Extension


def quoted(value: object) -> str:
    """Return `value` as a double-quoted literal; non-printable characters become escapes."""
    text = json.dumps(str(value), ensure_ascii=False)[1:-1]
    escaped = "".join(
        ch if ch.isprintable() else (f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        for ch in text
    )
    return f'"{escaped}"'


class QuotedExtension(Extension):
    def __init__(self, environment):
        super().__init__(environment)
        environment.filters["quoted"] = quoted
