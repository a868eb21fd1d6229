"""LLM Debate

**Insights:** Models with different viewpoints catch each other's mistakes; when they read and answer each other's arguments, the group converges on better answers than any single member.

**Overall Idea:** Three debaters with different roles answer the task, then revise their answers after reading everyone's reasoning, for two rounds; a final judge weighs the whole debate and decides.

**Implementation:** Three agents with ['thinking', 'answer'] and distinct roles at temperature 0.8. In round 1 each sees only the task; in round 2 each also sees all round-1 reasoning and answers. A final decision agent at low temperature reads every debate message and gives the answer.
"""


def forward(self, taskInfo):
    first_instruction = "Think through the task step by step, then give your answer."
    debate_instruction = (
        "Consider the reasoning and answers of the other debaters above. Point out any "
        "mistakes, update your own reasoning if they convinced you, and give your answer."
    )
    final_instruction = (
        "You have read the whole debate. Weigh the arguments, decide which reasoning is "
        "correct, and give the final answer."
    )
    roles = ["careful analyst", "skeptical critic who double-checks every step", "creative problem solver"]
    debaters = [
        LLMAgentBase(["thinking", "answer"], "Debate Agent", role=role, temperature=0.8)
        for role in roles
    ]
    judge = LLMAgentBase(["thinking", "answer"], "Final Decision Agent", temperature=0.1)

    max_rounds = 2
    transcript = []
    for r in range(max_rounds):
        this_round = []
        for agent in debaters:
            if r == 0:
                thinking, answer = agent([taskInfo], first_instruction, r)
            else:
                thinking, answer = agent([taskInfo] + transcript, debate_instruction, r)
            this_round.extend([thinking, answer])
        transcript = this_round
    thinking, answer = judge([taskInfo] + transcript, final_instruction)
    return answer
