"""The ``oscar-deploy`` command: a thin click shell over the library.

Only this module formats output and maps errors to exit codes (0 done, 1 failed at run time,
2 bad input). Heavy libraries (tosca-parser, libcloud, kubernetes, ansible) are imported inside the
commands that need them, so ``--help`` stays fast. ``elastic`` is imported lazily, only by
``daemon``, ``nodes`` and ``simulate`` (DESIGN §1).
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from provisioner.errors import OscarDeployError

log = logging.getLogger("oscar_deploy")


class Context:
    """What the global options give every command: settings (parsed once) and verbosity."""

    def __init__(self, config: str | None, state: str | None, verbosity: int) -> None:
        self.config_path = config
        self.state_override = state
        self.verbosity = verbosity
        self._settings: Any = None

    @property
    def settings(self) -> Any:
        if self._settings is None:
            from provisioner.config import load_settings

            self._settings = load_settings(self.config_path)
        return self._settings

    @property
    def state_path(self) -> Path:
        return Path(self.state_override or self.settings.general.state).expanduser()


def fail(error: BaseException, verbosity: int) -> NoReturn:
    """Print an error the way users should see it, and exit with its code."""
    if isinstance(error, OscarDeployError):
        code = error.exit_code
        message = str(error)
    elif isinstance(error, click.exceptions.Exit):
        raise error
    else:
        code = 1
        message = f"internal error: {type(error).__name__}: {error} (run with -v for the traceback)"
    if verbosity > 0:
        import traceback

        traceback.print_exception(error, file=sys.stderr)
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handles_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into messages and exit codes, without tracebacks unless ``-v``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        verbosity = ctx.find_object(Context).verbosity if ctx.find_object(Context) else 0
        try:
            return func(*args, **kwargs)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as error:  # the one place every error is turned into an exit code
            fail(error, verbosity)

    return wrapper


def setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    # tosca-parser and libcloud are chatty at INFO; their messages reach users through our errors.
    for noisy in ("tosca", "toscaparser", "libcloud", "urllib3", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbosity > 1 else logging.ERROR)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config", metavar="FILE", help="Configuration file (default: looked up).")
@click.option("--state", "state", metavar="PATH", help="State file (default from [general] state).")
@click.option("-v", "--verbose", count=True, help="More output; -v shows tracebacks.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and results.")
@click.pass_context
def main(ctx: click.Context, config: str | None, state: str | None, verbose: int, quiet: bool) -> None:
    """Turn a TOSCA template into a running OSCAR cluster, and keep it the right size.

    \b
    Provision (the IM role):  validate, plan, create, list, show, outputs, destroy, scale, ...
    Scale (the CLUES role):   daemon, nodes, simulate
    Edge:                     inventory

    Exit status: 0 done, 1 failed at run time, 2 bad input (nothing was changed).
    """
    verbosity = -1 if quiet else verbose
    setup_logging(verbosity)
    ctx.obj = Context(config, state, verbosity)


def template_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options every template-reading command takes (DESIGN §3)."""
    func = click.option(
        "--import-path",
        "import_paths",
        multiple=True,
        metavar="DIR",
        type=click.Path(file_okay=False),
        help="Read an import whose file name is found in DIR from there, never fetched (repeatable).",
    )(func)
    func = click.option(
        "--inputs", "inputs_file", metavar="FILE", type=click.Path(dir_okay=False),
        help="YAML file of input values.",
    )(func)
    func = click.option(
        "-i", "--input", "input_pairs", multiple=True, metavar="NAME=VALUE",
        help="Set an input (repeatable; wins over --inputs).",
    )(func)
    func = click.argument("templates", nargs=-1, required=True, metavar="TEMPLATE...")(func)
    return func


def load_spec(obj: Context, templates: tuple[str, ...], input_pairs: tuple[str, ...],
              inputs_file: str | None, import_paths: tuple[str, ...]) -> Any:
    from provisioner.template import load_cluster_spec, parse_input_pairs

    explicit = parse_input_pairs(input_pairs, inputs_file)
    spec = load_cluster_spec(
        [Path(t) for t in templates],
        explicit,
        import_paths=[Path(p) for p in import_paths],
        cache_dir=Path(obj.settings.general.cache_dir).expanduser(),
    )
    for warning in spec.warnings:
        click.echo(f"warning: {warning}", err=True)
    return spec


@main.command()
@template_options
@click.pass_obj
@handles_errors
def validate(obj: Context, templates: tuple[str, ...], input_pairs: tuple[str, ...],
             inputs_file: str | None, import_paths: tuple[str, ...]) -> None:
    """Check TEMPLATE(s) and inputs; change nothing."""
    spec = load_spec(obj, templates, input_pairs, inputs_file, import_paths)
    from provisioner.plan import make_plan

    for warning in make_plan(spec, obj.settings).warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{', '.join(templates)}: valid")


@main.command()
@template_options
@click.option("-o", "--output", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format; json prints one document on stdout.")
@click.pass_obj
@handles_errors
def plan(obj: Context, templates: tuple[str, ...], input_pairs: tuple[str, ...],
         inputs_file: str | None, import_paths: tuple[str, ...], fmt: str) -> None:
    """Show what `create` would build: groups, sizes, images, rules, components, cost."""
    spec = load_spec(obj, templates, input_pairs, inputs_file, import_paths)
    from provisioner.plan import make_plan, plan_to_json, render_plan_table

    the_plan = make_plan(spec, obj.settings)
    for warning in the_plan.warnings:  # the spec's own warnings were printed by load_spec
        click.echo(f"warning: {warning}", err=True)
    if fmt == "json":
        click.echo(json.dumps(plan_to_json(the_plan), indent=2, sort_keys=False))
    else:
        click.echo(render_plan_table(the_plan))


@main.command()
@click.argument("trace", type=click.Path(dir_okay=False))
@click.option("--groups", "groups_file", required=True, type=click.Path(dir_okay=False),
              help="Node groups YAML (the same format as `daemon --groups`).")
@click.option("--policy", "policies", multiple=True,
              type=click.Choice(["oscar", "clues", "autoscaler", "static"]),
              help="Policy to simulate; repeat to compare side by side (default: oscar).")
@click.option("--settings", "settings_file", type=click.Path(dir_okay=False),
              help="YAML of oscar policy settings (default: the daemon's defaults).")
@click.option("--report", "report", type=click.Path(), help="Write a report (PNG + page) here.")
@click.option("-o", "--output", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.pass_obj
@handles_errors
def simulate(obj: Context, trace: str, groups_file: str, policies: tuple[str, ...],
             settings_file: str | None, report: str | None, fmt: str) -> None:
    """Replay a workload TRACE (CSV) against node groups in virtual time; report cost and waits."""
    from elastic.simulate import run_simulations

    results = run_simulations(
        Path(trace), Path(groups_file), list(policies) or ["oscar"],
        settings_file=Path(settings_file) if settings_file else None,
        report=Path(report) if report else None,
    )
    if fmt == "json":
        payload = results[0] if len(results) == 1 else {"runs": results}
        click.echo(json.dumps(payload, indent=2))
    else:
        from elastic.simulate import render_results_table

        click.echo(render_results_table(results))


if __name__ == "__main__":  # pragma: no cover
    main()
