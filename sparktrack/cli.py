"""The ``sparktrack`` command: experiments, runs, gc and maintenance from a shell.

    sparktrack --store ./sparktrack-store experiments list
    sparktrack runs search --experiment-name churn --filter "metrics.auc > 0.8" --csv runs.csv
    sparktrack runs delete --experiment-id 0 --before 2026-01-01
    sparktrack runs compare RUN_ID RUN_ID --plot plots/
    sparktrack gc --older-than 30d
    sparktrack models register runs:/RUN_ID/model churn
    sparktrack models transition churn 3 Production --archive-existing
    sparktrack models history churn --since 2026-03-01
    sparktrack import --from sqlite:///mlflow.db        (or --from ./mlruns)
    sparktrack export --to sqlite:///mlflow.db --experiment churn

Errors are one line on stderr and a non-zero exit (1 for a refused operation, 2 for usage).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from sparktrack.client import TrackingClient
from sparktrack.config import DEFAULT_TRACKING_URI
from sparktrack.entities import Run, ViewType
from sparktrack.errors import SparkTrackError

__all__ = ["main", "parse_duration", "parse_time_millis"]

class _UsageError(Exception):
    """A command line that cannot be run as written (exit 2)."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the usage block and then the error; one line is easier to read and grep.
    def error(self, message: str):
        raise _UsageError(f"{self.prog}: error: {message} (see `{self.prog} --help`)")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``15m``, ``90s``, ``2w`` -> timedelta."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use a number and a unit s, m, h, d or w (e.g. 30d)"
        )
    return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def parse_time_millis(text: str) -> int:
    """Milliseconds since the epoch, or an ISO date/time (UTC unless it names a zone)."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: use milliseconds since the epoch or an ISO date such as "
            "2026-01-31 or 2026-01-31T12:00:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def _view(text: str) -> ViewType:
    return {"active": ViewType.ACTIVE_ONLY, "deleted": ViewType.DELETED_ONLY,
            "all": ViewType.ALL}[text]


def _format_time(millis: int | None) -> str:
    if millis is None:
        return "-"
    return datetime.fromtimestamp(millis / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


# -- experiments -------------------------------------------------------------------------------
def _experiments_list(client: TrackingClient, args: argparse.Namespace) -> None:
    experiments = client.search_experiments(
        view_type=_view(args.view), max_results=None, filter_string=args.filter,
        order_by=args.order_by,
    )
    shown = experiments[:args.max_results] if args.max_results is not None else experiments
    print(f"{'experiment_id':<20} {'name':<30} {'stage':<8} {'created':<19}  updated")
    for e in shown:
        print(f"{e.experiment_id:<20} {e.name:<30} {e.lifecycle_stage:<8} "
              f"{_format_time(e.creation_time):<19}  {_format_time(e.last_update_time)}")
    more = f" of {len(experiments)}; raise --max-results to see more" if len(shown) < len(
        experiments) else ""
    print(f"({len(shown)} experiment{'' if len(shown) == 1 else 's'}{more})")


def _experiments_create(client: TrackingClient, args: argparse.Namespace) -> None:
    tags = dict(args.tag)
    experiment_id = client.create_experiment(
        args.name, artifact_location=args.artifact_location, tags=tags
    )
    print(experiment_id)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: use a positive integer")
    return int(text)


def _key_value(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"invalid tag {item!r}: use KEY=VALUE")
    return key, value


def _experiments_delete(client: TrackingClient, args: argparse.Namespace) -> None:
    client.delete_experiment(args.experiment_id)
    print(f"Experiment {args.experiment_id} deleted (restore with `experiments restore`).")


def _experiments_restore(client: TrackingClient, args: argparse.Namespace) -> None:
    client.restore_experiment(args.experiment_id)
    print(f"Experiment {args.experiment_id} restored.")


# -- runs --------------------------------------------------------------------------------------
def _experiment_ids(client: TrackingClient, args: argparse.Namespace) -> list[str]:
    ids = list(args.experiment_id or [])
    for name in args.experiment_name or []:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise SparkTrackError(f"No experiment named {name!r} (see `experiments list`).")
        ids.append(experiment.experiment_id)
    if not ids:
        ids = [e.experiment_id
               for e in client.search_experiments(view_type=ViewType.ALL, max_results=None)]
    return ids


def _search(client: TrackingClient, args: argparse.Namespace) -> list[Run]:
    return list(client.search_runs(
        _experiment_ids(client, args), args.filter or "", _view(args.view), args.max_results,
        args.order_by or None,
    ))


def _runs_search(client: TrackingClient, args: argparse.Namespace) -> None:
    runs = _search(client, args)
    if args.csv:
        from sparktrack.export import runs_to_csv

        runs_to_csv(runs, args.csv)
        print(f"Wrote {len(runs)} runs to {args.csv}")
        return
    print(f"{'run_id':<32}  {'name':<24} {'status':<9} {'started':<19}  metrics")
    for run in runs:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(run.data.metrics.items()))
        print(f"{run.info.run_id:<32}  {run.info.run_name[:24]:<24} {run.info.status:<9} "
              f"{_format_time(run.info.start_time):<19}  {metrics}")
    print(f"({len(runs)} runs)")


def _change_lifecycle(client: TrackingClient, args: argparse.Namespace, *, restore: bool) -> None:
    """``runs delete`` and ``runs restore``: by run id (with nested runs), or in bulk by time."""
    action, bound_name = ("restore", "after") if restore else ("delete", "before")
    done = "Restored" if restore else "Deleted"
    if args.run_ids:
        changed: list[str] = []
        for run_id in args.run_ids:
            if restore:
                changed += client.restore_run(run_id, restore_descendants=not args.only)
            else:
                changed += client.delete_run(run_id, delete_descendants=not args.only)
        given = set(args.run_ids)
        nested = sum(1 for run_id in changed if run_id not in given)
        detail = f" ({len(changed) - nested} given, {nested} nested)" if nested else ""
        untouched = len(given - set(changed))
        state = "active" if restore else "deleted"
        skipped = f" {untouched} given run(s) were already {state}." if untouched else ""
        print(f"{done} {len(changed)} run(s){detail}.{skipped}")
        return
    bound = getattr(args, bound_name)
    if args.experiment_id_bulk is None or bound is None:
        raise _UsageError(f"sparktrack runs {action}: error: give run ids, or --experiment-id and "
                          f"--{bound_name} for a bulk {action} (see `sparktrack runs {action} "
                          "--help`)")
    bulk = client.restore_runs if restore else client.delete_runs
    count = bulk(args.experiment_id_bulk, bound, max_runs=args.max_runs)
    print(f"{done} {count} run(s).")


def _runs_delete(client: TrackingClient, args: argparse.Namespace) -> None:
    _change_lifecycle(client, args, restore=False)


def _runs_restore(client: TrackingClient, args: argparse.Namespace) -> None:
    _change_lifecycle(client, args, restore=True)


def _runs_compare(client: TrackingClient, args: argparse.Namespace) -> None:
    from sparktrack.compare import compare_runs, plot_comparison

    runs = [client.get_run(run_id) for run_id in args.run_ids]
    table = compare_runs(runs, hide_identical=args.hide_identical)
    print(table.to_string())
    if args.plot:
        for path in plot_comparison(runs, args.plot):
            print(f"Wrote {path}")


def _gc(client: TrackingClient, args: argparse.Namespace) -> None:
    result = client.gc(older_than=args.older_than, experiment_ids=args.experiment_id or None)
    print(f"Removed {len(result.run_ids)} run(s) for good; vacuumed {result.files_vacuumed} "
          "file(s).")
    for location in result.skipped_artifacts:
        print(f"Left artifacts outside the store on disk: {location}")


def _maintain(client: TrackingClient, args: argparse.Namespace) -> None:
    from sparktrack.maintenance import Maintenance

    report = Maintenance(client.store_root, storage_options=client.storage_options).run()
    print(_maintenance_summary(report))


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _maintenance_summary(report) -> str:
    """One line per table: data files before -> after compaction, bytes rewritten, the
    checkpoint version and the files vacuumed; then runs_latest and the time taken."""
    import json

    tables = sorted({*report.compacted, *report.checkpoints, *report.vacuumed})
    lines = [f"{'table':<18} {'files':>13}  {'rewritten':<22} {'checkpoint':>10}  vacuumed"]
    for table in tables:
        files, rewritten = "-", "-"
        metrics = report.compacted.get(table)
        if metrics is not None:
            before = metrics.get("totalConsideredFiles", 0)
            after = before - metrics.get("numFilesRemoved", 0) + metrics.get("numFilesAdded", 0)
            files = f"{before} -> {after}"
            if metrics.get("numFilesRemoved"):
                removed = json.loads(metrics.get("filesRemoved") or "{}").get("totalSize", 0)
                added = json.loads(metrics.get("filesAdded") or "{}").get("totalSize", 0)
                rewritten = f"{_size(removed)} -> {_size(added)}"
        version = report.checkpoints.get(table)
        checkpoint = f"v{version}" if version is not None else "-"
        vacuumed = report.vacuumed.get(table)
        lines.append(f"{table:<18} {files:>13}  {rewritten:<22} {checkpoint:>10}  "
                     f"{'-' if vacuumed is None else f'{vacuumed} file(s)'}")
    if report.runs_latest_rows is not None:
        lines.append(f"runs_latest rewritten with {report.runs_latest_rows} run(s).")
    lines.append(f"Done in {report.seconds:.2f} s.")
    return "\n".join(lines)


# -- parser ------------------------------------------------------------------------------------
# -- model registry ----------------------------------------------------------------------------
def _models_list(client: TrackingClient, args: argparse.Namespace) -> None:
    models = client.search_registered_models(args.filter, args.max_results, args.order_by)
    print(f"{'name':<30} {'latest':<8} {'aliases':<30} updated")
    for m in models:
        latest = max((v.version for v in m.latest_versions), default=None)
        aliases = ", ".join(f"{a}=v{v}" for a, v in m.aliases.items()) or "-"
        print(f"{m.name:<30} {latest if latest is not None else '-':<8} {aliases:<30} "
              f"{_format_time(m.last_updated_timestamp)}")
    print(f"({len(models)} model{'' if len(models) == 1 else 's'})")


def _quote_filter_value(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _models_versions(client: TrackingClient, args: argparse.Namespace) -> None:
    clauses = [f"name = {_quote_filter_value(args.name)}"] if args.name else []
    if args.filter:
        clauses.append(f"({args.filter})")
    versions = client.search_model_versions(" AND ".join(clauses) or None, args.max_results,
                                            args.order_by or ["name", "version_number DESC"])
    print(f"{'name':<30} {'version':<8} {'stage':<11} {'aliases':<20} {'created':<19}  source")
    for v in versions:
        print(f"{v.name:<30} {v.version:<8} {v.current_stage:<11} "
              f"{', '.join(v.aliases) or '-':<20} {_format_time(v.creation_timestamp):<19}  "
              f"{v.source}")
    print(f"({len(versions)} version{'' if len(versions) == 1 else 's'})")


def _models_register(client: TrackingClient, args: argparse.Namespace) -> None:
    version = client.register_model(args.model_uri, args.name, tags=dict(args.tag))
    if args.description:
        client.update_model_version(args.name, version.version, args.description)
    print(f"Registered {version.name} version {version.version}.")


def _models_alias(client: TrackingClient, args: argparse.Namespace) -> None:
    if args.delete:
        if args.version is not None:
            raise _UsageError("models alias --delete takes NAME ALIAS, without a version")
        client.delete_registered_model_alias(args.name, args.alias)
        print(f"Alias {args.alias} of {args.name} deleted.")
        return
    if args.version is None:
        raise _UsageError("models alias needs NAME ALIAS VERSION (or --delete)")
    client.set_registered_model_alias(args.name, args.alias, args.version)
    print(f"{args.name}@{args.alias} -> version {args.version}.")


def _models_transition(client: TrackingClient, args: argparse.Namespace) -> None:
    version = client.transition_model_version_stage(args.name, args.version, args.stage,
                                                    args.archive_existing)
    print(f"{version.name} version {version.version} is now in stage {version.current_stage}.")


def _models_delete(client: TrackingClient, args: argparse.Namespace) -> None:
    if args.version is None:
        client.delete_registered_model(args.name)
        print(f"Registered model {args.name} and its versions deleted.")
    else:
        client.delete_model_version(args.name, args.version)
        print(f"{args.name} version {args.version} deleted.")


def _models_history(client: TrackingClient, args: argparse.Namespace) -> None:
    events = client.get_registry_history(args.name, since=args.since)
    print(f"{'time':<19}  {'user':<12} {'event':<28} {'name':<24} {'version':<8} details")
    for e in events:
        details = " ".join(f"{key}={e[key]}" for key in (
            "previous_stage", "stage", "alias", "previous_version", "key", "value")
            if e[key] is not None)
        version = "-" if e["version"] is None else str(e["version"])
        print(f"{_format_time(e['timestamp']):<19}  {e['user_id'] or '-':<12} "
              f"{e['event']:<28} {e['name']:<24} {version:<8} {details}")
    print(f"({len(events)} event{'' if len(events) == 1 else 's'})")


def _add_model_commands(commands) -> None:
    models = commands.add_parser(
        "models", help="model registry: list, versions, register, alias, transition, delete, "
        "history")
    model_commands = models.add_subparsers(dest="action", required=True)
    listing = model_commands.add_parser("list", help="list registered models")
    listing.add_argument("--filter", help="e.g. \"name LIKE 'churn%%' AND tags.team = 'ml'\"")
    listing.add_argument("--order-by", action="append", help="name, timestamp, "
                         "creation_timestamp, then ASC or DESC (repeatable)")
    listing.add_argument("--max-results", type=_positive_int, default=1000)
    listing.set_defaults(handler=_models_list)
    versions = model_commands.add_parser("versions", help="list model versions")
    versions.add_argument("name", nargs="?", help="only this model's versions")
    versions.add_argument("--filter", help="e.g. \"alias = 'champion'\" or "
                          "\"current_stage = 'Production'\"")
    versions.add_argument("--order-by", action="append",
                          help="e.g. 'version_number DESC' (repeatable)")
    versions.add_argument("--max-results", type=_positive_int, default=10_000)
    versions.set_defaults(handler=_models_versions)
    register = model_commands.add_parser(
        "register", help="register a model (e.g. runs:/RUN_ID/model) as a new version")
    register.add_argument("model_uri")
    register.add_argument("name")
    register.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                          type=_key_value)
    register.add_argument("--description")
    register.set_defaults(handler=_models_register)
    alias = model_commands.add_parser("alias", help="point an alias at a version, or delete it")
    alias.add_argument("name")
    alias.add_argument("alias")
    alias.add_argument("version", nargs="?")
    alias.add_argument("--delete", action="store_true", help="delete the alias")
    alias.set_defaults(handler=_models_alias)
    transition = model_commands.add_parser("transition", help="move a version to a stage")
    transition.add_argument("name")
    transition.add_argument("version")
    transition.add_argument("stage", help="None, Staging, Production or Archived")
    transition.add_argument("--archive-existing", action="store_true",
                            help="archive the other versions in that stage")
    transition.set_defaults(handler=_models_transition)
    delete = model_commands.add_parser("delete", help="delete a model, or one of its versions")
    delete.add_argument("name")
    delete.add_argument("version", nargs="?")
    delete.set_defaults(handler=_models_delete)
    history = model_commands.add_parser("history", help="every registry change, oldest first")
    history.add_argument("name", nargs="?", help="only this model (across its renames)")
    history.add_argument("--since", type=parse_time_millis,
                         help="from this time on (epoch ms or ISO date)")
    history.set_defaults(handler=_models_history)


# -- MLflow import / export ---------------------------------------------------------------------
def _import(client: TrackingClient, args: argparse.Namespace) -> None:
    from sparktrack._transfer import import_mlflow

    summary = import_mlflow(args.source, store_uri=client.store_root, batch_runs=args.batch_runs,
                            progress=not args.no_progress)
    print("\n".join(summary.lines()))


def _export(client: TrackingClient, args: argparse.Namespace) -> None:
    from sparktrack._transfer.exporter import export_experiment

    summary = export_experiment(args.experiment, to_uri=args.to, store_uri=client.store_root,
                                progress=not args.no_progress)
    print("\n".join(summary.lines()))


def _add_transfer_commands(commands) -> None:
    # --store is also accepted after the command; SUPPRESS keeps a --store given before it.
    store_help = "store URI (the same as the global --store)"
    imports = commands.add_parser(
        "import", help="copy an MLflow store (database or mlruns folder) into the store; "
        "safe to run again")
    imports.add_argument("--from", dest="source", required=True, metavar="MLFLOW_URI",
                         help="sqlite:///mlflow.db, postgresql://..., or an mlruns folder")
    imports.add_argument("--store", default=argparse.SUPPRESS, help=store_help)
    imports.add_argument("--batch-runs", type=_positive_int, default=2000,
                         help="runs written per batch (default 2000)")
    imports.add_argument("--no-progress", action="store_true", help="no progress bar")
    imports.set_defaults(handler=_import)
    exports = commands.add_parser(
        "export", help="copy one experiment into an MLflow store through MLflow's client")
    exports.add_argument("--to", required=True, metavar="MLFLOW_URI",
                         help="any tracking URI MLflow accepts, e.g. sqlite:///mlflow.db")
    exports.add_argument("--experiment", required=True, help="the experiment's name or id")
    exports.add_argument("--store", default=argparse.SUPPRESS, help=store_help)
    exports.add_argument("--no-progress", action="store_true", help="no progress bar")
    exports.set_defaults(handler=_export)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sparktrack", description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=None,
                        help=f"store URI (default: $SPARKTRACK_TRACKING_URI or {DEFAULT_TRACKING_URI})")
    commands = parser.add_subparsers(dest="command", required=True)

    experiments = commands.add_parser("experiments", help="list, create, delete, restore")
    exp_commands = experiments.add_subparsers(dest="action", required=True)
    listing = exp_commands.add_parser("list", help="list experiments")
    listing.add_argument("--view", choices=["active", "deleted", "all"], default="active")
    listing.add_argument("--filter", help="e.g. \"name LIKE 'churn%%' AND tags.team = 'ml'\"")
    listing.add_argument("--order-by", action="append",
                         help="name, experiment_id, creation_time or last_update_time, "
                         "then ASC or DESC, e.g. 'name ASC' (repeatable; default "
                         "'creation_time DESC')")
    listing.add_argument("--max-results", type=_positive_int, default=None,
                         help="print at most this many experiments (default: all)")
    listing.set_defaults(handler=_experiments_list)
    create = exp_commands.add_parser("create", help="create an experiment, print its id")
    create.add_argument("name")
    create.add_argument("--artifact-location")
    create.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                        type=_key_value)
    create.set_defaults(handler=_experiments_create)
    for action, handler in (("delete", _experiments_delete), ("restore", _experiments_restore)):
        command = exp_commands.add_parser(action, help=f"{action} an experiment and its runs")
        command.add_argument("experiment_id")
        command.set_defaults(handler=handler)

    runs = commands.add_parser("runs", help="search, delete, restore, compare runs")
    run_commands = runs.add_subparsers(dest="action", required=True)
    search = run_commands.add_parser("search", help="search runs with the filter grammar")
    search.add_argument("--experiment-id", action="append")
    search.add_argument("--experiment-name", action="append")
    search.add_argument("--filter", help="e.g. \"metrics.rmse < 1 AND params.model = 'gbt'\"")
    search.add_argument("--order-by", action="append", help="e.g. 'metrics.rmse ASC' (repeatable)")
    search.add_argument("--max-results", type=int, default=1000)
    search.add_argument("--view", choices=["active", "deleted", "all"], default="active")
    search.add_argument("--csv", help="write the runs to this CSV file instead of printing")
    search.set_defaults(handler=_runs_search)
    for action, handler, bound, bound_help in (
        ("delete", _runs_delete, "--before", "runs started at or before this time"),
        ("restore", _runs_restore, "--after", "runs deleted at or after this time"),
    ):
        command = run_commands.add_parser(action, help=f"{action} runs by id, or in bulk by time")
        command.add_argument("run_ids", nargs="*")
        command.add_argument("--only", action="store_true",
                             help="leave nested runs alone (default: include them)")
        command.add_argument("--experiment-id", dest="experiment_id_bulk")
        command.add_argument(bound, type=parse_time_millis, dest=bound.strip("-"),
                             help=f"{bound_help} (epoch ms or ISO date)")
        command.add_argument("--max-runs", type=int, default=10_000)
        command.set_defaults(handler=handler)
    compare = run_commands.add_parser("compare", help="params and metrics side by side")
    compare.add_argument("run_ids", nargs="+")
    compare.add_argument("--hide-identical", action="store_true")
    compare.add_argument("--plot", metavar="DIR", help="write comparison plots (PNG) here")
    compare.set_defaults(handler=_runs_compare)

    gc = commands.add_parser("gc", help="permanently remove runs deleted long enough ago")
    gc.add_argument("--older-than", type=parse_duration, default=timedelta(days=30),
                    help="e.g. 30d (default), 12h, 0s")
    gc.add_argument("--experiment-id", action="append")
    gc.set_defaults(handler=_gc)

    maintain = commands.add_parser("maintain", help="compact, checkpoint, vacuum, runs_latest")
    maintain.set_defaults(handler=_maintain)
    _add_model_commands(commands)
    _add_transfer_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    try:
        args = _build_parser().parse_args(argv)
    except _UsageError as error:
        _print_error(str(error))
        return 2
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else 0
    try:
        client = TrackingClient(args.store)
        args.handler(client, args)
        client.flush()
    except _UsageError as error:
        _print_error(str(error))
        return 2
    except (SparkTrackError, OSError) as error:
        _print_error(f"sparktrack: error: {error}")
        return 1
    return 0


def _print_error(message: str) -> None:
    print(" ".join(message.split("\n")), file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
