"""The server's limits, each a ``polytask serve`` option."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask and how long it may take.

    Attributes:
        max_body_bytes: a larger body is refused (413) before it is read to the end.
        max_texts: inputs in one request; more is refused (413).
        request_timeout: seconds; a prediction not answered within this time gets a 503.
        body_timeout: seconds; the whole body must arrive within this time after the headers, else 408
            (a client that holds back its body holds only its own connection, never the others).
        batch_wait_ms: how long the first request for a task waits for others to join its batch
            (0: predict each request alone).
        max_batch_texts: inputs gathered into one forward pass at most.
    """

    max_body_bytes: int = 1 << 20
    max_texts: int = 64
    request_timeout: float = 10.0
    body_timeout: float = 5.0
    batch_wait_ms: float = 5.0
    max_batch_texts: int = 128

    def __post_init__(self):
        for name, value in asdict(self).items():
            if value < 0 or (value == 0 and name not in ("batch_wait_ms",)):
                raise ValueError(f"--{name.replace('_', '-')}: must be positive, not {value}")
