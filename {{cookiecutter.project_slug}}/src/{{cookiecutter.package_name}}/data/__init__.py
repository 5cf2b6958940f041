"""Datasets, one module each; configs name them by `_target_`, so only the chosen one is imported."""
