"""Offline training loops: seeded, progress bars, CPU or CUDA, curves saved as PNG."""
