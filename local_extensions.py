"""Jinja extensions of the template: the `quoted` filter, the `chosen` test (`{% if answer is
chosen %}`), and answers kept as literal text.

`{{ value | quoted }}` renders a free-text answer as a double-quoted string literal that is
valid, and means the same text, in Python, TOML and YAML alike. Jinja's own `tojson` is not enough: it writes
characters outside the BMP (emoji) as UTF-16 surrogate pairs, which TOML rejects.
"""

import json
import sys
from pathlib import Path

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


def _strings(value: object) -> set[str]:
    if isinstance(value, str):
        return {value}
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return set().union(*map(_strings, items))


# The template's own Jinja: the defaults in cookiecutter.json that derive one answer from others.
TEMPLATE_DEFAULTS = _strings(json.loads((Path(__file__).parent / "cookiecutter.json").read_text()))
JINJA_MARKERS = ("{" + "{", "{" + "%", "{" + "#")


def _rendering_an_answer() -> bool:
    """Whether cookiecutter is rendering an answer (its prompt module's `render_variable`)."""
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__")
        if frame.f_code.co_name == "render_variable" and module == "cookiecutter.prompt":
            return True
        frame = frame.f_back
    return False


class LiteralAnswersExtension(Extension):
    """Answers are text, never templates.

    Cookiecutter renders each answer given on the command line, in a replay file or in a user
    config as a Jinja template (answers typed at a prompt it keeps as typed): a description
    `{{ 7 * 7 }}` became `49`, and a lone `{{` stopped generation with a traceback before any
    hook could explain it. Such an answer is compiled as a template printing the text itself.
    """

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        if name is not None or source in TEMPLATE_DEFAULTS or not any(m in source for m in JINJA_MARKERS):
            return source
        if not _rendering_an_answer():
            return source
        literals = self.environment.globals.setdefault("_literal_answers", [])
        literals.append(source)
        return f"{{{{ _literal_answers[{len(literals) - 1}] }}}}"
