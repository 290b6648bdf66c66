"""Our own checks, closing tosca-parser's gaps, and its errors turned into one readable paragraph.

Run on the merged raw template before tosca-parser, they catch what it reports badly or not at
all (requirements on missing nodes, ``host`` cycles, non-numeric ``num_cpus`` — a bare
``TypeError`` there —, scaling bounds), each naming the file, the node and the property.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from provisioner.errors import TemplateError
from provisioner.template.load import Origins
from provisioner.template.values import Evaluator, host_of, is_function

HOST_PROPERTIES = {"num_cpus": "integer", "num_gpus": "integer", "mem_size": "scalar-unit.size",
                   "disk_size": "scalar-unit.size"}


def requirement_targets(node: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(requirement name, target) pairs of a raw node template; target is a node name or None."""
    pairs = []
    for requirement in node.get("requirements") or []:
        if not isinstance(requirement, dict) or len(requirement) != 1:
            pairs.append(("?", requirement))
            continue
        name, target = next(iter(requirement.items()))
        if isinstance(target, dict):
            target = target.get("node")
        pairs.append((str(name), target))
    return pairs


def check_structure(nodes: Mapping[str, Any], origins: Origins) -> None:
    """Node templates are mappings with a type; requirements name existing nodes; no host cycle."""
    for name, node in nodes.items():
        where = origins.of_node(name)
        if not isinstance(node, dict) or not isinstance(node.get("type"), str):
            raise TemplateError("a node template must be a mapping with a 'type'", where=where,
                                culprit=f"node {name}")
        requirements = node.get("requirements")
        if requirements is not None and not isinstance(requirements, list):
            raise TemplateError("'requirements' must be a list", where=where, culprit=f"node {name}")
        for section in ("properties", "capabilities", "interfaces", "artifacts"):
            if node.get(section) is not None and not isinstance(node[section], dict):
                raise TemplateError(f"'{section}' must be a mapping", where=where, culprit=f"node {name}")
        for cap, body in (node.get("capabilities") or {}).items():
            if not isinstance(body, dict) or not isinstance(body.get("properties") or {}, dict):
                raise TemplateError(f"capability '{cap}' must be a mapping with a 'properties' mapping",
                                    where=where, culprit=f"node {name}")
        for requirement, target in requirement_targets(node):
            if requirement == "?":
                raise TemplateError(f"malformed requirement {target!r}", where=where,
                                    culprit=f"node {name}")
            if target is None or (isinstance(target, str) and "." in target and target not in nodes):
                continue  # a requirement on a type (abstract) is tosca-parser's to judge
            if target not in nodes:
                raise TemplateError(f"requirement '{requirement}' names node '{target}', which is not "
                                    "defined", where=where, culprit=f"node {name}")
    for name in nodes:
        seen = [name]
        current = host_of(nodes[name])
        while current is not None and current in nodes:
            if current in seen:
                cycle = " -> ".join([*seen[seen.index(current):], current])
                raise TemplateError(f"'host' requirements form a cycle: {cycle}",
                                    where=origins.of_node(name), culprit=f"node {name}")
            seen.append(current)
            current = host_of(nodes[current])


def check_functions(nodes: Mapping[str, Any], outputs: Mapping[str, Any], evaluator: Evaluator,
                    origins: Origins) -> None:
    """Every function in properties and outputs evaluates: get_input names a declared input,
    get_attribute/get_property an existing node; outputs have a value."""
    for name, node in nodes.items():
        for section in ("properties", "capabilities"):
            if section in node:
                evaluator.eval(node[section], f"node {name}", name)
    for name, output in outputs.items():
        if not isinstance(output, dict) or "value" not in output:
            raise TemplateError("an output needs a 'value'", where=origins.of_output(name),
                                culprit=f"output {name}")
        evaluator.eval(output["value"], f"output {name}")


def check_host_properties(nodes: Mapping[str, Any], evaluator: Evaluator, origins: Origins) -> None:
    """num_cpus/mem_size/... of every ``host`` capability have the right type (after get_input)."""
    from toscaparser.common.exception import TOSCAException
    from toscaparser.dataentity import DataEntity

    for name, node in nodes.items():
        capability = ((node.get("capabilities") or {}).get("host") or {})
        properties = capability.get("properties") if isinstance(capability, dict) else None
        for prop, kind in HOST_PROPERTIES.items():
            if not isinstance(properties, dict) or prop not in properties:
                continue
            value = evaluator.eval(properties[prop], f"node {name}", name)
            if value in (None, ""):
                continue
            try:
                if kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
                    raise ValueError(f'"{value}" is not an integer')
                DataEntity.validate_datatype(kind, value)
            except (ValueError, TypeError, TOSCAException) as error:
                raise TemplateError(f"host property {prop} = {value!r} is not a valid {kind} "
                                    f"({str(error).strip().rstrip('.')})", where=origins.of_node(name),
                                    culprit=f"node {name}") from None
            if kind == "integer" and value < (0 if prop == "num_gpus" else 1):
                raise TemplateError(f"host property {prop} = {value} must be at least "
                                    f"{0 if prop == 'num_gpus' else 1}", where=origins.of_node(name),
                                    culprit=f"node {name}")


def check_input_fed_properties(tosca: Any, nodes: Mapping[str, Any], evaluator: Evaluator,
                               origins: Origins) -> None:
    """tosca-parser checks literal property values but not those fed by ``get_input``/``concat``:
    check their effective value against the property's type and constraints (secrets excepted)."""
    from toscaparser.common.exception import TOSCAException
    from toscaparser.properties import Property

    for node in tosca.nodetemplates:
        raw_properties = (nodes.get(node.name) or {}).get("properties") or {}
        for prop in node.get_properties_objects():
            raw = raw_properties.get(prop.name)
            if not is_function(raw):
                continue
            value = evaluator.eval(raw, f"node {node.name}", node.name)
            if value is None or (isinstance(value, str) and value.startswith("{")):
                continue  # unset, a secret, or known only after create
            try:
                Property(prop.name, value, prop.schema.schema, getattr(node, "custom_def", None)).validate()
            except (ValueError, TypeError, TOSCAException) as error:
                raise TemplateError(f"property {prop.name} = {value!r} (from the template's inputs) is "
                                    f"invalid: {str(error).strip().rstrip('.')}",
                                    where=origins.of_node(node.name), culprit=f"node {node.name}") from None


def check_scalable(nodes: Mapping[str, Any], evaluator: Evaluator, origins: Origins) -> None:
    """count/min_instances/max_instances as the template set them (our Scalable, or the IM's ``wn``
    capability): integers, not negative, min <= max; before tosca-parser, to name the node."""
    for name, node in nodes.items():
        capabilities = node.get("capabilities") or {}
        if not isinstance(capabilities, dict):
            continue
        for cap in ("scalable", "wn"):
            body = capabilities.get(cap)
            properties = body.get("properties") if isinstance(body, dict) else None
            if not isinstance(properties, dict):
                continue
            values = {key: evaluator.eval(properties[key], f"node {name}", name)
                      for key in ("count", "min_instances", "max_instances") if key in properties}
            for key, value in values.items():
                if isinstance(value, bool) or not isinstance(value, int):
                    raise TemplateError(f"{cap} {key} = {value!r} is not an integer",
                                        where=origins.of_node(name), culprit=f"node {name}")
                if value < 0:
                    raise TemplateError(f"{cap} {key} = {value} is negative", where=origins.of_node(name),
                                        culprit=f"node {name}")
            low, high = values.get("min_instances"), values.get("max_instances")
            if low is not None and high is not None and low > high:
                inputs = {key: raw["get_input"] for key in ("min_instances", "max_instances")
                          if isinstance(raw := properties.get(key), dict)
                          and isinstance(raw.get("get_input"), str)}
                check_scaling(name, low, low, high, origins.of_node(name), inputs)


def check_scaling(name: str, count: int, low: int, high: int, where: str,
                  inputs: Mapping[str, str] | None = None) -> None:
    """count <= max_instances and min <= max; ``inputs`` maps a property to the input it came from,
    so the message names what the user typed (``-i wn_num=7``), not only the property."""
    culprit = f"node {name}"
    inputs = inputs or {}

    def said(label: str, value: int) -> str:
        return f"{label} ({value}, input {inputs[label]})" if label in inputs else f"{label} ({value})"

    def fix(smaller: str, larger: str) -> str:
        names = [inputs[k] for k in (larger, smaller) if k in inputs]
        return f": raise {names[0]} or lower {names[1]}" if len(names) == 2 else ""

    for label, value in (("count", count), ("min_instances", low), ("max_instances", high)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TemplateError(f"scalable {label} = {value!r} is not an integer", where=where,
                                culprit=culprit)
        if value < 0:
            raise TemplateError(f"scalable {label} = {value} is negative", where=where, culprit=culprit)
    if low > high:
        raise TemplateError(f"{said('min_instances', low)} is greater than {said('max_instances', high)}"
                            f"{fix('min_instances', 'max_instances')}", where=where, culprit=culprit)
    if count > high:
        raise TemplateError(f"{said('count', count)} is greater than {said('max_instances', high)}"
                            f"{fix('count', 'max_instances')}", where=where, culprit=culprit)


_QUOTED = re.compile(r'"([^"]+)"')
_SINGULAR = {"properties": "property", "capabilities": "capability", "requirements": "requirement",
             "interfaces": "interface", "artifacts": "artifact"}
_REWORDED = (
    (re.compile(r'^"(\w+)" of template "[^"]+" is missing required field "\[(.*)\]"\.?$'),
     lambda m: f"required {_SINGULAR.get(m[1], m[1])} {m[2]} is not set"),
    (re.compile(r'^"(\w+)" of template "[^"]+" contains unknown field "([^"]+)"\..*$'),
     lambda m: f"unknown {_SINGULAR.get(m[1], m[1])} '{m[2]}' (its type does not define it)"),
    (re.compile(r'^Type "([^"]+)" is not a valid type\.?$'),
     lambda m: f"type '{m[1]}' is not defined (a typo, or a missing import?)"),
)
"""tosca-parser's commonest messages, said the way a user thinks of them."""
_UNDEFINED_TYPE = _REWORDED[2][0]


def _reword(line: str) -> str:
    for pattern, say in _REWORDED:
        match = pattern.match(line)
        if match:
            return say(match)
    return line


def parser_error(lines: list[str], origins: Origins, nodes: Mapping[str, Any]) -> TemplateError:
    """One paragraph from tosca-parser's clean report lines, naming the file and the node."""
    cleaned = []
    for line in lines:
        line = line.strip()
        line = re.sub(r"^[A-Z][A-Za-z]+: ", "", line)  # the exception class name
        if line and line not in cleaned:
            cleaned.append(line)
    undefined = [line for line in cleaned if _UNDEFINED_TYPE.match(line)]
    if undefined:  # what follows an unknown type (its properties, capabilities "unknown") is noise
        cleaned = undefined
    named = next((quoted for line in cleaned for quoted in _QUOTED.findall(line) if quoted in nodes), None)
    culprit = named
    said = []
    for line in cleaned[:4]:
        text = _reword(line)
        if named is None:  # e.g. '"abc" is not an integer.': name the property holding that value
            found = next(filter(None, (_property_with_value(nodes, q) for q in _QUOTED.findall(line))), None)
            if found:
                culprit = culprit or found[0]
                if found[1] != "type":
                    text = f"property {found[1]}: {text}"
        said.append(text)
    text = " ".join(said) + (f" (and {len(cleaned) - 4} more)" if len(cleaned) > 4 else "")
    where = origins.of_node(culprit) if culprit else origins.all_files
    return TemplateError(text or "the template failed validation", where=where,
                         culprit=f"node {culprit}" if culprit else None)


def _property_with_value(nodes: Mapping[str, Any], text: str) -> tuple[str, str] | None:
    """(node, property) whose literal value (or type) is ``text``, in properties and capabilities."""
    for name, node in nodes.items():
        if not isinstance(node, dict):
            continue
        if node.get("type") == text:
            return name, "type"
        sections = [("", node.get("properties"))]
        for cap, body in (node.get("capabilities") or {}).items():
            if isinstance(body, dict):
                sections.append((f"{cap}.", body.get("properties")))
        for prefix, properties in sections:
            if not isinstance(properties, dict):
                continue
            for prop, value in properties.items():
                inner = list(value.values()) if isinstance(value, dict) else value
                inner = inner if isinstance(inner, list) else []
                if str(value) == text or any(str(item) == text for item in inner):
                    return name, f"{prefix}{prop}"
    return None


def once(warnings: list[str]) -> Callable[[str, str], None]:
    """A ``warn(key, message)`` that records a message only the first time its key is seen."""
    seen: set[str] = set()

    def warn(key: str, message: str) -> None:
        if key not in seen:
            seen.add(key)
            warnings.append(message)

    return warn
