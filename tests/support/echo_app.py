"""A minimal Faust app for the foundation test: copies every value from one topic to another.

Run as `faust -A tests.support.echo_app worker`; topic names come from ECHO_SOURCE / ECHO_SINK.
"""

import os

import faust

from pipeline.adapters.faust_config import faust_app_options
from pipeline.settings import Settings

settings = Settings.from_env(os.environ)
app = faust.App(os.environ["ECHO_APP_ID"], **faust_app_options(settings))
source = app.topic(os.environ["ECHO_SOURCE"], value_serializer="raw")
sink = app.topic(os.environ["ECHO_SINK"], value_serializer="raw")


@app.agent(source)
async def echo(stream: faust.StreamT) -> None:
    async for key, value in stream.items():
        await sink.send(key=key, value=value.upper())
