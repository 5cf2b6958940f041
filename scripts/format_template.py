"""Format the template's Python sources the only way ruff can see them: rendered.

Renders the template with its defaults, runs `ruff check --fix` and `ruff format` on the
result, and writes each formatted .py file back to its template source with the default
package name and slug turned back into their Jinja placeholders. A source with any other Jinja
(a line that depends on an answer) cannot be written back that way: it is named, not touched.
Run by `make format`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
SOURCE_DIR = TEMPLATE_DIR / "{{cookiecutter.project_slug}}"
PLACEHOLDERS = {
    "my_ml_project": "{{ cookiecutter.package_name }}",
    "my-ml-project": "{{ cookiecutter.project_slug }}",
}


def has_other_jinja(source: str) -> bool:
    """Whether `source` has Jinja other than the name placeholders, which writing back its
    formatted rendering would lose."""
    for placeholder in PLACEHOLDERS.values():
        source = source.replace(placeholder, "")
    return "{" + "{" in source or "{" + "%" in source


def main() -> int:
    with tempfile.TemporaryDirectory() as out:
        project = Path(cookiecutter(str(TEMPLATE_DIR), no_input=True, output_dir=out))
        subprocess.run([sys.executable, "-m", "ruff", "check", "--fix", "--quiet", "."], cwd=project)
        subprocess.run([sys.executable, "-m", "ruff", "format", "--quiet", "."], cwd=project, check=True)
        for path in sorted(project.rglob("*.py")):
            relative = str(path.relative_to(project)).replace(
                "my_ml_project", "{{cookiecutter.package_name}}"
            )
            text = path.read_text()
            for rendered, placeholder in PLACEHOLDERS.items():
                text = text.replace(rendered, placeholder)
            source = SOURCE_DIR / relative
            original = source.read_text()
            if has_other_jinja(original):
                print(f"left as it is (Jinja beyond the names): {source.relative_to(TEMPLATE_DIR)}")
                continue
            if original != text:
                source.write_text(text)
                print(f"formatted {source.relative_to(TEMPLATE_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
