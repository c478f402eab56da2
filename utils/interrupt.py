"""Stopping a long loop cleanly: the first Ctrl-C (or SIGTERM) asks the loop to stop after its current step."""
from __future__ import annotations

import signal
import threading
from typing import Callable, Optional


class GracefulStop:
    """Context manager that turns the first SIGINT/SIGTERM into a flag; a second SIGINT aborts at once.

    `on_request` is called once, with the signal's name, when the first signal arrives (e.g. to log).
    Disabled (a plain flag that never flips) outside the main thread or when `enabled` is False, e.g.
    under torchrun, whose agent handles signals for all ranks together.
    """

    def __init__(self, enabled: bool = True, on_request: Optional[Callable[[str], None]] = None):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.on_request = on_request
        self.requested: Optional[str] = None
        self._old = {}

    def _handle(self, signum, frame) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.requested is None:
            self.requested = signal.Signals(signum).name
            if self.on_request is not None:
                self.on_request(self.requested)

    def __enter__(self) -> "GracefulStop":
        if self.enabled:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
