"""Production settings (issue 14 item 8): replication, min ISR, bind address, state folder.

Each is a `LOGAD_*` variable, checked when settings are built, with an error naming the variable.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.types import TP

from pipeline.adapters import kafka
from pipeline.adapters.faust_config import faust_app_options, prepare_state_dir
from pipeline.errors import ConfigError
from pipeline.settings import Settings


def test_defaults_suit_the_local_broker_and_a_laptop() -> None:
    settings = Settings()
    assert settings.topic_replication_factor == 1
    assert settings.topic_min_insync_replicas == 0
    assert settings.topic_config() == {}  # the broker's default min ISR
    assert settings.web_host == "127.0.0.1"


def test_production_values_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "LOGAD_TOPIC_REPLICATION_FACTOR": "3",
            "LOGAD_TOPIC_MIN_INSYNC_REPLICAS": "2",
            "LOGAD_WEB_HOST": "0.0.0.0",
            "LOGAD_STATE_DIR": "/var/lib/logad",
        }
    )
    assert settings.topic_replication_factor == 3
    assert settings.topic_config() == {"min.insync.replicas": "2"}
    assert settings.web_host == "0.0.0.0"
    assert settings.state_dir == Path("/var/lib/logad")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LOGAD_TOPIC_REPLICATION_FACTOR": "0"}, "LOGAD_TOPIC_REPLICATION_FACTOR=0"),
        ({"LOGAD_TOPIC_REPLICATION_FACTOR": "three"}, "LOGAD_TOPIC_REPLICATION_FACTOR='three'"),
        ({"LOGAD_TOPIC_MIN_INSYNC_REPLICAS": "-1"}, "LOGAD_TOPIC_MIN_INSYNC_REPLICAS=-1"),
        (
            {"LOGAD_TOPIC_REPLICATION_FACTOR": "2", "LOGAD_TOPIC_MIN_INSYNC_REPLICAS": "3"},
            "LOGAD_TOPIC_MIN_INSYNC_REPLICAS=3 exceeds LOGAD_TOPIC_REPLICATION_FACTOR=2",
        ),
        ({"LOGAD_TOPIC_PARTITIONS": "0"}, "LOGAD_TOPIC_PARTITIONS=0"),
        ({"LOGAD_WEB_PORT": "70000"}, "LOGAD_WEB_PORT=70000"),
        ({"LOGAD_WEB_HOST": " "}, "LOGAD_WEB_HOST"),
        ({"LOGAD_WEB_HOST": "0.0.0.0 6066"}, "LOGAD_WEB_HOST"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("(", r"\(")):
        Settings.from_env(env)


class _FakeFuture:
    def result(self) -> None:
        return None


class _FakeAdmin:
    def __init__(self) -> None:
        self.created: list[Any] = []

    def list_topics(self, timeout: float) -> Any:
        return type("Metadata", (), {"topics": {}})()

    def create_topics(self, topics: list[Any], operation_timeout: float) -> dict[str, _FakeFuture]:
        self.created.extend(topics)
        return {t.topic: _FakeFuture() for t in topics}


def test_topics_are_created_with_the_replication_and_min_isr_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _FakeAdmin()
    monkeypatch.setattr(kafka, "admin", lambda settings: fake)
    settings = Settings(topic_replication_factor=3, topic_min_insync_replicas=2)

    created = kafka.create_topics(settings)

    assert sorted(created) == sorted(settings.all_topics())
    assert {t.replication_factor for t in fake.created} == {3}
    assert all(t.config["min.insync.replicas"] == "2" for t in fake.created)
    # A topic's own settings survive beside it.
    templates = next(t for t in fake.created if t.topic == settings.templates_topic)
    assert templates.config["cleanup.policy"] == "compact"


def test_faust_gets_replication_bind_address_and_state_folder(tmp_path: Path) -> None:
    settings = Settings(topic_replication_factor=3, web_host="0.0.0.0", state_dir=tmp_path / "state")
    options = faust_app_options(settings)
    assert options["topic_replication_factor"] == 3
    assert options["web_host"] == "0.0.0.0"
    assert options["datadir"] == str(tmp_path / "state" / "faust")


def test_a_state_folder_that_does_not_exist_yet_is_created_with_its_parents(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "var" / "lib" / "logad")
    app = faust.App("logad-state-dir-test", **faust_app_options(settings))
    with pytest.raises(FileNotFoundError):
        app._create_directories()  # what a worker start did before: Faust creates one level only

    prepare_state_dir(settings)
    app._create_directories()

    assert (tmp_path / "var" / "lib" / "logad" / "faust").is_dir()
    assert app.conf.appdir.is_dir()


def test_an_unusable_state_folder_is_an_error_naming_the_variable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="LOGAD_STATE_DIR="):
        prepare_state_dir(Settings(state_dir=blocker / "logad"))


def test_faust_sensor_metrics_are_served_on_the_worker_registry() -> None:
    from prometheus_client import generate_latest

    from agents.app import app, metrics

    message = SimpleNamespace(time_in=None)
    app.monitor.on_message_in(TP("raw-logs", 0), 7, message)  # type: ignore[arg-type]
    served = generate_latest(metrics.registry).decode()

    assert "faust_messages_received_total 1.0" in served
    assert 'faust_messages_received_per_topic_total{topic="raw-logs"} 1.0' in served
    assert "logad_lines_total" in served  # the worker's own metrics beside them
