"""Test a checkpoint: `python eval.py ckpt_path=logs/runs/<date>/<time>/checkpoints/best.ckpt`."""

from {{ cookiecutter.package_name }}.cli import evaluate

if __name__ == "__main__":
    evaluate()
