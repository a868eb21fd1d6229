"""Chain-of-Thought

**Insights:** Language models answer more reliably when they write out their intermediate reasoning before committing to an answer, instead of jumping straight to it.

**Overall Idea:** Ask a single agent to reason step by step in a `thinking` field and only then give the final `answer`.

**Implementation:** One LLMAgentBase call with the output fields ['thinking', 'answer']; the answer Info is returned as it is.
"""


def forward(self, taskInfo):
    # Reason first, answer second: one call with two output fields.
    instruction = "Think through the task step by step, then give your final answer."
    cot_agent = LLMAgentBase(["thinking", "answer"], "Chain-of-Thought Agent")
    thinking, answer = cot_agent([taskInfo], instruction)
    return answer
