"""Print the generated project's layout as a tree, from a real rendering with the defaults.

`python scripts/readme_layout.py --write` puts it into README.md between the layout markers;
tests/test_template_readme.py checks that the README's tree is what a rendering gives.
A folder holding only files is one line listing them, so the tree stays readable.
"""

from __future__ import annotations

import sys
import tempfile
import textwrap
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
README = TEMPLATE_DIR / "README.md"
START, END = "<!-- layout: scripts/readme_layout.py -->\n```text\n", "```\n<!-- end of layout -->"
WIDTH = 100


def entries(directory: Path) -> list[Path]:
    """Files first, then folders, each sorted by name; no bytecode caches."""
    found = [p for p in directory.iterdir() if p.name != "__pycache__"]
    return sorted(found, key=lambda p: (p.is_dir(), p.name))


def tree(project: Path) -> str:
    lines = [f"{project.name}/"]

    def walk(directory: Path, prefix: str) -> None:
        children = entries(directory)
        for index, child in enumerate(children):
            last = index == len(children) - 1
            branch, indent = ("└── ", "    ") if last else ("├── ", "│   ")
            if child.is_file():
                lines.append(f"{prefix}{branch}{child.name}")
            elif all(grandchild.is_file() for grandchild in entries(child)):
                head = f"{prefix}{branch}{child.name}/  "
                names = ", ".join(grandchild.name for grandchild in entries(child))
                pad = " " * (len(head) - len(prefix) - len(indent))
                wrapped = textwrap.wrap(names, WIDTH - len(head), break_on_hyphens=False)
                lines.append(head + wrapped[0])
                lines.extend(f"{prefix}{indent}{pad}{line}" for line in wrapped[1:])
            else:
                lines.append(f"{prefix}{branch}{child.name}/")
                walk(child, prefix + indent)

    walk(project, "")
    return "\n".join(lines) + "\n"


def rendered_tree(**answers: object) -> str:
    from cookiecutter.main import cookiecutter

    with tempfile.TemporaryDirectory() as out:
        return tree(
            Path(cookiecutter(str(TEMPLATE_DIR), no_input=True, output_dir=out, extra_context=answers))
        )


def readme_tree(text: str) -> str:
    return text.split(START, 1)[1].split(END, 1)[0]


def main() -> int:
    layout = rendered_tree()
    if "--write" in sys.argv:
        text = README.read_text()
        before, rest = text.split(START, 1)
        README.write_text(before + START + layout + END + rest.split(END, 1)[1])
    else:
        print(layout, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
