"""Each dimension module writes its own dimension's items, and the core calls them in order."""

from __future__ import annotations

import pytest

from medverify.cases.records import CaseRecord
from medverify.rubrics import DIMENSIONS, dimension_of
from medverify.rubrics.core import build_core
from medverify.rubrics.dimensions.communication import communication_items
from medverify.rubrics.dimensions.consultation import consultation_items
from medverify.rubrics.dimensions.diagnostic import diagnostic_items
from medverify.rubrics.dimensions.ethics import ethics_items
from medverify.rubrics.dimensions.shared import CoreBuild, CoreOptions, group_of
from medverify.rubrics.dimensions.treatment import treatment_items


def _each(case: CaseRecord) -> dict[str, CoreBuild]:
    builds = {name: CoreBuild() for name in DIMENSIONS}
    diagnostic_items(case, builds["diagnostic_accuracy"])
    consultation_items(case, builds["consultation_logic"], CoreOptions(), None)
    treatment_items(case, builds["treatment_rationality"])
    communication_items(case, builds["communication_empathy"])
    sexual = any(group_of(f) == "sexual" for f in case.facts)
    ethics_items(case, builds["medical_ethics"], sexual)
    return builds


@pytest.mark.parametrize("case_id", ["agentclinic-medqa-001", "agentclinic-medqa-044"])
def test_each_module_writes_its_dimension(bundled: list[CaseRecord], case_id: str) -> None:
    case = next(c for c in bundled if c.id == case_id)
    for name, build in _each(case).items():
        assert build.items, name
        allowed = {name}
        if name == "treatment_rationality":  # a red flag is also a history item
            allowed.add("consultation_logic")
        assert {dimension_of(i) for i in build.items} <= allowed, name


def test_core_is_the_modules_in_order(bundled: list[CaseRecord], allergy_case: CaseRecord) -> None:
    for case in [*bundled[:5], allergy_case]:
        parts = _each(case)
        expected = [i for name in DIMENSIONS for i in parts[name].items]
        build = build_core(case)
        assert build.items == expected
        assert build.targets == parts["consultation_logic"].targets
