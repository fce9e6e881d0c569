"""A connection's files: where they are (paths), how they are written (files:
atomic, under locks), the run-state schema (runstate) and libvirt's state
numbers (states). Light enough for the supervisor to import (no dataclasses)."""
