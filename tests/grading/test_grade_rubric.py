"""The one rubric-grading step: verdicts in order, memoised by content, failures kept apart."""

from __future__ import annotations

import asyncio

from medverify.grading import Grade, RubricItem, VerdictCache, grade_rubric, verdict_key
from medverify.runs.store import RunStore

ITEMS = [
    RubricItem(criterion="Mentions hydration", points=5, tags=["axis:accuracy"]),
    RubricItem(criterion="Recommends antibiotics", points=-4, tags=["axis:accuracy"]),
    RubricItem(criterion="Mentions fever", points=3),
]
CONV = [{"role": "user", "content": "My child has a fever."}]


class WordGrader:
    """Met when the criterion's last word is in the response; 'fail' in it gives a failure."""

    spec = "word"

    def __init__(self, *, fail: bool = False, raise_: bool = False) -> None:
        self.calls = 0
        self.fail = fail
        self.raise_ = raise_
        self.in_flight = 0
        self.most_in_flight = 0

    async def grade(self, conversation, response, item):
        self.calls += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        if self.raise_:
            raise RuntimeError("grader bug\nsecond line of the message")
        if self.fail:
            return Grade(met=None, error="no JSON")
        word = item.criterion.split()[-1].lower()
        return Grade(met=word in response.lower(), explanation=f"looked for {word}")

    async def aclose(self) -> None:
        pass


async def test_verdicts_follow_the_items_and_carry_them():
    verdicts = await grade_rubric(WordGrader(), CONV, "Give fluids for hydration.", ITEMS)
    assert [v.criterion for v in verdicts] == [i.criterion for i in ITEMS]
    assert [v.met for v in verdicts] == [True, False, False]
    assert verdicts[1].points == -4 and verdicts[0].tags == ["axis:accuracy"]


async def test_the_run_store_remembers_verdicts_but_not_failures(tmp_path):
    with RunStore(tmp_path / "run", job="t", config={}) as store:
        failing = WordGrader(fail=True)
        first = await grade_rubric(failing, CONV, "hydration", ITEMS, memo=store)
        assert all(v.met is None and v.error == "no JSON" for v in first)
        assert len(store.failures("verdict")) == 3
        grader = WordGrader()
        grader_spec_same = await grade_rubric(grader, CONV, "hydration", ITEMS, memo=store)
        assert grader.calls == 3 and [v.met for v in grader_spec_same] == [True, False, False]
        assert store.failures("verdict") == {}
        again = WordGrader()
        assert await grade_rubric(again, CONV, "hydration", ITEMS, memo=store) == grader_spec_same
        assert again.calls == 0


async def test_the_key_changes_with_anything_that_decides_the_verdict():
    item = ITEMS[0]
    base = verdict_key("g", CONV, "r", item)
    assert base == verdict_key("g", list(CONV), "r", item)
    assert base != verdict_key("h", CONV, "r", item)
    assert base != verdict_key("g", CONV, "r2", item)
    assert base != verdict_key("g", [], "r", item)
    assert base != verdict_key("g", CONV, "r", item.model_copy(update={"points": 4}))


async def test_a_raising_grader_is_a_failed_verdict_and_the_limit_holds(tmp_path):
    cache = VerdictCache(tmp_path / "v.sqlite")
    verdicts = await grade_rubric(WordGrader(raise_=True), CONV, "x", ITEMS, memo=cache)
    assert all(v.met is None and "RuntimeError: grader bug" in v.error for v in verdicts)
    assert cache.failures == 3
    grader = WordGrader()
    limit = asyncio.Semaphore(1)
    done = []
    await grade_rubric(grader, CONV, "x", ITEMS, limit=limit, on_graded=lambda: done.append(1))
    assert grader.most_in_flight == 1 and len(done) == 3
    # a cache on disk answers a new process
    await grade_rubric(WordGrader(), CONV, "fever", ITEMS, memo=cache)
    cache.close()
    reopened = VerdictCache(tmp_path / "v.sqlite")
    fresh = WordGrader()
    await grade_rubric(fresh, CONV, "fever", ITEMS, memo=reopened)
    assert fresh.calls == 0 and reopened.hits == 3
    reopened.close()


def test_every_grading_failure_is_one_warning_line(caplog):
    for grader in (WordGrader(fail=True), WordGrader(raise_=True)):
        caplog.clear()
        with caplog.at_level("WARNING", logger="medverify.grading.grade_rubric"):
            verdicts = asyncio.run(grade_rubric(grader, CONV, "fever", ITEMS))
        assert all(v.met is None for v in verdicts)
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == len(ITEMS) and all("\n" not in line for line in lines)
        assert all(line.startswith("grading failed on ") for line in lines)
