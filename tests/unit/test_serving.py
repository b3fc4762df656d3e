"""`serve_published`: after `logad train` publishes, load into Triton (fake control, no server)."""

from __future__ import annotations

import argparse
import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipeline.cli import build_parser
from pipeline.commands.serving import TritonModelControl, serve_published
from pipeline.errors import InfrastructureError, LogadError, ModelError
from pipeline.infra.process import free_port
from pipeline.model_repository import PublishedVersion
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
URL = "triton.example:8001"


@dataclass
class FakeControl:
    """Answers like Triton would; `load_result` is the serving version or the error to raise."""

    live: bool = True
    load_result: int | LogadError = 3
    now_serving: int | None = 2
    calls: list[str] = field(default_factory=list)

    def reachable(self) -> bool:
        self.calls.append("reachable")
        return self.live

    def load(self, name: str) -> int:
        self.calls.append(f"load {name}")
        if isinstance(self.load_result, LogadError):
            raise self.load_result
        return self.load_result

    def serving(self, name: str) -> int | None:
        self.calls.append(f"serving {name}")
        return self.now_serving


@pytest.fixture
def published(tmp_path: Path) -> PublishedVersion:
    return PublishedVersion("lama", 3, tmp_path / "lama" / "3", "ab" * 32)


def serve(
    published: PublishedVersion, control: FakeControl | TritonModelControl, no_load: bool = False
) -> int:
    settings = Settings(triton_grpc_url=URL, model_repo=published.path.parents[1])
    return serve_published(published, argparse.Namespace(no_load=no_load), settings, control)


def test_loads_the_new_version_and_says_which_serves(
    published: PublishedVersion, capsys: pytest.CaptureFixture[str]
) -> None:
    control = FakeControl()
    assert serve(published, control) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"published lama version 3 at {published.path}", "triton: serving lama version 3"]
    assert control.calls == ["reachable", "load lama"]


def test_a_newer_concurrent_version_serving_is_fine(
    published: PublishedVersion, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve(published, FakeControl(load_result=4)) == 0
    assert "serving lama version 4" in capsys.readouterr().out


def test_no_load_publishes_only(published: PublishedVersion, capsys: pytest.CaptureFixture[str]) -> None:
    control = FakeControl()
    assert serve(published, control, no_load=True) == 0
    assert control.calls == []
    assert "--no-load" in capsys.readouterr().out


def test_triton_not_running_is_one_clear_line(
    published: PublishedVersion, capsys: pytest.CaptureFixture[str]
) -> None:
    control = FakeControl(live=False)
    assert serve(published, control) == 0  # the version is published: that was the job
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 2 and captured.err == ""
    assert f"not running at {URL}" in lines[1] and "`logad triton start`" in lines[1]
    assert control.calls == ["reachable"]


@pytest.mark.parametrize(
    ("now_serving", "keeps"),
    [(2, "version 2 keeps serving"), (None, "no version of lama is serving")],
)
def test_failed_load_exits_non_zero_and_names_what_serves(
    published: PublishedVersion, capsys: pytest.CaptureFixture[str], now_serving: int | None, keeps: str
) -> None:
    error = ModelError("triton: loading lama failed: checksum mismatch")
    control = FakeControl(load_result=error, now_serving=now_serving)
    assert serve(published, control) == 1
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and keeps in err and "Traceback" not in err
    assert control.calls == ["reachable", "load lama", "serving lama"]


def test_triton_lost_during_the_load_exits_non_zero(
    published: PublishedVersion, capsys: pytest.CaptureFixture[str]
) -> None:
    control = FakeControl(load_result=InfrastructureError("triton: repository index unavailable"))
    assert serve(published, control) == 1
    assert "logad triton status" in capsys.readouterr().err


def test_an_older_version_serving_means_another_repository(
    published: PublishedVersion, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve(published, FakeControl(load_result=1)) == 1
    err = capsys.readouterr().err
    assert "version 1, not the published 3" in err and str(published.path.parents[1]) in err


def test_real_control_reports_a_closed_port_as_not_running(
    published: PublishedVersion, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through tritonclient: nothing listens on a fresh port, and that must not be a traceback."""
    url = f"127.0.0.1:{free_port()}"
    control = TritonModelControl(url)
    assert control.reachable() is False
    settings = Settings(triton_grpc_url=url)
    assert serve_published(published, argparse.Namespace(no_load=False), settings, control) == 0
    assert f"triton: not running at {url}" in capsys.readouterr().out


def test_train_has_no_load_flag() -> None:
    parser = build_parser()
    assert parser.parse_args(["train", "lama"]).no_load is False
    for model in ("lama", "deeplog", "protosiamese", "deeplog_params"):
        assert parser.parse_args(["train", model, "--no-load"]).no_load is True


@pytest.mark.parametrize("module", ["train.py", "train_parameters.py", "train_protosiamese.py"])
def test_every_train_command_ends_in_the_shared_helper(module: str) -> None:
    """One way to publish-and-load: no command prints its own "published" line or loads by itself."""
    tree = ast.parse((ROOT / "pipeline" / "commands" / module).read_text())
    called = {ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    assert called & {"serve_published", "serving.serve_published"}
    assert not called & {"load_model", "triton.load_model"}
    texts = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    assert not any(text.startswith("published ") for text in texts)
