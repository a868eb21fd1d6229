"""A meta-model failure after its retries is one candidate's failure, never the campaign's."""

from __future__ import annotations

from metasearch.llm.types import ProviderError
from metasearch.search.base import STAGES, Proposal, ProposalOutcome, Slot
from metasearch.testing.campaigns import ScriptedModel, close_campaign, toy_agent, toy_campaign

CRASHES = ("def forward(self, taskInfo):\n"
           "    a = LLMAgentBase(['thinking', 'answer'], 'Broken')\n"
           "    thinking, answer = a([taskInfo], 'Solve it.')\n"
           "    return answer.content + 1\n")


class Flaky:
    """g001-00's proposal and g001-01's debug round fail at the provider; g001-02 is fine."""

    name = "flaky"
    debug_rounds = 1

    def __init__(self) -> None:
        self.asked = False

    def ask(self, free, archive):
        if self.asked:
            return []
        self.asked = True
        return [Slot(f"g001-0{i}", 1, i) for i in range(3)][:free] if free >= 3 else []

    def propose(self, slot, view):
        if slot.index == 0:
            raise ProviderError("Model 'openai/meta' kept answering with server errors")
        code = CRASHES if slot.index == 1 else toy_agent(1)
        return ProposalOutcome(status="valid", proposal=Proposal(
            code=code, name=f"Agent {slot.index}", thought="t", parents=()), stages=STAGES)

    def fix(self, slot, proposal, feedback, debug_round, view):
        raise ProviderError("Model 'openai/meta' timed out")

    def tell(self, record):
        pass


def test_a_failing_meta_call_is_recorded_on_its_candidate_and_the_campaign_goes_on(tmp_path):
    campaign = toy_campaign(tmp_path / "c", ScriptedModel(), lambda gw, n: Flaky(), parallel=3)
    try:
        result = campaign.run()
    finally:
        close_campaign(campaign)
    assert not result.stopped
    by_id = {r.id: r for r in result.records}
    first = by_id["g001-00"]
    assert first.status == "invalid" and first.meta["failure"] == "provider"
    assert "the meta model failed while proposing g001-00" in first.reason
    broken = by_id["g001-01"]  # evaluated, its debug round skipped, recorded as evaluated
    assert broken.status == "failed" and "debug-1:provider" in broken.meta["stages"]
    assert by_id["g001-02"].status == "ok"
    report = (tmp_path / "c" / "report.md").read_text()
    assert "g001-01: debug round 1 was skipped, the meta model failed" in report
