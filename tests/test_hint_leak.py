"""The hint-leak check: rationalized traces that reveal the given answer are caught, clean ones kept."""

import pytest

from distill.filter.hint_leak import hint_leak

HINT = "The correct answer is 33. Explain step by step how to reach it."

LEAKING = [
    ("We are told the answer is 33, so let us see why. 7 * 3 = 21, 12 + 21 = 33.", "33", "Compute 12 + 7 * 3."),
    ("The hint says 33. First 7 * 3 = 21; then 12 + 21 = 33.", "33", "Compute 12 + 7 * 3."),
    ("Working backwards from the given answer: 33 - 12 = 21 = 7 * 3.", "33", "Compute 12 + 7 * 3."),
    ("33 is what we need. 7 * 3 = 21 and 12 + 21 = 33.", "33", "Compute 12 + 7 * 3."),
    ("The answer is 33.\n7 * 3 = 21\n12 + 21 = 33", "33", "Compute 12 + 7 * 3."),
    ("7 * 3 = 21, 12 + 21 = 33, which matches the expected answer.", "33", "Compute 12 + 7 * 3."),
    ("Since we already know the answer, let's check: 7*3 = 21, 12+21 = 33.", "33", "Compute 12 + 7 * 3."),
    ("I was given that the result is 3. s-t-r-a-w-b-e-r-r-y has r at 3, 8, 9.", "3", "How many r's are in strawberry?"),
    ("As hinted, the word has 3 r's: s t r a w b e r r y.", "3", "How many r's are in strawberry?"),
    ("Using the provided answer as a target: 9.80 vs 9.11, tenths 8 > 1.", "9.8", "Which is greater, 9.11 or 9.8?"),
    ("The reference answer says paris; the capital of France is Paris.", "Paris", "What is the capital of France?"),
    ("Paris. France's capital city is Paris.", "Paris", "What is the capital of France?"),
]

CLEAN = [
    ("7 * 3 = 21, because multiplication comes first. Then 12 + 21 = 33.", "33", "Compute 12 + 7 * 3."),
    ("Spell it: s, t, r, a, w, b, e, r, r, y. The r's are at positions 3, 8 and 9, so there are 3.", "3",
     "How many r's are in strawberry?"),
    # The answer is one of the options in the question, so naming it first is not a leak.
    ("Compare 9.8 and 9.11: pad to 9.80 and 9.11; tenths 8 > 1, so 9.8 is greater.", "9.8",
     "Which is greater, 9.11 or 9.8?"),
    ("Let me think about the capital of France. It is Paris.", "Paris", "What is the capital of France?"),
    ("Hmm, the problem asks for the sum. 1,000 + 250 = 1,250.", "1250", "Add 1000 and 250."),
    ("", "5", "Anything."),
]


@pytest.mark.parametrize("reasoning, answer, question", LEAKING)
def test_leaking_traces_are_caught(reasoning, answer, question):
    assert hint_leak(reasoning, answer, question) is not None


@pytest.mark.parametrize("reasoning, answer, question", CLEAN)
def test_clean_traces_pass(reasoning, answer, question):
    assert hint_leak(reasoning, answer, question) is None


def test_a_copied_hint_is_caught_even_without_an_admission():
    trace = "Explain step by step how to reach it: 7 * 3 = 21 and 12 + 21 = 33."
    assert hint_leak(trace, "33", "Compute 12 + 7 * 3.", hint=HINT) == "copies the hint into the trace"
    assert hint_leak("7 * 3 = 21 and 12 + 21 = 33.", "33", "Compute 12 + 7 * 3.", hint=HINT) is None


def test_the_final_content_is_read_too():
    assert hint_leak("7 * 3 = 21; 12 + 21 = 33.", "33", "Compute 12 + 7 * 3.",
                     content="So, as the hint said, \\boxed{33}.") is not None


def test_numbers_match_by_value_in_the_opening():
    assert hint_leak("It comes to 1,250 in the end. 1000 + 250 = 1250.", "1250", "Add 1000 and 250.")
    assert hint_leak("0.50 is where we land. 1/2 = 0.5.", "1/2", "Halve one.")
