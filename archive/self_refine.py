"""Self-Refine (Reflexion)

**Insights:** A first answer is often almost right; a critic that looks for errors and says what to fix lets the model correct itself without new information.

**Overall Idea:** Answer with Chain-of-Thought, then loop: a critic reviews the latest attempt and says whether it is correct; if not, its feedback goes back to the solver, which tries again.

**Implementation:** A solver with ['thinking', 'answer'] and a critic with ['feedback', 'correct']. At most five critic rounds; the loop stops as soon as the critic's `correct` field says True. Every attempt and critique is passed back with its iteration index, so the solver sees its own history.
"""


def forward(self, taskInfo):
    first_instruction = "Think through the task step by step, then give your final answer."
    retry_instruction = (
        "Read your earlier attempts and the feedback on them. Think again, step by step, "
        "avoid the mistakes pointed out, and give an improved final answer."
    )
    critic_instruction = (
        "Check the answer above carefully for mistakes. Give specific feedback on what is "
        "wrong and how to fix it. In 'correct', write only True if the answer is definitely "
        "correct, otherwise False."
    )
    solver = LLMAgentBase(["thinking", "answer"], "Chain-of-Thought Agent")
    critic = LLMAgentBase(["feedback", "correct"], "Critic Agent", role="careful and strict reviewer")

    max_rounds = 5
    thinking, answer = solver([taskInfo], first_instruction, 0)
    history = [taskInfo]
    for i in range(max_rounds):
        feedback, correct = critic([taskInfo, thinking, answer], critic_instruction, i)
        if str(correct.content).strip().lower().startswith("true"):
            break
        history.extend([thinking, answer, feedback])
        thinking, answer = solver(history, retry_instruction, i + 1)
    return answer
