"""Self-Consistency with Chain-of-Thought

**Insights:** A single chain of reasoning at non-zero temperature can wander off; different samples make different mistakes, while correct reasoning paths tend to agree on the same answer.

**Overall Idea:** Sample several independent chains of thought at a higher temperature and return the answer most of them agree on (majority vote).

**Implementation:** Five Chain-of-Thought agents at temperature 0.8 each answer the task once; the answers are normalised (whitespace, case) for counting and the most frequent one is returned, ties going to the earliest.
"""


def forward(self, taskInfo):
    from collections import Counter

    instruction = "Think through the task step by step, then give your final answer."
    n_samples = 5
    agents = [
        LLMAgentBase(["thinking", "answer"], "Chain-of-Thought Agent", temperature=0.8)
        for _ in range(n_samples)
    ]
    answers = []
    for agent in agents:
        thinking, answer = agent([taskInfo], instruction)
        answers.append(str(answer.content).strip())

    votes = Counter(a.lower() for a in answers)
    best_key, _ = votes.most_common(1)[0]
    for a in answers:
        if a.lower() == best_key:
            return a
    return answers[0]
