"""Run plumbing: loggers, callbacks, metrics files."""
