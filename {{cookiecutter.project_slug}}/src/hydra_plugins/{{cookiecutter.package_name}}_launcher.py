"""Hydra instantiates launchers only from the `hydra_plugins` namespace package, so the project's
launcher is declared here; `configs/hydra/launcher/joblib.yaml` names it, and its code is in
`{{ cookiecutter.package_name }}.parallel_jobs`."""

from {{ cookiecutter.package_name }} import parallel_jobs


class JoblibLauncher(parallel_jobs.JoblibLauncher):
    """hydra-joblib-launcher's launcher, keeping failed jobs listed and Ctrl-C clean."""
