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
import os
import sys

from fs_dagster.core.errors import FeatureStoreError

DEFAULT_ROOT = ".fs_store"  # same as fs_dagster.core.store.DEFAULT_ROOT; that module is imported lazily (pandas)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fs-dagster", description="Inspect an fs-dagster feature store.")
    parser.add_argument("--root", default=os.environ.get("FS_DAGSTER_ROOT", DEFAULT_ROOT), help="store root")
    parser.add_argument("--project", default=os.environ.get("FS_DAGSTER_PROJECT", "default"))
    parser.add_argument("--registry-url", default=os.environ.get("FS_DAGSTER_REGISTRY_URL"))
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "valkey":
        try:
            return _valkey(args.root, args.action)
        except FeatureStoreError as error:
            print(f"fs-dagster: {error}", file=sys.stderr)
            return 2
    from fs_dagster.core.store import FeatureStore  # heavy (pandas, registry): only for store commands

    store = FeatureStore(root=args.root, project=args.project, registry_url=args.registry_url)
    try:
        if args.command == "list":
            print(f"{'feature group':<28} {'version':>7} {'rows':>10} {'commits':>8}  online  description")
            for fg in store.get_feature_groups():
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
            for hit in store.search(args.text):
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
