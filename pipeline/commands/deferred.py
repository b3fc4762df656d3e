"""Subcommand parsers whose options are added only when that subcommand is used.

Some options are declared next to the code they configure (`logad train lama` shares its options
with `logad evaluate hdfs-1-99`, in a module that imports numpy). Importing all of them to build the
parser made `logad --help` pay for every model's imports. A `DeferredParser` is given a `populate`
function instead and calls it the first time it parses or formats its help or usage, so only the
chosen subcommand's modules are imported.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

Populate = Callable[[argparse.ArgumentParser], None]


class DeferredParser(argparse.ArgumentParser):
    """An `ArgumentParser` that runs `populate(self)` once, before its first parse, help or usage.

    Made by a subparsers action created with `parser_class=DeferredParser`, whose
    `add_parser(name, help=..., populate=...)` passes `populate` through. Without `populate` it is a
    plain parser (nested subparsers of a deferred one are made with this class too).
    """

    def __init__(self, *args: Any, populate: Populate | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._populate = populate

    def populate(self) -> None:
        """Add the deferred options now (idempotent); the CLI tests call it to walk every option."""
        populate, self._populate = self._populate, None
        if populate is not None:
            populate(self)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self.populate()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self.populate()
        return super().format_help()

    def format_usage(self) -> str:
        self.populate()
        return super().format_usage()
