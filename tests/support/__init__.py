"""Test helpers shared by unit and integration tests (sources, sinks, tiny apps)."""
