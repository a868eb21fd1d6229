"""Dynamic Assignment of Roles

**Insights:** Different tasks call for different expertise; a model that is told to act as the right kind of expert draws on the matching knowledge and style of reasoning.

**Overall Idea:** A router reads the task and picks the most suitable expert from a fixed panel; that expert then solves the task with Chain-of-Thought.

**Implementation:** A routing agent with the single field ['choice'] names one expert; its reply is matched against the panel by keyword (a generalist if nothing matches), and the chosen expert's agent with ['thinking', 'answer'] answers the task.
"""


def forward(self, taskInfo):
    experts = {
        "math": "mathematician who solves problems with careful calculation",
        "logic": "logician who reasons rigorously step by step",
        "science": "scientist with broad knowledge of physics, chemistry and biology",
        "language": "linguist and careful reader of text",
        "general": "helpful generalist assistant",
    }
    routing_instruction = (
        "Which expert should solve this task? Choose one of: "
        + ", ".join(experts)
        + ". Reply with only the one word of your choice."
    )
    solve_instruction = "Think through the task step by step, then give your final answer."
    router = LLMAgentBase(["choice"], "Routing Agent")

    choice = router([taskInfo], routing_instruction)[0]
    picked = "general"
    text = str(choice.content).lower()
    for key in experts:
        if key in text:
            picked = key
            break
    expert = LLMAgentBase(["thinking", "answer"], "Expert Agent", role=experts[picked])
    thinking, answer = expert([taskInfo], solve_instruction)
    return answer
