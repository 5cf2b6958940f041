"""Run plumbing, one concern per module: loggers, callbacks, figures (`report`), metrics.json,
the run record, the console, CPU threads, fault tolerance, Optuna pruning and DDP child ranks."""
