"""Webhook notifications (chat-compatible JSON) on created, assigned and decided interruptions.

Sent from a background thread with retries and backoff, so a receiver that is down never slows
the API; the queue is bounded and drops (and counts) what it cannot hold.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from runner.notify import post_json

EVENTS = {
    "create_interruption": "waits for approval",
    "take_responsibility": "was assigned",
    "submit": "was decided",
}


class Notifier:
    def __init__(
        self,
        url: str,
        public_url: str = "",
        *,
        attempts: int = 5,
        base_delay: float = 1.0,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.public_url = public_url.rstrip("/")
        self.attempts = attempts
        self.base_delay = base_delay
        self.timeout = timeout
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=1000)
        self.dropped = 0
        self.sent = 0
        self.failed = 0
        threading.Thread(target=self._work, daemon=True, name="webhooks").start()

    def send(self, event: str, view: dict[str, Any]) -> None:
        what = EVENTS.get(event)
        if what is None:
            return
        request = view.get("request", {})
        link = f"{self.public_url}/interruptions/{view.get('id')}" if self.public_url else ""
        text = (
            f"{request.get('title', view.get('step_id'))} ({request.get('workflow')} -> "
            f"{request.get('environment')}, run {view.get('run_id')}) {what}: "
            f"{view.get('state')}"
            + (f", responsible {view['responsible']}" if view.get("responsible") else "")
            + (f" {link}" if link else "")
        )
        message = {
            "text": text,
            "event": event,
            "interruption": view.get("id"),
            "state": view.get("state"),
            "link": link,
        }
        try:
            self.queue.put_nowait(message)
        except queue.Full:
            self.dropped += 1

    def _work(self) -> None:
        while True:
            message = self.queue.get()
            for attempt in range(self.attempts):
                try:
                    post_json(self.url, message, timeout=self.timeout)
                    self.sent += 1
                    break
                except Exception:  # the worker outlives any one message, whatever it raises
                    time.sleep(self.base_delay * 2**attempt)
            else:
                self.failed += 1
