"""Bounded tails of a running program's output: each stream's last bytes, and both as they came."""

from __future__ import annotations


class Tail:
    """The last `cap` bytes of a stream (kept between cap and 2*cap, trimmed in bulk)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.buf = bytearray()
        self.truncated = False
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.buf += chunk
        if len(self.buf) > 2 * self.cap:
            del self.buf[: len(self.buf) - self.cap]
            self.truncated = True

    def text(self) -> str:
        data = bytes(self.buf[-self.cap :]) if len(self.buf) > self.cap else bytes(self.buf)
        text = data.decode("utf-8", errors="replace")
        if self.truncated or len(self.buf) > self.cap:
            text = text.split("\n", 1)[-1]  # drop the partial first line
        return text


class Interleaved:
    """stdout and stderr in one tail, a whole line at a time as each stream completes one, so
    a line of one stream never splits a line (or a secret in it) of the other. Two pipes: the
    order across streams is the order they were read in, so lines the program printed to both
    within the same instant may come out swapped."""

    def __init__(self, cap: int) -> None:
        self.tail = Tail(cap)
        self.pending: dict[int, bytes] = {}

    def feed(self, fd: int, chunk: bytes) -> None:
        data = self.pending.get(fd, b"") + chunk
        cut = data.rfind(b"\n") + 1
        if len(data) - cut > self.tail.cap:  # one endless line: keep what there is
            cut = len(data)
        if cut:
            self.tail.feed(data[:cut])
        self.pending[fd] = data[cut:]

    def text(self) -> str:
        for fd in sorted(self.pending):
            if self.pending[fd]:
                self.tail.feed(self.pending[fd] + b"\n")
        self.pending.clear()
        return self.tail.text()
