"""Diagnosis names: reading the doctor's final diagnosis, and matching a text against a diagnosis.

The simulator's Termination Gate, the rubric generator, the importers' leak check, the process
measures and the training rewards all ask the same two questions of text: "what diagnosis did the
doctor conclude?" and "does this text name the case's diagnosis?". One answer for everyone keeps
a consultation's score and its reward from disagreeing about what was said.
"""

from __future__ import annotations

import re

from medverify.text.matching import mentions

_PARENTHETICAL = re.compile(r"\s*\([^)]*\)")
_DIAGNOSIS = re.compile(r"DIAGNOSIS\s*:\s*(.*)", re.IGNORECASE | re.DOTALL)
_PLAN = re.compile(r"\bPLAN\s*:", re.IGNORECASE)


def extract_diagnosis(text: str) -> str | None:
    r"""The final diagnosis of a doctor turn: the first line after ``DIAGNOSIS:``, else ``None``.

    ``"DIAGNOSIS: Myasthenia gravis\nPLAN: ..."`` -> ``"Myasthenia gravis"``; a ``PLAN:`` on the
    same line is cut off; markdown emphasis around the text is removed. An empty diagnosis
    (``"DIAGNOSIS:"`` alone) still ends the consultation, with ``""``.
    """
    match = _DIAGNOSIS.search(text)
    if match is None:
        return None
    rest = match.group(1).strip()
    first = rest.splitlines()[0] if rest else ""
    first = _PLAN.split(first)[0]
    return first.strip(" *_`\t").strip()


def diagnosis_variants(diagnosis: str) -> list[str]:
    """The diagnosis as written, without its parenthetical, and the parenthetical acronym.

    ``"Progressive multifocal encephalopathy (PML)"`` → the full name, the name without
    ``(PML)``, and ``PML``.
    """
    variants = [diagnosis]
    bare = " ".join(_PARENTHETICAL.sub("", diagnosis).split())
    if bare and bare != diagnosis:
        variants.append(bare)
    for inner in re.findall(r"\(([^)]*)\)", diagnosis):
        if re.fullmatch(r"[A-Z][A-Za-z0-9-]{1,9}", inner.strip()):
            variants.append(inner.strip())
    return variants


def diagnosis_initialism(diagnosis: str) -> str | None:
    """``"Chronic lymphocytic leukemia"`` → ``"CLL"``: the initials of a 3-to-5-word name."""
    words = re.findall(r"[A-Za-z]+", _PARENTHETICAL.sub("", diagnosis))
    words = [w for w in words if w.lower() not in {"of", "the", "and", "with", "to", "in"}]
    return "".join(w[0] for w in words).upper() if 3 <= len(words) <= 5 else None


def names_diagnosis(text: str, diagnosis: str) -> bool:
    """Whether ``text`` names the diagnosis: any variant (case-insensitive) or its initialism."""
    if any(mentions(text, variant) for variant in diagnosis_variants(diagnosis)):
        return True
    initials = diagnosis_initialism(diagnosis)
    return bool(initials and re.search(rf"(?<![A-Za-z]){initials}(?![a-z])", text))
