"""Tell the user what to run next; valid Python before and after rendering."""

SLUG = "{{ cookiecutter.project_slug }}"

if __name__ == "__main__":
    print(
        f"\nCreated {SLUG}. Next:\n"
        f"  cd {SLUG}\n"
        "  pip install -e '.[dev]'\n"
        "  python train.py                    # digits + MLP, offline-safe\n"
        "  python train.py +experiment=aplite\n"
    )
