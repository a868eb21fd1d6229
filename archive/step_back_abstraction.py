"""Step-back Abstraction

**Insights:** Many tasks become easier once the general principles behind them are named: stepping back to the underlying concepts steers the reasoning away from surface details.

**Overall Idea:** First ask which principles, rules or concepts the task involves; then solve the task step by step with those principles in view.

**Implementation:** A principle agent with ['thinking', 'principle'] names the relevant principles; a Chain-of-Thought agent receives the task plus that analysis and returns the answer.
"""


def forward(self, taskInfo):
    principle_instruction = (
        "Before solving anything: which general principles, rules or concepts does this "
        "task rest on? Think about them first, then state them clearly."
    )
    solve_instruction = (
        "Using the principles identified above, think through the task step by step, "
        "then give your final answer."
    )
    principle_agent = LLMAgentBase(["thinking", "principle"], "Principle Agent")
    cot_agent = LLMAgentBase(["thinking", "answer"], "Chain-of-Thought Agent")

    thinking, principle = principle_agent([taskInfo], principle_instruction)
    thinking, answer = cot_agent([taskInfo, thinking, principle], solve_instruction)
    return answer
