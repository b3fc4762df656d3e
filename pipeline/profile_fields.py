"""The fields of a format profile table, read and checked one by one (`pipeline.format_profiles`).

Each reader takes the table and a `FieldErrors` for the profile, and raises a `ConfigError` that
names the file, the profile, the field, what was wrong and how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pipeline.errors import ConfigError
from pipeline.formats import EPOCH, ISO, header_field_name, header_regex
from pipeline.templates import MaskingConfig, MaskingRule, ParserMode

# Template miners a profile can ask for. The parser helper adds its mode here; until then every
# profile parses with the Drain3-compatible miner.
PARSER_MODES = tuple(mode.value for mode in ParserMode)
# "drain3" by default: a profile's own masks come first there, so its parameters keep their kind;
# "logad" groups better on systems nobody tuned for (`logad evaluate parsing-loghub`) but applies its
# in-token masks before the profile's.
DEFAULT_PARSER = ParserMode.DRAIN3.value
PROFILE_KEYS = frozenset(
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


class FieldErrors:
    """Builds the error messages of one profile."""

    def __init__(self, origin: str, name: str) -> None:
        self.origin, self.name = origin, name

    def error(self, key: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(
            f"format profiles {self.origin}: profile {self.name!r}, field {key!r}: {problem}; {fix}"
        )


def typed_value(table: Mapping[str, Any], key: str, kind: Any, default: Any, where: FieldErrors) -> Any:
    value = table.get(key, default)
    if isinstance(value, bool) and kind is not bool and bool not in (kind if isinstance(kind, tuple) else ()):
        raise where.error(key, f"expected a number, got {value!r}", "write a number")
    if not isinstance(value, kind):
        wanted = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise where.error(key, f"expected {wanted}, got {value!r}", f"write a {wanted} value")
    return value


def header_pattern(table: Mapping[str, Any], where: FieldErrors) -> str:
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


def field_group(value: Any, key: str, where: FieldErrors, groups: list[str]) -> str:
    """A header field name as a regex group: loghub's `NodeRepeat` or the group's `node_repeat`."""
    if not isinstance(value, str):
        raise where.error(key, f"expected a field name, got {value!r}", "write the field's name as a string")
    for candidate in (value, header_field_name(value)):
        if candidate in groups:
            return candidate
    raise where.error(key, f"no header field {value!r}", f"use one of {groups}")


def field_list(table: Mapping[str, Any], key: str, where: FieldErrors, groups: list[str]) -> tuple[str, ...]:
    values = table.get(key, [])
    if not isinstance(values, list):
        raise where.error(
            key, f"expected a list of field names, got {values!r}", f'write {key} = ["Component"]'
        )
    return tuple(field_group(v, key, where, groups) for v in values)


def timestamp_rule(
    table: Mapping[str, Any], where: FieldErrors, groups: list[str]
) -> tuple[tuple[str, ...], str]:
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
    fields = tuple(field_group(n, "timestamp.fields", where, groups) for n in names)
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


def session_rule(table: Mapping[str, Any], where: FieldErrors, groups: list[str]) -> tuple[str, str]:
    rule = table.get("session")
    if rule is None:
        return "", ""
    example = "session = { field = \"RequestId\" } or session = { pattern = 'req-[0-9a-f]+' }"
    if not isinstance(rule, Mapping) or not rule or set(rule) - {"field", "pattern"}:
        raise where.error("session", f"expected a table with field and/or pattern, got {rule!r}", example)
    field_name = field_group(rule["field"], "session.field", where, groups) if "field" in rule else ""
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


def mask_rules(table: Mapping[str, Any], where: FieldErrors) -> tuple[MaskingRule, ...]:
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
    if typed_value(table, "default_masks", bool, True, where):
        rules.extend(MaskingConfig().rules)
    return tuple(rules)
