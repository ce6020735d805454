r"""``script:<file>`` — replays fixed replies, one per line: scripted doctors and tests.

The reply for a request is line *n* of the file, where *n* is the number of assistant turns
already in the conversation. That makes a script stateless: the same file can play the doctor in
many consultations at once, and a resumed consultation picks up at the right line. Blank lines
and lines starting with ``#`` are skipped; ``\n`` inside a line becomes a newline.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from medverify.backends.base import Backend, Completion, Message, SamplingParams, Usage
from medverify.errors import BackendError, ConfigError


def read_script(path: str | Path) -> list[str]:
    """The replies of a script file, in order."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"script file not found: {file}")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    replies = [
        line.rstrip("\r").replace("\\n", "\n")
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not replies:
        raise ConfigError(f"{file}: no replies (one reply per line; '#' starts a comment)")
    return replies


class ScriptBackend(Backend):
    """Replays the lines of a file, or a list given in code."""

    cacheable = False

    def __init__(self, source: str | Path | list[str], **kwargs: Any) -> None:
        if isinstance(source, list):
            self.replies = list(source)
            self.source = "<inline>"
        else:
            self.replies = read_script(source)
            self.source = str(source)
        kwargs.setdefault("concurrency", 1024)
        kwargs.setdefault("timeout_s", None)
        super().__init__(f"script:{self.source}", **kwargs)
        self._digest = hashlib.sha256("\n".join(self.replies).encode()).hexdigest()[:16]

    def identity(self) -> str:
        """Spec plus content hash: an edited script is a different doctor."""
        return f"{self.spec}#{self._digest}"

    async def _generate(self, messages: list[Message], params: SamplingParams) -> Completion:
        turn = sum(1 for m in messages if m.role == "assistant")
        if turn >= len(self.replies):
            raise BackendError(
                f"script has {len(self.replies)} replies and turn {turn + 1} was asked for",
                spec=self.spec,
            )
        text = self.replies[turn]
        return Completion(
            text=text,
            usage=Usage(
                prompt_tokens=sum(len(m.content.split()) for m in messages),
                completion_tokens=len(text.split()),
            ),
            model="script",
            finish_reason="stop",
        )
