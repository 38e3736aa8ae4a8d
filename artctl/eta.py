"""How long is left, as people read it: one formatter for the CLI's progress and the trainer's log."""

from __future__ import annotations


def eta_text(seconds: float) -> str:
    """H:MM:SS, or - when unknown."""
    if seconds != seconds or seconds == float("inf"):
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
