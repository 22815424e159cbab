"""``fs-dagster``: inspect a feature store from the shell.

Examples:
    fs-dagster --root .demo/store --project flights list
    fs-dagster --root .demo/store --project flights commits weather_hourly
    fs-dagster --root .demo/store --project flights search "delay"
    fs-dagster --root .demo/store --project flights stats weather_hourly
    fs-dagster --root .demo/store --project flights verify weather_hourly   # exit 1 naming any bad file
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
    return parser


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
    except FeatureStoreError as error:
        print(f"fs-dagster: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
