"""The ``oscar-deploy`` command: a thin click shell over the library.

Only this module formats output and maps errors to exit codes (0 done, 1 failed at run time,
2 bad input). Heavy libraries (tosca-parser, libcloud, kubernetes, ansible) are imported inside the
commands that need them, so ``--help`` stays fast. ``elastic`` is imported lazily, only by
``daemon``, ``nodes`` and ``simulate``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import sys
from collections.abc import Callable, Mapping
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


OUR_LOGGERS = ("oscar_deploy", "provisioner", "elastic")


def setup_logging(verbosity: int) -> None:
    """Our own messages at INFO (``-q``: warnings, ``-v``: our DEBUG detail); libraries' only from
    ``-vv`` on: tosca-parser's entry-point lines or libcloud's requests are not what ``-v`` asks for,
    and their failures reach users through our errors."""
    ours = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    logging.basicConfig(level=logging.DEBUG if verbosity > 1 else logging.WARNING, format="%(message)s",
                        stream=sys.stderr)
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(ours)
    for noisy in ("tosca", "toscaparser", "libcloud", "urllib3", "kubernetes", "stevedore"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbosity > 1 else logging.ERROR)


GLOBAL_VALUE_OPTIONS = ("--config", "--state")
GLOBAL_FLAGS = ("-q", "--quiet", "--verbose")
PASS_THROUGH_COMMANDS = ("ssh",)  # what follows their arguments belongs to the remote command


def _is_global(arg: str) -> bool:
    return (arg in GLOBAL_FLAGS or arg.startswith(tuple(f"{o}=" for o in GLOBAL_VALUE_OPTIONS))
            or (len(arg) > 1 and arg[0] == "-" and set(arg[1:]) == {"v"}))


def hoist_global_options(args: list[str]) -> tuple[list[str], bool]:
    """The global options moved in front, wherever the user put them (``list --state X``, ``show ID
    -v``), and whether anything but global options was given. Nothing after ``--`` moves, nor
    anything after the command name of ``ssh``."""
    hoisted: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--" or (rest and rest[0] in PASS_THROUGH_COMMANDS):
            rest.extend(args[i:])
            break
        if arg in GLOBAL_VALUE_OPTIONS and i + 1 < len(args):
            hoisted.extend(args[i:i + 2])
            i += 2
            continue
        (hoisted if _is_global(arg) else rest).append(arg)
        i += 1
    return [*hoisted, *rest], bool(rest)


class OscarDeployGroup(click.Group):
    """The top-level group: global options are accepted after the command too, and global options
    with no command show the help, as a bare ``oscar-deploy`` does (not click's "Missing command")."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args, has_command = hoist_global_options(list(args))
        if args and not has_command:
            click.echo(ctx.get_help())
            ctx.exit(0)
        return super().parse_args(ctx, args)


@click.group(cls=OscarDeployGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="oscar-deploy", prog_name="oscar-deploy")
@click.option("--config", "config", metavar="FILE", type=click.Path(exists=True, dir_okay=False),
              help="Configuration file (default: looked up).")
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
    """The options every template-reading command takes."""
    func = click.option(
        "--import-path",
        "import_paths",
        multiple=True,
        metavar="DIR",
        type=click.Path(file_okay=False),
        help="Read an import whose file name is found in DIR from there, never fetched (repeatable; "
             "e.g. a copy of the IM's custom_types.yaml).",
    )(func)
    func = click.option(
        "--inputs", "inputs_file", metavar="FILE", type=click.Path(dir_okay=False),
        help="YAML file mapping input names to values.",
    )(func)
    func = click.option(
        "-i", "--input", "input_pairs", multiple=True, metavar="NAME=VALUE",
        help="Set an input declared by the template (repeatable; wins over --inputs).",
    )(func)
    func = click.option(
        "--allow-weak-secrets", is_flag=True,
        help="Accept a password or token given with -i/--inputs that is short or a known default.",
    )(func)
    func = click.argument("templates", nargs=-1, required=True, metavar="TEMPLATE...")(func)
    return func


def load_spec(obj: Context, templates: tuple[str, ...], input_pairs: tuple[str, ...],
              inputs_file: str | None, import_paths: tuple[str, ...], allow_weak_secrets: bool = False,
              recorded: Mapping[str, str] | None = None) -> Any:
    """The ClusterSpec of TEMPLATE(s); ``recorded``: inputs of a deployment being resumed, which
    the ones given on the command line override."""
    from provisioner.template import load_cluster_spec, parse_input_pairs

    explicit = {**(recorded or {}), **parse_input_pairs(input_pairs, inputs_file)}
    spec = load_cluster_spec(
        [Path(t) for t in templates],
        explicit,
        import_paths=[Path(p) for p in import_paths],
        cache_dir=Path(obj.settings.general.cache_dir).expanduser(),
        default_provider=obj.settings.provisioner.default_provider,
        allow_weak_secrets=allow_weak_secrets,
    )
    for warning in spec.warnings:
        click.echo(f"warning: {warning}", err=True)
    return spec


@main.command()
@template_options
@click.pass_obj
@handles_errors
def validate(obj: Context, templates: tuple[str, ...], input_pairs: tuple[str, ...],
             inputs_file: str | None, import_paths: tuple[str, ...], allow_weak_secrets: bool) -> None:
    """Check TEMPLATE(s) and inputs; change nothing.

    \b
    TEMPLATE is a file, or a shipped template by name:
      oscar-aws, oscar-openstack, oscar-edge (Raspberry Pi boards), oscar-hybrid (edge + AWS).

    Several TEMPLATEs merge in order, as the IM Dashboard merges a child into its parent: a later
    file's inputs, node templates and outputs add to or replace the earlier ones. Every input has
    its default unless set with -i or --inputs (-i wins). An import found by file name in an
    --import-path DIR is read from there; otherwise a URL import is fetched once and cached.
    Machines whose template names no cloud go to [provisioner] default_provider (config).

    Prints "valid" on stdout and warnings (unsafe defaults, ignored IM properties) on stderr.
    Exit status 2, with one message naming the file and the node, input or property at fault,
    when anything is wrong.
    """
    spec = load_spec(obj, templates, input_pairs, inputs_file, import_paths, allow_weak_secrets)
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
         inputs_file: str | None, import_paths: tuple[str, ...], allow_weak_secrets: bool, fmt: str) -> None:
    """Show what `create` would build: groups, sizes, images, rules, components, cost.

    Offline: EC2 sizes and prices come from the data libcloud ships (the cheapest current-generation
    type that fits, unless the template names one); OpenStack flavors are matched at create time.
    TEMPLATE(s), -i, --inputs and --import-path as for `validate`. Secret values are never shown:
    the plan lists the secrets `create` will generate, and masks outputs built from them.

    -o json prints exactly one JSON document on stdout (its fields are in the README, "Plan JSON");
    warnings always go to stderr.
    """
    spec = load_spec(obj, templates, input_pairs, inputs_file, import_paths, allow_weak_secrets)
    from provisioner.plan import make_plan, plan_to_json, render_plan_table

    the_plan = make_plan(spec, obj.settings)
    for warning in the_plan.warnings:  # the spec's own warnings were printed by load_spec
        click.echo(f"warning: {warning}", err=True)
    if fmt == "json":
        click.echo(json.dumps(plan_to_json(the_plan), indent=2, sort_keys=False))
    else:
        click.echo(render_plan_table(the_plan))


# --- the lifecycle commands: create, list, show, outputs, destroy, scale ------------------


def _progress(obj: Context) -> Any:
    from provisioner.engine.progress import make_progress

    return make_progress(sys.stderr, quiet=obj.verbosity < 0)


def _driver_factory(credentials: dict[str, Any], settings: Any, boards: dict[str, Any] | None = None,
                    known_hosts: Path | None = None, subnets: dict[Any, str] | None = None,
                    ) -> Callable[[str, str | None], Any]:
    """(provider, region) → a cloud driver, with the credentials read for this command only;
    ``boards`` (group → BoardSpec list) for the fleet of adopted edge boards; ``subnets``
    ((``aws``, region) → subnet id) the EC2 subnet whose VPC gets the security group."""
    from provisioner.clouds.registry import driver_for
    from provisioner.errors import CredentialsError

    def factory(provider: str, region: str | None) -> Any:
        if provider == "fleet":
            return driver_for("fleet", None, None, settings=settings.provisioner, boards=boards or {},
                              known_hosts=known_hosts)
        if provider not in credentials:
            raise CredentialsError(f"no {provider} credentials: give --auth FILE or the usual environment")
        return driver_for(provider, credentials[provider], region, settings=settings.provisioner,
                          network=(subnets or {}).get((provider, region)) if provider == "aws" else None)

    return factory


def _preflight(factory: Callable[[str, str | None], Any], the_plan: Any, cache_dir: Path) -> None:
    """Ask each cloud whether the plan can be placed there (EC2: a default VPC or the given subnet;
    OpenStack: one network to take the servers and a flavor that can boot the image) before anything
    is recorded or created, so such a mistake exits 2 with nothing changed."""
    from provisioner.engine.targets import group_targets

    targets = group_targets(the_plan, cache_dir)
    for provider, region in dict.fromkeys((g.provider, g.region) for g in the_plan.groups):
        if provider == "aws":
            factory(provider, region).preflight()
        elif provider == "openstack":
            factory(provider, region).preflight([t for t in targets if t.cloud and t.provider == provider
                                                 and t.region == region])


def _private_egress(factory: Callable[[str, str | None], Any], the_plan: Any) -> Any:
    """The plan with no public address for EC2 workers whose subnet reaches the internet through a
    NAT route (asked of EC2: ``DescribeRouteTables``); they need none."""
    groups = []
    for g in the_plan.groups:
        if g.provider == "aws" and g.role != "front-end" and g.public_ip and g.spec.network \
                and factory(g.provider, g.region).routes_through_nat(g.spec.network):
            g = dataclasses.replace(g, public_ip=False)
        groups.append(g)
    return dataclasses.replace(the_plan, groups=tuple(groups))


def _recorded_credentials(dep: Any, auth: str | None) -> dict[str, Any]:
    """The credentials of every cloud the deployment uses: from --auth if given, else read again
    from where the deployment recorded they came from."""
    from provisioner.credentials import credentials_from_source, resolve_credentials

    providers = [p for p, _region in dep.locations if p != "fleet"]
    if auth:
        return resolve_credentials(providers, auth)
    found = {}
    for provider in dict.fromkeys(providers):
        source = dep.credentials.get(provider)
        found[provider] = (credentials_from_source(provider, source) if source
                           else resolve_credentials([provider])[provider])
    return found


def _open_store(obj: Context) -> Any:
    from provisioner.state import StateStore

    return StateStore.open(obj.state_path)


@main.command()
@template_options
@click.option("--name", metavar="NAME", help="Name the deployment; a re-run with the same name resumes it.")
@click.option("--auth", "auth", metavar="FILE", type=click.Path(dir_okay=False),
              help="IM-format auth file (default: AWS_*/OS_* variables, ~/.aws, clouds.yaml).")
@click.option("--no-configure", is_flag=True, help="Return once every machine runs (no SSH, no Ansible).")
@click.option("--no-check", is_flag=True, help="Do not end with `check` (the cluster's health).")
@click.option("--check-timeout", type=click.FloatRange(min=0), default=900.0, show_default=True,
              metavar="SECONDS", help="How long the final check waits for the cluster to settle.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--allow-open-admin", is_flag=True,
              help="Accept an admin_cidr open to the whole internet (0.0.0.0/0, ::/0) for SSH and the "
                   "Kubernetes API.")
@click.option("--update", is_flag=True,
              help="With --name of an existing deployment: apply the changed inputs that can change in "
                   "place (admin_cidr, worker counts); others are refused by name.")
@click.pass_obj
@handles_errors
def create(obj: Context, templates: tuple[str, ...], input_pairs: tuple[str, ...], inputs_file: str | None,
           import_paths: tuple[str, ...], allow_weak_secrets: bool, name: str | None, auth: str | None,
           no_configure: bool, no_check: bool, check_timeout: float, yes: bool, allow_open_admin: bool,
           update: bool) -> None:
    """Create the cluster TEMPLATE(s) describe (or resume `--name NAME` after an interruption).

    \b
    TEMPLATE is a file, or a shipped template by name:
      oscar-aws, oscar-openstack, oscar-edge (Raspberry Pi boards), oscar-hybrid (edge + AWS).

    TEMPLATE(s), -i, --inputs and --import-path as for `validate`: the whole template is checked,
    the whole plan made and the credentials read before any cloud call (bad input exits 2 and
    changes nothing). A re-run with `--name` takes the recorded inputs for those not given and
    refuses changed ones; with `--update` it applies those that can change in place (`admin_cidr`:
    the security group's rules; a worker group's count: as `scale`) and refuses the others by name.
    Where a security group is made, an `admin_cidr` open to the whole internet is refused unless
    `--allow-open-admin`.

    Once configured, it ends with `check`: it waits (up to --check-timeout) for the charts to install
    and the services to come up, then prints the check's table; exit status 1 if something still
    fails. The check is skipped, with a line saying so, when there is no kubeconfig or its API server
    does not answer (run `oscar-deploy check ID` later)."""
    from provisioner.clouds.registry import ec2_subnets
    from provisioner.credentials import resolve_credentials
    from provisioner.engine import CreateRequest, with_credential_regions
    from provisioner.engine import create as run_create
    from provisioner.engine.views import CONFIGURED, configuration, local_values, outputs, render_outputs
    from provisioner.errors import BadInput
    from provisioner.plan import make_plan, refuse_open_admin
    from provisioner.resume import changed_inputs, recorded_as_given, refuse_changes
    from provisioner.template import parse_input_pairs

    given = parse_input_pairs(input_pairs, inputs_file)
    recorded: Any = None
    if name and Path(obj.state_path).exists():  # a re-run resumes the recorded deployment: its
        with _open_store(obj) as store:          # inputs fill in what is not given
            found = store.find(name)
            recorded = (found.inputs, store.secrets(found.id)) if found is not None else None
    if update and (not recorded or found is None or found.status == "destroyed"):
        raise BadInput(f"--update changes an existing deployment: there is none named {name!r}"
                       if name else "--update needs --name NAME of an existing deployment")
    spec = load_spec(obj, templates, input_pairs, inputs_file, import_paths, allow_weak_secrets,
                     recorded=recorded_as_given(recorded[0]) if recorded else None)
    refuse_open_admin(spec, allow_open_admin)
    if update:
        _update(obj, spec, name or "", recorded, given, templates, import_paths, allow_weak_secrets, auth,
                yes)
        return
    if recorded:
        refuse_changes(name or "", changed_inputs(recorded[0], recorded[1], spec, given))
    credentials = resolve_credentials([g.provider for g in spec.groups], auth)
    spec = with_credential_regions(spec, {p: c.region for p, c in credentials.items()},
                                   parse_input_pairs(input_pairs, inputs_file))
    the_plan = make_plan(spec, obj.settings)
    for warning in the_plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    machines = sum(g.count for g in the_plan.groups if g.provider != "fleet")
    if not yes and sys.stdin.isatty():
        click.confirm(f"Create {machines} machine(s), about ${the_plan.cost_per_hour:.4f}/h?", abort=True,
                      err=True)
    request = CreateRequest(
        plan=the_plan, name=name, templates=tuple(the_plan.sources),
        credentials={p: c.source.to_json() for p, c in credentials.items()}, configure=not no_configure)
    with _open_store(obj) as store:
        boards = {g.name: g.spec.boards for g in the_plan.groups if g.provider == "fleet"}
        # create gives each deployment its own known_hosts
        factory = _driver_factory(credentials, obj.settings, boards, subnets=ec2_subnets(the_plan.groups))
        _preflight(factory, the_plan, Path(obj.settings.general.cache_dir).expanduser())
        request = dataclasses.replace(request, plan=_private_egress(factory, the_plan))
        dep = run_create(store, request, factory, obj.settings, _progress(obj))
        state = configuration(store.events(dep.id))
        click.echo(f"deployment {dep.name} ({dep.id}) created, {state}: {len(store.nodes(dep.id))} node(s)")
        shown = outputs(dep, store.nodes(dep.id), store.secrets(dep.id), configured=state == CONFIGURED,
                        local=local_values(store.deployment_dir(dep.id)))
        if shown:
            click.echo(render_outputs(shown))
        if state != CONFIGURED:
            click.echo(f"(`oscar-deploy reconfigure {dep.name}` installs the services when the machines "
                       f"answer)", err=True)
            return
        if not no_check:
            _final_check(obj, store, dep, check_timeout)


def _final_check(obj: Context, store: Any, dep: Any, timeout_s: float) -> None:
    """``create``'s last step: ``check`` once the cluster settled, or a line saying why not."""
    from provisioner.check import Unreachable, render, settle, target_for
    from provisioner.errors import NotFound
    from provisioner.health import passed

    try:
        rows = settle(target_for(store, dep), _progress(obj), timeout_s=timeout_s)
    except NotFound:
        click.echo(f"check: skipped, no kubeconfig was fetched (`oscar-deploy check {dep.name}` once "
                   f"there is one)", err=True)
        return
    except Unreachable as error:
        click.echo(f"check: skipped, {error} (`oscar-deploy check {dep.name}` later)", err=True)
        return
    click.echo(render(rows))
    if not passed(rows):
        click.echo(f"error: {dep.name} was created but is not healthy yet (`oscar-deploy check {dep.name}`)",
                   err=True)
        sys.exit(1)


def _update(obj: Context, spec: Any, name: str, recorded: Any, given: Mapping[str, str],
            templates: tuple[str, ...], import_paths: tuple[str, ...], allow_weak_secrets: bool,
            auth: str | None, yes: bool) -> None:
    """``create --update``: judge each changed input by the plan it alone makes, then apply."""
    from provisioner.clouds.registry import ec2_subnets
    from provisioner.engine.update import update as run_update
    from provisioner.plan import make_plan
    from provisioner.resume import changed_inputs, recorded_as_given
    from provisioner.template import load_cluster_spec
    from provisioner.update import decide_update

    base_inputs = recorded_as_given(recorded[0])

    def plan_with(inputs: Mapping[str, str]) -> Any:
        return make_plan(load_cluster_spec(
            [Path(t) for t in templates], inputs, import_paths=[Path(p) for p in import_paths],
            cache_dir=Path(obj.settings.general.cache_dir).expanduser(),
            default_provider=obj.settings.provisioner.default_provider,
            allow_weak_secrets=allow_weak_secrets), obj.settings)

    changed = changed_inputs(recorded[0], recorded[1], spec, given)
    secrets = [c.split(" (")[0] for c in changed if "(a secret" in c]
    names = [c.split(" (")[0] for c in changed if "(a secret" not in c]
    base = plan_with(base_inputs)
    by_input = {n: plan_with({**base_inputs, n: given[n]}) for n in names}
    final = make_plan(spec, obj.settings)
    change = decide_update(name, base, by_input, final, secrets)
    if not change.security_rules and not change.counts:
        click.echo(f"deployment {name}: nothing to update (the given inputs are the recorded ones)")
        return
    with _open_store(obj) as store:
        dep = store.get(name)
        record = store.record(dep.id)
        for group, count in change.counts.items():
            if count < len(store.nodes(dep.id, group)):
                _confirm(yes, f"Remove node(s) of group {group} (their pods stop)?",
                         f"--update sets group {group} to {count} node(s), fewer than it has")
        credentials = _recorded_credentials(dep, auth)

        def busy(members: Any) -> list[str]:
            from provisioner.configure import kubeconfig_path
            from provisioner.engine.cluster import busy_workers

            return busy_workers(kubeconfig_path(store, dep), members)

        subnets = ec2_subnets([g.launch for g in record.groups if g.launch is not None])
        result = run_update(store, dep.id, final, change, dict(spec.inputs),
                            _driver_factory(credentials, obj.settings, subnets=subnets), obj.settings,
                            progress=_progress(obj), busy=busy)
    for group_id in result.security_groups:
        click.echo(f"security group {group_id}: SSH and the Kubernetes API from {final.admin_cidr} only")
    for scaled in result.scaled:
        click.echo(f"{name} group {scaled.group}: {scaled.before} → {scaled.after} node(s)")
    click.echo(f"deployment {name} updated")


@main.command(name="list")
@click.option("-o", "--output", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format; json prints one document on stdout.")
@click.pass_obj
@handles_errors
def list_(obj: Context, fmt: str) -> None:
    """The deployments in the state file."""
    from provisioner.engine.views import render_list, summary_json

    with _open_store(obj) as store:
        entries = [summary_json(d, store.nodes(d.id), store.events(d.id)) for d in store.list_deployments()]
    click.echo(json.dumps(entries, indent=2) if fmt == "json" else render_list(entries))


@main.command()
@click.argument("deployment", metavar="ID")
@click.option("-o", "--output", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format; json prints one document on stdout.")
@click.option("--show-secrets", is_flag=True, help="Show secret values and secret outputs unmasked.")
@click.pass_obj
@handles_errors
def show(obj: Context, deployment: str, fmt: str, show_secrets: bool) -> None:
    """Deployment ID (its id or --name): nodes, outputs, secrets (masked), recent events."""
    from provisioner.engine.views import local_values, render_show, show_json

    with _open_store(obj) as store:
        dep = store.get(deployment)
        doc = show_json(dep, store.nodes(dep.id), store.events(dep.id), store.secrets(dep.id), show_secrets,
                        local=local_values(store.deployment_dir(dep.id)))
    click.echo(json.dumps(doc, indent=2) if fmt == "json" else render_show(doc))


@main.command(name="outputs")
@click.argument("deployment", metavar="ID")
@click.option("-o", "--output", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format; json prints one document on stdout.")
@click.option("--show-secrets", is_flag=True, help="Show outputs built from secrets unmasked.")
@click.pass_obj
@handles_errors
def outputs_(obj: Context, deployment: str, fmt: str, show_secrets: bool) -> None:
    """The template's outputs for deployment ID, filled in from its nodes and secrets."""
    from provisioner.engine.views import CONFIGURED, configuration, local_values, outputs, render_outputs

    with _open_store(obj) as store:
        dep = store.get(deployment)
        state = configuration(store.events(dep.id))
        items = outputs(dep, store.nodes(dep.id), store.secrets(dep.id), show_secrets,
                        configured=state.startswith(CONFIGURED),
                        local=local_values(store.deployment_dir(dep.id)))
    if not state.startswith(CONFIGURED):
        click.echo(f"warning: {dep.name} is {state}: nothing answers at these endpoints yet "
                   f"(`oscar-deploy reconfigure {dep.name}` installs the services)", err=True)
    click.echo(json.dumps({o["name"]: o["value"] for o in items}, indent=2) if fmt == "json"
               else render_outputs(items))


@main.command()
@click.argument("deployment", metavar="ID")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--keep-data", is_flag=True, help="Keep the front-end's data volume.")
@click.option("--auth", "auth", metavar="FILE", type=click.Path(dir_okay=False),
              help="Auth file to use instead of the one the deployment recorded.")
@click.option("--provider", type=click.Choice(["aws", "openstack"]),
              help="With a lost local record: the cloud to sweep (default: every one the credentials reach).")
@click.option("--region", metavar="REGION", help="With a lost local record: the region to sweep.")
@click.pass_obj
@handles_errors
def destroy(obj: Context, deployment: str, yes: bool, keep_data: bool, auth: str | None,
            provider: str | None, region: str | None) -> None:
    """Remove everything of deployment ID in every cloud and region it used.

    \b
    Idempotent. If the state file lost the deployment, give its id and where to look:
      oscar-deploy destroy 1a2b3c4d --provider aws --region eu-west-1 [--auth FILE]
    or the id alone to sweep every cloud the credentials reach (their own regions).
    """
    from provisioner.engine import destroy as run_destroy
    from provisioner.engine import sweep

    with _open_store(obj) as store:
        dep = store.find(deployment)
        _confirm(yes, f"Destroy every resource of deployment {deployment}?",
                 f"destroy {deployment} removes every resource of the deployment")
        kept: list[str] = []
        if dep is not None:
            from provisioner.engine.views import boards_left_with_k3s

            kept = boards_left_with_k3s(store.record(dep.id))
            credentials = _recorded_credentials(dep, auth)
            removed = run_destroy(store, dep.id, _driver_factory(credentials, obj.settings),
                                  keep_data=keep_data, progress=_progress(obj))
            label = f"{dep.name} ({dep.id})"
        else:
            removed = _sweep_lost(obj, deployment, auth, provider, region, keep_data, sweep)
            label = deployment
    for item in removed:
        click.echo(f"removed {item.describe()}")
    click.echo(f"deployment {label} destroyed: {len(removed)} resource(s) removed"
               + (" (nothing was left)" if not removed else ""))
    for line in kept:
        click.echo(line)


def _confirm(yes: bool, question: str, what: str) -> None:
    """Ask on a terminal; without one, only ``--yes`` goes ahead (a script that forgot it must not
    remove anything: exit 2)."""
    from provisioner.errors import BadInput

    if yes:
        return
    if not sys.stdin.isatty():
        raise BadInput(f"{what}; no terminal to confirm it on: give --yes")
    click.confirm(question, abort=True, err=True)


@main.command()
@click.argument("deployment", metavar="ID")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
@handles_errors
def forget(obj: Context, deployment: str, yes: bool) -> None:
    """Drop the record of destroyed deployment ID (its nodes, events, secrets and files)."""
    from provisioner.errors import BadInput

    with _open_store(obj) as store:
        dep = store.get(deployment)
        if dep.status != "destroyed":
            raise BadInput(f"deployment {dep.name} ({dep.id}) is {dep.status}, not destroyed: run "
                           f"`oscar-deploy destroy {dep.name}` first (its record finds its resources)")
        _confirm(yes, f"Forget deployment {dep.name} ({dep.id})?", f"forget {deployment} drops its record")
        store.forget(dep.id)
    click.echo(f"deployment {dep.name} ({dep.id}) forgotten")


def _sweep_lost(obj: Context, deployment: str, auth: str | None, provider: str | None, region: str | None,
                keep_data: bool, sweep: Callable[..., Any]) -> Any:
    """Sweep for a deployment the state file does not know (its record was lost)."""
    import re

    from provisioner.credentials import resolve_credentials
    from provisioner.errors import BadInput, CredentialsError

    if not re.fullmatch(r"[0-9a-f]{8}", deployment):
        raise BadInput(f"no deployment {deployment!r} in {obj.state_path}; to sweep a deployment whose "
                       "record was lost, give its 8-hex-digit id (resource names start with "
                       "oscar-deploy-<id>-)")
    providers = [provider] if provider else ["aws", "openstack"]
    credentials: dict[str, Any] = {}
    for name in providers:
        try:
            credentials.update(resolve_credentials([name], auth))
        except CredentialsError:
            if provider:
                raise
    if not credentials:
        raise BadInput("no cloud credentials found to sweep with: give --auth FILE or --provider")
    locations = []
    for name, creds in credentials.items():
        where = region or creds.region
        if where is None and name == "aws":
            raise BadInput(f"no region known for {name}: give --region")
        locations.append((name, where))
    log.info("no local record of %s: sweeping %s", deployment,
             ", ".join(f"{p} {r}" if r else p for p, r in locations))
    return sweep(deployment, locations, _driver_factory(credentials, obj.settings), keep_data=keep_data,
                 progress=_progress(obj))


class NodeCount(click.ParamType):
    """A node count in our words: ``-1`` and ``two`` are bad input naming the argument."""

    name = "count"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if not text.lstrip("-").isdigit():
            self.fail(f"COUNT must be a whole number of nodes (0 or more), not {value!r}", param, ctx)
        if int(text) < 0:
            self.fail(f"COUNT must be 0 or more, not {text} (scale to 0 removes every worker of the group)",
                      param, ctx)
        return int(text)


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("deployment", metavar="ID")
@click.argument("group")
@click.argument("count", type=NodeCount())
@click.option("--auth", "auth", metavar="FILE", type=click.Path(dir_okay=False),
              help="Auth file to use instead of the one the deployment recorded.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation before removing nodes.")
@click.option("--force", is_flag=True,
              help="Remove nodes even when the cluster cannot say which are idle (newest first, undrained).")
@click.pass_obj
@handles_errors
def scale(obj: Context, deployment: str, group: str, count: int, auth: str | None, yes: bool,
          force: bool) -> None:
    """Set cloud worker GROUP of deployment ID to COUNT nodes (removes idle ones first, drained:
    cordoned and their pods evicted)."""
    from provisioner.clouds.registry import ec2_subnets
    from provisioner.engine import scale as run_scale
    from provisioner.engine.scale import scalable_group

    with _open_store(obj) as store:
        dep = store.get(deployment)
        # bad input is refused before reading credentials
        record = store.record(dep.id)
        scalable_group(dep, record, group, count)
        now = len(store.nodes(dep.id, group))
        if count < now:
            _confirm(yes, f"Remove {now - count} node(s) of group {group} (their pods stop)?",
                     f"scale {deployment} {group} {count} removes {now - count} node(s)")
        credentials = _recorded_credentials(dep, auth)

        def busy(members: Any) -> list[str]:
            """Asked only on a shrink: which workers run user pods, from the kubeconfig configure fetched."""
            from provisioner.configure import kubeconfig_path
            from provisioner.engine.cluster import busy_workers

            return busy_workers(kubeconfig_path(store, dep), members)

        def drain(victims: Any) -> None:
            """Cordon the nodes to remove and evict their user pods, as the daemon does."""
            from provisioner.configure import kubeconfig_path
            from provisioner.engine.cluster import drain_workers

            drain_workers(kubeconfig_path(store, dep), victims)

        subnets = ec2_subnets([g.launch for g in record.groups if g.launch is not None])
        result = run_scale(store, dep.id, group, count,
                           _driver_factory(credentials, obj.settings, subnets=subnets),
                           obj.settings, progress=_progress(obj), busy=busy, drain=drain, force=force)
    if result.busy_unknown:
        click.echo(f"warning: cannot tell idle workers from busy ones, so the newest went first, "
                   f"undrained (--force): {result.busy_unknown}", err=True)
    for name in result.added:
        click.echo(f"added {name}")
    for name in result.removed:
        click.echo(f"removed {name}" + (" (busy: its pods stop with it)" if name in result.busy else ""))
    if kept := [n for n in result.busy if n not in result.removed]:
        click.echo(f"kept {', '.join(kept)}: busy (running user pods)")
    click.echo(f"{dep.name} group {group}: {result.before} → {result.after} node(s)")


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
@click.option("--rescheduler-threshold", "rescheduler_threshold", type=click.FloatRange(min=0),
              help="Also count the jobs OSCAR's rescheduler would send away at this threshold (seconds).")
@click.option("-o", "--output", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format; json prints one document on stdout.")
@click.pass_obj
@handles_errors
def simulate(obj: Context, trace: str, groups_file: str, policies: tuple[str, ...],
             settings_file: str | None, report: str | None, fmt: str,
             rescheduler_threshold: float | None = None) -> None:
    """Replay a workload TRACE (CSV) against node groups in virtual time; report cost and waits."""
    from elastic.simulate import run_simulations

    results = run_simulations(
        Path(trace), Path(groups_file), list(policies) or ["oscar"],
        settings_file=Path(settings_file) if settings_file else None,
        report=Path(report) if report else None, rescheduler_threshold_s=rescheduler_threshold,
    )
    if fmt == "json":
        # always `runs`, one per policy; with one policy its figures stay at the top level too, so
        # readers of the older one-policy document keep working
        payload = {**results[0], "runs": results} if len(results) == 1 else {"runs": results}
        click.echo(json.dumps(payload, indent=2))
    else:
        from elastic.simulate import render_results_table

        click.echo(render_results_table(results))


# --- the elastic daemon and its nodes (elastic.service, elastic.nodes; imported lazily) ---------------


def _elastic_groups(obj: Context, groups_file: str | None, deployment_ref: str | None) -> Any:
    """Groups from --groups, or the cloud worker groups and edge fleets of a recorded deployment."""
    from elastic.service import read_groups

    if groups_file and deployment_ref:
        raise click.UsageError("give --groups or --deployment, not both")
    if deployment_ref:
        from elastic.cloudpower import deployment_groups
        from provisioner.state import StateStore

        with StateStore.open(obj.state_path) as store:
            return deployment_groups(store, deployment_ref)
    return read_groups(groups_file)


def _kubeconfig_for(obj: Context, kubeconfig: str | None, deployment_ref: str | None) -> str | None:
    """``--kubeconfig``, else the one ``create`` fetched for ``--deployment`` (when it did), else None
    (in-cluster configuration, then ~/.kube/config)."""
    if kubeconfig or not deployment_ref:
        return kubeconfig
    from provisioner.configure import kubeconfig_path
    from provisioner.errors import NotFound
    from provisioner.state import StateStore

    with StateStore.open(obj.state_path) as store:
        dep = store.get(deployment_ref)
        try:
            return str(kubeconfig_path(store, dep))
        except NotFound:
            return None


@main.command()
@click.option("--kubeconfig", metavar="FILE", type=click.Path(dir_okay=False),
              help="kubeconfig (default: the deployment's with --deployment, else in-cluster configuration, "
                   "then ~/.kube/config).")
@click.option("--deployment", "deployment_ref", metavar="ID", help="Scale this deployment's worker groups.")
@click.option("--groups", "groups_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="Node groups YAML (README, \"Elastic daemon\"): name, cpus, memory_mib, min, max, boot_s, "
                   "cost_per_hour, priority, labels, and power: {type: cloud|command|wol}.")
@click.option("--metrics-port", type=click.IntRange(min=0, max=65535), default=None, metavar="PORT",
              help="Serve Prometheus /metrics on this port (default: [elastic] metrics_port; 0: off).")
@click.option("--lease-duration", type=click.FloatRange(min=1.0), default=15.0, show_default=True,
              metavar="SECONDS", help="Leader Lease duration; a standby takes over this long after a crash.")
@click.option("--identity", metavar="NAME", help="This replica's name in the Lease (default: host + random).")
@click.option("--auth", "auth", metavar="FILE", type=click.Path(dir_okay=False),
              help="With --deployment: cloud credentials (IM auth-file format) for the cloud groups.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object per log line (for log collectors).")
@click.pass_obj
@handles_errors
def daemon(obj: Context, kubeconfig: str | None, deployment_ref: str | None, groups_file: str | None,
           metrics_port: int | None, lease_duration: float, identity: str | None, auth: str | None,
           log_format: str) -> None:
    """Keep the cluster the right size: power worker nodes on for pending pods, off when idle."""
    import dataclasses

    from elastic.daemon import settings_from_config
    from elastic.service import api_client, managers_for, run_daemon, use_json_logs

    if log_format == "json":
        use_json_logs()

    groups = _elastic_groups(obj, groups_file, deployment_ref)
    cloud = None
    if any(g.power.get("type") == "cloud" for g in groups):
        from elastic.cloudpower import cloud_managers, mounted_deployments
        from provisioner.errors import BadInput

        try:  # in its pod: launch specs from the ConfigMap, credential and token from the Secret's files
            handed = mounted_deployments(groups)
        except BadInput as error:
            raise BadInput(f"{groups_file}: {error}" if groups_file else str(error)) from None
        refs = {str(g.power["deployment"]) for g in groups if g.power.get("type") == "cloud"} - set(handed)
        if refs:
            from provisioner.engine.handoff import daemon_deployment
            from provisioner.state import StateStore

            with StateStore.open(obj.state_path) as store:  # the daemon itself never opens the state file
                handed |= {ref: daemon_deployment(store, ref) for ref in refs}
        cloud = functools.partial(cloud_managers, deployments=handed, auth=auth, settings=obj.settings)
    managers = managers_for(groups, cloud, where=groups_file or f"deployment {deployment_ref}")
    settings = settings_from_config(obj.settings.elastic)
    settings = dataclasses.replace(settings, lease_duration_s=lease_duration,
                                   renew_deadline_s=lease_duration * 2 / 3, lease_retry_s=lease_duration / 7)
    if deployment_ref:  # the template's elasticity settings, recorded in the deployment's plan
        from elastic.cloudpower import with_deployment_settings
        from provisioner.state import StateStore

        with StateStore.open(obj.state_path) as store:
            settings = with_deployment_settings(store.get(deployment_ref), settings)
    port = obj.settings.elastic.metrics_port if metrics_port is None else metrics_port
    api = api_client(_kubeconfig_for(obj, kubeconfig, deployment_ref),
                     obj.settings.elastic.service_account_dir)
    run_daemon(api, groups, managers, settings, metrics_port=port,
               metrics_address=obj.settings.elastic.metrics_address, identity=identity)


@main.group(invoke_without_command=True)
@click.option("--kubeconfig", metavar="FILE", type=click.Path(dir_okay=False),
              help="kubeconfig (default: the deployment's with --deployment, else in-cluster configuration, "
                   "then ~/.kube/config).")
@click.option("--groups", "groups_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="Node groups YAML: also list the boards that never registered.")
@click.option("--deployment", "deployment_ref", metavar="ID", help="Groups of this deployment.")
@click.pass_context
@handles_errors
def nodes(ctx: click.Context, kubeconfig: str | None, groups_file: str | None,
          deployment_ref: str | None) -> None:
    """The daemon's nodes: status (default), or ask it to enable, disable, poweron, poweroff, reset one."""
    ctx.meta["elastic.nodes"] = (_kubeconfig_for(ctx.obj, kubeconfig, deployment_ref), groups_file,
                                 deployment_ref)
    if ctx.invoked_subcommand is None:
        ctx.invoke(nodes_status)


@nodes.command(name="status")
@click.option("-o", "--output", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format; json prints one document on stdout.")
@click.pass_obj
@handles_errors
def nodes_status(obj: Context, fmt: str = "table") -> None:
    """A table of managed nodes: group, state, since when, Ready, user pods."""
    from elastic.kubeapi import KubeApi
    from elastic.nodes import format_since, status
    from elastic.service import api_client

    kubeconfig, groups_file, deployment_ref = click.get_current_context().meta["elastic.nodes"]
    groups = _elastic_groups(obj, groups_file, deployment_ref) if groups_file or deployment_ref else ()
    rows = status(KubeApi(api_client(kubeconfig, obj.settings.elastic.service_account_dir),
                         obj.settings.elastic.namespace), groups)
    if fmt == "json":
        click.echo(json.dumps([r.to_json() for r in rows], indent=2))
        return
    header = ("NODE", "GROUP", "STATE", "SINCE", "READY", "PODS", "REQUESTED")
    table = [header] + [(r.name, r.group, r.state, format_since(r.since), "yes" if r.ready else "no",
                         str(r.pods), r.requested or "") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _node_request(action: str) -> Callable[..., Any]:
    @click.argument("node")
    @click.pass_obj
    @handles_errors
    def command(obj: Context, node: str) -> None:
        from elastic.kubeapi import KubeApi
        from elastic.nodes import check_managed, request, status
        from elastic.service import api_client

        kubeconfig, groups_file, deployment_ref = click.get_current_context().meta["elastic.nodes"]
        groups = _elastic_groups(obj, groups_file, deployment_ref) if groups_file or deployment_ref else ()
        api = KubeApi(api_client(kubeconfig, obj.settings.elastic.service_account_dir),
                      obj.settings.elastic.namespace)
        if warning := check_managed(api, status(api, groups), node, bool(groups)):
            click.echo(f"warning: {warning}", err=True)
        request(api, action, node)
        click.echo(f"{action} {node}: requested; the daemon's leader acts on it within a pass", err=True)

    command.__doc__ = {
        "enable": "Manage NODE again after `disable`.",
        "disable": "Never touch NODE (the daemon leaves it as it is).",
        "poweron": "Power NODE on now through its group's power manager.",
        "poweroff": "Cordon, drain and power NODE off now.",
        "reset": "Put a failed NODE back to off, so the daemon may use it again.",
    }[action]
    return nodes.command(name=action)(command)


for _action in ("enable", "disable", "poweron", "poweroff", "reset"):
    _node_request(_action)


# --- configuration: inventory, reconfigure, kubeconfig, ssh (provisioner.inventory, .configure) -------


@main.command()
@click.argument("deployment_ref", metavar="ID")
@click.option("--list", "list_", is_flag=True, help="Dynamic-inventory protocol: every group and host, JSON.")
@click.option("--host", "host", metavar="HOST",
              help="Dynamic-inventory protocol: one host's variables, JSON.")
@click.option("--script", "script", metavar="PATH", type=click.Path(dir_okay=False),
              help="Write an executable dynamic inventory (for `ansible -i PATH`) and exit.")
@click.option("--format", "fmt", type=click.Choice(["ini", "yaml"]), default="ini", show_default=True,
              help="Static inventory format.")
@click.pass_obj
@handles_errors
def inventory(obj: Context, deployment_ref: str, list_: bool, host: str | None, script: str | None,
              fmt: str) -> None:
    """Print the Ansible inventory of deployment ID (front-end and edge boards)."""
    from provisioner.errors import BadInput
    from provisioner.inventory import deployment_inventory, dynamic_host, dynamic_list, render, write_script
    from provisioner.state import StateStore

    if sum(bool(x) for x in (list_, host, script)) > 1:
        raise BadInput("inventory: give at most one of --list, --host and --script")
    with StateStore.open(obj.state_path) as store:
        dep = store.get(deployment_ref)
        if script:
            path = write_script(Path(script), dep.id, obj.state_path, obj.config_path)
            click.echo(f"wrote {path}: use `ansible -i {path} all -m ping`", err=True)
            return
        inv = deployment_inventory(store, dep, cloud_user=obj.settings.provisioner.ssh_user,
                                   cache_dir=Path(obj.settings.general.cache_dir).expanduser())
    if list_:
        click.echo(json.dumps(dynamic_list(inv), indent=1))
    elif host:
        click.echo(json.dumps(dynamic_host(inv, host), indent=1))
    else:
        click.echo(render(inv, "yaml" if fmt == "yaml" else "ini"), nl=False)


@main.command()
@click.argument("deployment_ref", metavar="ID")
@click.option("--vars", "vars_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="YAML mapping of playbook variables that win over the generated ones "
                   "(e.g. airgap_dir: /srv/oscar-airgap).")
@click.option("--check", is_flag=True, help="Dry run: show what would change, change nothing.")
@click.pass_obj
@handles_errors
def reconfigure(obj: Context, deployment_ref: str, vars_file: str | None, check: bool) -> None:
    """Run the configuration (Ansible) of deployment ID again, e.g. after a version change."""
    from provisioner.configure import configure_deployment, read_vars_file
    from provisioner.state import StateStore

    extra = read_vars_file(Path(vars_file)) if vars_file else None
    with StateStore.open(obj.state_path) as store, store.lock(deployment_ref) as dep:
        result = configure_deployment(store, dep, settings=obj.settings, progress=obj.verbosity >= 0,
                                      extra_vars=extra, check=check)
    done = "would change" if check else "configured,"
    click.echo(f"{dep.name} ({dep.id}): {done} {result.total_changed} change(s); "
               f"log: {result.log_path}", err=True)


@main.command()
@click.argument("deployment_ref", metavar="ID")
@click.pass_obj
@handles_errors
def kubeconfig(obj: Context, deployment_ref: str) -> None:
    """Print the path of deployment ID's kubeconfig (mode 0600).

    E.g. `export KUBECONFIG=$(oscar-deploy kubeconfig ID)`."""
    from provisioner.configure import kubeconfig_path
    from provisioner.state import StateStore

    with StateStore.open(obj.state_path) as store:
        click.echo(str(kubeconfig_path(store, store.get(deployment_ref))))


def _check_target(obj: Context, deployment_ref: str) -> Any:
    """The check's view of deployment ID; exit 2 naming how to get a kubeconfig when it has none."""
    from provisioner.check import target_for
    from provisioner.errors import BadInput, NotFound
    from provisioner.state import StateStore

    with StateStore.open(obj.state_path) as store:
        dep = store.get(deployment_ref)
        try:
            return target_for(store, dep)
        except NotFound as error:
            raise BadInput(f"{error}; k3s keeps it on the front-end as /etc/rancher/k3s/k3s.yaml "
                           f"(`oscar-deploy ssh {dep.name} NODE`)") from None


@main.command()
@click.argument("deployment_ref", metavar="ID")
@click.option("--deep", is_flag=True,
              help="Also run one OSCAR service end to end: create it, upload a file through MinIO's S3 API, "
                   "read its output back, remove it.")
@click.option("-o", "--output", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format; json prints one document on stdout.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True, metavar="SECONDS",
              help="How long each HTTP request may take.")
@click.pass_obj
@handles_errors
def check(obj: Context, deployment_ref: str, deep: bool, fmt: str, timeout: float) -> None:
    """Whether deployment ID's cluster works: nodes, charts, services, endpoints.

    Nodes Ready with their labels and a supported kubelet version, each HelmChart's install Job,
    MinIO, Knative Serving, Kourier, cert-manager, OSCAR and the elastic daemon available, OSCAR's
    /health and MinIO's /minio/health/live through the endpoints the outputs give. Each failure
    names the object and a hint (a condition's reason, a pod's waiting reason, the last event).

    Exit status: 0 all is well, 1 something is not, 2 unknown ID or no kubeconfig yet."""
    from provisioner.check import render, run_check
    from provisioner.health import passed

    rows = run_check(_check_target(obj, deployment_ref), deep=deep, timeout=timeout)
    if fmt == "json":
        click.echo(json.dumps({"ok": passed(rows), "checks": [r.to_json() for r in rows]}, indent=2))
    else:
        click.echo(render(rows))
    if not passed(rows):
        sys.exit(1)


@main.command()
@click.argument("deployment_ref", metavar="ID")
@click.option("--dir", "directory", metavar="DIR", type=click.Path(file_okay=False),
              help="Write one file per manifest into DIR (0700, files 0600) instead of one YAML stream "
                   "on stdout.")
@click.option("--show-secrets", is_flag=True, help="Write secret values as they are, not masked.")
@click.option("--vars", "vars_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="YAML mapping of playbook variables, as for reconfigure (e.g. airgap_dir).")
@click.pass_obj
@handles_errors
def manifests(obj: Context, deployment_ref: str, directory: str | None, show_secrets: bool,
              vars_file: str | None) -> None:
    """Write every Kubernetes object the configuration installs for deployment ID (k3s's auto-deploy
    manifests, HelmCharts with their values, the daemon's objects), rendered by the roles themselves;
    secrets masked unless --show-secrets."""
    from provisioner.configure import read_vars_file
    from provisioner.manifests import as_stream, masked, render_manifests, write_dir
    from provisioner.state import StateStore

    extra = read_vars_file(Path(vars_file)) if vars_file else None
    with StateStore.open(obj.state_path) as store:
        dep = store.get(deployment_ref)
        files, secrets = render_manifests(store, dep, obj.settings, extra_vars=extra)
    if not show_secrets:
        files = masked(files, secrets)
    if directory:
        written = write_dir(Path(directory), files)
        click.echo(f"{dep.name} ({dep.id}): wrote {len(written)} manifest(s) into {directory}"
                   f"{'' if show_secrets else ' (secrets masked)'}", err=True)
    else:
        click.echo(as_stream(files), nl=False)


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("deployment_ref", metavar="ID")
@click.argument("node", metavar="NODE")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[-- CMD]")
@click.pass_obj
@handles_errors
def ssh(obj: Context, deployment_ref: str, node: str, command: tuple[str, ...]) -> None:
    """Open an SSH session on NODE of deployment ID (or run CMD there), with the deployment's key."""
    import os

    from provisioner.errors import BadInput, NotFound
    from provisioner.inventory import deployment_inventory, ssh_argv
    from provisioner.state import StateStore

    with StateStore.open(obj.state_path) as store:
        dep = store.get(deployment_ref)
        inv = deployment_inventory(store, dep, cloud_user=obj.settings.provisioner.ssh_user,
                                   cache_dir=Path(obj.settings.general.cache_dir).expanduser())
    try:
        argv = ssh_argv(inv, node, list(command))
    except NotFound as error:  # a node the deployment does not have is bad input, not a failure
        raise BadInput(str(error)) from None
    sys.stdout.flush()
    os.execvp(argv[0], argv)


if __name__ == "__main__":  # pragma: no cover
    main()
