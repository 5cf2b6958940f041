"""What a run shows on the console: a view of its config at the start, a summary at the end.

On a terminal both are `rich` renderings; otherwise (CI, a batch job, output to a file) the same
content is logged as plain lines. train.log always gets the plain lines, and the full resolved
config through `file_log`, which configs/hydra/job_logging/compact.yaml routes to train.log
only.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

log = logging.getLogger(__name__)
# Records of this logger reach train.log, never the console (configs/hydra/job_logging/).
file_log = logging.getLogger(f"{__name__}.file")


def chosen_options(cfg: DictConfig) -> dict[str, str]:
    """The option of each config group (dataset=digits, ...) in the config's order, `none` for a
    group left out, the options with no key of their own (experiments) last."""
    order = list(cfg)
    choices = HydraConfig.get().runtime.choices
    groups = sorted(
        (group for group in choices if group.split("/")[0] != "hydra"),
        key=lambda group: order.index(group) if group in order else len(order),
    )
    return {group: "none" if choices[group] is None else str(choices[group]) for group in groups}


def flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf values of a nested dict by dotted key; lists count as leaves."""
    if not isinstance(node, dict) or not node:
        return {prefix: node}
    return {
        key: value for name, child in node.items() for key, value in flat(child, f"{prefix}{name}.").items()
    }


def changed_values(cfg: DictConfig) -> dict[str, Any]:
    """Values of `cfg` that differ from the composed defaults of its chosen options: what the
    command line and an experiment changed. Without Hydra's composition at hand (a config made
    some other way), the command line's overrides as given."""
    hydra = HydraConfig.get()
    added = {
        override.lstrip("+").partition("=")[0] for override in hydra.overrides.task if override[:1] == "+"
    }
    selections = [
        f"{group}={option}"
        for group, option in chosen_options(cfg).items()
        if group not in added and option != "none"
    ]
    try:
        if not GlobalHydra.instance().is_initialized():
            raise ValueError("no Hydra composition")
        defaults = compose(hydra.job.config_name, overrides=selections)
    except (HydraException, ValueError):
        return dict(override.lstrip("+~").partition("=")[::2] for override in hydra.overrides.task)
    default_values = flat(OmegaConf.to_container(defaults))
    return {
        key.rstrip("."): value
        for key, value in flat(OmegaConf.to_container(cfg)).items()
        if key not in default_values or default_values[key] != value
    }


def log_full_config(cfg: DictConfig, run_dir: Path) -> None:
    file_log.info("Run dir: %s\nConfig:\n%s", run_dir, OmegaConf.to_yaml(cfg, resolve=True))


def show_config(cfg: DictConfig, run_dir: Path, num_params: int) -> None:
    """The chosen options, the model's size, the values changed from defaults and the run dir.
    (In train.log, a record starting "Run dir:" is the full config's: one per process.)"""
    options, changed = chosen_options(cfg), changed_values(cfg)
    lines = [
        "Options: " + " ".join(f"{group}={option}" for group, option in options.items()),
        f"Model: {num_params:,} parameters",
        *(["Changed from the defaults:"] if changed else []),
        *(f"  {key}={value}" for key, value in changed.items()),
        f"Run dir: {run_dir}",
        f"Full config: {run_dir}/.hydra/config.yaml",
    ]
    show(lines, lambda: config_tree(options, changed, num_params, run_dir))


def config_tree(options: dict[str, str], changed: dict[str, Any], num_params: int, run_dir: Path) -> Tree:
    """Each option a branch, holding the values changed under its group; other changes at the root."""
    tree = Tree(f"[bold]Run dir[/] {escape(str(run_dir))}")
    branches = {}
    for group, option in options.items():
        size = f" [dim]({num_params:,} parameters)[/]" if group == "model" else ""
        branches[group] = tree.add(f"[bold]{group}[/] [cyan]{escape(option)}[/]{size}")
    for key, value in changed.items():
        group, _, rest = key.partition(".")
        branch = branches[group] if group in branches and rest else tree
        branch.add(f"[yellow]{escape(rest if branch is not tree else key)}[/] = {escape(str(value))}")
    tree.add(f"[dim]full config: {escape(str(run_dir))}/.hydra/config.yaml[/]")
    return tree


def show_summary(rows: dict[str, str]) -> None:
    """The end of a run: a few labelled lines."""
    width = max(map(len, rows))
    lines = [f"{label + ':':<{width + 1}} {value}" for label, value in rows.items()]

    def table() -> Table:
        grid = Table.grid(padding=(0, 1))
        for label, value in rows.items():
            grid.add_row(f"[bold]{escape(label)}[/]", escape(value))
        return grid

    show(lines, table)


def show(lines: list[str], rich_view: Callable[[], RenderableType]) -> None:
    """`rich_view()` on a terminal and `lines` in train.log; `lines` in both otherwise."""
    if not sys.stdout.isatty():
        log.info("\n".join(lines))
        return
    Console(highlight=False).print(rich_view())
    file_log.info("\n".join(lines))


def print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A table on stdout (not the log: a multirun's last job log, say): `rich` on a terminal wide
    enough for it, aligned plain columns otherwise (which `less -S` scrolls sideways)."""
    widths = [max(map(len, column)) for column in zip(columns, *rows, strict=True)]
    console = Console(highlight=False)
    if sys.stdout.isatty() and sum(widths) + 3 * len(widths) + 1 <= console.width:
        table = Table(title=title, title_justify="left", highlight=False)
        for column in columns:
            table.add_column(escape(column), overflow="fold")
        for row in rows:
            table.add_row(*map(escape, row))
        console.print(table)
        return
    print(title)
    for row in [columns, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
