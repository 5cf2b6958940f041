"""Train a model: `python train.py [overrides]`, e.g. `python train.py +experiment=aplite`."""

from {{ cookiecutter.package_name }}.cli import train

if __name__ == "__main__":
    train()
