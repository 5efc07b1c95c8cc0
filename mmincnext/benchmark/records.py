"""Results as they are measured: kept in order, appended to a JSONL file at once, handed to listeners.

A result is a flat dict. A timed model has ``img_per_s``, a timed mixer call ``us_per_call``; a model that could not
be timed has ``error`` (what was raised) or ``skipped`` (why it was not run) instead, so that a report can say what
is missing and why.
"""
import json
from pathlib import Path
from typing import Callable, Iterable, List, Optional


class Recorder:
    """Collects results. With ``jsonl``, each result is appended to that file the moment it is added (a run cut
    short keeps what it measured); each listener is called with it (e.g. the GPU check, which files it under its
    section and rewrites its report)."""

    def __init__(self, jsonl: Optional[str] = None, listeners: Iterable[Callable[[dict], None]] = ()):
        self.jsonl = Path(jsonl) if jsonl else None
        self.listeners = list(listeners)
        self.results: List[dict] = []
        if self.jsonl:
            self.jsonl.parent.mkdir(parents=True, exist_ok=True)

    def add(self, result: dict) -> dict:
        self.results.append(result)
        if self.jsonl:
            with open(self.jsonl, 'a') as f:
                f.write(json.dumps(result) + '\n')
        for listener in self.listeners:
            listener(result)
        return result


def error_text(error: BaseException) -> str:
    """``Type: message`` on one line, at most 300 characters (a CUDA error's message can run to pages)."""
    text = f'{type(error).__name__}: {error}'.replace('\n', ' ')
    return text if len(text) <= 300 else text[:297] + '...'
