"""HTTP endpoints of a worker: /healthz (alive), /readyz (model deployed, backend up), /metrics,
/progress (read positions and open sessions, for runs that wait until all is handled)."""

from __future__ import annotations

from typing import Any

from faust.web import Request, Response, View
from prometheus_client import generate_latest

from agents import lag
from agents.app import app, metrics
from agents.parse import follower
from pipeline.errors import LogadError


@app.page("/healthz")
class Health(View):
    async def get(self, request: Request) -> Response:
        return self.json({"status": "ok"})


@app.page("/readyz")
class Ready(View):
    async def get(self, request: Request) -> Response:
        problems: list[str] = []
        try:
            deployed: Any = follower.current()
        except LogadError as exc:
            deployed = None
            problems.append(str(exc))
        if app.rebalancing or not app.consumer.assignment():
            problems.append("waiting for partition assignment and table recovery")
        if metrics.degraded._value.get():
            problems.append("inference backend unreachable (degraded)")
        body = {
            "ready": not problems,
            "model": None if deployed is None else deployed.model,
            "version": None if deployed is None else deployed.version,
            "problems": problems,
        }
        return self.json(body, status=200 if not problems else 503)


@app.page("/metrics")
class PrometheusMetrics(View):
    async def get(self, request: Request) -> Response:
        # aiohttp refuses a charset inside content_type; Prometheus reads plain text as its 0.0.4 format.
        return self.bytes(generate_latest(metrics.registry), content_type="text/plain")


@app.page("/progress")
class Progress(View):
    async def get(self, request: Request) -> Response:
        # Decoded by pipeline.progress.WorkerProgress.from_json.
        return self.json(await lag.progress())
