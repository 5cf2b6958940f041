"""Hyperparameter search with Optuna; stop it any time and run the same command to continue.

    python -m {{ cookiecutter.package_name }}.search hparams_search=digits_mlp [overrides for every trial]
        [--trials N] [--workers N] [--storage URL] [--fresh]

The search space, sampler and pruner are in configs/hparams_search/<name>.yaml (or any .yaml file
given as hparams_search=<path>); parameters are train.py's own config keys and groups, checked
against the config before the first trial. The objective is what train.py returns:
`monitor.metric` from the trial's metrics.json, maximized or minimized as `monitor.mode` says.

Each trial is `python train.py <overrides> <parameters>` in its own process and run dir,
<study dir>/trial-<number>. The training reports `monitor.metric` to its Optuna trial after every
validation, through the study's storage (utils/pruning.py), and stops when the pruner says so:
the trial is then PRUNED. A trial that fails is recorded as FAIL with its error line, and the
search goes on.

The study lives in a storage: SQLite in the study dir, logs/searches/<name>-<hash>/study.db, by
default (the hash is of the search file and the overrides, so the same command finds it again),
or any SQLAlchemy URL (--storage postgresql://...), which runners on several machines can share.
`--workers N` runs N trials at once; every runner on a study counts the study's trials, so the
total stays --trials, whatever runs them. Ctrl-C, SIGTERM or SIGHUP is passed on to the running
trials, which save their last.ckpt; each is recorded as failed and queued again, so the same
command continues: finished trials are kept and the interrupted ones resume from their last.ckpt.
A runner that dies without a word (SIGKILL, a lost machine) stops its trials' heartbeats, and
the next runner fails and queues them again the same way.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .agent_args import hydra_overrides, is_group
from .errors import Interrupted, UsageError
from .paths import composed_config, config_dir
from .trials import (
    FINISHED,
    SignalForwarder,
    check_parameter_names,
    digest,
    format_table,
    last_error_line,
    lock,
    rank,
    resumed_or_fresh,
    run_reporting_errors,
    run_trial,
    set_aside,
    write_json_atomically,
)
from .utils.threads import PARALLEL_JOBS_ENV

if TYPE_CHECKING:
    import optuna

SEARCH_GROUP = "hparams_search"
INSTALL_HINT = "pip install -e '.[optuna]'"
STUDY_FILE = "study.db"
RESULTS_FILE = "results.json"
# How a training process finds its trial and the pruner, for pruning (utils/pruning.py).
STORAGE_ENV, STUDY_ENV, TRIAL_ENV = "OPTUNA_STORAGE", "OPTUNA_STUDY", "OPTUNA_TRIAL_ID"
PRUNER_ENV = "OPTUNA_PRUNER"
# Trial user attributes: where it runs, how its process ended, and the epoch it was pruned at.
RUN_DIR, OUTCOME, ERROR, PRUNED_AT, SURPLUS = "run_dir", "outcome", "error", "pruned_at_epoch", "surplus"
SEARCH_KEYS = {"study_name", "n_trials", "sampler", "pruner", "params", "enqueue_trials", "heartbeat_seconds"}
# GridSampler and BruteForceSampler end a study with Study.stop, which works only inside
# Study.optimize; this runner drives the study with ask and tell.
SAMPLERS = {"tpe": "TPESampler", "random": "RandomSampler", "qmc": "QMCSampler", "gp": "GPSampler"}
PRUNERS = {
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "hyperband": "HyperbandPruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "threshold": "ThresholdPruner",
    "none": "NopPruner",
}
DISTRIBUTIONS = {
    "float": "FloatDistribution",
    "int": "IntDistribution",
    "categorical": "CategoricalDistribution",
}
# A trial whose runner vanished is failed after two missed heartbeats, then queued again.
HEARTBEAT_SECONDS = 30
MAX_RETRIES = 3


# The search file --------------------------------------------------------------------------------


@dataclass
class SearchSpec:
    path: Path
    raw: dict[str, Any]

    @property
    def params(self) -> dict[str, dict[str, Any]]:
        return self.raw["params"]

    @property
    def n_trials(self) -> int:
        return self.raw.get("n_trials", 20)


def search_file(value: str) -> Path:
    """configs/hparams_search/<value>.yaml, or `value` itself if it names a .yaml file."""
    if value.endswith((".yaml", ".yml")):
        return Path(value)
    options = sorted(path.stem for path in (Path(config_dir()) / SEARCH_GROUP).glob("*.yaml"))
    if value not in options:
        from .failures import did_you_mean

        raise UsageError(
            f"{SEARCH_GROUP}={value}: no such option;{did_you_mean(value, options)} choices: "
            f"{', '.join(options)} (or the path of a .yaml file)"
        )
    return Path(config_dir()) / SEARCH_GROUP / f"{value}.yaml"


def load_search(path: Path) -> SearchSpec:
    """The search file, its parameters and settings checked: UsageError with one line if not usable."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise UsageError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from error
    if not isinstance(raw, dict) or not isinstance(raw.get("params"), dict) or not raw["params"]:
        raise UsageError(f"{path}: expected a mapping with `params:` (parameter: distribution)")
    if unknown := sorted(set(raw) - SEARCH_KEYS):
        raise UsageError(f"{path}: unknown setting {unknown[0]}; settings: {', '.join(sorted(SEARCH_KEYS))}")
    spec = SearchSpec(path, raw)
    if not isinstance(spec.n_trials, int) or spec.n_trials < 1:
        raise UsageError(f"{path}: n_trials={spec.n_trials!r}: must be an integer >= 1")
    distributions(spec)
    enqueued_trials(spec)
    build_sampler(spec)
    build_pruner(raw.get("pruner"), where=str(path))
    return spec


def choice_value(choice: Any) -> Any:
    """A categorical choice as Optuna stores it: a list or mapping as its override text."""
    if isinstance(choice, list | dict):
        return json.dumps(choice).replace('"', "'")
    return choice


def override_value(value: Any) -> str:
    """A parameter value as train.py's command line writes it; strings go as written."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(value) if isinstance(value, str) else repr(value)


def distributions(spec: SearchSpec) -> dict[str, optuna.distributions.BaseDistribution]:
    """Each parameter's Optuna distribution, from `{type: float|int|categorical, ...}`."""
    import optuna.distributions

    result = {}
    for name, settings in spec.params.items():
        where = f"{spec.path}: parameter {name}"
        if not isinstance(settings, dict) or settings.get("type") not in DISTRIBUTIONS:
            raise UsageError(f"{where}: expected a mapping with type: {', '.join(DISTRIBUTIONS)}")
        kwargs = {key: value for key, value in settings.items() if key != "type"}
        if settings["type"] == "categorical" and isinstance(kwargs.get("choices"), list):
            kwargs["choices"] = [choice_value(choice) for choice in kwargs["choices"]]
        for bound in ("low", "high"):
            if bound in kwargs and not isinstance(kwargs[bound], int | float):
                raise UsageError(f"{where}: {bound}={kwargs[bound]!r}: not a number (write 1.0e-5, not 1e-5)")
        try:
            result[name] = getattr(optuna.distributions, DISTRIBUTIONS[settings["type"]])(**kwargs)
        except (TypeError, ValueError) as error:
            raise UsageError(f"{where}: {error}") from None
    return result


def enqueued_trials(spec: SearchSpec) -> list[dict[str, Any]]:
    """`enqueue_trials`: parameter values to try first (a baseline, known good settings), each
    a mapping of some parameters; the sampler proposes the others."""
    trials = spec.raw.get("enqueue_trials") or []
    space = distributions(spec)
    for values in trials if isinstance(trials, list) else [trials]:
        if not isinstance(values, dict) or not set(values) <= set(space):
            raise UsageError(
                f"{spec.path}: enqueue_trials: expected a list of mappings of parameters to values"
            )
        for name, value in values.items():
            try:
                space[name].to_internal_repr(choice_value(value))
            except ValueError as error:
                raise UsageError(f"{spec.path}: enqueue_trials: {name}={value!r}: {error}") from None
    return [{name: choice_value(value) for name, value in values.items()} for values in trials]


def build_sampler(spec: SearchSpec) -> optuna.samplers.BaseSampler:
    """The sampler the file names (seeded TPE by default), with its own arguments."""
    import optuna.samplers

    settings = dict(spec.raw.get("sampler") or {"type": "tpe"})
    kind = settings.pop("type", "tpe")
    if kind not in SAMPLERS:
        raise UsageError(f"{spec.path}: sampler type {kind!r}: must be one of {', '.join(SAMPLERS)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return getattr(optuna.samplers, SAMPLERS[kind])(**settings)
    except (TypeError, ValueError) as error:
        raise UsageError(f"{spec.path}: sampler {kind}: {error}") from None


def build_pruner(settings: dict[str, Any] | None, where: str) -> optuna.pruners.BasePruner:
    """The pruner from `{type: median|..., <its arguments>}`; null for none. The training
    process builds the same one from $OPTUNA_PRUNER (utils/pruning.py)."""
    import optuna.pruners

    settings = dict(settings or {"type": "none"})
    kind = settings.pop("type", None)
    if kind not in PRUNERS:
        raise UsageError(f"{where}: pruner type {kind!r}: must be one of {', '.join(PRUNERS)}")
    try:
        return getattr(optuna.pruners, PRUNERS[kind])(**settings)
    except (TypeError, ValueError) as error:
        raise UsageError(f"{where}: pruner {kind}: {error}") from None


def check_parameters(spec: SearchSpec, overrides: list[str]) -> None:
    """Every parameter a config key or group, and every option of a swept group composes."""
    options = {
        name: [
            hydra_overrides([f"{name}={override_value(choice)}"]) for choice in settings.get("choices", [])
        ]
        if is_group(name)
        else []
        for name, settings in spec.params.items()
    }
    check_parameter_names(str(spec.path), options, overrides)


def objective(overrides: list[str]) -> tuple[str, str]:
    """`monitor.metric` and Optuna's direction for it, from the config every trial composes."""
    monitor = composed_config(hydra_overrides(overrides)).monitor
    return str(monitor.metric), "maximize" if monitor.mode == "max" else "minimize"


# The study --------------------------------------------------------------------------------------


def identity(spec: SearchSpec, overrides: list[str]) -> str:
    """What makes two searches the same: the search file's content (not n_trials, which may
    grow) and the overrides for every trial."""
    settings = {key: value for key, value in spec.raw.items() if key != "n_trials"}
    return json.dumps({"search": settings, "overrides": overrides}, sort_keys=True, default=str)


def study_name(spec: SearchSpec, overrides: list[str]) -> str:
    return f"{spec.raw.get('study_name') or spec.path.stem}-{digest(identity(spec, overrides))}"


def open_storage(url: str, heartbeat_seconds: int | None = None) -> optuna.storages.RDBStorage:
    """The study's storage; a runner's records its trials' heartbeats, and queues a trial whose
    heartbeat stopped again, as a retry (resumed from its run dir's last.ckpt)."""
    import optuna

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):  # several processes write: wait for the lock rather than fail
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
    if heartbeat_seconds:
        kwargs |= {
            "heartbeat_interval": heartbeat_seconds,
            "heartbeat_stale_trial_callback": retry_callback(),
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except Exception as error:  # SQLAlchemy's: a bad URL, a missing driver, no server
            from sqlalchemy.engine import make_url

            try:
                shown = make_url(url).render_as_string(hide_password=True)
            except Exception:
                shown = url.split("@")[-1]
            raise UsageError(f"--storage {shown}: cannot open it: {str(error).splitlines()[0]}") from None


def retry_callback() -> Any:
    """Queues a copy of a failed trial (same parameters, run dir and reported values), once
    per interruption, up to MAX_RETRIES times."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=MAX_RETRIES, inherit_intermediate_values=True
        )


def retried(trials: list[optuna.trial.FrozenTrial]) -> set[int]:
    """The numbers of the trials that a later trial retries."""
    return {number for trial in trials for number in trial.system_attrs.get("retry_history", [])}


def counted(trials: list[optuna.trial.FrozenTrial]) -> int:
    """Trials towards --trials: each distinct one that ran, runs or waits to run, a retry
    counting in place of the trial it retries."""
    again = retried(trials)
    return sum(trial.number not in again and not trial.user_attrs.get(SURPLUS) for trial in trials)


class Search:
    """One runner's workers on a study: each asks the study for a trial, runs it, tells the result."""

    def __init__(
        self,
        study: optuna.Study,
        storage: optuna.storages.RDBStorage,
        spec: SearchSpec,
        overrides: list[str],
        directory: Path,
        url: str,
        metric: str,
        workers: int = 1,
    ) -> None:
        self.study, self.storage, self.spec, self.overrides = study, storage, spec, overrides
        self.directory, self.url, self.metric, self.workers = directory, url, metric, workers
        self.distributions = distributions(spec)
        self._asking, self._recording = threading.Lock(), threading.Lock()
        self.stop = threading.Event()

    def next_trial(self, n_trials: int, forwarder: SignalForwarder) -> optuna.Trial | None:
        """A queued retry first, else a new trial while fewer than `n_trials` exist; None when
        the study has its trials. One ask at a time in this runner; a new trial that another
        runner's ask overtook at the last one is given up (a failed trial marked surplus)."""
        import optuna

        with self._asking:
            if self.stop.is_set() or forwarder.signum is not None:
                return None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # Optuna warns that only Study.optimize records heartbeats: this runner does too.
                warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
                optuna.storages.fail_stale_trials(self.study)
                trials = self.study.get_trials(deepcopy=False)
                waiting = any(trial.state == optuna.trial.TrialState.WAITING for trial in trials)
                if not waiting and counted(trials) >= n_trials:
                    return None
                trial = self.study.ask(self.distributions)
            frozen = self.frozen(trial)
            if "retry_history" not in frozen.system_attrs:
                before = [
                    other for other in self.study.get_trials(deepcopy=False) if other.number < trial.number
                ]
                if counted(before) >= n_trials:
                    trial.set_user_attr(SURPLUS, True)
                    self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    return None
            return trial

    def frozen(self, trial: optuna.Trial) -> optuna.trial.FrozenTrial:
        """The trial as the storage has it now (the training process writes to it too)."""
        return next(other for other in self.study.get_trials(deepcopy=False) if other.number == trial.number)

    def work(self, n_trials: int, forwarder: SignalForwarder) -> None:
        try:
            while (trial := self.next_trial(n_trials, forwarder)) is not None:
                self.run(trial, forwarder)
        except BaseException:
            self.stop.set()  # the other workers finish their trials and ask for no more
            raise

    def run(self, trial: optuna.Trial, forwarder: SignalForwarder) -> None:
        import optuna

        TrialState = optuna.trial.TrialState
        name = f"trial-{trial.number:03d}"
        # A retry goes on in the run dir of the trial it retries, if that is on this machine.
        earlier = trial.user_attrs.get(RUN_DIR)
        trial_dir = Path(earlier) if earlier and Path(earlier).parent.is_dir() else self.directory / name
        trial.set_user_attr(RUN_DIR, str(trial_dir))
        trial.set_user_attr(ERROR, None)  # a retry starts with the attributes of the trial it retries
        params = [f"{key}={override_value(value)}" for key, value in trial.params.items()]
        command = [sys.executable, "train.py", *self.overrides, *hydra_overrides(params)]
        command = resumed_or_fresh(command, trial_dir)
        env = {
            STORAGE_ENV: self.url,
            STUDY_ENV: self.study.study_name,
            TRIAL_ENV: str(trial._trial_id),
            PRUNER_ENV: json.dumps(self.spec.raw.get("pruner")),
            PARALLEL_JOBS_ENV: str(self.workers),  # each trial takes its share of the cores
        }
        print(f"[{name}] {' '.join(command)}", flush=True)
        with self.heartbeat(trial):
            state, metrics, seconds = run_trial(command, trial_dir, forwarder, env)
        trial.set_user_attr(OUTCOME, state)
        trial.set_user_attr("seconds", round(seconds, 1))
        value, pruned_at = metrics.get(self.metric), self.frozen(trial).user_attrs.get(PRUNED_AT)
        if state == FINISHED and pruned_at is not None:
            self.tell(trial, state=TrialState.PRUNED)
            state = f"pruned at epoch {pruned_at}"
        elif state == FINISHED and isinstance(value, float) and math.isfinite(value):
            self.tell(trial, value)
        else:
            error = last_error_line(Path(f"{trial_dir}.log")) or state
            if state == FINISHED:
                error = f"metrics.json has no finite {self.metric}"
            trial.set_user_attr(ERROR, error)
            if self.tell(trial, state=TrialState.FAIL) and state.startswith("interrupted"):
                retry_callback()(self.study, self.frozen(trial))  # the same command resumes it
        print(f"[{name}] {state} in {seconds:.1f} s, {self.metric}={value}", flush=True)
        self.save()

    def tell(self, trial: optuna.Trial, value: float | None = None, **state: Any) -> bool:
        """Record the trial's end; False if another runner had already failed it (its heartbeat
        stopped long enough, e.g. this machine was suspended): then that runner's retry counts."""
        import optuna

        try:
            self.study.tell(trial, value, **state)
        except optuna.exceptions.UpdateFinishedTrialError:
            print(f"warning: trial {trial.number} was failed by another runner meanwhile", file=sys.stderr)
            return False
        return True

    @contextmanager
    def heartbeat(self, trial: optuna.Trial) -> Iterator[None]:
        """Record the trial's heartbeat while it runs: a runner that vanishes stops it, and the
        next runner fails and retries the trial (optuna.storages.fail_stale_trials)."""
        interval = self.storage.get_heartbeat_interval()
        if interval is None:
            yield
            return
        done = threading.Event()

        def beat() -> None:
            while True:
                self.storage.record_heartbeat(trial._trial_id)
                if done.wait(interval):
                    return

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def rows(self) -> list[dict[str, Any]]:
        """Every trial of the study (any runner's), as results.json and the table show them."""
        trials = self.study.get_trials(deepcopy=False)
        again = retried(trials)
        rows = []
        for trial in trials:
            attrs = trial.user_attrs
            if attrs.get(SURPLUS):
                continue
            state = trial.state.name.lower()
            if trial.state.name == "PRUNED":
                state = f"pruned at epoch {attrs.get(PRUNED_AT)}"
            elif trial.state.name == "FAIL":
                state = f"{attrs.get(OUTCOME, 'failed')}{', retried' if trial.number in again else ''}"
            rows.append(
                {
                    "name": f"trial-{trial.number:03d}",
                    "state": state,
                    "params": trial.params,
                    "metrics": {self.metric: trial.value if trial.state.name == "COMPLETE" else None},
                    "seconds": attrs.get("seconds", 0.0),
                    RUN_DIR: attrs.get(RUN_DIR),
                    ERROR: attrs.get(ERROR),
                }
            )
        return rank(rows, self.metric, self.study.direction.name.lower())

    def save(self) -> None:
        with self._recording:
            write_json_atomically(
                self.directory / RESULTS_FILE,
                {"study": self.study.study_name, "metric": self.metric, "trials": self.rows()},
            )

    def summary(self) -> str:
        return f"\n{format_table(self.rows(), self.metric)}\n\nTrials and {RESULTS_FILE}: {self.directory}"


def open_study(
    storage: optuna.storages.RDBStorage, name: str, spec: SearchSpec, direction: str, metric: str
) -> optuna.Study:
    """Create the study, or join it: only its creator uses the file's sampler seed, so that a
    new study is repeatable and two runners never propose the same trials."""
    import optuna

    pruner = build_pruner(spec.raw.get("pruner"), str(spec.path))
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            direction=optuna.study.StudyDirection[direction.upper()],
            sampler=build_sampler(spec),
            pruner=pruner,
        )
    except optuna.exceptions.DuplicatedStudyError:
        sampler = build_sampler(spec)
        sampler.reseed_rng()
        study = optuna.load_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner)
        if study.direction.name.lower() != direction:
            raise UsageError(
                f"study {name} is to {study.direction.name.lower()} {metric}, but monitor.mode now says "
                f"{direction}: pass --fresh to start it over"
            ) from None
        return study
    for values in enqueued_trials(spec):
        study.enqueue_trial(values)
    return study


# The command ------------------------------------------------------------------------------------


def split_arguments(overrides: list[str]) -> tuple[str, list[str]]:
    """`hparams_search=<name>` and the overrides for every trial."""
    chosen = [arg for arg in overrides if arg.lstrip("+").partition("=")[0] == SEARCH_GROUP]
    if len(chosen) != 1:
        options = ", ".join(sorted(path.stem for path in (Path(config_dir()) / SEARCH_GROUP).glob("*.yaml")))
        raise UsageError(f"name one search: {SEARCH_GROUP}=<name> (options: {options}, or a .yaml file)")
    return chosen[0].partition("=")[2], [arg for arg in overrides if arg != chosen[0]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}.search",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        help=f"{SEARCH_GROUP}=<name>, then Hydra overrides added to every trial, e.g. trainer.max_epochs=10",
    )
    parser.add_argument("--trials", type=int, default=None, help="trials in the study, counting earlier ones")
    parser.add_argument("--workers", type=int, default=1, help="trials this runner runs at once (default: 1)")
    parser.add_argument(
        "--storage",
        default=None,
        help=f"a SQLAlchemy URL shared by several runners (default: sqlite in the study dir, {STUDY_FILE})",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="move the study dir aside (with --storage, delete the study) and start over",
    )
    args = parser.parse_intermixed_args(argv)
    return run_reporting_errors(run, args)


def run(args: argparse.Namespace, forwarder: SignalForwarder) -> int:
    try:
        import optuna
    except ImportError:
        raise UsageError(f"the search runner needs Optuna: {INSTALL_HINT}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    name, overrides = split_arguments(args.overrides)
    if not Path("train.py").is_file():
        raise UsageError(f"no train.py in {Path.cwd()}: run the search from the project dir")
    spec = load_search(search_file(name))
    for option, value in (("--trials", args.trials), ("--workers", args.workers)):
        if value is not None and value < 1:
            raise UsageError(f"{option} {value}: must be an integer >= 1")
    check_parameters(spec, overrides)
    metric, direction = objective(overrides)
    study_id = study_name(spec, overrides)
    directory = Path(os.environ.get("PROJECT_ROOT", "."), "logs", "searches", study_id).absolute()
    url = args.storage or f"sqlite:///{directory / STUDY_FILE}"
    if args.fresh and directory.exists():
        print(f"Earlier trials moved to {set_aside(directory)}")
    if not args.storage:
        directory.mkdir(parents=True, exist_ok=True)
    storage = open_storage(url, spec.raw.get("heartbeat_seconds", HEARTBEAT_SECONDS))  # before any dir
    if args.fresh and args.storage:
        with suppress(KeyError):  # no such study yet
            optuna.delete_study(study_name=study_id, storage=storage)
    with lock(directory, shared=True):
        study = open_study(storage, study_id, spec, direction, metric)
        search = Search(study, storage, spec, overrides, directory, url, metric, args.workers)
        n_trials = args.trials or spec.n_trials
        if done := counted(study.get_trials(deepcopy=False)):
            print(f"Continuing the study {study_id}: {done} of {n_trials} trials started", flush=True)
        with ThreadPoolExecutor(args.workers) as pool:
            workers = [pool.submit(search.work, n_trials, forwarder) for _ in range(args.workers)]
            for worker in workers:
                worker.result()
        search.save()
        print(search.summary())
    trials = study.get_trials(deepcopy=False)
    if forwarder.signum is not None:
        raise Interrupted(
            forwarder.signum,
            f"search stopped by {signal.Signals(forwarder.signum).name}: "
            f"{sum(trial.state.is_finished() for trial in trials) - len(retried(trials))} trials done, "
            f"recorded in {directory / RESULTS_FILE}; run the same command to continue",
        )
    return 0 if any(trial.state.name == "COMPLETE" for trial in trials) else 1


if __name__ == "__main__":
    sys.exit(main())
