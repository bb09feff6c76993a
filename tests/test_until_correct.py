"""Sample-until-correct bookkeeping: stops at k distinct correct traces, never past max_samples, rationalizes."""

import pytest

from distill.generate.until_correct import CorrectTally, UntilCorrect


def judge(trace):
    return trace["content"].endswith("right")


def trace(pid, sample, content, reasoning="", **extra):
    return {"id": pid, "sample": sample, "content": content, "reasoning": reasoning, "error": None, **extra}


def drive(tally, pid, outcomes):
    """Draw for ``pid`` until the tally settles; the i-th sample drawn gets outcomes[i]. Returns what was asked."""
    asked = []
    while True:
        batch = tally.next_samples(pid)
        if not batch:
            return asked
        for index, is_hint in batch:
            asked.append((index, is_hint))
            content = outcomes[len(asked) - 1] if len(asked) <= len(outcomes) else "wrong"
            tally.seen(trace(pid, index, content, reasoning=f"path {index} " * 20, rationalized=is_hint),
                       was_in_flight=True)


def test_an_easy_problem_stops_after_the_first_sample():
    tally = CorrectTally(UntilCorrect(k=1, max_samples=8), judge)
    assert drive(tally, "easy", ["right"]) == [(0, False)]
    assert tally.summary()["reached_k"] == 1 and tally.summary()["samples_per_solved"] == 1


def test_draws_until_k_distinct_correct_and_never_past_max_samples():
    tally = CorrectTally(UntilCorrect(k=2, max_samples=5), judge)
    asked = drive(tally, "hard", ["wrong", "wrong", "right", "wrong", "right"])
    assert [i for i, _ in asked] == [0, 1, 2, 3, 4]
    assert tally.problems["hard"].correct == 2
    tally2 = CorrectTally(UntilCorrect(k=3, max_samples=4), judge)
    assert len(drive(tally2, "never", [])) == 4  # the ceiling holds even though k is never reached


def test_near_duplicate_correct_traces_count_once():
    tally = CorrectTally(UntilCorrect(k=2, max_samples=3), judge)
    for s in range(3):
        tally.next_samples("p")
        tally.seen(trace("p", s, "right", reasoning="the very same reasoning words " * 10), was_in_flight=True)
    assert tally.problems["p"].correct == 1 and tally.next_samples("p") == []


def test_rationalization_only_after_every_sample_failed():
    policy = UntilCorrect(k=1, max_samples=3, rationalize=True, rationalize_samples=1)
    tally = CorrectTally(policy, judge)
    asked = drive(tally, "p", ["wrong", "wrong", "wrong", "right"])
    assert asked[-1] == (3, True) and len(asked) == 4
    assert tally.summary()["rationalized"] == 1 and tally.summary()["unsolved"] == 0
    solved = CorrectTally(policy, judge)
    assert all(not hint for _, hint in drive(solved, "q", ["wrong", "right"]))


def test_resume_never_asks_again_for_a_problem_that_has_k():
    policy = UntilCorrect(k=1, max_samples=4)
    tally = CorrectTally(policy, judge)
    tally.seen(trace("done", 0, "wrong"))
    tally.seen(trace("done", 1, "right"))
    tally.seen(trace("half", 0, "wrong"))
    assert tally.next_samples("done") == []
    assert tally.next_samples("half") == [(1, False)]  # continues after the file's last index


def test_errors_count_as_drawn_but_never_as_correct():
    tally = CorrectTally(UntilCorrect(k=1, max_samples=2), judge)
    tally.next_samples("p")
    tally.seen({"id": "p", "sample": 0, "content": "right", "error": {"type": "http"}}, was_in_flight=True)
    assert tally.problems["p"].correct == 0 and tally.next_samples("p") == [(1, False)]


def test_nothing_is_asked_while_samples_are_in_flight():
    tally = CorrectTally(UntilCorrect(k=1, max_samples=4, first_wave=2), judge)
    assert tally.next_samples("p") == [(0, False), (1, False)]
    assert tally.next_samples("p") == []


@pytest.mark.parametrize("k, n, wave", [(0, 3, 1), (4, 3, 1), (1, 3, 0)])
def test_bad_policies_are_refused(k, n, wave):
    with pytest.raises(ValueError):
        CorrectTally(UntilCorrect(k=k, max_samples=n, first_wave=wave), judge)
