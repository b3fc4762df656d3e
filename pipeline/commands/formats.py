"""`logad formats check PROFILE FILE`: try a format profile on a sample of a file before trusting it;
`logad formats list`: the profiles of `LOGAD_FORMATS` and the sources mapped to them."""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.settings import Settings

DEFAULT_LIMIT = 10_000
DEFAULT_MAX_FAILED_FRACTION = 0.05


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("formats", help="format profiles: check one on a file, list them")
    commands = parser.add_subparsers(
        dest="formats_command", metavar="ACTION", required=True, help="check a profile on a file, or list"
    )
    check = commands.add_parser(
        "check",
        help="parse a sample of FILE with PROFILE: unmatched lines, templates, sessions, timestamps",
    )
    check.add_argument(
        "profile",
        help="a profile in LOGAD_FORMATS, FILE.toml:NAME, or a built-in format (hdfs, bgl, generic)",
    )
    check.add_argument("file", help="log file to sample (.gz ok)")
    check.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT, help=f"non-empty lines to read (default {DEFAULT_LIMIT})"
    )
    check.add_argument(
        "--max-failed-fraction",
        type=float,
        default=DEFAULT_MAX_FAILED_FRACTION,
        help="exit 1 when more than this share of the lines lacks the header, continuation lines of "
        "multi-line records included: raise it for logs with stack traces "
        f"(default {DEFAULT_MAX_FAILED_FRACTION})",
    )
    check.add_argument("--templates", type=int, default=30, help="templates to show (default 30)")
    check.add_argument("--show-failed", type=int, default=20, help="unmatched lines to show (default 20)")
    check.add_argument("--json", action="store_true", help="one JSON object instead of text")
    check.set_defaults(handler=_check)
    listing = commands.add_parser("list", help="the profiles of LOGAD_FORMATS (or --file) and their sources")
    listing.add_argument("--file", help="a profiles file (default: LOGAD_FORMATS)")
    listing.set_defaults(handler=_list)


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.format_check import check_lines, numbered_lines, render
    from pipeline.format_profiles import resolve_profile

    if args.limit < 1:
        raise ConfigError(f"formats check: --limit must be at least 1, got {args.limit}")
    if not 0.0 <= args.max_failed_fraction <= 1.0:
        raise ConfigError(
            f"formats check: --max-failed-fraction must be between 0 and 1, got {args.max_failed_fraction}"
        )
    profile = resolve_profile(args.profile, settings.formats or None)
    path = Path(args.file)
    if not path.is_file():
        raise ConfigError(f"formats check: no file {path}; give the path of a log file")
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        report = check_lines(numbered_lines(fh, args.limit), profile, max_failed_shown=args.show_failed)
    failing = report.failed_fraction > args.max_failed_fraction or report.records == 0
    if args.json:
        print(json.dumps({**report.to_json(), "ok": not failing}))
    else:
        print(f"{path}:")
        print(render(report, profile, templates_shown=args.templates))
    if failing:
        print(
            f"formats check: {report.failed_count} of {report.lines} lines ({report.failed_fraction:.1%}) "
            f"lack the {profile.name} header, more than --max-failed-fraction {args.max_failed_fraction}; "
            "fix the profile's header (or regex) against the lines shown, or check that the file is "
            "this format",
            file=sys.stderr,
        )
        return 1
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.format_profiles import load_formats

    path = args.file or settings.formats
    if not path:
        raise ConfigError("formats list: set LOGAD_FORMATS to a profiles file or pass --file")
    catalog = load_formats(path)
    print(f"{catalog.origin}:")
    for name, profile in catalog.profiles.items():
        fmt = profile.log_format
        sources = sorted(s for s, p in catalog.sources.items() if p == name)
        session = fmt.session_field or fmt.session_pattern or "none (time windows)"
        print(f"  {name}: sources {sources or '-'}; sessions {session}; masks {len(profile.masking.rules)}")
    return 0
