"""Jinja filter and test used by the template: `{{ value | quoted }}`, `{% if answer is chosen %}`.

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


# The same rule as hooks/post_gen_project.py's `chosen`, which prunes the files of these parts.
OFF_ANSWERS = {"false", "no", "n", "0", "off", "none", ""}


def chosen(value: object) -> bool:
    """An answer as a switch: a JSON boolean, the text the command line and cruft may hand over
    instead ("True", "false"), or a choice whose "none" means off (ci)."""
    return value if isinstance(value, bool) else str(value).strip().lower() not in OFF_ANSWERS


class QuotedExtension(Extension):
    def __init__(self, environment):
        super().__init__(environment)
        environment.filters["quoted"] = quoted
        environment.tests["chosen"] = chosen
