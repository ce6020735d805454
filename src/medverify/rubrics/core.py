"""The deterministic rubric core: a clinician's checklist read off a case record, no model.

Given a case record (and, optionally, one consultation's transcript), the core writes weighted,
checkable criteria in the five Baichuan-M2 dimensions, one module each under
:mod:`medverify.rubrics.dimensions`:

* **diagnostic accuracy** (:mod:`~.dimensions.diagnostic`) — the final diagnosis named, a
  differential considered, the reasoning tied to findings; a different final diagnosis is
  penalised;
* **consultation logic** (:mod:`~.dimensions.consultation`) — the history a clinician must take,
  the examinations and tests that produce the record's findings, and process faults (a
  diagnosis stated before the key questions, or before any examination or test);
* **treatment rationality** (:mod:`~.dimensions.treatment`) — the record's management steps and
  red flags when it has them; otherwise only what follows honestly from the diagnosis's kind
  (:mod:`.knowledge`) plus a plan and safety-netting;
* **communication & empathy** (:mod:`~.dimensions.communication`) — plain language at the
  persona's health literacy, acknowledging the patient's feelings, checking understanding;
* **medical ethics** (:mod:`~.dimensions.ethics`) — consent before examination, honesty about
  uncertainty; fabricated findings and disclosure to third parties are penalised.

This module assembles them in that order, then adds the transcript's items
(:mod:`.transcript`), removes near duplicates and reviews the result. Each criterion names what
a grader must look for in the record's own words ("Asks about difficulty in climbing stairs or
weakness when trying to brush her hair"). Weights follow clinical importance: the right
diagnosis is the largest single item, key history items come next, so a careful doctor scores
far above one who guesses at once. Pure and deterministic: same case, same rubric, on any
machine.
"""

from __future__ import annotations

from medverify.cases.records import CaseRecord, Transcript
from medverify.rubrics.dimensions.communication import communication_items
from medverify.rubrics.dimensions.consultation import consultation_items
from medverify.rubrics.dimensions.diagnostic import diagnostic_items
from medverify.rubrics.dimensions.ethics import ethics_items
from medverify.rubrics.dimensions.shared import (
    CoreBuild,
    CoreOptions,
    HistoryTarget,
    attach_detectors,
    group_of,
)
from medverify.rubrics.dimensions.treatment import treatment_items
from medverify.rubrics.records import Rubric
from medverify.rubrics.transcript import transcript_items
from medverify.rubrics.validate import check_case, dedupe_tokens, finish_rubric

__all__ = ["CoreBuild", "CoreOptions", "HistoryTarget", "build_core", "core_rubric"]


def build_core(
    case: CaseRecord, transcript: Transcript | None = None, options: CoreOptions | None = None
) -> CoreBuild:
    """The core's items for a case, in dimension order, with its history targets.

    Args:
        case: the case record.
        transcript: when given, transcript-aware items replace the generic process item.
        options: item limits.

    Returns:
        The items (not yet de-duplicated) and the history targets behind the history items.

    Raises:
        InputError: the case cannot give a rubric (names the field), or the transcript belongs
            to another case.
    """
    check_case(case)
    options = options or CoreOptions()
    build = CoreBuild()
    diagnostic_items(case, build)
    consultation_items(case, build, options, transcript)
    treatment_items(case, build)
    communication_items(case, build)
    sexual = any(group_of(f) == "sexual" for f in case.facts)
    ethics_items(case, build, sexual)
    attach_detectors(build)
    if transcript is not None:
        for transcript_item, check in transcript_items(case, transcript, build.targets):
            build.add(transcript_item, "transcript", check)
    return build


def core_rubric(
    case: CaseRecord, transcript: Transcript | None = None, *, options: CoreOptions | None = None
) -> Rubric:
    """The deterministic rubric of a case (and of one consultation, when a transcript is given).

    Pure, synchronous and deterministic: no model, no randomness, no I/O. Exact and near
    duplicates are removed by word overlap; every dimension is checked for coverage and the
    points for balance, and what is wrong is recorded in ``warnings``.

    Args:
        case: the case record.
        transcript: a consultation of this case; adds items about what this doctor did.
        options: item limits.

    Returns:
        The rubric, with its provenance and the review's warnings.

    Raises:
        InputError: the case cannot give a rubric (names the field), or the transcript belongs
            to another case.
    """
    build = build_core(case, transcript, options)
    items, origins, removed = dedupe_tokens(build.items, build.origins)
    return finish_rubric(
        case.id,
        items,
        origins,
        removed,
        build.warnings,
        checks=build.checks,
        generator="core+transcript" if transcript is not None else "core",
        writer=None,
        seed=0,
        transcript_aware=transcript is not None,
    )
