"""Evaluating TOSCA intrinsic functions on the raw (merged) template, with our effective inputs.

``get_input`` gives the checked input value (secret ones are already ``{secret.NAME}``);
``concat``/``join`` build strings; ``get_property`` follows the raw node templates;
``get_attribute`` is only known after create and becomes the placeholder ``{node.attribute}``
(``HOST``/``SELF`` resolved to node names first). Attributes only the IM can fill in
(``ansible_output``, ``ctxt_log``, capability attributes) stay placeholders, with one warning each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from provisioner.errors import TemplateError

KNOWN_ATTRIBUTES = frozenset({"public_address", "private_address", "ip_address", "tosca_name",
                              "tosca_id", "state"})
"""Node attributes the engine fills in after create."""

FUNCTIONS = frozenset({"get_input", "get_property", "get_attribute", "concat", "join", "token",
                       "get_operation_output", "get_nodes_of_type", "get_artifact"})


def is_function(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in FUNCTIONS


def host_of(node: Mapping[str, Any]) -> str | None:
    """The node named by a node template's ``host`` requirement (raw YAML), if any."""
    for requirement in node.get("requirements") or []:
        if isinstance(requirement, dict) and "host" in requirement:
            target = requirement["host"]
            if isinstance(target, dict):
                target = target.get("node")
            return target if isinstance(target, str) else None
    return None


class Evaluator:
    """Evaluates raw values in the context of a node (for ``SELF``/``HOST``) or an output."""

    def __init__(self, inputs: Mapping[str, Any], nodes: Mapping[str, Any],
                 where: Callable[[str], str], warn: Callable[[str, str], None]) -> None:
        self.inputs = inputs
        self.nodes = nodes
        self.where = where
        """Maps ``node <name>``/``output <name>`` context to the file it came from."""
        self.warn = warn
        """``warn(key, message)``: one warning per key."""

    def eval(self, value: Any, context: str, node: str | None = None) -> Any:
        if isinstance(value, dict):
            if is_function(value):
                name, args = next(iter(value.items()))
                return getattr(self, f"_{name}", self._unsupported)(name, args, context, node)
            return {key: self.eval(item, context, node) for key, item in value.items()}
        if isinstance(value, list):
            return [self.eval(item, context, node) for item in value]
        return value

    def _fail(self, message: str, context: str) -> TemplateError:
        return TemplateError(message, where=self.where(context), culprit=context)

    def _get_input(self, _name: str, args: Any, context: str, node: str | None) -> Any:
        path = args if isinstance(args, list) else [args]
        if not path or not isinstance(path[0], str):
            raise self._fail(f"malformed get_input {args!r}", context)
        if path[0] not in self.inputs:
            raise self._fail(f"get_input names input '{path[0]}', which is not declared (or has no "
                             "value)", context)
        value = self.inputs[path[0]]
        for key in path[1:]:
            try:
                value = value[key]
            except (KeyError, IndexError, TypeError):
                raise self._fail(f"get_input {path!r}: no element {key!r}", context) from None
        return value

    def _concat(self, _name: str, args: Any, context: str, node: str | None) -> str:
        if not isinstance(args, list):
            raise self._fail(f"concat takes a list, not {args!r}", context)
        return "".join(_text(self.eval(item, context, node)) for item in args)

    def _join(self, _name: str, args: Any, context: str, node: str | None) -> str:
        if not isinstance(args, list) or not args or not isinstance(args[0], list):
            raise self._fail(f"join takes [ [values...], delimiter ], not {args!r}", context)
        delimiter = _text(args[1]) if len(args) > 1 else ""
        return delimiter.join(_text(self.eval(item, context, node)) for item in args[0])

    def _entity(self, reference: Any, function: str, context: str, node: str | None) -> str:
        """Resolve SELF/HOST/a node name to an existing node template's name."""
        if reference == "SELF":
            if node is None:
                raise self._fail(f"{function} uses SELF outside a node template", context)
            return node
        if reference == "HOST":
            if node is None:
                raise self._fail(f"{function} uses HOST outside a node template", context)
            host = host_of(self.nodes.get(node) or {})
            if host is None:
                raise self._fail(f"{function} uses HOST but node '{node}' has no host requirement",
                                 context)
            return host
        if reference in ("SOURCE", "TARGET"):
            raise self._fail(f"{function} with {reference} is only valid in relationships", context)
        if not isinstance(reference, str) or reference not in self.nodes:
            raise self._fail(f"{function} names node '{reference}', which is not defined", context)
        return reference

    def _get_attribute(self, name: str, args: Any, context: str, node: str | None) -> str:
        if not isinstance(args, list) or len(args) < 2:
            raise self._fail(f"get_attribute takes [ node, attribute, ... ], not {args!r}", context)
        target = self._entity(args[0], name, context, node)
        rest = [str(part) for part in args[1:]]
        if rest and len(rest) > 1 and rest[-1] == "0":
            rest = rest[:-1]  # [front, public_address, 0]: the first address is the address
        text = "{" + ".".join([target, *rest]) + "}"
        if rest[0] not in KNOWN_ATTRIBUTES:
            self.warn(f"attribute:{rest[0]}",
                      f"{context}: attribute '{rest[0]}' (in {self.where(context)}) is one only the "
                      f"IM fills in; it stays the placeholder {text}")
        return text

    def _get_property(self, name: str, args: Any, context: str, node: str | None) -> Any:
        if not isinstance(args, list) or len(args) < 2:
            raise self._fail(f"get_property takes [ node, property ], not {args!r}", context)
        target = self._entity(args[0], name, context, node)
        template = self.nodes[target] or {}
        properties = template.get("properties") or {}
        if len(args) >= 3 and args[1] in (template.get("capabilities") or {}):
            capability = template["capabilities"][args[1]] or {}
            properties = capability.get("properties") or {}
            args = [args[0], *args[2:]]
        if args[1] not in properties:
            return None  # a type default: not known on the raw template; the caller decides
        return self.eval(properties[args[1]], f"node {target}", target)

    def _unsupported(self, name: str, args: Any, context: str, node: str | None) -> str:
        self.warn(f"function:{name}", f"{context}: function {name} is not supported by oscar-deploy; "
                  "its value is left as a placeholder")
        return "{" + f"{name}:{args}" + "}"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def for_parser(node: Mapping[str, Any], evaluator: Evaluator, name: str) -> dict[str, Any]:
    """A node template as tosca-parser should see it: every ``get_attribute`` becomes its
    placeholder text, except that a property which *is* an IM-only attribute (maybe typed as a
    map, such as ``tls_certificates``) is left out once checked."""
    context = f"node {name}"
    result = dict(node)

    def strip(properties: Any) -> Any:
        if not isinstance(properties, dict):
            return properties
        kept = {}
        for key, value in properties.items():
            if is_function(value) and "get_attribute" in value:
                text = evaluator.eval(value, context, name)
                if text.strip("{}").split(".")[1:2] != [] and text.strip("{}").split(".")[1] in (
                        KNOWN_ATTRIBUTES):
                    kept[key] = text
                continue
            kept[key] = replace_attributes(value, evaluator, context, name)
        return kept

    if "properties" in result:
        result["properties"] = strip(result["properties"])
    capabilities = result.get("capabilities")
    if isinstance(capabilities, dict):
        result["capabilities"] = {
            cap: ({**body, "properties": strip(body["properties"])}
                  if isinstance(body, dict) and "properties" in body else body)
            for cap, body in capabilities.items()
        }
    for key in ("requirements", "interfaces", "artifacts"):
        if key in result:
            result[key] = replace_attributes(result[key], evaluator, context, name)
    return result


def replace_attributes(value: Any, evaluator: Evaluator, context: str, node: str | None) -> Any:
    """The same structure with every ``get_attribute`` replaced by its placeholder text.

    tosca-parser then never sees ``HOST`` chains or IM-only attributes it cannot validate.
    """
    if isinstance(value, dict):
        if is_function(value) and "get_attribute" in value:
            return evaluator.eval(value, context, node)
        return {key: replace_attributes(item, evaluator, context, node) for key, item in value.items()}
    if isinstance(value, list):
        return [replace_attributes(item, evaluator, context, node) for item in value]
    return value
