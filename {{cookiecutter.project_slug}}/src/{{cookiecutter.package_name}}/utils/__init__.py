"""Run plumbing, one concern per module: loggers, callbacks, figures (`report`), metrics.json,
the run record, the console, CPU threads, fault tolerance{{ ', Optuna pruning' if cookiecutter.include_optuna is chosen else '' }} and DDP child ranks."""
