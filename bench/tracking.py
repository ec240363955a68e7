"""The only module that talks to MLflow.

Layout: one experiment per suite (``bench/<suite>``), one parent run per ``bench run``, one child
run per (model, fold) job; for tuning, one parent run per Optuna study and one nested run per
trial. Jobs are identified by a ``bench.job_key`` tag (model, fold, config
hash) so a re-run can skip what already FINISHED. The default store is SQLite ``./mlflow.db``:
embedded, no server, and what ``mlflow ui --backend-store-uri sqlite:///mlflow.db`` reads.

Each job's fitted model is logged as an MLflow model (``runs:/<run id>/model``) whose loader
is :mod:`bench.served`; :func:`promote` registers one, :func:`download_model` fetches one for
``bench predict`` after checking its MLmodel. Each run gets its dataset as an MLflow dataset
input, a description, and, when asked, MLflow's system metrics.

Why one module (~1,000 lines): it is the only module that imports MLflow (an import-linter
contract, and the issue that asked for logged models kept it), so the store's schema (every
``bench.*`` tag in :class:`Tag`, the typed :class:`JobRecord` and :class:`TrialRecord`), the
model flavour's MLmodel, the registry and every read and write of them live here.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import socket
import statistics
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.artifacts import CARD_FILE, MODEL_FILE
from bench.environment import pid_alive
from bench.errors import BenchError
from bench.redact import mask

log = logging.getLogger(__name__)

DEFAULT_URI = "sqlite:///mlflow.db"
_KIND_VALUE = "custom_model_development"


class Tag:
    """Every ``bench.*`` name bench writes, defined once: MLflow run tags, and the Optuna study
    and trial attributes of the same meaning. Other modules use these, never the strings."""

    KIND = "bench.kind"
    """What a run is: one of :data:`JOB`, :data:`PARENT`, :data:`SKIP`, :data:`STUDY`,
    :data:`TRIAL`."""
    # who wrote a run
    HOST, PID, COMMAND = "bench.host", "bench.pid", "bench.command"
    GIT_COMMIT = "bench.git_commit"
    VERSION = "bench.version."
    """Prefix: ``bench.version.<package>`` per installed package."""
    ENV = "bench.env."
    """Prefix: ``bench.env.<fact>`` from ``bench doctor``'s facts."""
    # what a suite run and its jobs ran on
    SUITE, DATASET, DATA_FINGERPRINT = "bench.suite", "bench.dataset", "bench.data_fingerprint"
    PROTOCOL, PROTOCOL_DESCRIPTION = "bench.protocol", "bench.protocol_description"
    SEED, DEVICE = "bench.seed", "bench.device"
    SKIPPED_CLIPS, DROPPED = "bench.skipped_clips", "bench.dropped"
    # a job: one (model, fold)
    MODEL, VARIANT, FAMILY, FOLD = "bench.model", "bench.variant", "bench.family", "bench.fold"
    CONFIG_HASH, JOB_KEY = "bench.config_hash", "bench.job_key"
    ERROR, SKIP_REASON = "bench.error", "bench.skip_reason"
    # a study and its trials (also Optuna user attributes)
    STUDY, METRIC, DIRECTION = "bench.study", "bench.metric", "bench.direction"
    STORAGE, SAMPLER, PRUNER = "bench.storage", "bench.sampler", "bench.pruner"
    TRIALS_TARGET, WORKERS = "bench.trials_target", "bench.workers"
    DEV_SPLIT, DEV_DESCRIPTION = "bench.dev_split", "bench.dev_description"
    BEST_TRIAL, BASELINE_VALUE = "bench.best_trial", "bench.baseline_value"
    TRIAL_NUMBER, TRIAL_STATE = "bench.trial_number", "bench.trial_state"
    PRUNED_STEP, OWNER, PARAMS = "bench.pruned_step", "bench.owner", "bench.params"
    HEARTBEAT = "bench.heartbeat"
    """Unix time a command last said its claimed job is still running."""
    # MLflow's own names that bench sets
    DESCRIPTION = "mlflow.note.content"
    """A run's (or experiment's) description, as the UI shows it."""
    EXPERIMENT_KIND = "mlflow.experimentKind"
    """What MLflow 3's UI opens an experiment as; bench's are ``custom_model_development``."""


JOB, PARENT, SKIP, STUDY, TRIAL = "job", "parent", "skip", "study", "trial"
KIND = Tag.KIND


CLAIM_GRACE_SECONDS = 120.0
"""A RUNNING job claim from another host whose heartbeat is older than this is reaped."""
HEARTBEAT_SECONDS = 15.0
"""How often a command renews the heartbeats of its claims."""


def _now() -> str:
    return f"{time.time():.0f}"


class Status:
    """MLflow run statuses, as bench sets and reads them."""

    RUNNING, FINISHED, FAILED, KILLED = "RUNNING", "FINISHED", "FAILED", "KILLED"


_PARENT_RUN = "mlflow.parentRunId"
_RUN_NAME = "mlflow.runName"


@dataclass(frozen=True)
class Setup:
    """What produced a job run: the command, code, data and machine (for reproducibility)."""

    command: str = ""
    git_commit: str = "?"
    dataset: str = "?"
    data_fingerprint: str = "?"
    device: str = "?"
    seed: str = "?"
    versions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobRecord:
    """One logged (model, fold) job (or, with ``skip_reason``, a model the run skipped), as the
    report reads it: a fixed schema, whatever MLflow keeps underneath."""

    run_id: str
    status: str
    start_time: int
    parent_run_id: str
    model: str
    protocol: str
    variant: str = "default"
    family: str = "?"
    protocol_description: str = ""
    fold: str = ""
    config_hash: str = ""
    error: str | None = None
    skip_reason: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    setup: Setup = Setup()

    @property
    def finished(self) -> bool:
        return self.status == Status.FINISHED

    @property
    def failed(self) -> bool:
        return self.status in (Status.FAILED, Status.KILLED)

    @classmethod
    def of(cls, run: Any) -> JobRecord:
        """The record of an MLflow ``Run``."""
        tags = run.data.tags
        versions = {
            key[len(Tag.VERSION) :]: value
            for key, value in tags.items()
            if key.startswith(Tag.VERSION)
        }
        return cls(
            run_id=run.info.run_id,
            status=run.info.status,
            start_time=run.info.start_time,
            parent_run_id=tags.get(_PARENT_RUN, ""),
            model=tags[Tag.MODEL],
            protocol=tags[Tag.PROTOCOL],
            variant=tags.get(Tag.VARIANT, "default"),
            family=tags.get(Tag.FAMILY, "?"),
            protocol_description=tags.get(Tag.PROTOCOL_DESCRIPTION, tags[Tag.PROTOCOL]),
            fold=tags.get(Tag.FOLD, ""),
            config_hash=tags.get(Tag.CONFIG_HASH, ""),
            error=tags.get(Tag.ERROR),
            skip_reason=tags.get(Tag.SKIP_REASON),
            metrics=dict(run.data.metrics),
            params=dict(run.data.params),
            setup=Setup(
                command=tags.get(Tag.COMMAND, ""),
                git_commit=tags.get(Tag.GIT_COMMIT, "?"),
                dataset=tags.get(Tag.DATASET, "?"),
                data_fingerprint=tags.get(Tag.DATA_FINGERPRINT, "?"),
                device=tags.get(Tag.DEVICE, "?"),
                seed=tags.get(Tag.SEED, "?"),
                versions=versions,
            ),
        )


@dataclass(frozen=True)
class TrialRecord:
    """One finished Optuna trial, as :meth:`Tracker.log_trial` writes it."""

    number: int
    state: str
    """Optuna's ``COMPLETE``, ``PRUNED`` or ``FAIL``."""
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    intermediate: Mapping[int, float] = field(default_factory=dict)
    pruned_step: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class DataRef:
    """A dataset as MLflow records it on a run: its name, bench's data fingerprint as the digest,
    where it was read from, and its schema (the feature columns, plus the label and its
    classes)."""

    name: str
    digest: str
    source: str
    columns: tuple[str, ...]
    classes: tuple[str, ...]
    rows: int
    tracks: int


MODEL_NAME = "model"
"""The name of a job's logged MLflow model (``runs:/<run id>/model``)."""
PYFUNC_LOADER = "bench.served"
"""The ``loader_module`` of every model bench logs; the only one bench will load."""
MODEL_DIR = "model"
"""The folder of a job's artifacts holding its model (``model.skops``, ``model_card.json``):
logged as the MLflow model, not as plain run artifacts."""
_CLAIM_PREFIX = "bench-claim-"
# A unique-key violation as SQLite, PostgreSQL and MySQL word it, through SQLAlchemy or a server.
_DUPLICATE_ROW = re.compile(r"UNIQUE constraint failed|duplicate key value|Duplicate entry")
SYSTEM_METRICS_ON_A_CLUSTER = (
    "--system-metrics is sampled by the command that claims the jobs, so on a cluster it would "
    "measure this machine, not the workers; run without --cluster to record it"
)
SYSTEM_METRICS_SECONDS = 5.0
"""How often ``--system-metrics`` samples CPU, memory (and GPU where present)."""


def check_server(uri: str) -> str:
    """``uri``, once a tracking server or database behind it answers within
    :data:`bench.reach.TIMEOUT` seconds (MLflow's own retries take minutes to give up)."""
    from bench import reach

    if uri.startswith(("http://", "https://", "postgresql")):
        problem = reach.problem(uri)
        if problem:
            raise BenchError(
                f"MLflow store {mask(uri)} is not reachable: {mask(problem)}; start it, or "
                "pass another --tracking-uri"
            )
    return uri


def resolve_uri(uri: str | None = None) -> str:
    """``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``.

    A relative SQLite path is made absolute: MLflow caches one store per URI string, so a
    relative one would keep pointing at the first working directory it was opened from.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        uri = prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def existing_store(uri: str | None = None) -> str:
    """The resolved URI, refusing a SQLite store that does not exist yet.

    Commands that only read (``bench predict``, ``bench report``) must not leave an empty
    ``mlflow.db`` behind in whatever folder they were run from.
    """
    uri = resolve_uri(uri)
    prefix = "sqlite:///"
    if uri.startswith(prefix):
        path = Path(uri[len(prefix) :].split("?", 1)[0])
        if not path.is_file():
            raise BenchError(
                f"no MLflow store at {path}; run `bench run` first, or pass --tracking-uri"
            )
    return check_server(uri)


def experiment_name(suite: str) -> str:
    return f"bench/{suite}"


class Tracker:
    """Writes and reads one suite's runs."""

    def __init__(
        self, suite: str, uri: str | None = None, create: bool = True, system_metrics: bool = False
    ) -> None:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.uri = check_server(resolve_uri(uri)) if create else existing_store(uri)
        self.display = mask(self.uri)
        """The URI as it may be shown: its password masked."""
        self._engine = None
        self._claim_models: dict[str, str] = {}
        """Claim run id -> the registered model holding its job key (on an MLflow server)."""
        self.system_metrics = system_metrics
        """Record MLflow's system metrics on each job (and study) run while it is open."""
        self._monitors: dict[str, Any] = {}
        name = experiment_name(suite)
        try:
            # Opening a fresh SQLite or PostgreSQL store migrates its schema: two commands
            # starting together would race there (and on creating the experiment).
            with self.store_lock("schema"):
                self.client = MlflowClient(tracking_uri=self.uri)
                experiment = self.client.get_experiment_by_name(name)
                if experiment is None and create:
                    self.experiment_id = self._create_experiment(name)
                elif experiment is None:
                    raise BenchError(
                        f"no runs of suite {suite!r} in {self.display}; run `bench run` first"
                    )
                else:
                    self.experiment_id = experiment.experiment_id
                    if create and experiment.tags.get(Tag.EXPERIMENT_KIND) != _KIND_VALUE:
                        self.client.set_experiment_tag(
                            self.experiment_id, Tag.EXPERIMENT_KIND, _KIND_VALUE
                        )
        except MlflowException as exc:
            message = str(exc).splitlines()[0]
            raise BenchError(f"MLflow store {self.display} is not usable: {message}") from None

    def browse_hint(self) -> str:
        """How to see this suite's runs in MLflow's UI, on the training runs.

        MLflow 3.17's UI opens every experiment in the workflow its GenAI / Model training
        switch holds (GenAI in a new browser) whatever ``mlflow.experimentKind`` says, so the
        link names the workflow."""
        page = f"#/experiments/{self.experiment_id}/runs?workflowType=machine_learning"
        if self.uri.startswith(("http://", "https://")):
            from urllib.parse import urlsplit

            url = urlsplit(self.uri)  # a link to open: the host, without the user's credentials
            base = url._replace(netloc=url.netloc.rpartition("@")[2]).geturl()
            return f"browse: {mask(base).rstrip('/')}/{page}"
        return f"browse: mlflow ui --backend-store-uri {self.display}, then open {page}"

    def _create_experiment(self, name: str) -> str:
        """Create the suite's experiment; on an MLflow server (no lock) another command may
        have created it a moment ago: then that one is used."""
        from mlflow.exceptions import MlflowException

        tags = {
            Tag.EXPERIMENT_KIND: _KIND_VALUE,
            Tag.DESCRIPTION: f"bench suite `{name[len('bench/') :]}`: one parent run per "
            "`bench run` (its children are the (model, fold) jobs) and per `bench tune` study "
            "(its children are the trials). The leaderboard: `bench report --suite "
            f"{name[len('bench/') :]}`.",
        }
        try:
            return self.client.create_experiment(name, tags=tags)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return self.client.get_experiment_by_name(name).experiment_id

    @contextlib.contextmanager
    def store_lock(self, name: str) -> Iterator[None]:
        """A mutex over every command that uses this store: a file lock beside a SQLite file,
        a PostgreSQL advisory lock; none for an MLflow server (claims there are elected, see
        :meth:`claim_job`)."""
        from bench.locks import advisory_lock, engine, file_lock

        if self.uri.startswith("sqlite:///"):
            with file_lock(Path(self.uri[len("sqlite:///") :].split("?", 1)[0])):
                yield
        elif self.uri.startswith("postgresql"):
            if self._engine is None:
                self._engine = engine(self.uri)
            with advisory_lock(self._engine, f"bench-mlflow:{name}"):
                yield
        else:
            yield

    def reap_stale_runs(self) -> int:
        """Mark runs left RUNNING by a command that died as KILLED: on this host when its
        process is gone; job claims from other hosts when their heartbeat is older than
        :data:`CLAIM_GRACE_SECONDS`."""
        reaped = 0
        for run in self._search(f"attributes.status = '{Status.RUNNING}'"):
            if self._stale(run):
                self.client.set_terminated(run.info.run_id, Status.KILLED)
                reaped += 1
        return reaped

    @staticmethod
    def _stale(run: Any) -> bool:
        return _stale_tags(run.data.tags, run.info.start_time)

    def finished_job_keys(self) -> set[str]:
        runs = self._search(f"tags.`{KIND}` = '{JOB}' and attributes.status = '{Status.FINISHED}'")
        return {run.data.tags[Tag.JOB_KEY] for run in runs}

    def model_seconds(self) -> dict[str, float]:
        """The median wall time, claim to record, of each model's FINISHED jobs in this
        experiment (any protocol or fold): what the runner orders its jobs by."""
        runs = self._search(f"tags.`{KIND}` = '{JOB}' and attributes.status = '{Status.FINISHED}'")
        seconds: dict[str, list[float]] = {}
        for run in runs:
            if run.info.end_time and run.info.start_time:
                wall = (run.info.end_time - run.info.start_time) / 1000
                seconds.setdefault(run.data.tags.get(Tag.MODEL, ""), []).append(wall)
        return {model: statistics.median(walls) for model, walls in seconds.items()}

    def start_parent(
        self, name: str, params: Mapping[str, Any], tags: Mapping[str, str], description: str = ""
    ) -> str:
        all_tags = {
            _RUN_NAME: name,
            **({Tag.DESCRIPTION: description} if description else {}),
            KIND: PARENT,
            Tag.HOST: socket.gethostname(),
            Tag.PID: str(os.getpid()),
            **tags,
        }
        run = self.client.create_run(self.experiment_id, tags=_masked(all_tags))
        self._log(run.info.run_id, params=params)
        return run.info.run_id

    def end_parent(
        self,
        run_id: str,
        metrics: Mapping[str, float],
        files: Iterable[Path] = (),
        status: str = Status.FINISHED,
    ) -> None:
        self._log(run_id, metrics=metrics)
        for path in files:
            self.client.log_artifact(run_id, str(path))
        self.client.set_terminated(run_id, status)

    def claim_job(
        self,
        parent_id: str,
        name: str,
        key: str,
        tags: Mapping[str, str],
        description: str = "",
        data: DataRef | None = None,
    ) -> str | None:
        """Claim job ``key`` for this command: a RUNNING child run of ``parent_id`` carrying
        the key, made before the job starts. None when the job is FINISHED or claimed by a live
        command already (its claim is reaped first when that command died).

        Check-and-claim is atomic: under :meth:`store_lock` for SQLite and PostgreSQL; on an
        MLflow server, which has no lock, under a registered model named after the job key,
        which the server creates for one command only (names are unique there) and which is
        deleted when the job is recorded.

        ``data``: the job's training data, logged as the run's dataset input (context
        ``train``). With :attr:`system_metrics`, sampling starts on the run here and stops
        when it is finished or released.
        """
        extra = {Tag.JOB_KEY: key, Tag.HEARTBEAT: _now()}
        if description:
            extra[Tag.DESCRIPTION] = description
        with self.store_lock("claims"), self._server_claim(key) as held:
            if not held or self._taken(key):
                return None
            run_id = self._child(parent_id, name, JOB, {**tags, **extra})
            if held is not True:
                self._claim_models[run_id] = held
        if data is not None:
            self.log_dataset(run_id, data, "train")
        if self.system_metrics:
            self._monitors[run_id] = SystemMetrics(self.uri, run_id)
        return run_id

    @contextlib.contextmanager
    def _server_claim(self, key: str) -> Iterator[str | bool]:
        """On an MLflow server: a registered model named after ``key``, held by this command
        (yields its name; False when a live command holds it). Elsewhere: True (the store
        lock is enough). Released again unless a claim run was made under it."""
        from mlflow.exceptions import MlflowException

        if self.uri.startswith(("sqlite:///", "postgresql")):
            yield True
            return
        digest = hashlib.sha256(f"{self.experiment_id}|{key}".encode()).hexdigest()[:32]
        model = f"{_CLAIM_PREFIX}{digest}"
        owner = {Tag.HOST: socket.gethostname(), Tag.PID: str(os.getpid()), Tag.HEARTBEAT: _now()}
        for _ in range(3):
            try:
                self.client.create_registered_model(model, tags={Tag.JOB_KEY: key, **owner})
                break
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                try:
                    held = self.client.get_registered_model(model)
                except MlflowException as gone:
                    if gone.error_code != "RESOURCE_DOES_NOT_EXIST":
                        raise
                    continue  # its holder released it in between: try again
                if not _stale_tags(held.tags, held.creation_timestamp):
                    yield False
                    return
                self.client.delete_registered_model(model)  # its command died: reap
        else:
            yield False
            return
        before = set(self._claim_models.values())
        try:
            yield model
        finally:
            if model not in self._claim_models.values() and model not in before:
                self.client.delete_registered_model(model)

    def _taken(self, key: str) -> bool:
        for run in self._search(f"tags.`{Tag.JOB_KEY}` = '{key}'"):
            if run.info.status == Status.FINISHED:
                return True
            if run.info.status == Status.RUNNING:
                if not self._stale(run):
                    return True
                self.client.set_terminated(run.info.run_id, Status.KILLED)
        return False

    def beat(self, run_ids: Iterable[str]) -> None:
        """Heartbeats for this command's claims, so other hosts see they are alive."""
        now = _now()
        for run_id in run_ids:
            self.client.set_tag(run_id, Tag.HEARTBEAT, now)
            if run_id in self._claim_models:
                self.client.set_registered_model_tag(self._claim_models[run_id], Tag.HEARTBEAT, now)

    def release(self, run_id: str, status: str = Status.KILLED) -> None:
        """End a claim run (``KILLED``: the job may be claimed again) and free its key."""
        monitor = self._monitors.pop(run_id, None)
        if monitor is not None:
            monitor.finish()
        self.client.set_terminated(run_id, status)
        model = self._claim_models.pop(run_id, None)
        if model is not None:
            self.client.delete_registered_model(model)

    def finish_job(
        self,
        run_id: str,
        *,
        status: str,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        error: str | None = None,
        artifacts: Path | None = None,
        history: Iterable[Mapping[str, float]] = (),
    ) -> None:
        """Record a claimed job's outcome on its run and end it.

        ``history`` holds per-epoch metrics of torch models, logged with the epoch as step.
        ``artifacts``: the job's folder; its :data:`MODEL_DIR` is logged as the run's MLflow
        model (after the metrics, which MLflow then links to the model), the rest as files.
        """
        if error:
            self.client.set_tag(run_id, Tag.ERROR, mask(error[:5000]))
        self._log(run_id, params=params, metrics=metrics)
        for epoch in history:
            step = int(epoch.get("epoch", 0))
            values = {f"epoch_{k}": v for k, v in epoch.items() if k != "epoch"}
            self._log(run_id, metrics=values, step=step)
        if artifacts is not None and artifacts.is_dir():
            _log_job_folder(self.client, self.uri, run_id, artifacts, metrics)
        self.release(run_id, status)  # recorded before the key is freed

    def log_dataset(self, run_id: str, data: DataRef, context: str, **profile: Any) -> None:
        """``data`` as the run's MLflow dataset input, with ``context`` (``train``, ``suite``,
        ``tuning``). MLflow links one dataset to a run once, under one context: a job's test
        side is described by the run's fold tag and its ``n_test`` param."""
        import json

        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.exceptions import MlflowException

        schema = [{"type": "double", "name": str(c), "required": True} for c in data.columns]
        schema.append({"type": "string", "name": "label", "required": True})
        dataset = Dataset(
            name=data.name,
            digest=data.digest,
            source_type="local",
            source=json.dumps({"uri": mask(data.source)}),
            schema=json.dumps({"mlflow_colspec": schema}),
            profile=json.dumps(
                {"num_rows": data.rows, "tracks": data.tracks, "classes": list(data.classes)}
                | profile
            ),
        )
        tags = [InputTag("mlflow.data.context", context)]
        for attempt in range(3):
            try:
                self.client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags=tags)])
                return
            except MlflowException as exc:
                # MLflow creates an experiment's dataset row by get-then-insert: when two
                # commands log the same data at once, one insert hits the unique key. The row
                # exists then, and the next call links it.
                if attempt == 2 or not _DUPLICATE_ROW.search(str(exc)):
                    raise

    def promotions(self) -> dict[str, list[str]]:
        """Job run id -> the registered model versions made from it (``NAME v3 @champion``),
        for the leaderboard."""
        found: dict[str, list[str]] = {}
        for model in self.client.search_registered_models(max_results=1000):
            if model.name.startswith(_CLAIM_PREFIX):
                continue
            aliases: dict[str, list[str]] = {}
            for alias, version in (model.aliases or {}).items():
                aliases.setdefault(str(version), []).append(alias)
            for version in self.client.search_model_versions(f"name = '{model.name}'"):
                labels = "".join(f" @{a}" for a in sorted(aliases.get(str(version.version), [])))
                found.setdefault(version.run_id, []).append(
                    f"{model.name} v{version.version}{labels}"
                )
        return found

    def log_skip(self, parent_id: str, model: str, reason: str, tags: Mapping[str, str]) -> None:
        """A model the suite lists but could not run on this data, with the reason."""
        tags = {Tag.MODEL: model, Tag.SKIP_REASON: reason, **tags}
        run_id = self._child(parent_id, f"{model} (skipped)", SKIP, tags)
        self.client.set_terminated(run_id, Status.FINISHED)

    def job_records(self, kind: str = JOB) -> list[JobRecord]:
        """Every job (or, with ``kind="skip"``, skip) run of the suite, as records."""
        return [JobRecord.of(run) for run in self._search(f"tags.`{KIND}` = '{kind}'")]

    def run_file(self, run_id: str, name: str, dst: Path) -> Path | None:
        """Download artifact ``name`` of a run into ``dst``; None when the run has no such file."""
        from mlflow.exceptions import MlflowException

        try:
            return Path(self.client.download_artifacts(run_id, name, str(dst)))
        except (MlflowException, OSError):
            return None

    def study_parent(self, study: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        """The parent run of an Optuna study: the existing one when the study is continued."""
        found = self._search(f"tags.`{KIND}` = '{STUDY}' and tags.`{Tag.STUDY}` = '{study}'")
        if found:
            run_id = sorted(found, key=lambda r: r.info.start_time)[0].info.run_id
            self.client.update_run(run_id, status=Status.RUNNING)
            for key, value in _masked(tags).items():
                self.client.set_tag(run_id, key, value)
            return run_id
        run = self.client.create_run(
            self.experiment_id,
            tags=_masked({_RUN_NAME: f"tune {study}", KIND: STUDY, Tag.STUDY: study, **tags}),
        )
        self._log(run.info.run_id, params=params)
        return run.info.run_id

    def watch(self, run_id: str) -> None:
        """With :attr:`system_metrics`: sample system metrics on ``run_id`` (a study's parent)
        until :meth:`end_study` or :meth:`release` ends it."""
        if self.system_metrics and run_id not in self._monitors:
            self._monitors[run_id] = SystemMetrics(self.uri, run_id)

    def logged_trials(self, parent_id: str) -> set[int]:
        """Numbers of the trials :meth:`log_trial` logged to the end. A trial run it did not
        end (left RUNNING by a killed command, or KILLED by :meth:`reap_stale_runs`) is
        deleted, so that its trial is logged again, once; the caller holds the study lock."""
        runs = self._search(f"tags.`{KIND}` = '{TRIAL}' and tags.`{_PARENT_RUN}` = '{parent_id}'")
        logged = set()
        for run in runs:
            if run.info.status in (Status.FINISHED, Status.FAILED):
                logged.add(int(run.data.tags[Tag.TRIAL_NUMBER]))
            else:
                self.client.delete_run(run.info.run_id)
        return logged

    def log_trial(self, parent_id: str, trial: TrialRecord, tags: Mapping[str, str]) -> str:
        """One finished Optuna trial as a nested run; intermediate values go in by step."""
        status = {"COMPLETE": Status.FINISHED, "PRUNED": Status.FINISHED, "FAIL": Status.FAILED}
        tags = {Tag.TRIAL_NUMBER: str(trial.number), Tag.TRIAL_STATE: trial.state, **tags}
        if trial.pruned_step is not None:
            tags[Tag.PRUNED_STEP] = str(trial.pruned_step)
        if trial.error is not None:
            tags[Tag.ERROR] = trial.error
        run_id = self._child(parent_id, f"trial {trial.number}", TRIAL, tags)
        self._log(run_id, params=trial.params, metrics=trial.metrics)
        for step, value in sorted(trial.intermediate.items()):
            self._log(run_id, metrics={"intermediate": value}, step=step)
        self.client.set_terminated(run_id, status[trial.state])
        return run_id

    def end_study(
        self,
        run_id: str,
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        files: Iterable[Path] = (),
        status: str = Status.FINISHED,
    ) -> None:
        """Close a study's parent run; best parameters go in as tags (a continued study's best
        changes, and MLflow params cannot)."""
        monitor = self._monitors.pop(run_id, None)
        if monitor is not None:
            monitor.finish()
        self._log(run_id, metrics=metrics)
        for key, value in _masked(tags).items():
            self.client.set_tag(run_id, key, value)
        for path in files:
            self.client.log_artifact(run_id, str(path))
        self.client.set_terminated(run_id, status)

    def study_runs(self, study: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """A study's parent run and its trial runs, as flat dicts (for tests and reports)."""
        parents = self._search(f"tags.`{KIND}` = '{STUDY}' and tags.`{Tag.STUDY}` = '{study}'")
        if not parents:
            return None, []
        parent = _flat(parents[0])
        trials = self._search(
            f"tags.`{KIND}` = '{TRIAL}' and tags.`{_PARENT_RUN}` = '{parent['run_id']}'"
        )
        return parent, [_flat(run) for run in trials]

    def _child(self, parent_id: str, name: str, kind: str, tags: Mapping[str, str]) -> str:
        """A run nested under ``parent_id``, stamped with this host and pid."""
        run = self.client.create_run(
            self.experiment_id,
            tags=_masked(
                {
                    _RUN_NAME: name,
                    _PARENT_RUN: parent_id,
                    KIND: kind,
                    Tag.HOST: socket.gethostname(),
                    Tag.PID: str(os.getpid()),
                    **tags,
                }
            ),
        )
        return run.info.run_id

    def _search(self, filter_string: str) -> list[Any]:
        runs, token = [], None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], filter_string, max_results=1000, page_token=token
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def _log(
        self,
        run_id: str,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        step: int = 0,
    ) -> None:

        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, step) for k, v in (metrics or {}).items()],
            params=[Param(k, mask(str(v))[:6000]) for k, v in (params or {}).items()],
        )


def _stale_tags(tags: Mapping[str, str], started_ms: int | None) -> bool:
    """Whether the command that wrote ``tags`` (host, pid, heartbeat) is gone: its process, on
    this host; its heartbeat, older than :data:`CLAIM_GRACE_SECONDS`, elsewhere."""
    if tags.get(Tag.HOST) == socket.gethostname():
        return not pid_alive(int(tags.get(Tag.PID, "0")))
    if Tag.HEARTBEAT not in tags:  # a parent or study run elsewhere: no way to tell
        return False
    return time.time() - float(tags[Tag.HEARTBEAT]) > CLAIM_GRACE_SECONDS


def run_tags() -> dict[str, str]:
    """What produced a run: the git commit, package versions and ``bench doctor``'s facts."""
    from bench.environment import facts, git_commit, package_versions

    tags = {Tag.GIT_COMMIT: git_commit()}
    tags.update({f"{Tag.VERSION}{k}": v for k, v in package_versions().items()})
    for fact in facts():
        tags[f"{Tag.ENV}{fact.name}"] = fact.value + (f" ({fact.problem})" if fact.problem else "")
    return tags


def _masked(tags: Mapping[str, Any]) -> dict[str, str]:
    """Tags as MLflow stores them (strings), secrets masked."""
    return {key: mask(str(value)) for key, value in tags.items()}


def _flat(run: Any) -> dict[str, Any]:
    return {
        "run_id": run.info.run_id,
        "status": run.info.status,
        "start_time": run.info.start_time,
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "tags": dict(run.data.tags),
    }


def upload_artifacts(
    uri: str, run_id: str, folder: Path, metrics: Mapping[str, float] | None = None
) -> None:
    """A job's artifacts and model, sent by the cluster worker that made them straight to the
    run on an MLflow server (through its artifact proxy); the driver records everything else."""
    from mlflow.tracking import MlflowClient

    _log_job_folder(MlflowClient(tracking_uri=uri), uri, run_id, folder, metrics)


def _log_job_folder(
    client: Any, uri: str, run_id: str, folder: Path, metrics: Mapping[str, float] | None = None
) -> None:
    """A job's folder: :data:`MODEL_DIR` as the run's MLflow model, the rest as run files."""
    for path in sorted(folder.iterdir()):
        if path.name == MODEL_DIR and path.is_dir():
            log_job_model(uri, run_id, path, metrics)
        elif path.is_dir():
            client.log_artifacts(run_id, str(path), path.name)
        else:
            client.log_artifact(run_id, str(path))


def log_job_model(
    uri: str, run_id: str, folder: Path, metrics: Mapping[str, float] | None = None
) -> str:
    """Log ``folder`` (``model.skops`` + ``model_card.json``) as the run's MLflow model, in
    the run's experiment: a ``python_function`` model whose loader is :data:`PYFUNC_LOADER`,
    with a signature (the card's inputs, one probability column per genre), the card's input
    example, and the job's ``metrics`` linked to it (the model page shows them). Returns the
    logged model's id.

    No pickle is written: the model stays a skops file, and MLflow imports bench's loader from
    the installed package when it loads the model.
    """
    import tempfile

    import mlflow
    import pandas as pd
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric
    from mlflow.models import Model, ModelSignature
    from mlflow.tracking import MlflowClient
    from mlflow.types import ColSpec, Schema

    from bench.environment import git_commit, package_versions

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    from bench.artifacts import read_card
    from bench.models.columns import AUDIO_COLUMN

    card = read_card(folder / CARD_FILE)
    kind = card["input_kind"]
    columns = [ColSpec("double", str(c)) for c in card["feature_columns"] if kind != "audio"]
    if kind != "tabular":
        columns.append(ColSpec("string", AUDIO_COLUMN))
    outputs = Schema([ColSpec("double", str(c)) for c in card["outputs"]])
    versions = package_versions()
    needed = ("torch", "torchaudio", "scikit-learn", "xgboost", "numpy", "mlflow")
    metadata = {
        "bench_model": card["model"],
        "bench_input_kind": kind,
        "bench_fold": card.get("fold", ""),
        "bench_git_commit": git_commit(),
        "bench_classes": list(card["outputs"]),
    }
    model = client.create_logged_model(
        run.info.experiment_id,
        name=MODEL_NAME,
        source_run_id=run_id,
        tags={Tag.MODEL: card["model"], Tag.FOLD: card.get("fold", ""), KIND: JOB},
        model_type=f"bench {kind} classifier",
    )
    with tempfile.TemporaryDirectory(prefix="bench-model-") as tmp:
        local = Path(tmp) / "model"
        mlflow.pyfunc.save_model(
            str(local),
            loader_module=PYFUNC_LOADER,
            data_path=str(folder),
            mlflow_model=Model(
                artifact_path=model.artifact_location,
                run_id=run_id,
                model_uuid=model.model_id,
                model_id=model.model_id,
                metadata=metadata,
            ),
            signature=ModelSignature(inputs=Schema(columns), outputs=outputs),
            input_example=pd.DataFrame([card["input_example"]]),
            pip_requirements=[f"{n}=={versions[n]}" for n in needed if versions[n] != "absent"],
        )
        client.log_model_artifacts(model.model_id, str(local))
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    now = int(time.time() * 1000)
    linked = [
        Metric(k, float(v), now, 0, model_id=model.model_id, run_id=run_id)
        for k, v in (metrics or {}).items()
    ]
    if linked:
        client.log_batch(run_id, metrics=linked)
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    return model.model_id


class SystemMetrics:
    """MLflow's system-metrics monitors (CPU, memory, disk, network, and the GPU where
    nvidia-ml-py finds one) on one run, every :data:`SYSTEM_METRICS_SECONDS` (or
    ``$MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL``), as ``system/...`` metrics by step.

    The sampling loop is bench's own, around MLflow's monitors and logger: MLflow's loop takes
    its first sample only after a full interval and is not told when a run ends, so a job
    shorter than the interval got no metrics at all. Here the last sample is taken when the
    job ends, so every job has at least one.
    """

    def __init__(self, uri: str, run_id: str, node: str | None = None) -> None:
        import threading

        import psutil
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
        psutil.cpu_percent()  # CPU use is measured since the previous call: start the clock
        self.monitor = SystemMetricsMonitor(
            run_id, sampling_interval=SYSTEM_METRICS_SECONDS, node_id=node, tracking_uri=uri
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="bench-sysmetrics")
        self._thread.start()

    def _loop(self) -> None:
        while True:
            stopping = self._stop.wait(float(self.monitor.sampling_interval))
            self.monitor.collect_metrics()
            self.monitor.publish_metrics(self.monitor.aggregate_metrics())
            if stopping:
                return

    def finish(self) -> None:
        """Take the last sample and write everything held."""
        self._stop.set()
        self._thread.join()
        self.monitor.mlflow_logger.flush()


def promote(run_id: str, name: str, alias: str | None, uri: str | None = None) -> str:
    """Register the logged model of job run ``run_id`` as a new version of ``name`` (created if
    needed), and point ``alias`` at it. Returns ``NAME vN[ @alias]``."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if name.startswith(_CLAIM_PREFIX):
        raise BenchError(f"model names starting with {_CLAIM_PREFIX!r} are bench's job claims")
    store = existing_store(uri)
    client = MlflowClient(tracking_uri=store)
    try:
        run = _job_run(client, run_id)
        if run.info.status != Status.FINISHED:
            raise BenchError(f"run {run_id} is {run.info.status}: only FINISHED jobs are promoted")
        model_id = _logged_model_id(client, run)
        _check_logged_model(client, store, model_id, f"run {run_id}")
        tags = {
            Tag.MODEL: run.data.tags.get(Tag.MODEL, "?"),
            Tag.FOLD: run.data.tags.get(Tag.FOLD, "?"),
            Tag.SUITE: run.data.tags.get(Tag.SUITE, "?"),
        }
        try:
            client.create_registered_model(name, description="Promoted with `bench promote`.")
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        version = client.create_model_version(
            name, source=f"models:/{model_id}", run_id=run_id, tags=tags, model_id=model_id
        )
        if alias:
            client.set_registered_model_alias(name, alias, version.version)
    except MlflowException as exc:
        raise BenchError(f"promoting run {run_id}: {str(exc).splitlines()[0]}") from None
    return f"{name} v{version.version}" + (f" @{alias}" if alias else "")


def download_model(ref: str, dst: Path, uri: str | None = None) -> Path:
    """The folder (``model.skops`` + ``model_card.json``) of a model bench logged, downloaded
    into ``dst``. ``ref``: a job's run id, ``runs:/<run id>/model``, or a registry URI
    (``models:/NAME@alias``, ``models:/NAME/3``).

    The model's MLmodel is checked before anything is read: its only flavour must be
    ``python_function`` with bench's loader (:data:`PYFUNC_LOADER`), no pickled
    ``python_model``, and its data folder only bench's two files. The skops file itself then
    goes through the type allowlist (:func:`bench.artifacts.load_model`) when loaded.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    store = existing_store(uri)
    client = MlflowClient(tracking_uri=store)
    try:
        if ref.startswith("models:/"):
            model_id = _registry_model_id(client, ref)
        else:
            run_id = ref.removeprefix("runs:/").split("/", 1)[0]
            model_id = _logged_model_id(client, _job_run(client, run_id))
        local = _download_logged_model(client, store, model_id, dst)
    except MlflowException as exc:
        raise BenchError(f"{ref}: {str(exc).splitlines()[0]}") from None
    return _checked_model_folder(local, ref)


def _download_logged_model(client: Any, store: str, model_id: str, dst: Path) -> Path:
    # from the logged model's own location: MLflow's models:/ resolution reads the
    # process-wide tracking URI, not the one it is given
    location = client.get_logged_model(model_id).artifact_location
    return Path(_download(store, location, dst))


def _check_logged_model(client: Any, store: str, model_id: str, ref: str) -> None:
    """What ``bench predict`` checks, before ``bench promote`` registers a model: the file
    set, the MLmodel and the skops file's types, so an alias never points at a model that
    would run code in ``mlflow.pyfunc.load_model``."""
    import tempfile

    from bench.artifacts import check_model_file

    with tempfile.TemporaryDirectory(prefix="bench-promote-") as tmp:
        data = _checked_model_folder(
            _download_logged_model(client, store, model_id, Path(tmp)), ref
        )
        check_model_file(data / MODEL_FILE)


def _registry_model_id(client: Any, ref: str) -> str:
    """``models:/NAME@alias`` or ``models:/NAME/N`` -> the id of the logged model the version
    was made from (``bench promote`` registers logged models only)."""
    name, _, alias = ref[len("models:/") :].partition("@")
    if alias:
        version = client.get_model_version_by_alias(name, alias)
    else:
        name, _, number = name.rpartition("/")
        version = client.get_model_version(name, number)
    model_id = version.model_id or version.source.removeprefix("models:/")
    if not model_id.startswith("m-") or "/" in model_id:
        raise BenchError(
            f"{ref}: version {version.version} is not a model bench logged ({version.source})"
        )
    return model_id


def _download(uri: str, source: str, dst: Path) -> str:
    import mlflow

    # never through mlflow.set_tracking_uri: it is process-wide and exported to the environment
    return mlflow.artifacts.download_artifacts(
        artifact_uri=source, dst_path=str(dst), tracking_uri=uri, registry_uri=uri
    )


MODEL_FILES = frozenset(
    {"MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt", "input_example.json",
     "serving_input_example.json", f"data/{MODEL_DIR}/{MODEL_FILE}",
     f"data/{MODEL_DIR}/{CARD_FILE}"}
)  # fmt: skip
"""Every file of a model bench logs, relative to the model's folder: anything else (a ``code/``
folder MLflow would put on ``sys.path``, a pickle, a script) is refused."""
_PYFUNC_KEYS = {
    "loader_module": PYFUNC_LOADER,
    "data": f"data/{MODEL_DIR}",
    "code": None,
    "env": None,
    "python_version": None,
    "streamable": None,
}
"""The keys bench's ``python_function`` flavour may hold, and the value each must have (None:
any value, except ``code``, which must be empty: MLflow imports whatever it names)."""


def _checked_model_folder(local: Path, ref: str) -> Path:
    """The data folder of the model downloaded into ``local``, once its file set is exactly
    :data:`MODEL_FILES` (both data files present) and its MLmodel names bench's flavour alone:
    no code path, no pickled ``python_model``, no other flavour or loader. Read as YAML data
    only; nothing in the model is imported or unpickled."""
    import yaml

    files = {p.relative_to(local).as_posix() for p in local.rglob("*") if not p.is_dir()}
    unexpected = sorted(files - MODEL_FILES)
    needed = sorted({"MLmodel", *(f for f in MODEL_FILES if f.startswith("data/"))} - files)
    if unexpected or needed:
        shown = ", ".join(unexpected[:4]) or f"missing {', '.join(needed)}"
        raise BenchError(f"{ref}: refusing a model with files bench does not log ({shown})")
    try:
        mlmodel = yaml.safe_load((local / "MLmodel").read_text())
        flavors = mlmodel["flavors"]
        pyfunc = dict(flavors.get("python_function") or {})
    except Exception as exc:  # malformed YAML or a missing key
        raise BenchError(f"{ref}: not an MLflow model ({str(exc).splitlines()[0]})") from None
    if set(flavors) != {"python_function"} or pyfunc.get("loader_module") != PYFUNC_LOADER:
        raise BenchError(
            f"{ref}: refusing a model not logged by bench (flavours {sorted(flavors)}, loader "
            f"{pyfunc.get('loader_module')!r}; bench loads only {PYFUNC_LOADER!r} models)"
        )
    if pyfunc.get("code"):
        raise BenchError(
            f"{ref}: refusing a model with code ({pyfunc['code']!r}) MLflow would import"
        )
    wrong = sorted(
        key for key, value in pyfunc.items()
        if key not in _PYFUNC_KEYS or _PYFUNC_KEYS[key] not in (None, value)
    )  # fmt: skip
    if wrong:
        raise BenchError(f"{ref}: refusing a model whose python_function sets {', '.join(wrong)}")
    return local / pyfunc["data"]


def _job_run(client: Any, run_id: str) -> Any:
    run = client.get_run(run_id)
    if run.data.tags.get(KIND) != JOB:
        raise BenchError(f"run {run_id} is not a (model, fold) job run of bench")
    return run


def _logged_model_id(client: Any, run: Any) -> str:
    outputs = run.outputs.model_outputs if run.outputs else []
    if not outputs:
        raise BenchError(f"run {run.info.run_id} has no logged model (it failed, or predates it)")
    return outputs[-1].model_id
