"""Where each channel's peer service answers: `DIR/peers.json`, {channel id: URL}, written
atomically and synced (a new file, fsync, rename, fsync of the directory) whenever it changes
(at open, and when an owner points a channel at a moved peer). The channel store does not hold
it: it is this party's address book, not channel state."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

__all__ = ["PeerBook"]


class PeerBook:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._urls: dict[str, str] = {}
        if path.exists():
            raw = json.loads(path.read_text() or "{}")
            if not isinstance(raw, dict):
                raise ValueError(f"{path} is not a JSON object")
            self._urls = {str(k).lower(): str(v) for k, v in raw.items()}

    def get(self, channel_id: bytes) -> str | None:
        return self._urls.get("0x" + channel_id.hex())

    def set(self, channel_id: bytes, url: str | None) -> None:
        key = "0x" + channel_id.hex()
        if url is None or self._urls.get(key) == url:
            return
        self._urls[key] = url
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(self._urls, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        with contextlib.suppress(OSError):
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
