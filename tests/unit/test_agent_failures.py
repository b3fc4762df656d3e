"""agents.failures without a broker: a failed record becomes a dead letter, or the worker exits unacked."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pipeline.errors import ModelError
from pipeline.records import DeadLetter, SourceOffset

pytest.importorskip("agents.app")  # the worker's entry point, which imports the agents (no broker needed)
from agents import failures

RAW = SourceOffset("raw-logs", 3, 12)


class _Exited(Exception):
    pass


def _done(value: Any = None) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


def test_failed_record_is_sent_as_internal_error_and_awaited(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[bytes, bytes]] = []
    waited: list[bool] = []

    async def send(key: bytes, value: bytes) -> asyncio.Future[Any]:
        sent.append((key, value))
        return _done()

    async def also_wait() -> None:
        waited.append(True)

    monkeypatch.setattr(failures.dead_letters, "send", send)
    asyncio.run(failures.dead_letter_or_exit("parse", [b"raw bytes"], RAW, ModelError("x"), also_wait))
    ((key, value),) = sent
    letter = DeadLetter.decode(value)
    assert (key, letter.reason, letter.step, letter.original, letter.raw) == (
        b"internal-error",
        "internal-error",
        "parse",
        b"raw bytes",
        RAW,
    )
    assert waited == [True]


@pytest.mark.parametrize("fails", ["send", "delivery"])
def test_worker_exits_when_the_dead_letter_cannot_be_sent(
    monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    async def send(key: bytes, value: bytes) -> asyncio.Future[Any]:
        if fails == "send":
            raise RuntimeError("broker gone")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_exception(RuntimeError("not acknowledged"))
        return future

    def exit_now(code: int) -> None:
        raise _Exited(code)

    monkeypatch.setattr(failures.dead_letters, "send", send)
    monkeypatch.setattr(failures.os, "_exit", exit_now)
    with pytest.raises(_Exited) as exited:
        asyncio.run(failures.dead_letter_or_exit("detect", [b"v"], RAW, ValueError("bug")))
    assert exited.value.args == (failures.EXIT_UNRECORDED,)
