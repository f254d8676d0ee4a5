"""One enumeration of a purchase's answers, and every table keyed by it complete."""

import re

import pytest

from inventory.redis_sales import Outcome
from inventory.redis_sales.scripts import script_path
from purchase.exceptions import DETAILS
from purchase.outcomes import FALLBACK_SENTENCE, SENTENCES, purchase_sentence

# What admit.lua answers that no caller passes on: a short shard borrows, a wave is sold out
# with its time, a sale not loaded is loaded, and a repeat carries its first answer.
SCRIPT_STEPS = {"short", "wave", "not_loaded"}


@pytest.mark.parametrize("outcome", Outcome.refusals(), ids=str)
def test_every_refusal_has_an_api_detail_a_shoppers_sentence_and_a_back_office_label(outcome):
    assert DETAILS[outcome].strip()
    assert outcome in SENTENCES
    assert purchase_sentence(outcome) != FALLBACK_SENTENCE
    # A label written for staff, not the one Django makes up from the member's name.
    assert outcome.label != outcome.name.replace("_", " ").title()


def test_every_answer_of_the_admission_script_is_an_outcome():
    script = script_path("admit").read_text()
    answers = set(re.findall(r'(?:answer|count)\("(\w+)"', script)) | set(re.findall(r'return \{"(\w+)"', script))

    assert answers - SCRIPT_STEPS <= set(Outcome.values)
    assert {"accepted", "sold_out", "limit_exceeded", "blocked", "pass_spent"} <= answers
