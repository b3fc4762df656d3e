"""Paper-style evaluations behind `logad evaluate NAME` (see `pipeline.commands.evaluate`)."""
