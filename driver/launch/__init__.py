"""From a checked definition to a running supervisor: host facts, the pure launch
plan, and the launcher that starts the supervisor and waits for its word."""
