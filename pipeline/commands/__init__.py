"""`logad` subcommands: argument wiring only; the work happens in the core modules they call."""
