"""Quality-Diversity

**Insights:** Repeated samples of one approach are often alike; deliberately asking for different approaches explores more of the solution space, and a final step can combine the best of them.

**Overall Idea:** Produce several attempts, each told to differ from the ones before it, then have a final agent compare all attempts and give the answer.

**Implementation:** A Chain-of-Thought agent at temperature 0.8 makes a first attempt, then two more, each seeing the earlier attempts and asked for a different approach (three in all). A final decision agent at low temperature reads all attempts and answers.
"""


def forward(self, taskInfo):
    first_instruction = "Think through the task step by step, then give your final answer."
    diverse_instruction = (
        "Look at the earlier attempts above. Solve the task again with a genuinely different "
        "approach or viewpoint, step by step, then give your final answer."
    )
    final_instruction = (
        "Compare all the attempts above, find where they agree and which reasoning holds up, "
        "then think step by step and give the final answer."
    )
    explorer = LLMAgentBase(["thinking", "answer"], "Chain-of-Thought Agent", temperature=0.8)
    judge = LLMAgentBase(["thinking", "answer"], "Final Decision Agent", temperature=0.1)

    n_attempts = 3
    attempts = []
    thinking, answer = explorer([taskInfo], first_instruction, 0)
    attempts.extend([thinking, answer])
    for i in range(1, n_attempts):
        thinking, answer = explorer([taskInfo] + attempts, diverse_instruction, i)
        attempts.extend([thinking, answer])
    thinking, answer = judge([taskInfo] + attempts, final_instruction)
    return answer
