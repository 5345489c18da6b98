"""The validator against every recorded run of the real Bedrock 0.16.1 (tests/data/bedrock-corpus).

For each case: the same verdict (accepted or rejected) as the real daemon, and an error that
quotes the real daemon's own message. The validator may be stricter only where the real daemon
logged that the config misbehaves; the error then quotes that warning.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bedrock_corpus import Case, load_cases, validator_verdict

CASES = load_cases()
# Rejected by both; the message differs for a reason named here.
OTHER_MESSAGE = {
    "o05_invalid_json": "a JSON syntax error: the validator reports Python's parser message with "
                        "its file:line:column, the real daemon nlohmann's",
}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_validator_agrees_with_real_bedrock(case: Case, tmp_path: Path) -> None:
    v = validator_verdict(case, tmp_path)
    if v.stricter_quoted:
        # stricter only where the real daemon warned, and quoting that warning
        assert not v.accepted and case.accepted and case.real_warnings
        return
    assert v.accepted == case.accepted, v.detail
    if case.id in OTHER_MESSAGE:
        assert v.detail and "no error quotes the real one" in v.detail[0]
        return
    assert v.detail == []


def test_the_corpus_is_complete() -> None:
    assert len(CASES) == 72
    assert sum(c.accepted for c in CASES) == 48
