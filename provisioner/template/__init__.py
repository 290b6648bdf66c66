"""TOSCA template(s) + inputs → ClusterSpec, with every error naming the file and the culprit.

The pipeline, each step in its own module: ``load`` reads the files (YAML errors with file:line),
resolves imports offline and merges the templates in order; ``inputs`` computes and checks every
input's effective value; ``checks`` closes tosca-parser's gaps on the raw template; tosca-parser
validates types, properties and requirements (parsed once); ``build`` (with ``im_compat`` for the
IM's conventions) turns the result into a ClusterSpec. Nothing here imports libcloud, kubernetes
or ansible: ``plan`` must stay under a second.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from provisioner.errors import TemplateError
from provisioner.mesh import check_hybrid_boards
from provisioner.spec import ClusterSpec
from provisioner.template.checks import (
    check_functions,
    check_host_properties,
    check_input_fed_properties,
    check_scalable,
    check_structure,
    once,
    parser_error,
)
from provisioner.template.inputs import parse_input_pairs, resolve_inputs
from provisioner.template.load import ImportResolver, Loaded, load_templates
from provisioner.template.values import Evaluator, for_parser, replace_attributes

__all__ = ["load_cluster_spec", "parse_input_pairs"]


def load_cluster_spec(paths: Sequence[Path], explicit_inputs: Mapping[str, Any], *,
                      import_paths: Sequence[Path] = (), cache_dir: Path | None = None,
                      default_provider: str = "aws", allow_weak_secrets: bool = False) -> ClusterSpec:
    """Read, merge, check and parse the templates; raise TemplateError (exit 2) on any fault."""
    loaded = load_templates([Path(p) for p in paths], ImportResolver(import_paths, cache_dir))
    origins = loaded.origins
    topology = loaded.doc["topology_template"]
    resolved = resolve_inputs(topology["inputs"], explicit_inputs, origins, allow_weak_secrets)
    warnings = list(resolved.warnings)
    warn = once(warnings)
    nodes = topology["node_templates"]
    if not nodes:
        raise TemplateError("the template defines no node templates", where=origins.all_files)
    check_structure(nodes, origins)

    def where(context: str) -> str:
        kind, _, name = context.partition(" ")
        if kind == "node":
            return origins.of_node(name)
        if kind == "output":
            return origins.of_output(name)
        return origins.all_files

    evaluator = Evaluator(resolved.values, nodes, where, warn)
    check_functions(nodes, topology["outputs"], evaluator, origins)
    check_host_properties(nodes, evaluator, origins)
    check_scalable(nodes, evaluator, origins)
    raw_nodes = copy.deepcopy(nodes)
    # tosca-parser never sees get_attribute: HOST chains and IM-only attributes are ours to handle.
    topology["node_templates"] = {
        name: for_parser(node, evaluator, name) for name, node in nodes.items()
    }
    topology["outputs"] = {
        name: replace_attributes(output, evaluator, f"output {name}", None)
        for name, output in topology["outputs"].items()
    }
    tosca = _parse(loaded, resolved.values, raw_nodes)
    check_input_fed_properties(tosca, raw_nodes, evaluator, origins)

    from provisioner.template.build import Builder

    builder = Builder(tosca, loaded, raw_nodes, resolved, evaluator, warn, warnings, default_provider)
    spec = builder.spec()
    check_hybrid_boards(spec, origins.of_node)
    return spec


def _parse(loaded: Loaded, params: Mapping[str, Any], nodes: Mapping[str, Any]) -> Any:
    """tosca-parser over the merged template, once; its report becomes one TemplateError."""
    from toscaparser.common.exception import ExceptionCollector, TOSCAException, ValidationError
    from toscaparser.tosca_template import ToscaTemplate

    try:
        return ToscaTemplate(yaml_dict_tpl=loaded.doc, parsed_params=dict(params))
    except ValidationError:
        raise parser_error(ExceptionCollector.getExceptionsReport(full=False), loaded.origins,
                           nodes) from None
    except (TypeError, KeyError, AttributeError, ValueError, IndexError, TOSCAException) as error:
        # tosca-parser lets some malformed input escape as bare exceptions; name them cleanly.
        lines = ExceptionCollector.getExceptionsReport(full=False) if ExceptionCollector.exceptions else []
        raise parser_error([*lines, f"{type(error).__name__}: {error}"], loaded.origins, nodes) from None
    finally:
        ExceptionCollector.stop()
