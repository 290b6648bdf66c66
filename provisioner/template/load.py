"""Reading template files: YAML with file:line errors, offline imports, and the IM Dashboard merge.

Imports are resolved here, not by tosca-parser, so nothing is ever fetched behind our back: an
import whose file name is in an ``--import-path`` directory is read from there; a relative path is
read beside the importing file (or, for our own types, from the installed package); a URL is
fetched once into the cache directory. The imported type sections are then inlined into the merged
template, which tosca-parser receives pre-parsed (``yaml_dict_tpl``).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from provisioner.errors import TemplateError
from provisioner.resources import templates_dir, types_dir

log = logging.getLogger(__name__)

TYPE_SECTIONS = (
    "node_types", "capability_types", "relationship_types", "data_types", "interface_types",
    "policy_types", "group_types", "artifact_types",
)
TOP_SECTIONS = frozenset({
    "tosca_definitions_version", "tosca_default_namespace", "template_name", "topology_template",
    "template_author", "template_version", "description", "imports", "dsl_definitions",
    "relationship_templates", "repositories", "metadata", *TYPE_SECTIONS,
})
"""What may sit at a template's top level (tosca-parser's list); anything else is a typo."""
MERGED_SECTIONS = ("inputs", "node_templates", "outputs")
"""What a later template adds to or replaces in an earlier one (as the IM Dashboard merges)."""

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def shipped_template(path: Path) -> Path:
    """``path`` itself, or, when no such file exists and it is a bare name (``oscar-aws.yaml`` or
    ``oscar-aws``), the shipped template of that name: the installed tool plans its own templates
    from any working directory."""
    if path.exists() or len(path.parts) != 1:
        return path
    for name in (path.name, f"{path.name}.yaml"):
        candidate = templates_dir() / name
        if candidate.is_file():
            return candidate
    return path


def read_yaml(path: Path, *, what: str = "template") -> Any:
    """Read one YAML file; a missing, empty or malformed file is a TemplateError naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = ""
        if what == "template" and len(path.parts) == 1:
            shipped = ", ".join(sorted(p.name for p in templates_dir().glob("*.yaml")))
            hint = f" (nor is it a shipped template: {shipped})"
        raise TemplateError(f"{what} file not found{hint}", where=str(path)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise TemplateError(f"cannot read {what}: {error}", where=str(path)) from None
    if not text.strip():
        raise TemplateError(f"the {what} is empty", where=str(path))
    try:
        return yaml.load(text, Loader=_Loader)  # a safe loader (C or Python)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error)
        context = getattr(error, "context", None)
        detail = f"{context}, {problem}" if context else problem
        raise TemplateError(f"YAML syntax error: {detail}", where=where) from None


@dataclasses.dataclass
class Origins:
    """Which file each input, node template and output came from (the last one that set it)."""

    inputs: dict[str, str] = dataclasses.field(default_factory=dict)
    nodes: dict[str, str] = dataclasses.field(default_factory=dict)
    outputs: dict[str, str] = dataclasses.field(default_factory=dict)
    files: tuple[str, ...] = ()

    def of_node(self, name: str) -> str:
        return self.nodes.get(name, self.files[-1] if self.files else "<template>")

    def of_input(self, name: str) -> str:
        return self.inputs.get(name, self.files[-1] if self.files else "<template>")

    def of_output(self, name: str) -> str:
        return self.outputs.get(name, self.files[-1] if self.files else "<template>")

    @property
    def all_files(self) -> str:
        return ", ".join(self.files)


@dataclasses.dataclass
class Loaded:
    """The merged template (types inlined, no imports left) and where each part came from."""

    doc: dict[str, Any]
    origins: Origins
    description: str = ""


class ImportResolver:
    """Find imported files offline (``--import-path``, beside the template, our package), else fetch
    a URL once into ``cache_dir``. Each resolved file is read once per resolver."""

    def __init__(self, import_paths: Sequence[Path], cache_dir: Path | None) -> None:
        self.import_paths = [Path(p) for p in import_paths]
        self.cache_dir = cache_dir
        self._types: dict[Path, dict[str, dict[str, Any]]] = {}

    def types_of(self, doc: Mapping[str, Any], source: Path) -> dict[str, dict[str, Any]]:
        """The type sections a template gets from its imports (recursively), by section."""
        sections: dict[str, dict[str, Any]] = {}
        imports = doc.get("imports")
        if imports is None:
            return sections
        if not isinstance(imports, list):
            raise TemplateError("'imports' must be a list", where=str(source), culprit="imports")
        for entry in imports:
            name, location, prefix = _import_entry(entry, source)
            path = self.resolve(location, source, name)
            for section, types in self._load_types(path, location).items():
                if prefix:
                    types = {f"{prefix}.{key}": value for key, value in types.items()}
                sections.setdefault(section, {}).update(types)
        return sections

    def resolve(self, location: str, source: Path, name: str) -> Path:
        base = _file_name(location)
        for directory in self.import_paths:
            candidate = directory / base
            if candidate.is_file():
                return candidate
        if _is_url(location):
            return self._fetch(location, source, name)
        candidate = Path(location)
        if not candidate.is_absolute():
            candidate = source.parent / candidate
        if candidate.is_file():
            return candidate
        packaged = types_dir() / base
        if packaged.is_file():
            return packaged
        searched = ", ".join(str(d) for d in self.import_paths) or "no --import-path given"
        raise TemplateError(
            f"import '{location}' not found (looked beside the template and in: {searched})",
            where=str(source), culprit=f"import {name}" if name else "imports",
        )

    def _fetch(self, url: str, source: Path, name: str) -> Path:
        if self.cache_dir is None:
            raise TemplateError(
                f"import '{url}' is a URL and no cache directory is set; use --import-path DIR "
                f"with a copy of {_file_name(url)}", where=str(source), culprit=f"import {name}",
            )
        if urllib.parse.urlparse(url).scheme != "https":
            log.warning("import %s is fetched without TLS: whoever is on the path can change the types "
                        "it defines; use an https:// URL or --import-path DIR with a copy", url)
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        cached = self.cache_dir / "imports" / f"{digest}-{_file_name(url)}"
        if cached.is_file():
            return cached
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                body = response.read()
        except (OSError, ValueError) as error:
            raise TemplateError(
                f"cannot fetch import '{url}' ({error}); use --import-path DIR with a copy of "
                f"{_file_name(url)}", where=str(source), culprit=f"import {name}",
            ) from None
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(cached.suffix + ".part")
        partial.write_bytes(body)
        partial.replace(cached)
        return cached

    def _load_types(self, path: Path, location: str) -> dict[str, dict[str, Any]]:
        resolved = path.resolve()
        if resolved in self._types:
            return self._types[resolved]
        self._types[resolved] = {}  # an import cycle ends here instead of recursing forever
        doc = read_yaml(path, what=f"imported file '{location}'")
        if not isinstance(doc, dict):
            raise TemplateError("an imported types file must be a YAML mapping", where=str(path))
        sections = self.types_of(doc, path)
        for section in TYPE_SECTIONS:
            own = doc.get(section)
            if isinstance(own, dict):
                sections.setdefault(section, {}).update(own)
        self._types[resolved] = sections
        return sections


def _import_entry(entry: Any, source: Path) -> tuple[str, str, str | None]:
    """(name, location, namespace prefix) of one ``imports`` entry, short or long form."""
    if isinstance(entry, str):
        return "", entry, None
    if isinstance(entry, dict) and len(entry) == 1:
        name, value = next(iter(entry.items()))
        if isinstance(value, str):
            return str(name), value, None
        if isinstance(value, dict) and isinstance(value.get("file"), str):
            return str(name), value["file"], value.get("namespace_prefix")
    raise TemplateError(f"malformed import entry {entry!r}", where=str(source), culprit="imports")


def _is_url(location: str) -> bool:
    return urllib.parse.urlparse(location).scheme in ("http", "https", "ftp")


def _file_name(location: str) -> str:
    if _is_url(location):
        return Path(urllib.parse.urlparse(location).path).name
    return Path(location).name


def _check_shape(doc: Any, path: Path) -> dict[str, Any]:
    where = str(path)
    if not isinstance(doc, dict):
        raise TemplateError(f"not a TOSCA template: the top level is a {type(doc).__name__}, "
                            "not a mapping", where=where)
    if "tosca_definitions_version" not in doc:
        raise TemplateError("not a TOSCA template: 'tosca_definitions_version' is missing", where=where)
    unknown = sorted(str(key) for key in doc if key not in TOP_SECTIONS)
    if unknown:
        raise TemplateError(f"unknown top-level section '{unknown[0]}' (a typo, or misplaced under "
                            "topology_template?)", where=where, culprit=unknown[0])
    topology = doc.get("topology_template")
    if topology is None:
        topology = doc["topology_template"] = {}
    if not isinstance(topology, dict):
        raise TemplateError("'topology_template' must be a mapping", where=where,
                            culprit="topology_template")
    for section in MERGED_SECTIONS:
        value = topology.get(section)
        if value is None:
            topology[section] = {}
        elif not isinstance(value, dict):
            raise TemplateError(f"'{section}' must be a mapping of names", where=where, culprit=section)
    return doc


def load_templates(paths: Sequence[Path], resolver: ImportResolver) -> Loaded:
    """Read every template, resolve its imports, and merge them in order into one document.

    A later template's inputs, node templates and outputs add to or replace the earlier ones
    (the IM Dashboard's child-into-parent merge: a child's ``wn`` replaces the parent's whole).
    """
    if not paths:
        raise TemplateError("no template given")
    paths = [shipped_template(Path(p)) for p in paths]
    origins = Origins(files=tuple(str(p) for p in paths))
    merged: dict[str, Any] = {}
    types: dict[str, dict[str, Any]] = {}
    description = ""
    for path in paths:
        doc = _check_shape(read_yaml(path), path)
        for section, found in resolver.types_of(doc, path).items():
            types.setdefault(section, {}).update(found)
        for section in TYPE_SECTIONS:
            own = doc.get(section)
            if isinstance(own, dict):
                types.setdefault(section, {}).update(own)
        topology = doc["topology_template"]
        if not merged:
            merged = {
                "tosca_definitions_version": doc["tosca_definitions_version"],
                "topology_template": {section: {} for section in MERGED_SECTIONS},
            }
            description = str(doc.get("description") or "").strip()
        for key, value in topology.items():
            if key not in MERGED_SECTIONS:
                merged["topology_template"][key] = copy.deepcopy(value)
        for section, record in (("inputs", origins.inputs), ("node_templates", origins.nodes),
                                ("outputs", origins.outputs)):
            for name, value in topology[section].items():
                merged["topology_template"][section][name] = copy.deepcopy(value)
                record[str(name)] = str(path)
    for section, found in types.items():
        if found:
            merged[section] = found
    return Loaded(doc=merged, origins=origins, description=description)
