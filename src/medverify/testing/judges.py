"""Scripted judges for the fake server: verdicts without a model, for offline pipeline tests.

Each is a responder for :class:`~medverify.testing.fake_openai.FakeOpenAIServer` that reads the
grading request the way a judge would (the reply between its markers, the criterion line) and
answers in the judge's JSON format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

_REPLY = re.compile(
    r"<<<REPLY_(?P<tag>[0-9A-F]+)>>>\n(?P<reply>.*)\n<<<END_REPLY_(?P=tag)>>>", re.S
)
_CRITERION = re.compile(
    r"^Criterion \((?P<points>[+-]\d+) points\): (?P<text>.*?)\n\nDoes the reply between",
    re.S | re.M,
)


def parse_request(body: dict[str, Any]) -> tuple[str, str, int]:
    """The reply under review, the criterion text and its points, from a grading request."""
    user = body["messages"][-1]["content"]
    reply = _REPLY.search(user)
    # The real criterion follows the reply's end marker; a forged one inside the reply is data.
    criterion = _CRITERION.search(user, reply.end()) if reply else None
    if reply is None or criterion is None:
        raise ValueError("not a medverify grading request")
    return reply.group("reply"), criterion.group("text"), int(criterion.group("points"))


def verdict_json(met: bool, explanation: str) -> str:
    """A well-formed judge answer."""
    return json.dumps({"explanation": explanation, "criteria_met": met})


def keyword_judge(body: dict[str, Any]) -> str:
    """Met iff the reply contains every 'quoted' phrase of the criterion (case-insensitive).

    Criteria containing ``BROKEN`` get a reply that is not JSON, to exercise grading failures.
    """
    reply, criterion, _ = parse_request(body)
    if "BROKEN" in criterion:
        return "I think it is probably fine."
    phrases = re.findall(r"'([^']+)'", criterion)
    met = bool(phrases) and all(p.lower() in reply.lower() for p in phrases)
    return verdict_json(met, f"looked for {phrases}")


def replay_judge(verdicts: dict[tuple[str, str], bool]) -> Callable[[dict[str, Any]], str]:
    """Answers recorded verdicts, keyed by (reply, criterion text)."""

    def respond(body: dict[str, Any]) -> str:
        reply, criterion, _ = parse_request(body)
        return verdict_json(verdicts[(reply, criterion)], "recorded verdict")

    return respond


_BOILERPLATE = frozenset(
    [
        "asks",
        "ask",
        "about",
        "whether",
        "patient",
        "patient's",
        "doctor",
        "states",
        "state",
        "the",
        "a",
        "an",
        "any",
        "of",
        "or",
        "and",
        "to",
        "for",
        "with",
        "in",
        "on",
        "at",
        "by",
        "is",
        "are",
        "has",
        "have",
        "had",
        "their",
        "his",
        "her",
        "they",
        "them",
        "this",
        "that",
    ]
)
_NEGATION = re.compile(r"^(?:fails to|does not|doesn't|never)\s+(?P<rest>.*)$", re.I)


def _salient(text: str) -> set[str]:
    return {
        w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2 and w not in _BOILERPLATE
    }


def _covers(doctor: str, phrase: str) -> bool:
    wanted = _salient(phrase)
    return bool(wanted) and 2 * len(wanted & _salient(doctor)) >= len(wanted)


def transcript_judge(body: dict[str, Any]) -> str:
    """A judge double for consultation criteria: word overlap with the doctor's lines.

    Reads the ``Doctor:`` lines of the transcript under review. "X without Y" is met when X is
    covered and Y is not; "Fails to / Does not X" when X is not covered; anything else when at
    least half its salient words are in the doctor's lines. A crude reader, but it goes
    through the real judge prompt, fence and JSON parsing, which is what pipeline tests need.
    """
    reply, criterion, _ = parse_request(body)
    doctor = "\n".join(
        line.removeprefix("Doctor:") for line in reply.splitlines() if line.startswith("Doctor:")
    )
    text = criterion.strip().rstrip(".")
    negated = _NEGATION.match(text)
    if " without " in text.lower():
        head, _, tail = text.lower().partition(" without ")
        met = _covers(doctor, head) and not _covers(doctor, tail)
    elif negated:
        met = not _covers(doctor, negated.group("rest"))
    else:
        met = _covers(doctor, text)
    return verdict_json(met, "word overlap with the doctor's lines")
