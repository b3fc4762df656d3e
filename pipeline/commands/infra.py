"""`logad kafka|triton start|stop|status`, `logad up|down|status`: the local servers."""

from __future__ import annotations

import argparse
from typing import Any

from pipeline.settings import Settings


def local_kafka(settings: Settings) -> Any:
    from pipeline.infra.kafka_local import LocalKafka, default_cache_dir

    return LocalKafka(
        state_dir=settings.state_dir,
        port=settings.kafka_port,
        controller_port=settings.kafka_controller_port,
        partitions=settings.topic_partitions,
        cache_dir=default_cache_dir(),
    )


def local_triton(settings: Settings) -> Any:
    from pipeline.infra.triton_local import LocalTriton

    return LocalTriton(
        model_repo=settings.model_repo,
        state_dir=settings.state_dir,
        http_port=settings.triton_http_port,
        grpc_port=settings.triton_grpc_port,
        metrics_port=settings.triton_metrics_port,
    )


def kafka_up(settings: Settings) -> None:
    from pipeline.adapters import kafka

    print(local_kafka(settings).start())
    settings = settings.replace(bootstrap_servers=local_kafka(settings).bootstrap_servers)
    kafka.wait_for_broker(settings)
    created = kafka.create_topics(settings)
    print(
        f"topics: {', '.join(settings.all_topics())}"
        + (f" (created {', '.join(created)})" if created else "")
    )


def _kafka(args: argparse.Namespace, settings: Settings) -> int:
    server = local_kafka(settings)
    if args.action == "start":
        kafka_up(settings)
    elif args.action == "stop":
        print(server.stop())
    elif args.action == "topics":
        from pipeline.adapters import kafka

        kafka.wait_for_broker(settings)
        created = kafka.create_topics(settings)
        print("created: " + (", ".join(created) if created else "nothing (all topics exist)"))
    else:
        print(server.status())
    return 0


def _triton(args: argparse.Namespace, settings: Settings) -> int:
    server = local_triton(settings)
    if args.action == "start":
        print(server.start())
    elif args.action == "stop":
        print(server.stop())
    else:
        print(server.status())
    return 0


def _up(args: argparse.Namespace, settings: Settings) -> int:
    kafka_up(settings)
    print(local_triton(settings).start())
    return 0


def _down(args: argparse.Namespace, settings: Settings) -> int:
    print(local_triton(settings).stop())
    print(local_kafka(settings).stop())
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    print(local_kafka(settings).status())
    print(local_triton(settings).status())
    return 0


def register(subparsers: Any) -> None:
    kafka = subparsers.add_parser("kafka", help="local Apache Kafka (KRaft): start, stop, status, topics")
    kafka.add_argument(
        "action",
        choices=["start", "stop", "status", "topics"],
        help="start (with topics), stop, status, or topics: create the missing topics on a running broker",
    )
    kafka.set_defaults(handler=_kafka)
    triton = subparsers.add_parser("triton", help="local Triton server: start, stop, status")
    triton.add_argument(
        "action", choices=["start", "stop", "status"], help="start (loads every servable model), stop, status"
    )
    triton.set_defaults(handler=_triton)
    subparsers.add_parser("up", help="start Kafka (with topics) and Triton").set_defaults(handler=_up)
    subparsers.add_parser("down", help="stop Triton and Kafka").set_defaults(handler=_down)
    subparsers.add_parser("status", help="state of the local servers").set_defaults(handler=_status)
