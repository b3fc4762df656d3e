"""After `logad train` publishes a version: report it and ask a running Triton to load it.

Every train command (`train`, `train_parameters`, `train_protosiamese`) ends in `serve_published`,
so they all report, load and fail the same way. Triton runs in explicit model-control mode: a
published version serves only once Triton is asked to load it, here or by `logad triton start`,
which loads every servable model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.errors import InfrastructureError, ModelError
from pipeline.settings import Settings

if TYPE_CHECKING:
    from pipeline.model_repository import PublishedVersion


class ModelControl(Protocol):
    """What publishing needs from the serving side (Triton's model control, or a fake in tests)."""

    def reachable(self) -> bool:
        """Whether the server answers at all."""
        ...

    def load(self, name: str) -> int:
        """(Re)load `name`; the version now serving. ModelError when the load fails."""
        ...

    def serving(self, name: str) -> int | None:
        """The version serving now, None when none is or the server cannot say."""
        ...


class TritonModelControl:
    """`ModelControl` over Triton's gRPC API (`pipeline.adapters.triton`)."""

    def __init__(self, grpc_url: str) -> None:
        self.grpc_url = grpc_url

    def reachable(self) -> bool:
        from pipeline.adapters.triton import server_live

        return server_live(self.grpc_url)

    def load(self, name: str) -> int:
        from pipeline.adapters.triton import load_model

        return load_model(self.grpc_url, name)

    def serving(self, name: str) -> int | None:
        from pipeline.adapters.triton import serving_version_or_none

        return serving_version_or_none(self.grpc_url, name)


def verify_before_load(settings: Settings, name: str) -> None:
    """For a backend that loads model.pt unchecked (libtorch), check the version its config.pbtxt pins
    against its sha256 right before Triton is asked to load it; ModelError when it fails."""
    from pipeline.model_repository import CONFIG_FILE, check_servable, pinned_version

    if settings.serving_layout().verifies_itself:
        return  # the Python runner checks the sum itself, in Triton, as it loads
    pinned = pinned_version(Path(settings.model_repo), name)
    if pinned is None:
        raise ModelError(
            f"model {name}: {Path(settings.model_repo) / name / CONFIG_FILE} pins no verified version "
            f"(no version passed its checks when it was written); publish a good version"
        )
    check_servable(Path(settings.model_repo), name, pinned)


def add_arguments(parser: Any) -> None:
    """`--no-load`, for every `logad train MODEL`; `parser` is a parser or an argument group."""
    parser.add_argument(
        "--no-load",
        action="store_true",
        help="publish only: do not ask a running Triton to load the new version",
    )


def serve_published(
    published: PublishedVersion,
    args: argparse.Namespace,
    settings: Settings,
    control: ModelControl | None = None,
) -> int:
    """Report the published version and load it into Triton; the train command's exit code.

    Triton not running is not a failure (the version loads when it starts). A failed load is: the
    version is published but not serving, so the exit code says so while the old version serves on.
    """
    name, version = published.name, published.version
    print(f"published {name} version {version} at {published.path}")
    later = "`logad triton start` loads every servable model at start"
    if getattr(args, "no_load", False):
        print(f"triton: not asked to load {name} (--no-load); {later}")
        return 0
    url = settings.triton_grpc_url
    control = control or TritonModelControl(url)
    if not control.reachable():
        print(f"triton: not running at {url}; {name} version {version} is published, {later}")
        return 0
    try:
        verify_before_load(settings, name)
        serving = control.load(name)
    except ModelError as exc:
        old = control.serving(name)
        keeps = f"version {old} keeps serving" if old is not None else f"no version of {name} is serving"
        print(f"logad train: {exc}; {keeps}", file=sys.stderr)
        return 1
    except InfrastructureError as exc:
        # Loaded or not, Triton stopped answering before it could say which version serves.
        print(f"logad train: {exc}; check with `logad triton status`", file=sys.stderr)
        return 1
    if serving < version:
        # Triton serves the newest version of its own repository: an older one means it reads
        # another directory than the one published to.
        print(
            f"logad train: triton at {url} serves {name} version {serving}, not the published {version}; "
            f"is its model repository {settings.model_repo}?",
            file=sys.stderr,
        )
        return 1
    print(f"triton: serving {name} version {serving}")
    return 0
