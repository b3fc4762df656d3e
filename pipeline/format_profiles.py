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
from pipeline.formats import PROFILES, LogFormat
from pipeline.profile_fields import (
    DEFAULT_PARSER,
    PARSER_MODES,
    PROFILE_KEYS,
    FieldErrors,
    field_list,
    header_pattern,
    mask_rules,
    session_rule,
    timestamp_rule,
    typed_value,
)
from pipeline.templates import DrainConfig, MaskingConfig, ParserMode

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
        """The template miner settings, its parser mode included."""
        return DrainConfig(
            depth=self.depth, sim_th=self.sim_th, masking=self.masking, parser_mode=ParserMode(self.parser)
        )

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


def profile_from_table(name: str, table: Mapping[str, Any], origin: str = "<profiles>") -> FormatProfile:
    """One `[profiles.NAME]` table validated into a profile."""
    where = FieldErrors(origin, name)
    if not _PROFILE_NAME.fullmatch(name):
        raise where.error("name", f"{name!r} is not a usable name", "use letters, digits, '.', '_' or '-'")
    unknown = sorted(set(table) - PROFILE_KEYS)
    if unknown:
        raise where.error(str(unknown[0]), "unknown field", f"use only {sorted(PROFILE_KEYS)}")
    pattern = header_pattern(table, where)
    groups = list(re.compile(pattern).groupindex)
    timestamp_fields, timestamp_format = timestamp_rule(table, where, groups)
    session_field, session_pattern = session_rule(table, where, groups)
    template_fields = field_list(table, "template_fields", where, groups)
    location_fields = field_list(table, "location_fields", where, groups)
    multiline = typed_value(table, "multiline", bool, True, where)
    parser = typed_value(table, "parser", str, DEFAULT_PARSER, where)
    if parser not in PARSER_MODES:
        raise where.error("parser", f"{parser!r} is not a parser mode", f"use one of {list(PARSER_MODES)}")
    depth = typed_value(table, "depth", int, 4, where)
    if depth < 3:
        raise where.error("depth", f"{depth} is too small", "use 3 or more (Drain's default is 4)")
    sim_th = float(typed_value(table, "sim_th", (int, float), 0.85, where))
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
    masking = MaskingConfig(mask_rules(table, where), token_local=False)
    return FormatProfile(name, fmt, masking, parser, depth, sim_th, dict(table))


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
