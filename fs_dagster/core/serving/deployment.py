"""Deployments: a named model version served by seldon-core, recorded in the registry (table ``fs_deployments``).

Example:
    mv = fs.get_model_registry().get_best_model("delays", "roc_auc")
    dep = fs.create_deployment("delays_api", mv)          # registered, not running yet
    dep.start()                                           # local seldon-core microservice on 127.0.0.1
    dep.predict([{"flight_id": 17, "origin": "JFK", "time_hour": "2013-01-01T10:00:00Z"}])
    dep.switch_to(newer)                                  # rolling: requests keep being answered
    dep.rollback()                                        # back to the previous version, same way
    dep.manifest(image="registry/fs-serving:1.0", online_url="valkey://valkey:6379/0")  # SeldonDeployment
    dep.stop()

The registry row holds the served model version, the previous one (the rollback target), the settings, and while a
local server runs its pid, ports, boot id and start time (see :mod:`.processes`): a recorded server that is gone
(killed, or the machine restarted) is simply "stopped", and a pid that now belongs to another program is never
signalled. The serving process's files live in ``<root>/<project>/deployments/<name>/`` (:mod:`.state_files`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from fs_dagster.core.errors import DeploymentError, InvalidDataError, NotFoundError
from fs_dagster.core.registry.models import DeploymentRow
from fs_dagster.core.serving import local
from fs_dagster.core.serving.client import ServingClient
from fs_dagster.core.serving.payload import DEFAULT_MAX_BATCH
from fs_dagster.core.serving.processes import ProcessRecord, is_ours
from fs_dagster.core.serving.settings import ENV_ONLINE_PASSWORD, ENV_ONLINE_URL, ENV_REGISTRY_URL, ServingSettings
from fs_dagster.core.serving.state_files import Target, locked
from fs_dagster.core.specs import check_name

if TYPE_CHECKING:
    from fs_dagster.core.models.registry import ModelVersion
    from fs_dagster.core.serving.inference_log import FlushResult
    from fs_dagster.core.serving.local import SwitchReport
    from fs_dagster.core.store import FeatureStore

HISTORY_KEPT = 50


@dataclass(frozen=True)
class DeploymentStatus:
    """A deployment's state: ``running`` (a live server of ours), ``starting`` (ours, not answering yet) or
    ``stopped``; ``stale`` says a recorded server was found gone (or its pid taken by another program) and was
    cleared."""

    name: str
    state: str
    model_name: str
    model_version: int
    previous_version: int | None
    pid: int | None = None
    url: str | None = None
    started_at: str | None = None
    startup_seconds: float | None = None
    stale: bool = False

    def __str__(self) -> str:
        where = f" pid={self.pid} url={self.url} started_at={self.started_at}" if self.state == "running" else ""
        return (f"{self.name}: {self.state} model={self.model_name} v{self.model_version}"
                f"{f' previous=v{self.previous_version}' if self.previous_version else ''}{where}")


class Deployment:
    """A registered deployment (get it with ``FeatureStore.get_deployment`` / ``create_deployment``)."""

    def __init__(self, store: FeatureStore, row: dict[str, Any]) -> None:
        self._store = store
        self._row = row

    def __repr__(self) -> str:
        return f"Deployment({self.name!r}, model={self.model_name!r}, version={self.model_version})"

    name = property(lambda self: self._row["name"])
    model_name = property(lambda self: self._row["model_name"])
    model_version = property(lambda self: int(self._row["model_version"]))
    state = property(lambda self: dict(self._row["state"]))

    @property
    def previous_version(self) -> int | None:
        previous = self._row["state"].get("previous")
        return int(previous["model_version"]) if previous else None

    @property
    def home(self) -> Path:
        return self._store.project_path / "deployments" / self.name

    @property
    def target(self) -> Target:
        view = self._row["state"].get("feature_view")
        return Target(self.model_name, self.model_version, (view[0], int(view[1])) if view else None)

    @property
    def _process(self) -> dict[str, Any] | None:
        return self._row["state"].get("process")

    @property
    def url(self) -> str | None:
        process = self._process
        return f"http://{local.HOST}:{process['port']}" if process else None

    def refresh(self) -> Deployment:
        self._row = _read_row(self._store, self.name)
        return self

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def status(self) -> DeploymentStatus:
        """Running or stopped, from the recorded process (a stale record is cleared)."""
        self.refresh()
        process = self._process
        stale = False
        if process is not None and not is_ours(ProcessRecord.from_dict(process)):
            with locked(self.home):
                self.refresh()
                process = self._process
                if process is not None and not is_ours(ProcessRecord.from_dict(process)):
                    self._update(lambda state: state.__setitem__("process", None))
                    process, stale = None, True
        state = "stopped" if not process else "starting" if process.get("starting") else "running"
        return DeploymentStatus(
            self.name, state, self.model_name, self.model_version,
            self.previous_version, pid=process["pid"] if process else None, url=self.url if process else None,
            started_at=process.get("started_at") if process else None,
            startup_seconds=process.get("startup_seconds") if process else None, stale=stale,
        )

    def start(self, timeout: float = 120.0) -> DeploymentStatus:
        """Starts the local server (127.0.0.1) unless it runs; returns when it answers with the model version.

        Raises:
            DeploymentError: the server could not start (port in use, the model failed to load: named).
        """
        with locked(self.home):
            self.refresh()
            if is_ours(ProcessRecord.from_dict(self._process)):
                return self.status()
            self._update(lambda state: state.__setitem__("process", None))  # stale or none: forget it
            state = self._row["state"]
            settings = self._settings()

            def spawned(record: ProcessRecord, port: int, metrics_port: int) -> None:
                self._update(lambda s: s.__setitem__("process", {
                    **record.to_dict(), "port": port, "metrics_port": metrics_port, "starting": True,
                    "started_at": _now(), "model_version": self.model_version}))

            try:
                result = local.launch(self.home, settings, self.target, port=state.get("port"),
                                      workers=int(state.get("workers", 1)), threads=int(state.get("threads", 1)),
                                      secrets=self._secrets(), timeout=timeout, on_spawn=spawned)
            except BaseException:
                self._update(lambda s: s.__setitem__("process", None))  # (launch stopped what it started)
                raise
            self._update(lambda s: s.__setitem__("process", {
                **result.record.to_dict(), "port": result.port, "metrics_port": result.metrics_port,
                "started_at": _now(), "startup_seconds": round(result.startup_seconds, 3),
                "model_version": self.model_version}))
        return self.status()

    def stop(self, timeout: float = 20.0) -> bool:
        """Stops the local server (its whole process group). False if it was not running (stale state is cleared,
        and a recorded pid now used by another program is left alone)."""
        with locked(self.home):
            self.refresh()
            stopped = local.stop(ProcessRecord.from_dict(self._process), timeout)
            self._update(lambda state: state.__setitem__("process", None))
        return stopped

    def health(self) -> dict[str, Any]:
        """The running server's ``/health/status``: loaded model version, pid, inference-log counters.

        Raises:
            DeploymentError: not running or not answering.
        """
        port = self._running_port()
        status, body = local.health(port)
        if status != 200 or not isinstance(body, dict):
            raise DeploymentError(f"deployment {self.name}: health check answered {status}: {str(body)[:500]}")
        return body.get("jsonData") or {}

    def _running_port(self) -> int:
        self.refresh()
        process = self._process
        if process is None or not is_ours(ProcessRecord.from_dict(process)):
            raise DeploymentError(f"deployment {self.name} is not running; start it with deployment.start() or "
                                  f"`fs-dagster deployment start {self.name}`")
        return int(process["port"])

    def client(self) -> ServingClient:
        """An HTTP client of the running server (keep-alive; reuse it for many requests)."""
        return ServingClient(local.HOST, self._running_port())

    def predict(self, entities: Sequence[dict[str, Any]], passed_features: Sequence[dict[str, Any]] | None = None,
                allow_missing: bool = False, return_vectors: bool = False) -> dict[str, Any]:
        """Predictions for ``entities`` (dicts of serving keys) from the running server, over HTTP.

        Returns:
            The answer's ``jsonData``: ``predictions``, ``model``/``model_version``, ``request_id``, for classifiers
            ``classes``/``probabilities``, with ``return_vectors`` the model input rows.

        Raises:
            PredictionError: the server refused the request (status and explanation).
        """
        payload: dict[str, Any] = {"entities": list(entities)}
        if passed_features is not None:
            payload["passed_features"] = list(passed_features)
        if allow_missing:
            payload["allow_missing"] = True
        if return_vectors:
            payload["return_vectors"] = True
        client = self.client()
        try:
            return client.predict({"jsonData": json.loads(json.dumps(payload, default=_json_default))})
        finally:
            client.close()

    # --- versions -----------------------------------------------------------------------------------------------

    def switch_to(self, model_version: ModelVersion | int, timeout: float = 120.0) -> SwitchReport:
        """Serves another model version; a running server rolls to it without refusing or pausing requests.

        The version is loaded and checked here first (artifact hashes, feature view, transformations), so one that
        cannot serve is refused before the server hears of it.

        Args:
            model_version: a ModelVersion, or a version number of the deployment's model.

        Raises:
            NotFoundError / InvalidDataError / ModelIntegrityError: the version cannot serve (nothing changed).
            DeploymentError: the server's new workers failed to load it (still serving the current version).
        """
        new = self._resolve(model_version)
        with locked(self.home):
            self.refresh()
            current = self.target
            if new == current:
                return local.SwitchReport(str(current), str(new), live=False)
            self._validate(new)
            record = ProcessRecord.from_dict(self._process)
            if is_ours(record):
                assert record is not None
                report = local.switch(self.home, record, current, new, workers=int(self.state.get("workers", 1)),
                                      timeout=timeout)
            else:
                report = local.SwitchReport(str(current), str(new), live=False)
            self._record_switch(current, new, "switch")
        return report

    def rollback(self, timeout: float = 120.0) -> SwitchReport:
        """Switches back to the version served before the last switch (that switch's way: rolling if running).

        Raises:
            DeploymentError: there is no previous version.
        """
        previous = self._row["state"].get("previous")
        if not previous:
            raise DeploymentError(f"deployment {self.name} has no previous version to roll back to")
        return self.switch_to(self._model_registry().get_model(previous["model_name"], int(previous["model_version"])),
                              timeout=timeout)

    def _resolve(self, model_version: ModelVersion | int) -> Target:
        if isinstance(model_version, int) and not isinstance(model_version, bool):
            mv = self._model_registry().get_model(self.model_name, model_version)
        else:
            mv = model_version
        return Target(mv.name, mv.version, self.target.feature_view)

    def _validate(self, target: Target) -> None:
        from fs_dagster.core.serving.served_model import ServedModel

        ServedModel.load(self._store, target.model_name, target.model_version, feature_view=target.feature_view)

    def _record_switch(self, old: Target, new: Target, action: str) -> None:
        def change(state: dict[str, Any]) -> None:
            state["previous"] = {"model_name": old.model_name, "model_version": old.model_version}
            history = state.setdefault("history", [])
            history.append({"action": action, "model_name": new.model_name, "model_version": new.model_version,
                            "from_version": old.model_version, "at": _now()})
            del history[:-HISTORY_KEPT]
            if state.get("process"):
                state["process"]["model_version"] = new.model_version

        self._update(change, model=new)

    def _model_registry(self) -> Any:
        return self._store.get_model_registry()

    # --- Kubernetes, inference log -----------------------------------------------------------------------------

    def manifest(self, image: str, **options: Any) -> dict[str, Any]:
        """A SeldonDeployment (machinelearning.seldon.io/v1) serving this deployment's model version in Kubernetes;
        see :func:`fs_dagster.core.serving.manifest.seldon_deployment` for the options."""
        from fs_dagster.core.serving.manifest import seldon_deployment

        return seldon_deployment(self, image=image, **options)

    def flush_inference_log(self, **options: Any) -> FlushResult:
        """Moves logged requests into the inference-log feature group (see :mod:`.inference_log`)."""
        from fs_dagster.core.serving.inference_log import flush_inference_log

        return flush_inference_log(self._store, self.name, **options)

    def inference_log_group(self) -> Any:
        from fs_dagster.core.serving.inference_log import inference_log_group

        return inference_log_group(self._store, self.name)

    def delete(self) -> None:
        """Stops the server and removes the deployment and its folder (its inference-log feature group, and what
        its Valkey stream still holds, stay: flush first)."""
        self.stop()
        project = self._store.project

        def work(session: Session) -> None:
            for row in session.scalars(select(DeploymentRow).where(DeploymentRow.project == project,
                                                                   DeploymentRow.name == self.name)):
                session.delete(row)

        self._store.registry._write(f"deleting deployment {self.name!r}", work)
        shutil.rmtree(self.home, ignore_errors=True)

    # --- plumbing -----------------------------------------------------------------------------------------------

    def _settings(self) -> ServingSettings:
        state = self._row["state"]
        online = state.get("online") or {}
        view = state.get("feature_view")
        return ServingSettings(
            deployment=self.name, project=self._store.project, root=str(self._store.root),
            model_name=self.model_name, model_version=self.model_version,
            feature_view=f"{view[0]}:{view[1]}" if view else "",
            max_batch=int(state.get("max_batch", DEFAULT_MAX_BATCH)), inference_log=bool(state.get("inference_log", True)),
            log_max_entries=int(state.get("log_max_entries", 1_000_000)),
            online_username=online.get("username") or "", online_key_prefix=online.get("key_prefix") or "fs:",
            online_tls_ca_file=online.get("tls_ca_file") or "", online_cluster=bool(online.get("cluster")),
            home=str(self.home),
        )

    def _secrets(self) -> dict[str, str]:
        """Environment of the server for what must not be in parameters: online URL and password, registry URL."""
        config = self._store.online_config
        secrets: dict[str, str] = {}
        if config.url:
            secrets[ENV_ONLINE_URL] = config.url
        elif (self._row["state"].get("online") or {}).get("url"):
            secrets[ENV_ONLINE_URL] = self._row["state"]["online"]["url"]  # (password from the environment)
        if config.password:
            secrets[ENV_ONLINE_PASSWORD] = config.password
        if self._store.registry_url:
            secrets[ENV_REGISTRY_URL] = self._store.registry_url
        return secrets

    def _update(self, change: Any, model: Target | None = None) -> None:
        project = self._store.project

        def work(session: Session) -> dict[str, Any]:
            row = session.scalars(select(DeploymentRow).where(DeploymentRow.project == project,
                                                              DeploymentRow.name == self.name)).first()
            if row is None:
                raise NotFoundError(f"deployment {self.name!r} not found in project {project!r}")
            state = json.loads(json.dumps(row.state))  # a new object: SQLAlchemy notices the change
            change(state)
            if model is not None:
                row.model_name, row.model_version = model.model_name, model.model_version
                state["feature_view"] = list(model.feature_view) if model.feature_view else None
            row.state = state
            return _as_dict(row)

        self._row = self._store.registry._write(f"updating deployment {self.name!r}", work)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON")


def _as_dict(row: DeploymentRow) -> dict[str, Any]:
    return {"name": row.name, "model_name": row.model_name, "model_version": row.model_version,
            "state": dict(row.state or {})}


def _read_row(store: FeatureStore, name: str) -> dict[str, Any]:
    project = store.project

    def work(session: Session) -> dict[str, Any]:
        row = session.scalars(select(DeploymentRow).where(DeploymentRow.project == project,
                                                          DeploymentRow.name == name)).first()
        if row is None:
            names = session.scalars(select(DeploymentRow.name).where(DeploymentRow.project == project)
                                    .order_by(DeploymentRow.name)).all()
            raise NotFoundError(f"deployment {name!r} not found in project {project!r}; "
                                + (f"deployments: {', '.join(names)}" if names else "the project has none"))
        return _as_dict(row)

    return store.registry._read(f"reading deployment {name!r}", work)


def _online_state(store: FeatureStore) -> dict[str, Any]:
    """The online store settings a restarted server needs, without secrets (a URL's password is dropped)."""
    config = store.online_config
    url = config.url
    if url:
        parts = urlsplit(url)
        if parts.password is not None:
            host = parts.netloc.rsplit("@", 1)[-1]
            user = f"{parts.username}@" if parts.username else ""
            url = parts._replace(netloc=f"{user}{host}").geturl()
    return {"url": url, "username": config.username, "tls_ca_file": config.tls_ca_file, "cluster": config.cluster,
            "key_prefix": config.key_prefix}


def create_deployment(store: FeatureStore, name: str, model_version: ModelVersion, *,
                      feature_view: Any = None, port: int | None = None, workers: int = 1, threads: int = 1,
                      max_batch: int = DEFAULT_MAX_BATCH, inference_log: bool = True,
                      log_max_entries: int = 1_000_000, description: str = "") -> Deployment:
    """Registers a deployment of ``model_version`` (not started: call ``start()``), or returns the registered one
    when it serves the same version.

    Args:
        feature_view: the view to serve with (a FeatureView or (name, version)); default: the model's own.
        port: fixed HTTP port on 127.0.0.1 (default: a free port at every start).
        workers, threads: gunicorn workers (processes) and threads per worker.
        max_batch: most entities per request (more: 413).
        inference_log: log every request to the deployment's Valkey stream (see :mod:`.inference_log`).

    Raises:
        InvalidDataError: a bad name or setting, or the deployment exists with another model version (use
            ``switch_to``); the version cannot serve (its artifact, view or transformations: named).
    """
    from fs_dagster.core.serving.served_model import ServedModel

    check_name("deployment", name)
    for what, value, low in (("workers", workers, 1), ("threads", threads, 1), ("max_batch", max_batch, 1),
                             ("log_max_entries", log_max_entries, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidDataError(f"deployment {name}: {what} must be an integer >= {low}, got {value!r}")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        raise InvalidDataError(f"deployment {name}: port must be an integer in 1..65535, got {port!r}")
    view = None
    if feature_view is not None:
        view = (feature_view.name, feature_view.version) if hasattr(feature_view, "feature_names") \
            else (str(feature_view[0]), int(feature_view[1]))
    ServedModel.load(store, model_version.name, model_version.version, feature_view=view, max_batch=max_batch)
    state = {
        "description": description, "feature_view": list(view) if view else None, "port": port, "workers": workers,
        "threads": threads, "max_batch": max_batch, "inference_log": inference_log,
        "log_max_entries": log_max_entries, "online": _online_state(store), "previous": None,
        "history": [{"action": "create", "model_name": model_version.name, "model_version": model_version.version,
                     "at": _now()}],
        "process": None,
    }
    project = store.project

    def work(session: Session) -> dict[str, Any]:
        row = session.scalars(select(DeploymentRow).where(DeploymentRow.project == project,
                                                          DeploymentRow.name == name)).first()
        if row is not None:
            if (row.model_name, row.model_version) != (model_version.name, model_version.version):
                raise InvalidDataError(
                    f"deployment {name} exists and serves {row.model_name} v{row.model_version}; use "
                    f"get_deployment({name!r}).switch_to(...) to serve v{model_version.version}"
                )
            return _as_dict(row)
        row = DeploymentRow(project=project, name=name, model_name=model_version.name,
                            model_version=model_version.version, state=state)
        session.add(row)
        session.flush()
        return _as_dict(row)

    return Deployment(store, store.registry._write(f"creating deployment {name!r}", work))


def get_deployment(store: FeatureStore, name: str) -> Deployment:
    return Deployment(store, _read_row(store, name))


def list_deployments(store: FeatureStore) -> list[Deployment]:
    project = store.project

    def work(session: Session) -> list[dict[str, Any]]:
        rows = session.scalars(select(DeploymentRow).where(DeploymentRow.project == project)
                               .order_by(DeploymentRow.name))
        return [_as_dict(r) for r in rows]

    return [Deployment(store, row) for row in store.registry._read("listing deployments", work)]
