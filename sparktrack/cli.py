"""The ``sparktrack`` command: experiments, runs, gc and maintenance from a shell.

    sparktrack --store ./sparktrack-store experiments list
    sparktrack runs search --experiment-name churn --filter "metrics.auc > 0.8" --csv runs.csv
    sparktrack runs delete --experiment-id 0 --before 2026-01-01
    sparktrack runs compare RUN_ID RUN_ID --plot plots/
    sparktrack gc --older-than 30d

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
    experiments = client.search_experiments(view_type=_view(args.view))
    print(f"{'experiment_id':<20} {'name':<30} {'stage':<8} created")
    for e in experiments:
        print(f"{e.experiment_id:<20} {e.name:<30} {e.lifecycle_stage:<8} "
              f"{_format_time(e.creation_time)}")


def _experiments_create(client: TrackingClient, args: argparse.Namespace) -> None:
    tags = dict(args.tag)
    experiment_id = client.create_experiment(
        args.name, artifact_location=args.artifact_location, tags=tags
    )
    print(experiment_id)


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
        ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
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
        for run_id in args.run_ids:
            if restore:
                client.restore_run(run_id, restore_descendants=not args.only)
            else:
                client.delete_run(run_id, delete_descendants=not args.only)
        print(f"{done} {len(args.run_ids)} run(s).")
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


def _maintain(client: TrackingClient, args: argparse.Namespace) -> None:
    from sparktrack.maintenance import maintain

    report = maintain(client.store.root, storage_options=client.store.storage_options)
    print(report)


# -- parser ------------------------------------------------------------------------------------
def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sparktrack", description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=None,
                        help=f"store URI (default: $SPARKTRACK_TRACKING_URI or {DEFAULT_TRACKING_URI})")
    commands = parser.add_subparsers(dest="command", required=True)

    experiments = commands.add_parser("experiments", help="list, create, delete, restore")
    exp_commands = experiments.add_subparsers(dest="action", required=True)
    listing = exp_commands.add_parser("list", help="list experiments")
    listing.add_argument("--view", choices=["active", "deleted", "all"], default="active")
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
