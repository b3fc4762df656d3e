"""Detectors: LAMA and DeepLog (next-event prediction) and ProtoSiamese (few-shot window classes)."""
