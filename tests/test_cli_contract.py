"""The command-line contract of DESIGN §3, checked the way users and the project's checks use it.

Every command and option keeps its spelling (the checks call them); bad input exits 2 with one clear
message and changes nothing; an unknown deployment is refused naming it; `-o json` is one document on
stdout even under `-v`; a missing state file is created private or not at all; generated secrets stay
out of every default output and every log line, and come out with `--show-secrets`.

The installed `oscar-deploy` runs as a subprocess where the whole path matters (help text, logs at
`-v`, one JSON document on stdout); click's CliRunner drives the many bad-input cases in process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from provisioner.cli import main

ROOT = Path(__file__).resolve().parents[1]
IM_STYLE = ROOT / "tests" / "golden" / "im-style"
IM_TEMPLATE = [str(IM_STYLE / "parent.yaml"), str(IM_STYLE / "child.yaml"), "--import-path", str(IM_STYLE)]
REGION = "eu-west-1"


def installed_command() -> list[str]:
    """The installed ``oscar-deploy`` beside this interpreter (the venv's), else the module."""
    beside = Path(sys.executable).parent / "oscar-deploy"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "provisioner.cli"]


def clean_env(home: Path, cache: Path) -> dict[str, str]:
    """The user's environment without cloud credentials or oscar-deploy overrides, in a fresh HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OS_", "OSCAR_DEPLOY_"))}
    return {**env, "HOME": str(home), "PYTHONPATH": str(ROOT), "COLUMNS": "200",
            "OSCAR_DEPLOY_GENERAL_CACHE_DIR": str(cache),
            "OSCAR_DEPLOY_PROVISIONER_RETRY_BASE_S": "0.01", "OSCAR_DEPLOY_PROVISIONER_RETRY_MAX_S": "0.05",
            "OSCAR_DEPLOY_PROVISIONER_SSH_TIMEOUT_S": "3"}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A HOME, a cache and an environment shared by this module's subprocesses."""
    base = tmp_path_factory.mktemp("contract")
    (base / "home").mkdir()
    return {"base": base, "env": clean_env(base / "home", base / "cache")}


def run(sandbox: dict[str, Any], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The installed command, as a user runs it from an empty directory."""
    return subprocess.run([*installed_command(), *args], capture_output=True, text=True, env=sandbox["env"],
                          cwd=sandbox["base"], timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """The command in process (for the many fast cases); exceptions are not caught into text."""
    return CliRunner().invoke(main, list(args), prog_name="oscar-deploy", env=env)


# --- 1. every command and option of DESIGN §3, with exactly that spelling ---------------------------

TEMPLATE_OPTIONS = {"-i", "--input", "--inputs", "--import-path"}
CONTRACT: dict[tuple[str, ...], tuple[str, set[str]]] = {
    # command path: (the arguments after [OPTIONS] in Usage, the options it must offer)
    (): ("COMMAND [ARGS]...", {"--config", "--state", "-v", "-q"}),
    ("validate",): ("TEMPLATE...", TEMPLATE_OPTIONS),
    ("plan",): ("TEMPLATE...", TEMPLATE_OPTIONS | {"-o"}),
    ("create",): ("TEMPLATE...", TEMPLATE_OPTIONS | {"--name", "--auth", "--no-configure", "--yes"}),
    ("list",): ("", {"-o"}),
    ("show",): ("ID", {"-o", "--show-secrets"}),
    ("outputs",): ("ID", set()),
    ("destroy",): ("ID", {"--yes", "--keep-data"}),
    ("scale",): ("ID GROUP COUNT", set()),
    ("reconfigure",): ("ID", set()),
    ("inventory",): ("ID", {"--list", "--host", "--script"}),
    ("ssh",): ("ID NODE [-- CMD]", set()),
    ("kubeconfig",): ("ID", set()),
    ("daemon",): ("", {"--kubeconfig", "--deployment", "--groups", "--metrics-port"}),
    ("nodes",): ("[COMMAND] [ARGS]...", set()),
    ("nodes", "status"): ("", set()),
    **{("nodes", act): ("NODE", set()) for act in ("enable", "disable", "poweron", "poweroff", "reset")},
    ("simulate",): ("TRACE", {"--groups", "--policy", "--report", "-o"}),
}
CHOICES = {  # option → the values DESIGN §3 names (at least these)
    ("plan",): {"-o": {"table", "json"}},
    ("list",): {"-o": {"table", "json"}},
    ("show",): {"-o": {"table", "json"}},
    ("simulate",): {"-o": {"json"}, "--policy": {"oscar", "clues", "autoscaler", "static"}},
}


def parse_help(text: str) -> tuple[str, dict[str, str], set[str]]:
    """(the arguments of the Usage line, option spelling → its metavar/choices, sub-command names)
    from a click ``--help`` page: the options' first column and the Commands section."""
    usage = re.search(r"^Usage: oscar-deploy (.*?)\[OPTIONS\] ?(.*)$", text, re.M)
    assert usage, text
    options: dict[str, str] = {}
    commands: set[str] = set()
    section = ""
    for line in text.splitlines():
        if line and not line.startswith(" "):
            section = line.rstrip(":")
            continue
        if not re.match(r"^  \S", line):  # continuation lines are indented deeper
            continue
        first_column = re.split(r"\s{2,}", line.strip())[0]
        if section == "Options":
            *names, last = first_column.split(", ")
            last, _, metavar = last.partition(" ")  # `-o, --output [table|json]`: one metavar for both
            options.update(dict.fromkeys([*names, last], metavar))
        elif section == "Commands":
            commands.add(first_column)
    return usage.group(2).strip(), options, commands


@pytest.fixture(scope="module")
def help_pages(sandbox: dict[str, Any]) -> dict[tuple[str, ...], str]:
    """`oscar-deploy [COMMAND...] --help` of every command of the contract, from the installed tool."""
    pages = {}
    for path in CONTRACT:
        done = run(sandbox, *path, "--help", timeout=60)
        assert done.returncode == 0 and not done.stderr, (path, done.stderr)
        pages[path] = done.stdout
    return pages


@pytest.mark.parametrize("path", list(CONTRACT), ids=lambda p: " ".join(p) or "oscar-deploy")
def test_every_command_and_option_of_design_3_exists_with_that_spelling(
        path: tuple[str, ...], help_pages: dict[tuple[str, ...], str]) -> None:
    arguments, options = CONTRACT[path]
    usage_args, offered, _ = parse_help(help_pages[path])
    assert usage_args == arguments, f"`{' '.join(path)}` takes {usage_args!r}, DESIGN §3 says {arguments!r}"
    assert options <= set(offered), f"`{' '.join(path)}` lacks {sorted(options - set(offered))}"
    for option, values in CHOICES.get(path, {}).items():
        shown = set(offered[option].strip("[]").split("|"))
        assert values <= shown, f"`{' '.join(path)} {option}` offers {shown}, DESIGN §3 needs {values}"


def test_nodes_offers_every_subcommand_and_simulate_policy_repeats(
        help_pages: dict[tuple[str, ...], str]) -> None:
    _, _, subcommands = parse_help(help_pages[("nodes",)])
    assert {"status", "enable", "disable", "poweron", "poweroff", "reset"} <= subcommands
    _, _, commands = parse_help(help_pages[()])
    assert {p[0] for p in CONTRACT if p} <= commands
    policy = next(p for p in main.commands["simulate"].params if p.name == "policies")
    assert isinstance(policy, click.Option) and policy.multiple, "--policy must be repeatable"


def walk(command: click.Command,
         path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command and sub-command under ``command``, with its path."""
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from walk(sub, (*path, name))


@pytest.mark.parametrize(("path", "command"), list(walk(main)),
                         ids=[" ".join(p) or "oscar-deploy" for p, _ in walk(main)])
def test_help_explains_every_option_and_argument(path: tuple[str, ...], command: click.Command) -> None:
    """A user reading `--help` learns what each option does and what each argument is."""
    assert (command.help or "").strip(), f"`{' '.join(path)}` has no description"
    for param in command.params:
        if isinstance(param, click.Option) and "--help" not in param.opts:
            assert (param.help or "").strip(), f"`{' '.join(path)} {'/'.join(param.opts)}` has no help text"
        if isinstance(param, click.Argument) and param.metavar not in (None, "[-- CMD]"):
            name = param.metavar.rstrip(".")
            assert name in (command.help or ""), f"`{' '.join(path)}` does not say what {name} is"
