"""Training package of {{ cookiecutter.project_slug }}.

Kept import-free on purpose: `train.py --help` and shell completion must not load torch.
"""
