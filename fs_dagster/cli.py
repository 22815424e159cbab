"""``fs-dagster``: inspect a feature store from the shell.

Examples:
    fs-dagster --root .demo/store --project flights list
    fs-dagster --root .demo/store --project flights commits weather_hourly
    fs-dagster --root .demo/store --project flights search "delay"
    fs-dagster --root .demo/store --project flights stats weather_hourly
    fs-dagster --root .demo/store --project flights verify weather_hourly   # exit 1 naming any bad file
    fs-dagster --root .demo/store --project flights deployment create delays_api --model delays --version 3
    fs-dagster --root .demo/store --project flights deployment start delays_api
    fs-dagster --root .demo/store --project flights deployment list
"""

from __future__ import annotations

import argparse
import json
import sys

from pathlib import Path

from fs_dagster.core.environment import (
    DEFAULT_PROJECT,
    DEFAULT_ROOT,
    ENV_ONLINE_PASSWORD,
    ENV_ONLINE_URL,
    ENV_PROJECT,
    ENV_REGISTRY_URL,
    ENV_ROOT,
    from_env,
)
from fs_dagster.core.errors import FeatureStoreError

REGISTRY_FILE = "registry.db"  # the SQLite registry under the root (Registry.for_root)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fs-dagster", description="Inspect an fs-dagster feature store.")
    parser.add_argument("--root", default=from_env(ENV_ROOT, DEFAULT_ROOT), help=f"store root (${ENV_ROOT})")
    parser.add_argument("--project", default=from_env(ENV_PROJECT, DEFAULT_PROJECT), help=f"${ENV_PROJECT}")
    parser.add_argument("--registry-url", default=from_env(ENV_REGISTRY_URL),
                        help=f"SQLAlchemy URL of a registry not under the root, e.g. PostgreSQL (${ENV_REGISTRY_URL})")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="feature groups with row and commit counts")
    commits = sub.add_parser("commits", help="commit timeline of a feature group")
    commits.add_argument("name")
    commits.add_argument("--version", type=int)
    search = sub.add_parser("search", help="keyword search over feature groups and features")
    search.add_argument("text")
    stats = sub.add_parser("stats", help="statistics of a feature group's latest (or given) commit, as JSON")
    stats.add_argument("name")
    stats.add_argument("--version", type=int)
    stats.add_argument("--commit")
    verify = sub.add_parser(
        "verify", help="check every live file of a feature group's latest commit (present, size, page checksums)"
    )
    verify.add_argument("name")
    verify.add_argument("--version", type=int)
    valkey = sub.add_parser("valkey", help="the root's embedded online store server: start, stop or status")
    valkey.add_argument("action", choices=["start", "stop", "status"])
    _deployment_parser(sub)
    return parser


def _deployment_parser(sub: argparse._SubParsersAction) -> None:
    deployment = sub.add_parser("deployment", help="model deployments served by seldon-core")
    actions = deployment.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="deployments with their model version and state")
    for action, text in (("status", "running or stopped (exit code 3 when stopped)"),
                         ("start", "start the local server on 127.0.0.1"), ("stop", "stop the local server"),
                         ("health", "the server's health: loaded version, pid, inference-log counters (JSON)"),
                         ("rollback", "switch back to the previous model version"),
                         ("delete", "stop and unregister the deployment"),
                         ("flush-log", "move logged requests into the inference-log feature group")):
        actions.add_parser(action, help=text).add_argument("name")
    create = actions.add_parser("create", help="register a deployment of a model version")
    create.add_argument("name")
    create.add_argument("--model", required=True)
    create.add_argument("--version", type=int, help="model version (default: the latest)")
    create.add_argument("--port", type=int, help="fixed HTTP port (default: a free one at every start)")
    create.add_argument("--workers", type=int, default=1)
    create.add_argument("--threads", type=int, default=1)
    create.add_argument("--max-batch", type=int, default=10_000)
    create.add_argument("--no-inference-log", action="store_true")
    switch = actions.add_parser("switch", help="serve another version of the model (rolling when running)")
    switch.add_argument("name")
    switch.add_argument("version", type=int)
    manifest = actions.add_parser("manifest", help="SeldonDeployment YAML for Kubernetes")
    manifest.add_argument("name")
    manifest.add_argument("--image", required=True)
    manifest.add_argument("--online-url", help="the Valkey the pod reaches (valkey://host:6379/0)")
    manifest.add_argument("--store-root", help="the store root as mounted in the pod")
    manifest.add_argument("--namespace")
    manifest.add_argument("--secret-name")
    manifest.add_argument("--replicas", type=int, default=1)


def _deployment(store: object, args: argparse.Namespace) -> int:
    """The ``deployment`` commands (the store's registry holds the deployments)."""
    from fs_dagster.core.serving.manifest import to_yaml

    if args.action == "list":
        print(f"{'deployment':<24} {'model':<24} {'version':>7} {'previous':>8}  state")
        for dep in store.get_deployments():  # type: ignore[attr-defined]
            status = dep.status()
            previous = f"v{status.previous_version}" if status.previous_version else "-"
            where = f" {status.url} pid={status.pid}" if status.state == "running" else ""
            print(f"{dep.name:<24} {dep.model_name:<24} {'v' + str(dep.model_version):>7} {previous:>8}  "
                  f"{status.state}{where}")
        return 0
    if args.action == "create":
        mv = store.get_model_registry().get_model(args.model, args.version)  # type: ignore[attr-defined]
        dep = store.create_deployment(  # type: ignore[attr-defined]
            args.name, mv, port=args.port, workers=args.workers, threads=args.threads, max_batch=args.max_batch,
            inference_log=not args.no_inference_log)
        print(f"created {dep.name}: {dep.model_name} v{dep.model_version} (start it with "
              f"`fs-dagster deployment start {dep.name}`)")
        return 0
    dep = store.get_deployment(args.name)  # type: ignore[attr-defined]
    if args.action == "status":
        status = dep.status()
        print(status)
        return 0 if status.state == "running" else 3
    if args.action == "start":
        print(dep.start())
    elif args.action == "stop":
        print("stopped" if dep.stop() else "not running")
    elif args.action == "health":
        print(json.dumps(dep.health(), indent=2))
    elif args.action in ("rollback", "switch"):
        report = dep.rollback() if args.action == "rollback" else dep.switch_to(args.version)
        how = (f"rolling: new workers ready in {report.ready_seconds:.2f}s, done in {report.total_seconds:.2f}s"
               if report.live else "not running: the next start serves it")
        print(f"{dep.name}: {report.from_target} -> {report.to_target} ({how})")
    elif args.action == "delete":
        dep.delete()
        print(f"deleted {args.name}")
    elif args.action == "flush-log":
        result = dep.flush_inference_log()
        print(f"flushed {result.entries} requests ({result.rows} rows) in {len(result.commits)} commit(s)"
              + (f"; skipped undecodable entries {result.skipped}" if result.skipped else ""))
    elif args.action == "manifest":
        print(to_yaml(dep.manifest(image=args.image, online_url=args.online_url, store_root=args.store_root,
                                   namespace=args.namespace, secret_name=args.secret_name, replicas=args.replicas)),
              end="")
    return 0


def _valkey(root: str, action: str) -> int:
    """Start/stop/status of the root's embedded valkey-server; status exits 3 when it is not running."""
    from fs_dagster.core.online.embedded import EmbeddedValkey

    server = EmbeddedValkey(root)
    if action == "stop":
        print("stopped" if server.stop() else "not running")
        return 0
    info = server.ensure_running() if action == "start" else server.status()
    if info is None:
        print("not running")
        return 3
    # (the URL without its password: that stays in <root>/online/password, readable by the root's owner only)
    print(f"running url=valkey://{info.address}/0 pid={info.pid} port={info.port} "
          f"password_file={server.dir / 'password' if info.password else '(none)'}")
    return 0


def _missing_registry(args: argparse.Namespace) -> str | None:
    """Why the store cannot be read without creating a registry (None: it can). Every store command reads an
    existing store (even ``deployment create`` needs a registered model)."""
    if args.registry_url or (Path(args.root).expanduser() / REGISTRY_FILE).exists():
        return None
    root = Path(args.root).expanduser().resolve()
    projects = sorted(p.name for p in root.iterdir() if (p / "feature_groups").is_dir()) if root.is_dir() else []
    if projects:  # tables without a registry file: the registry lives elsewhere (PostgreSQL)
        return (f"no registry at {root / REGISTRY_FILE}, but the root holds tables of project(s) {', '.join(projects)}: "
                f"its registry is elsewhere (PostgreSQL?); pass --registry-url or set {ENV_REGISTRY_URL}")
    where = "does not exist" if not root.exists() else f"has no {REGISTRY_FILE}"
    return f"no feature store at {root} (the folder {where}); pass --root or set {ENV_ROOT}"


def _nothing_in(store: object, what: str) -> str:
    """The message for an empty list: which project and registry were read, and the projects that registry has."""
    registry = store.registry  # type: ignore[attr-defined]
    others = [p for p in registry.projects() if p != store.project]  # type: ignore[attr-defined]
    seen = f"projects there: {', '.join(others)}" if others else "it has no other project"
    return (f"no {what} in project {store.project!r} of registry {registry.location}"  # type: ignore[attr-defined]
            f" ({seen}; set --project or {ENV_PROJECT})")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "valkey":
        try:
            return _valkey(args.root, args.action)
        except FeatureStoreError as error:
            print(f"fs-dagster: {error}", file=sys.stderr)
            return 2
    missing_registry = _missing_registry(args)
    if missing_registry:  # reading a store creates nothing: no empty registry.db beside a PostgreSQL store's tables
        print(f"fs-dagster: {missing_registry}", file=sys.stderr)
        return 2
    from fs_dagster.core.online.online_store import OnlineStoreConfig
    from fs_dagster.core.store import FeatureStore  # heavy (pandas, registry): only for store commands

    online = OnlineStoreConfig(url=from_env(ENV_ONLINE_URL), password=from_env(ENV_ONLINE_PASSWORD))
    store = FeatureStore(root=args.root, project=args.project, registry_url=args.registry_url, online=online)
    try:
        if args.command == "list":
            groups = store.get_feature_groups()
            if not groups:
                print(_nothing_in(store, "feature groups"))
                return 0
            print(f"{'feature group':<28} {'version':>7} {'rows':>10} {'commits':>8}  online  description")
            for fg in groups:
                print(
                    f"{fg.name:<28} {fg.version:>7} {fg.count():>10} {len(fg.commit_details()):>8}  "
                    f"{'yes' if fg.spec.online_enabled else 'no':<6}  {fg.spec.description}"
                )
        elif args.command == "commits":
            fg = store.get_feature_group(args.name, args.version)
            print(f"{'instant':<18} {'operation':<9} {'inserted':>9} {'updated':>8} {'deleted':>8} {'files':>6}")
            for c in fg.commit_details():
                print(
                    f"{c.instant:<18} {c.operation:<9} {c.rows_inserted:>9} {c.rows_updated:>8} "
                    f"{c.rows_deleted:>8} {c.files_written:>6}"
                )
        elif args.command == "search":
            hits = store.search(args.text)
            if not hits:
                print(_nothing_in(store, f"matches for {args.text!r}"))
            for hit in hits:
                target = f"{hit.feature_group}.{hit.feature}" if hit.feature else hit.feature_group
                print(f"{hit.kind:<14} {target:<44} v{hit.version}  {', '.join(hit.matched_in)}")
        elif args.command == "stats":
            fg = store.get_feature_group(args.name, args.version)
            print(json.dumps(fg.statistics(args.commit), indent=2))
        elif args.command == "verify":
            report = store.get_feature_group(args.name, args.version).verify()
            print(report.summary())
            return 0 if report.ok else 1
        elif args.command == "deployment":
            return _deployment(store, args)
    except FeatureStoreError as error:
        print(f"fs-dagster: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
