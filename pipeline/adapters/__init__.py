"""Adapters to the outside world: Kafka (confluent-kafka, Faust settings) and Triton (tritonclient).

This is the only part of `pipeline` that imports network clients; the core depends on the small
interfaces in `pipeline.scoring` and friends, and these modules implement them.
"""
