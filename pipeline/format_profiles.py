"""Format profiles: log formats written in TOML by users, and which Kafka source uses which.

A profiles file (`LOGAD_FORMATS=path`, see `deploy/formats/example.toml`) holds `[profiles.NAME]`
tables and a `[sources]` table mapping a raw message's source (its `source` header, else its key;
`pipeline.raw_source`) to a profile. A profile says everything the parser needs for a new system:

- `header` (a loghub/logparser header string, `<Date> <Time> <Level>: <Content>`) or `regex` (named
  groups, `content` required);
- `masks`: `[{name, pattern}]` applied before Drain sees the line, so a parameter keeps its kind in
  the template (`<REQ>`, not `<*>`); the built-in masks follow unless `default_masks = false`;
- `timestamp`: `{fields, format}` (a `strptime` format, `"epoch"` or `"iso"`);
- `session`: `{field}` (a header field's value is the key), `{pattern}` (every match in the line,
  or the one capturing group's text), or both (matches in that field); none: a time-window source;
- `multiline` (continuation lines join the record before them), `template_fields` (header fields
  put before the content in the template text), `location_fields` (what an alert shows),
  `parser` (`"drain3"`), `depth` and `sim_th` (Drain's settings).

A model trained with a profile (`logad train MODEL --logs F --format NAME`) stores its definition in
`metadata.json`, so the worker parses with exactly what training used. Every error names the file,
the profile, the field and the fix.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.formats import EPOCH, ISO, PROFILES, LogFormat, header_field_name, header_regex
from pipeline.templates import DrainConfig, MaskingConfig, MaskingRule

# Template miners a profile can ask for. The parser helper adds its mode here; until then every
# profile parses with the Drain3-compatible miner.
PARSER_MODES = ("drain3",)
DEFAULT_PARSER = "drain3"
_KEYS = frozenset(
    {
        "header",
        "regex",
        "masks",
        "default_masks",
        "timestamp",
        "session",
        "multiline",
        "template_fields",
        "location_fields",
        "parser",
        "depth",
        "sim_th",
        "description",
    }
)
_MASK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class FormatProfile:
    """A validated profile: the log format, the masks and the miner settings it parses with."""

    name: str
    log_format: LogFormat
    masking: MaskingConfig
    parser: str = DEFAULT_PARSER
    depth: int = 4
    sim_th: float = 0.85
    # The table as written (validated): what a model version stores to rebuild the profile exactly.
    table: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def builtin(self) -> bool:
        """A built-in format (`pipeline.formats.PROFILES`) rather than one from a file."""
        return not self.table

    @property
    def has_sessions(self) -> bool:
        """Whether lines carry session keys (else the source is cut into time windows)."""
        return bool(self.log_format.session_pattern or self.log_format.session_field)

    def drain_config(self) -> DrainConfig:
        """The template miner settings (`parser` is stored for the miner modes to come)."""
        return DrainConfig(depth=self.depth, sim_th=self.sim_th, masking=self.masking)

    def to_json(self) -> dict[str, Any]:
        """As a model version's metadata stores it (`format_profile`)."""
        return {"name": self.name, "table": dict(self.table)}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], origin: str = "metadata.json") -> FormatProfile:
        if not isinstance(raw, Mapping) or not isinstance(raw.get("table"), Mapping):
            raise ConfigError(
                f"format profile in {origin}: expected {{name, table}}, got {raw!r}; republish the model"
            )
        return profile_from_table(str(raw.get("name", "")), raw["table"], origin)


def builtin_profile(name: str) -> FormatProfile:
    """A built-in format as a profile (default masks, default Drain settings)."""
    fmt = PROFILES[name]
    return FormatProfile(name, fmt, MaskingConfig())


@dataclass(frozen=True)
class FormatCatalog:
    """The profiles of one file and the source -> profile map."""

    origin: str
    profiles: Mapping[str, FormatProfile]
    sources: Mapping[str, str] = field(default_factory=dict)

    def profile(self, name: str) -> FormatProfile:
        if name in self.profiles:
            return self.profiles[name]
        if name in PROFILES:
            return builtin_profile(name)
        raise ConfigError(
            f"format profiles {self.origin}: no profile {name!r}; profiles there: {sorted(self.profiles)}, "
            f"built in: {sorted(PROFILES)}"
        )

    def for_source(self, source: str) -> FormatProfile | None:
        """The profile `[sources]` maps the source to; None when unmapped (the model's own format)."""
        name = self.sources.get(source)
        return None if name is None else self.profile(name)


def load_formats(path: Path | str) -> FormatCatalog:
    """Read and validate a profiles file; ConfigError naming the file, profile, field and fix."""
    origin = str(path)
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"format profiles {origin}: no such file; fix LOGAD_FORMATS or the path given"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"format profiles {origin}: unreadable ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"format profiles {origin}: not valid TOML ({exc}); tip: write regexes in 'single quotes' "
            "(literal strings) so that backslashes stay as they are"
        ) from exc
    return catalog_from_dict(raw, origin)


def catalog_from_dict(raw: Mapping[str, Any], origin: str = "<profiles>") -> FormatCatalog:
    unknown = sorted(set(raw) - {"profiles", "sources"})
    if unknown:
        raise ConfigError(
            f"format profiles {origin}: unknown top-level keys {unknown}; use [profiles.NAME] tables and "
            "a [sources] table"
        )
    tables = raw.get("profiles", {})
    if not isinstance(tables, Mapping) or not tables:
        raise ConfigError(
            f"format profiles {origin}: no [profiles.NAME] table; add one per log format (see "
            "deploy/formats/example.toml)"
        )
    profiles = {}
    for name, table in tables.items():
        if name in PROFILES:
            raise ConfigError(
                f"format profiles {origin}: profile {name!r} is the name of a built-in format; rename it"
            )
        if not isinstance(table, Mapping):
            raise ConfigError(f"format profiles {origin}: profiles.{name} must be a table, got {table!r}")
        profiles[name] = profile_from_table(name, table, origin)
    sources = raw.get("sources", {})
    if not isinstance(sources, Mapping):
        raise ConfigError(f"format profiles {origin}: [sources] must map source names to profile names")
    for source, target in sources.items():
        if not isinstance(target, str) or (target not in profiles and target not in PROFILES):
            raise ConfigError(
                f"format profiles {origin}: sources.{source} = {target!r} names no profile; use one of "
                f"{sorted(profiles)} or a built-in format {sorted(PROFILES)}"
            )
    return FormatCatalog(origin, profiles, dict(sources))


class _Where:
    """Builds the error messages of one profile."""

    def __init__(self, origin: str, name: str) -> None:
        self.origin, self.name = origin, name

    def error(self, key: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(
            f"format profiles {self.origin}: profile {self.name!r}, field {key!r}: {problem}; {fix}"
        )


def profile_from_table(name: str, table: Mapping[str, Any], origin: str = "<profiles>") -> FormatProfile:
    """One `[profiles.NAME]` table validated into a profile."""
    where = _Where(origin, name)
    if not _PROFILE_NAME.fullmatch(name):
        raise where.error("name", f"{name!r} is not a usable name", "use letters, digits, '.', '_' or '-'")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise where.error(str(unknown[0]), "unknown field", f"use only {sorted(_KEYS)}")
    pattern = _pattern(table, where)
    groups = list(re.compile(pattern).groupindex)
    timestamp_fields, timestamp_format = _timestamp(table, where, groups)
    session_field, session_pattern = _session(table, where, groups)
    template_fields = _field_list(table, "template_fields", where, groups)
    location_fields = _field_list(table, "location_fields", where, groups)
    multiline = _typed(table, "multiline", bool, True, where)
    parser = _typed(table, "parser", str, DEFAULT_PARSER, where)
    if parser not in PARSER_MODES:
        raise where.error("parser", f"{parser!r} is not a parser mode", f"use one of {list(PARSER_MODES)}")
    depth = _typed(table, "depth", int, 4, where)
    if depth < 3:
        raise where.error("depth", f"{depth} is too small", "use 3 or more (Drain's default is 4)")
    sim_th = float(_typed(table, "sim_th", (int, float), 0.85, where))
    if not 0.0 < sim_th <= 1.0:
        raise where.error("sim_th", f"{sim_th} is outside (0, 1]", "use a similarity such as 0.5 or 0.85")
    try:
        fmt = LogFormat(
            name,
            pattern,
            timestamp_groups=timestamp_fields,
            timestamp_format=timestamp_format,
            session_pattern=session_pattern,
            session_field=session_field,
            multiline=multiline,
            template_fields=template_fields,
            location_fields=location_fields,
        )
    except ConfigError as exc:  # what the checks above cannot see (e.g. a pattern's groups)
        raise ConfigError(f"format profiles {origin}: profile {name!r}: {exc}") from exc
    masking = MaskingConfig(_masks(table, where), token_local=False)
    return FormatProfile(name, fmt, masking, parser, depth, sim_th, dict(table))


def _typed(table: Mapping[str, Any], key: str, kind: Any, default: Any, where: _Where) -> Any:
    value = table.get(key, default)
    if isinstance(value, bool) and kind is not bool and bool not in (kind if isinstance(kind, tuple) else ()):
        raise where.error(key, f"expected a number, got {value!r}", "write a number")
    if not isinstance(value, kind):
        wanted = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise where.error(key, f"expected {wanted}, got {value!r}", f"write a {wanted} value")
    return value


def _pattern(table: Mapping[str, Any], where: _Where) -> str:
    header, regex = table.get("header"), table.get("regex")
    if (header is None) == (regex is None):
        raise where.error(
            "header",
            "give exactly one of 'header' and 'regex'",
            "e.g. header = '<Date> <Time> <Level> <Component>: <Content>' (loghub style), or a regex with "
            "a (?P<content>...) group",
        )
    if header is not None:
        if not isinstance(header, str):
            raise where.error("header", f"expected a string, got {header!r}", "quote it: header = '...'")
        try:
            pattern = header_regex(header, where.name)
        except ConfigError as exc:
            raise where.error("header", str(exc), "fix the header string") from exc
        key = "header"
    else:
        if not isinstance(regex, str):
            raise where.error("regex", f"expected a string, got {regex!r}", "quote it: regex = '...'")
        pattern, key = regex, "regex"
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise where.error(
            key, f"not a valid regex ({exc})", "escape regex characters in literal text (e.g. \\[ and \\])"
        ) from exc
    if "content" not in compiled.groupindex:
        raise where.error(key, "no content group", "name the message part <Content> or (?P<content>...)")
    return pattern


def _group(value: Any, key: str, where: _Where, groups: list[str]) -> str:
    """A header field name as a regex group: loghub's `NodeRepeat` or the group's `node_repeat`."""
    if not isinstance(value, str):
        raise where.error(key, f"expected a field name, got {value!r}", "write the field's name as a string")
    for candidate in (value, header_field_name(value)):
        if candidate in groups:
            return candidate
    raise where.error(key, f"no header field {value!r}", f"use one of {groups}")


def _field_list(table: Mapping[str, Any], key: str, where: _Where, groups: list[str]) -> tuple[str, ...]:
    values = table.get(key, [])
    if not isinstance(values, list):
        raise where.error(
            key, f"expected a list of field names, got {values!r}", f'write {key} = ["Component"]'
        )
    return tuple(_group(v, key, where, groups) for v in values)


def _timestamp(table: Mapping[str, Any], where: _Where, groups: list[str]) -> tuple[tuple[str, ...], str]:
    rule = table.get("timestamp")
    if rule is None:
        return (), ""
    example = 'timestamp = { fields = ["Date", "Time"], format = "%Y-%m-%d %H:%M:%S,%f" }'
    if not isinstance(rule, Mapping) or set(rule) - {"fields", "format"}:
        raise where.error("timestamp", f"expected a table with fields and format, got {rule!r}", example)
    names = rule.get("fields")
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not names:
        raise where.error("timestamp.fields", f"expected a list of header fields, got {names!r}", example)
    fields = tuple(_group(n, "timestamp.fields", where, groups) for n in names)
    fmt = rule.get("format")
    if not isinstance(fmt, str) or not fmt:
        raise where.error(
            "timestamp.format",
            f"expected a strptime format, 'epoch' or 'iso', got {fmt!r}",
            "the fields' values are joined by one space, then read with this format",
        )
    if fmt not in (EPOCH, ISO) and "%" not in fmt:
        raise where.error(
            "timestamp.format", f"{fmt!r} has no % directive", "use a strptime format, 'epoch' or 'iso'"
        )
    return fields, fmt


def _session(table: Mapping[str, Any], where: _Where, groups: list[str]) -> tuple[str, str]:
    rule = table.get("session")
    if rule is None:
        return "", ""
    example = "session = { field = \"RequestId\" } or session = { pattern = 'req-[0-9a-f]+' }"
    if not isinstance(rule, Mapping) or not rule or set(rule) - {"field", "pattern"}:
        raise where.error("session", f"expected a table with field and/or pattern, got {rule!r}", example)
    field_name = _group(rule["field"], "session.field", where, groups) if "field" in rule else ""
    pattern = rule.get("pattern", "")
    if not isinstance(pattern, str):
        raise where.error("session.pattern", f"expected a regex string, got {pattern!r}", example)
    if pattern:
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise where.error("session.pattern", f"not a valid regex ({exc})", "fix the regex") from exc
        if compiled.groups > 1:
            raise where.error(
                "session.pattern",
                f"{compiled.groups} capturing groups",
                "keep at most one (its text is the key) and write the others as (?:...)",
            )
        if compiled.fullmatch(""):
            raise where.error("session.pattern", "matches the empty string", "make it match a real key")
    elif not field_name:
        raise where.error("session", "empty rule", example)
    return field_name, pattern


def _masks(table: Mapping[str, Any], where: _Where) -> tuple[MaskingRule, ...]:
    raw = table.get("masks", [])
    example = "masks = [{ name = \"REQ\", pattern = 'req-[0-9a-f]+' }]"
    if not isinstance(raw, list):
        raise where.error("masks", f"expected a list of {{name, pattern}} tables, got {raw!r}", example)
    rules = []
    for index, rule in enumerate(raw):
        key = f"masks[{index}]"
        if not isinstance(rule, Mapping) or set(rule) != {"name", "pattern"}:
            raise where.error(key, f"expected {{name, pattern}}, got {rule!r}", example)
        name, pattern = rule["name"], rule["pattern"]
        if not isinstance(name, str) or not _MASK_NAME.fullmatch(name):
            raise where.error(
                f"{key}.name",
                f"{name!r} is not a mask name",
                "use letters, digits and '_' (it shows as <NAME>)",
            )
        if not isinstance(pattern, str):
            raise where.error(f"{key}.pattern", f"expected a regex string, got {pattern!r}", example)
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise where.error(f"{key}.pattern", f"not a valid regex ({exc})", "fix the regex") from exc
        if compiled.fullmatch(""):
            raise where.error(
                f"{key}.pattern",
                "matches the empty string (it would mask between every character)",
                "use + instead of * so that it needs at least one character",
            )
        rules.append(MaskingRule(name, pattern))
    if _typed(table, "default_masks", bool, True, where):
        rules.extend(MaskingConfig().rules)
    return tuple(rules)


def resolve_profile(spec: str, formats: Path | str | None = None) -> FormatProfile:
    """The profile `spec` names: a built-in format (`hdfs`), `FILE.toml:NAME`, `FILE.toml` holding one
    profile, or a profile name in the `LOGAD_FORMATS` file `formats`."""
    path, _, name = spec.partition(".toml")
    if _ or spec.endswith(".toml"):
        file = Path(path + ".toml")
        catalog = load_formats(file)
        name = name.removeprefix(":")
        if name:
            return catalog.profile(name)
        if len(catalog.profiles) != 1:
            raise ConfigError(
                f"format {spec!r}: {file} holds profiles {sorted(catalog.profiles)}; name one as {file}:NAME"
            )
        return next(iter(catalog.profiles.values()))
    if spec in PROFILES:
        return builtin_profile(spec)
    if formats:
        return load_formats(formats).profile(spec)
    raise ConfigError(
        f"format {spec!r} is not built in ({sorted(PROFILES)}) and LOGAD_FORMATS is not set; give a "
        "profiles file as FILE.toml:NAME or set LOGAD_FORMATS=FILE.toml"
    )
