"""Input values: ``-i``/``--inputs`` parsing, type conversion, constraints, and secret inputs.

tosca-parser neither enforces input ``constraints`` nor fails on a missing required input, so the
effective value of every input is computed and checked here, with tosca-parser's own type and
constraint classes, before the template is parsed. Secret inputs (passwords, tokens, keys) never
travel as values: everywhere they are used the value is the placeholder ``{secret.NAME}``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from provisioner.errors import TemplateError
from provisioner.spec import SecretSpec

WEAK_SECRETS = frozenset({"oscar123", "minio123", "not_very_secret_token", "password", "changeme",
                          "secret", "admin", "token"})
MIN_SECRET_LENGTH = 12
_SECRET_NAME = re.compile(r"pass(word|wd)?\b|password|token|secret", re.IGNORECASE)
_INPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def parse_input_pairs(pairs: Sequence[str], inputs_file: str | None) -> dict[str, str]:
    """-i NAME=VALUE pairs (win) over a YAML --inputs file; malformed → BadInput naming it."""
    values: dict[str, str] = {}
    if inputs_file:
        path = Path(inputs_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise TemplateError(f"cannot read the inputs file: {error.strerror or error}",
                                where=str(path)) from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            raise TemplateError(f"YAML syntax error in the inputs file: "
                                f"{getattr(error, 'problem', None) or error}", where=where) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise TemplateError("the inputs file must be a mapping of input names to values, not a "
                                f"{type(loaded).__name__}", where=str(path))
        for name, value in loaded.items():
            if not isinstance(name, str) or not _INPUT_NAME.match(name):
                raise TemplateError("not a valid input name", where=str(path), culprit=repr(name))
            values[name] = _as_text(value)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name or not _INPUT_NAME.match(name):
            raise TemplateError("expected NAME=VALUE", where="-i", culprit=repr(pair))
        values[name] = value
    return values


def _as_text(value: Any) -> str:
    """Values of an --inputs file travel as text, like -i values, and are typed against the template."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return "" if value is None else str(value)


def is_secret_input(name: str, schema: Mapping[str, Any]) -> bool:
    """Passwords, tokens and secret keys: by name, for string inputs."""
    return schema.get("type", "string") == "string" and bool(_SECRET_NAME.search(name))


def is_weak(value: Any) -> bool:
    text = "" if value is None else str(value)
    return text in WEAK_SECRETS or len(text) < MIN_SECRET_LENGTH


def placeholder(name: str) -> str:
    return f"{{secret.{name}}}"


@dataclasses.dataclass
class ResolvedInputs:
    """Every input's effective value (secret ones as placeholders), the secrets, and warnings."""

    values: dict[str, Any]
    secrets: list[SecretSpec]
    warnings: list[str]
    explicit: frozenset[str]


def _convert(raw: str, kind: str) -> Any:
    """Text from -i to the declared type (tosca-parser validates the result afterwards)."""
    try:
        if kind == "integer":
            return int(raw.strip())
        if kind in ("float", "number"):
            return float(raw.strip())
    except ValueError:
        raise ValueError(f'"{raw}" is not {"an integer" if kind == "integer" else "a number"}') from None
    if kind == "boolean":
        lowered = raw.strip().lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
        raise ValueError(f'"{raw}" is not a boolean')
    if kind in ("list", "map"):
        value = yaml.safe_load(raw) if raw.strip() else ([] if kind == "list" else {})
        return value
    return raw


def _check_value(name: str, schema: Mapping[str, Any], value: Any, where: str, how: str,
                 secret: bool = False) -> Any:
    """Type and constraints, by tosca-parser's own classes; errors name file and input (and never
    show a secret's value)."""
    from toscaparser.common.exception import TOSCAException
    from toscaparser.dataentity import DataEntity
    from toscaparser.elements.constraints import Constraint

    kind = schema.get("type", "string")
    culprit = f"input {name}"
    try:
        value = DataEntity.validate_datatype(kind, value)
    except (ValueError, TypeError, TOSCAException) as error:
        shown = "(hidden)" if secret else _show(value)
        detail = "" if secret else f": {_clean(error)}"
        raise TemplateError(f"{how} value {shown} is not a valid {kind}{detail}",
                            where=where, culprit=culprit) from None
    constraints = schema.get("constraints") or []
    if not isinstance(constraints, list):
        raise TemplateError("'constraints' must be a list", where=where, culprit=culprit)
    for constraint in constraints:
        try:
            Constraint(name, kind, constraint).validate(value)
        except (ValueError, TypeError, TOSCAException, UnboundLocalError, AttributeError) as error:
            shown = "(hidden)" if secret else _show(value)
            detail = "" if secret else f": {_clean(error)}"
            raise TemplateError(f"{how} value {shown} violates constraint {_show(constraint)}{detail}",
                                where=where, culprit=culprit) from None
    return value


def _show(value: Any) -> str:
    if isinstance(value, dict) and len(value) == 1:
        key, inner = next(iter(value.items()))
        return f"{key}: {inner}"
    return repr(value) if isinstance(value, str) else str(value)


def _clean(error: BaseException) -> str:
    return str(error).strip().rstrip(".") or type(error).__name__


def resolve_inputs(declared: Mapping[str, Any], explicit: Mapping[str, Any],
                   origins: Any, allow_weak_secrets: bool = False) -> ResolvedInputs:
    """Compute and check the effective value of every declared input.

    ``explicit`` are the user's ``-i``/``--inputs`` values (text); an undeclared one is an error,
    as is a required input with neither default nor value, and a weak secret given explicitly
    (unless ``allow_weak_secrets``: a default anyone can read in a template is no secret).
    """
    unknown = sorted(set(explicit) - set(declared))
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise TemplateError(f"input '{unknown[0]}' given with -i/--inputs is not declared by the "
                            f"template (declared: {known})", where=origins.all_files,
                            culprit=f"input {unknown[0]}")
    values: dict[str, Any] = {}
    secrets: list[SecretSpec] = []
    warnings: list[str] = []
    for name, schema in declared.items():
        where = origins.of_input(name)
        if not isinstance(schema, dict):
            raise TemplateError("an input definition must be a mapping (type, default, ...)",
                                where=where, culprit=f"input {name}")
        kind = schema.get("type", "string")
        secret = is_secret_input(name, schema)
        if name in explicit:
            raw = explicit[name]
            try:
                value = _convert(raw, kind) if isinstance(raw, str) else raw
            except (ValueError, yaml.YAMLError) as error:
                shown = "(hidden)" if secret else repr(raw)
                detail = f" ({_clean(error)})" if isinstance(error, yaml.YAMLError) else ""
                raise TemplateError(f"-i value {shown} is not a valid {kind}{detail}",
                                    where=where, culprit=f"input {name}") from None
            value = _check_value(name, schema, value, where, "given", secret)
            if secret and is_weak(value):
                if not allow_weak_secrets:
                    raise TemplateError(f"the value given is weak (under {MIN_SECRET_LENGTH} characters, or "
                                        "a default published in templates); choose a stronger one, leave "
                                        "it out to have one generated, or give --allow-weak-secrets",
                                        where=where, culprit=f"input {name}")
                warnings.append(f"input {name}: a weak secret is used (--allow-weak-secrets)")
            if secret:
                secrets.append(SecretSpec(name, value=str(value), explicit=True))
                value = placeholder(name)
        elif "default" in schema:
            value = schema["default"]
            if secret and is_weak(value):
                secrets.append(SecretSpec(name))
                if value:  # an empty default means "generate one", by design
                    warnings.append(f"input {name}: the template's default is weak; a random secret is "
                                    f"generated at create (give -i {name}=... to choose one)")
                value = placeholder(name)
            else:
                if value is not None:
                    value = _check_value(name, schema, value, where, "default", secret)
                if secret:
                    secrets.append(SecretSpec(name, value=str(value)))
                    value = placeholder(name)
        elif schema.get("required", True) is False:
            continue
        else:
            raise TemplateError(f"required input '{name}' has no default and was not given "
                                f"(use -i {name}=VALUE)", where=where, culprit=f"input {name}")
        values[name] = value
    return ResolvedInputs(values=values, secrets=secrets, warnings=warnings,
                          explicit=frozenset(explicit))
