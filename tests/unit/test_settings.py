"""Batch-size settings: read from the environment, checked, and used by `logad replay`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline import cli
from pipeline.adapters import kafka
from pipeline.errors import ConfigError
from pipeline.settings import Settings


def test_replay_lines_per_message_default_env_and_check() -> None:
    assert Settings().replay_lines_per_message == 500
    assert Settings.from_env({"LOGAD_REPLAY_LINES_PER_MESSAGE": "1000"}).replay_lines_per_message == 1000
    with pytest.raises(ConfigError, match="LOGAD_REPLAY_LINES_PER_MESSAGE"):
        Settings(replay_lines_per_message=0)


@pytest.mark.parametrize(
    ("env", "option", "expected"),
    [
        ({}, [], 500),
        ({"LOGAD_REPLAY_LINES_PER_MESSAGE": "50"}, [], 50),
        ({}, ["--lines-per-message", "7"], 7),
    ],
)
def test_replay_sends_messages_of_the_setting_unless_told(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    option: list[str],
    expected: int,
) -> None:
    sent: dict[str, Any] = {}

    def fake_replay(settings: Settings, lines: Any, topic: str, source: str, **kwargs: Any) -> int:
        sent.update(kwargs)
        return sum(1 for _ in lines)

    monkeypatch.setattr(kafka, "replay_lines", fake_replay)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    log = tmp_path / "a.log"
    log.write_text("line one\nline two\n")
    assert cli.main(["replay", str(log), "--no-check", *option]) == 0
    assert sent["lines_per_message"] == expected
