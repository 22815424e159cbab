"""SeldonDeployment manifests (``machinelearning.seldon.io/v1``) for serving a deployment in Kubernetes, and a
validator of the fields the CRD and seldon's admission webhook require.

The manifest runs the fs-dagster model class in a container image that has fs-dagster installed (seldon's Python
wrapper image convention: ``MODEL_NAME`` and ``SERVICE_TYPE`` in the environment; its run script starts
``seldon-core-microservice $MODEL_NAME --service-type $SERVICE_TYPE``). Everything the class needs is a graph
parameter (store root as mounted in the pod, project, model name and version, online store URL and user, limits);
secrets are not: the online store's password and a registry URL with credentials come from a Kubernetes Secret
through ``env[].valueFrom.secretKeyRef`` (keys ``online_password`` and ``registry_url``).
``graph.modelUri`` records where the artifact lives; seldon's operator only downloads a ``modelUri`` for its
prepackaged servers, so the class reads the artifact from the store root (and verifies its SHA-256 hashes).

Required fields (seldon-core v1.19 CRD, version v1 of its openAPIV3Schema, and its webhook), checked by
:func:`validate_seldon_deployment`: ``spec.predictors`` (non-empty); each predictor's ``name`` and ``graph``; every
graph unit's ``name`` (children too); each parameter's ``name``, ``type`` and ``value``, all strings, with type one
of INT/FLOAT/DOUBLE/STRING/BOOL (and a value seldon can parse: it exits at start otherwise); each component spec's
``spec.containers`` and each container's ``name``; a container named like each non-prepackaged graph unit; a
``modelUri`` for prepackaged servers. The CRD has no enums; the allowed unit types, implementations and endpoint
types are the operator's constants, checked here too.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fs_dagster.core.errors import InvalidDataError
from fs_dagster.core.serving.local import MODEL_CLASS
from fs_dagster.core.serving.settings import ENV_ONLINE_PASSWORD, ENV_REGISTRY_URL, ServingSettings

if TYPE_CHECKING:
    from fs_dagster.core.serving.deployment import Deployment

API_VERSION = "machinelearning.seldon.io/v1"
KIND = "SeldonDeployment"
PARAMETER_TYPES = ("INT", "FLOAT", "DOUBLE", "STRING", "BOOL")
UNIT_TYPES = ("UNKNOWN_TYPE", "ROUTER", "COMBINER", "MODEL", "TRANSFORMER", "OUTPUT_TRANSFORMER")
PREPACKAGED = ("SKLEARN_SERVER", "XGBOOST_SERVER", "TENSORFLOW_SERVER", "MLFLOW_SERVER", "HUGGINGFACE_SERVER",
               "TRITON_SERVER", "TEMPO_SERVER")
IMPLEMENTATIONS = ("UNKNOWN_IMPLEMENTATION", "SIMPLE_MODEL", "SIMPLE_ROUTER", "RANDOM_ABTEST", "AVERAGE_COMBINER",
                   *PREPACKAGED)
ENDPOINT_TYPES = ("REST", "GRPC")
SECRET_KEY_ONLINE_PASSWORD = "online_password"
SECRET_KEY_REGISTRY_URL = "registry_url"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SECRET_NAME = re.compile(r"(password|passwd|secret|token|credential|api_?key)", re.IGNORECASE)


def kubernetes_name(name: str) -> str:
    """A deployment name as a Kubernetes name (DNS-1123: ``_`` becomes ``-``)."""
    return name.replace("_", "-")


def _strip_password(url: str) -> tuple[str, bool]:
    parts = urlsplit(url)
    if parts.password is None:
        return url, False
    host = parts.netloc.rsplit("@", 1)[-1]
    user = f"{parts.username}@" if parts.username else ""
    return parts._replace(netloc=f"{user}{host}").geturl(), True


def seldon_deployment(deployment: Deployment, *, image: str, namespace: str | None = None,
                      store_root: str | None = None, online_url: str | None = None,
                      online_username: str | None = None, online_password_secret: bool | None = None,
                      registry_url: str | None = None, secret_name: str | None = None, replicas: int = 1,
                      predictor: str = "default", model_uri: str | None = None,
                      resources: dict[str, Any] | None = None, labels: dict[str, str] | None = None,
                      ) -> dict[str, Any]:
    """The SeldonDeployment of ``deployment`` (a dict; :func:`to_yaml` for ``kubectl apply -f -``), validated.

    Args:
        image: a container image with fs-dagster (and the model's libraries) installed.
        store_root: the store root as mounted in the pod (default: this store's root path).
        online_url: the Valkey the pod reaches (required when this store uses its embedded server, which is on
            this machine's loopback only); a password in it is moved to the Secret.
        online_password_secret: read the online password from the Secret (default: when this store has one).
        registry_url: the registry the pod reaches (default: this store's; none = SQLite under the store root).
            With credentials it goes to the Secret, never into the manifest.
        secret_name: the Kubernetes Secret holding ``online_password`` / ``registry_url`` (default
            ``<name>-store``).
        model_uri: where the artifact lives for ``graph.modelUri`` (default: its path under ``store_root``).
        resources: the container's ``resources`` (requests/limits).

    Raises:
        InvalidDataError: no reachable online store, or the result fails :func:`validate_seldon_deployment`.
    """
    store = deployment._store
    name = kubernetes_name(deployment.name)
    root = store_root or str(store.root)
    config = store.online_config
    url = online_url or config.url
    if not url:
        raise InvalidDataError(
            f"deployment {deployment.name}: this store's online store is the embedded valkey-server on this machine's "
            "loopback, which a pod cannot reach; give online_url='valkey://<service>:6379/0'"
        )
    url, url_had_password = _strip_password(url)
    wants_password = online_password_secret if online_password_secret is not None else bool(
        config.password or url_had_password)
    secret = secret_name or f"{name}-store"
    registry = registry_url if registry_url is not None else (store.registry_url or "")
    registry_secret = bool(registry) and urlsplit(registry).password is not None
    settings = deployment._settings()
    settings = ServingSettings(
        deployment=deployment.name, project=store.project, root=root, model_name=deployment.model_name,
        model_version=deployment.model_version, feature_view=settings.feature_view, max_batch=settings.max_batch,
        inference_log=settings.inference_log, log_max_entries=settings.log_max_entries,
        registry_url="" if registry_secret else registry, online_url=url,
        online_username=online_username if online_username is not None else (config.username or ""),
        online_key_prefix=config.key_prefix, online_tls_ca_file=config.tls_ca_file or "",
        online_cluster=config.cluster,
    )
    env: list[dict[str, Any]] = [
        {"name": "MODEL_NAME", "value": MODEL_CLASS},
        {"name": "SERVICE_TYPE", "value": "MODEL"},
    ]
    if wants_password:
        env.append({"name": ENV_ONLINE_PASSWORD,
                    "valueFrom": {"secretKeyRef": {"name": secret, "key": SECRET_KEY_ONLINE_PASSWORD}}})
    if registry_secret:
        env.append({"name": ENV_REGISTRY_URL,
                    "valueFrom": {"secretKeyRef": {"name": secret, "key": SECRET_KEY_REGISTRY_URL}}})
    container: dict[str, Any] = {"name": name, "image": image, "env": env}
    if resources:
        container["resources"] = resources
    artifact = model_uri or (f"file://{root.rstrip('/')}/{store.project}/models/{deployment.model_name}/"
                             f"v{deployment.model_version}")
    metadata: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/managed-by": "fs-dagster",
                                                         "fs-dagster/model": kubernetes_name(deployment.model_name),
                                                         "fs-dagster/model-version": str(deployment.model_version),
                                                         **(labels or {})}}
    if namespace:
        metadata["namespace"] = namespace
    manifest = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {
            "predictors": [{
                "name": predictor,
                "replicas": replicas,
                "componentSpecs": [{"spec": {"containers": [container]}}],
                "graph": {"name": name, "type": "MODEL", "modelUri": artifact,
                          "parameters": settings.to_parameters()},
            }],
        },
    }
    validate_seldon_deployment(manifest)
    return manifest


def to_yaml(manifest: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(manifest, sort_keys=False)


def validate_seldon_deployment(manifest: Any) -> None:
    """Checks a SeldonDeployment against the CRD's required fields and seldon's webhook rules (see module doc),
    and that it carries no secret in plain text.

    Raises:
        InvalidDataError: naming the first offending field by its path (``spec.predictors[0].graph.name``).
    """
    _object(manifest, "manifest")
    if manifest.get("apiVersion") != API_VERSION:
        raise InvalidDataError(f"apiVersion must be {API_VERSION!r}, got {manifest.get('apiVersion')!r}")
    if manifest.get("kind") != KIND:
        raise InvalidDataError(f"kind must be {KIND!r}, got {manifest.get('kind')!r}")
    metadata = _object(manifest.get("metadata"), "metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not _DNS_SUBDOMAIN.match(name) or len(name) > 253:
        raise InvalidDataError(f"metadata.name must be a DNS-1123 name (lower case, digits, '-', '.'), got {name!r}")
    spec = _object(manifest.get("spec"), "spec")
    predictors = spec.get("predictors")
    if not isinstance(predictors, list) or not predictors:
        raise InvalidDataError("spec.predictors is required: a non-empty list")
    for i, predictor in enumerate(predictors):
        path = f"spec.predictors[{i}]"
        _object(predictor, path)
        _string(predictor, "name", path)
        if "graph" not in predictor:
            raise InvalidDataError(f"{path}.graph is required")
        containers = _containers(predictor, path)
        _unit(predictor["graph"], f"{path}.graph", containers)


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidDataError(f"{path} must be an object, got {type(value).__name__}")
    return value


def _string(obj: dict[str, Any], key: str, path: str) -> str:
    if key not in obj:
        raise InvalidDataError(f"{path}.{key} is required")
    if not isinstance(obj[key], str) or not obj[key]:
        raise InvalidDataError(f"{path}.{key} must be a non-empty string, got {obj[key]!r}")
    return obj[key]


def _containers(predictor: dict[str, Any], path: str) -> set[str]:
    names: set[str] = set()
    specs = predictor.get("componentSpecs", [])
    if not isinstance(specs, list):
        raise InvalidDataError(f"{path}.componentSpecs must be a list")
    for j, component in enumerate(specs):
        cpath = f"{path}.componentSpecs[{j}]"
        _object(component, cpath)
        if "spec" not in component:
            continue
        pod = _object(component["spec"], f"{cpath}.spec")
        containers = pod.get("containers")
        if not isinstance(containers, list):
            raise InvalidDataError(f"{cpath}.spec.containers is required: a list")
        for k, container in enumerate(containers):
            kpath = f"{cpath}.spec.containers[{k}]"
            _object(container, kpath)
            cname = _string(container, "name", kpath)
            if not _DNS_LABEL.match(cname) or len(cname) > 63:
                raise InvalidDataError(f"{kpath}.name must be a DNS-1123 label (lower case, digits, '-'), got "
                                       f"{cname!r}")
            _no_plain_secrets(container.get("env") or [], f"{kpath}.env")
            names.add(cname)
    return names


def _unit(unit: Any, path: str, containers: set[str]) -> None:
    _object(unit, path)
    name = _string(unit, "name", path)
    if "type" in unit and unit["type"] not in UNIT_TYPES:
        raise InvalidDataError(f"{path}.type must be one of {list(UNIT_TYPES)}, got {unit['type']!r}")
    implementation = unit.get("implementation")
    if implementation is not None and implementation not in IMPLEMENTATIONS:
        raise InvalidDataError(f"{path}.implementation must be one of {list(IMPLEMENTATIONS)}, got {implementation!r}")
    if implementation in PREPACKAGED:
        if implementation != "HUGGINGFACE_SERVER" and not unit.get("modelUri"):
            raise InvalidDataError(f"{path}.modelUri is required for the prepackaged server {implementation}")
    elif name not in containers:
        raise InvalidDataError(f"{path}.name {name!r}: no container of that name in componentSpecs (seldon's webhook "
                               "refuses a custom graph unit without its container)")
    endpoint = unit.get("endpoint")
    if endpoint is not None:
        _object(endpoint, f"{path}.endpoint")
        if "type" in endpoint and endpoint["type"] not in ENDPOINT_TYPES:
            raise InvalidDataError(f"{path}.endpoint.type must be REST or GRPC, got {endpoint['type']!r}")
    parameters = unit.get("parameters", [])
    if not isinstance(parameters, list):
        raise InvalidDataError(f"{path}.parameters must be a list")
    for p, parameter in enumerate(parameters):
        _parameter(parameter, f"{path}.parameters[{p}]")
    children = unit.get("children", [])
    if not isinstance(children, list):
        raise InvalidDataError(f"{path}.children must be a list")
    for c, child in enumerate(children):
        _unit(child, f"{path}.children[{c}]", containers)


def _parameter(parameter: Any, path: str) -> None:
    _object(parameter, path)
    for key in ("name", "type", "value"):
        if key not in parameter:
            raise InvalidDataError(f"{path}.{key} is required")
        if not isinstance(parameter[key], str):
            raise InvalidDataError(f"{path}.{key} must be a string (the CRD types every parameter field as string), "
                                   f"got {parameter[key]!r}")
    kind, value, name = parameter["type"], parameter["value"], parameter["name"]
    if kind not in PARAMETER_TYPES:
        raise InvalidDataError(f"{path}.type must be one of {list(PARAMETER_TYPES)}, got {kind!r}")
    try:
        if kind == "INT":
            int(value)
        elif kind in ("FLOAT", "DOUBLE"):
            float(value)
        elif kind == "BOOL" and value.strip().lower() not in ("y", "yes", "t", "true", "on", "1", "n", "no", "f",
                                                                "false", "off", "0"):
            raise ValueError(value)
    except ValueError:
        raise InvalidDataError(f"{path}.value {value!r} is not a valid {kind} (seldon would exit at start)") from None
    if _SECRET_NAME.search(name) or _has_password(value):
        raise InvalidDataError(f"{path} ({name}) carries a secret in plain text; pass it through a Secret "
                               "(env valueFrom.secretKeyRef)")


def _has_password(value: str) -> bool:
    try:
        return "://" in value and urlsplit(value).password is not None
    except ValueError:
        return False


def _no_plain_secrets(env: Any, path: str) -> None:
    if not isinstance(env, list):
        raise InvalidDataError(f"{path} must be a list")
    for i, var in enumerate(env):
        _object(var, f"{path}[{i}]")
        name = _string(var, "name", f"{path}[{i}]")
        value = var.get("value")
        if value is not None and (_SECRET_NAME.search(name) or (isinstance(value, str) and _has_password(value))):
            raise InvalidDataError(f"{path}[{i}] ({name}) carries a secret in plain text; use valueFrom.secretKeyRef")
