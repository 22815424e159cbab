"""The seldon-core model class of fs-dagster deployments: entity keys in, predictions out.

Run by ``seldon-core-microservice fs_dagster.core.serving.seldon_model.FeatureStoreModel --service-type MODEL``
(locally through :mod:`fs_dagster.core.serving.launcher`, which binds loopback only; in Kubernetes from a
SeldonDeployment, see :mod:`fs_dagster.core.serving.manifest`). Configuration: :mod:`.settings`; request and
response contract: :mod:`.payload`.

seldon builds the object once in the gunicorn master (cheap: settings only; no connection or thread may cross the
fork) and calls :meth:`FeatureStoreModel.load` in every worker after the fork. ``load()`` reads the deployment's
version pointer, loads and verifies that model version, wires its feature view with the training dataset's fitted
transformations and starts the inference logger. If that version fails to load it falls back to the pointer's last
good version instead of raising: an exception in ``load()`` makes gunicorn halt the whole server, so a bad version
reaching a switch must never take the running deployment down with it.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from typing import Any

from seldon_core.flask_utils import SeldonMicroserviceException

from fs_dagster.core.online import compiled
from fs_dagster.core.serving.inference_log import InferenceLogger, new_request_id, stream_key
from fs_dagster.core.serving.payload import Echo, RequestError, jsonable
from fs_dagster.core.serving.served_model import ServedModel
from fs_dagster.core.serving.settings import ServingSettings
from fs_dagster.core.serving.state_files import Target, read_pointer, record_load

log = logging.getLogger(__name__)


def http_errors_blueprint() -> Any:
    """A Flask blueprint (seldon registers a model's ``model_error_handler``) that answers HTTP-level errors with
    their own status and seldon's error body. Without it seldon answers a request without
    ``Content-Type: application/json``, an unknown path or a wrong method with a 500 "internal error"."""
    from flask import Blueprint, jsonify
    from werkzeug.exceptions import HTTPException

    blueprint = Blueprint("fs_dagster_http_errors", __name__)

    @blueprint.app_errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        reason = {415: "UNSUPPORTED_MEDIA_TYPE", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(
            error.code or 500, "HTTP_ERROR")
        body = {"status": {"code": -1, "info": f"{error.code} {error.name}: {error.description}", "reason": reason,
                           "status": 1}}
        response = jsonify(body)
        response.status_code = error.code or 500
        return response

    return blueprint


class FeatureStoreModel:
    """seldon-core model class serving one model version of an fs-dagster deployment (see module doc).

    Args:
        **parameters: seldon graph parameters, see :class:`~.settings.ServingSettings`.
    """

    def __init__(self, **parameters: Any) -> None:
        self.settings = ServingSettings.from_parameters(parameters)
        self.model_error_handler = http_errors_blueprint()
        self._served: ServedModel | None = None
        self._logger: InferenceLogger | None = None
        self._loaded_at: float | None = None
        self._fallback_from: Target | None = None
        # import the heavy modules now, in the master: workers forked later (a rolling switch) start with them
        import fs_dagster.core.store  # noqa: F401

        try:
            import sklearn  # noqa: F401
        except ImportError:  # (only python-flavor models here)
            pass

    # --- lifecycle (in each worker) -----------------------------------------------------------------------------

    def _target(self) -> tuple[Target, Target | None]:
        home = self.settings.home_path
        pointer = read_pointer(home) if home is not None else None
        if pointer is not None:
            return pointer.current, pointer.last_good
        if not self.settings.model_name or not self.settings.model_version:
            raise RuntimeError("no model to serve: give model_name and model_version parameters (or a home folder "
                               "with a version pointer)")
        return Target(self.settings.model_name, self.settings.model_version, self.settings.feature_view_override), None

    def _load_target(self, store: Any, target: Target) -> ServedModel:
        return ServedModel.load(store, target.model_name, target.model_version, feature_view=target.feature_view,
                                max_batch=self.settings.max_batch)

    def load(self) -> None:
        """Loads the pointed-to model version (falling back to the last good one), warms it up, starts the inference
        logger, and only then reports the load (the switcher retires old workers on that report)."""
        settings = self.settings
        home = settings.home_path
        store = settings.store()
        target, last_good = self._target()
        loaded, error = target, ""
        try:
            served = self._load_target(store, target)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.error("deployment %s: loading %s failed: %s", settings.deployment, target, error)
            if last_good is None or last_good == target:
                if home is not None:
                    record_load(home, target, ok=False, error=error)
                raise
            served = self._load_target(store, last_good)  # (a failure here halts the server: nothing to serve)
            loaded, self._fallback_from = last_good, target
        self._served = served
        self._loaded_at = time.time()
        try:  # connect and build the key layouts now; an unreachable store is reported per request (503)
            store.online_store
            warm = getattr(served.view, "_online_layouts", None)  # (private: absent in a future view, no harm)
            if warm is not None:
                warm()
        except Exception as exc:  # noqa: BLE001 - never fail load() for it (that would halt the server)
            log.warning("deployment %s: online store not ready at load: %s", settings.deployment, exc)
        served.warm_up()
        compiled.prepare()  # (compiles the batch decoder with numba, if installed, before any request needs it)
        if settings.inference_log:
            try:
                client = store.online_store.client
                self._logger = InferenceLogger(client, stream_key(store.online_config.key_prefix, store.project,
                                                                  settings.deployment), settings.log_max_entries)
            except Exception as exc:  # noqa: BLE001
                log.warning("deployment %s: inference log off, online store unreachable: %s", settings.deployment, exc)
        gc.collect()
        gc.freeze()  # the loaded model and store are long-lived: keep them out of every later collection
        if home is not None:
            record_load(home, loaded, ok=True, error=error, fallback_from=self._fallback_from)

    # --- requests -----------------------------------------------------------------------------------------------

    def predict_raw(self, request: Any) -> dict[str, Any]:
        served = self._served
        if served is None:
            raise SeldonMicroserviceException("the model is not loaded", status_code=503, reason="NOT_LOADED")
        try:
            parsed = served.parser.parse(request)
            if isinstance(parsed, Echo):
                return {"jsonData": {"echo": parsed.payload}}
            at = time.time()
            result = served.predict(parsed)
        except RequestError as exc:
            raise SeldonMicroserviceException(exc.message, status_code=exc.status, reason=exc.reason) from None
        request_id = new_request_id()
        if self._logger is not None:
            self._logger.log(request_id, at, served.name, served.model_version, served.view.serving_keys,
                             parsed.entities, result.frame, result.predictions, served.classes, result.probabilities)
        body: dict[str, Any] = {
            "model": served.name, "model_version": served.model_version, "deployment": self.settings.deployment,
            "request_id": request_id, "predictions": result.predictions.tolist(),
        }
        if result.probabilities is not None:
            body["classes"] = served.classes
            body["probabilities"] = result.probabilities.tolist()
        if parsed.return_vectors:
            body["features"] = list(result.frame.columns)
            body["vectors"] = [[jsonable(v) for v in row] for row in result.frame.to_numpy(dtype=object).tolist()]
        return {"jsonData": body, "meta": {"tags": self.tags()}}

    def tags(self) -> dict[str, Any]:
        served = self._served
        if served is None:
            return {"deployment": self.settings.deployment}
        return {"model": served.name, "model_version": served.model_version, "deployment": self.settings.deployment}

    def health_status(self) -> dict[str, Any]:
        served = self._served
        if served is None:
            raise SeldonMicroserviceException("the model is not loaded", status_code=503, reason="NOT_LOADED")
        return {
            "deployment": self.settings.deployment, "model": served.name, "model_version": served.model_version,
            "feature_view": {"name": served.view.name, "version": served.view.version},
            "pid": os.getpid(), "loaded_at": self._loaded_at,
            "fallback_from": self._fallback_from.to_dict() if self._fallback_from else None,
            "inference_log": self._logger.stats() if self._logger is not None else None,
        }
