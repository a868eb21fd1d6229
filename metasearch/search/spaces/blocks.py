"""The building blocks a space composes, and the agent roles each one brings.

A rendered agent has four *slots*, each filled by one block:

- ``answerer`` -- how one answer is produced: ``chain_of_thought``,
  ``step_back`` (state the principles first, then solve with them), or
  ``program_of_thought`` (write a program, run it with the runtime's
  ``run_python`` tool, answer its last printed line; reason step by step when
  it fails; in a debate the program's run is shown to every debater);
- ``ensemble`` -- ``none``, ``self_consistency`` (n samples, majority vote) or
  ``debate`` (k agents, r rounds, a judge);
- ``refine_rounds`` -- 0 to 2 critic / refine passes over the final answer;
- ``role_assignment`` -- ``none``, or ``router`` (a routing agent picks the
  expert role the solver takes; not with ``debate``, whose agents have roles).

Every ``LLMAgentBase`` of a rendered agent plays one :class:`Role`, and a
role's knobs (temperature, max_tokens, protocol, instruction) exist only when
a block that brings it is chosen: that is where a space's implied conditions
come from (:func:`role_condition`).

**Adding a block**: one entry in the slot's table below, its roles in
:data:`ROLES` (and a field in ``format.RolesTable``), and its template in
``render.py``. Nothing else reads block names.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ANSWERERS",
    "ENSEMBLES",
    "MAX_REFINE_ROUNDS",
    "ROLES",
    "ROLE_ASSIGNMENTS",
    "ROUTABLE_ENSEMBLES",
    "Role",
    "role_condition",
]


@dataclass(frozen=True)
class Role:
    """One kind of agent in rendered code: its fields, its name and its defaults."""

    fields: tuple[str, ...]
    agent_name: str
    variable: str  # the agent's variable in the rendered code
    instruction_variable: str  # the variable holding its instruction
    temperature: float
    instruction: str  # the built-in "default" instruction variant


#: The roles rendered agents use. Debate agents are solvers with a persona.
ROLES: dict[str, Role] = {
    "solver": Role(
        ("thinking", "answer"), "Chain-of-Thought Agent", "solver", "cot_instruction", 0.5,
        "Think through the task step by step, then give your final answer."),
    "principle": Role(
        ("thinking", "principle"), "Principle Agent", "principle_agent", "principle_instruction",
        0.5, "Before solving anything: which general principles, rules or concepts does this "
        "task rest on? Think about them first, then state them clearly."),
    "judge": Role(
        ("thinking", "answer"), "Final Decision Agent", "judge", "final_instruction", 0.1,
        "You have read the whole debate. Weigh the arguments, decide which reasoning is "
        "correct, and give the final answer."),
    "critic": Role(
        ("feedback", "correct"), "Critic Agent", "critic", "critic_instruction", 0.5,
        "Check the answer above carefully for mistakes. Give specific feedback on what is "
        "wrong and how to fix it. In 'correct', write only True if the answer is definitely "
        "correct, otherwise False."),
    "refiner": Role(
        ("thinking", "answer"), "Refine Agent", "refiner", "refine_instruction", 0.5,
        "Read your earlier attempt and the feedback on it. Think again, step by step, avoid "
        "the mistakes pointed out, and give an improved final answer."),
    "coder": Role(
        ("thinking", "code"), "Program-of-Thought Agent", "coder", "code_instruction", 0.5,
        "Write a short Python program that computes the answer to the task and prints only "
        "the final answer on the last line. Use only the standard library. Put the whole "
        "program in 'code'."),
    "router": Role(
        ("choice",), "Routing Agent", "router", "router_instruction", 0.1,
        "Which expert is best suited to solve this task? Reply with the name of one expert "
        "only."),
}

#: Answerer blocks -> the roles they bring (besides the solver, which every agent has).
ANSWERERS: dict[str, tuple[str, ...]] = {
    "chain_of_thought": (),
    "step_back": ("principle",),
    "program_of_thought": ("coder",),
}
#: Ensemble blocks -> their roles.
ENSEMBLES: dict[str, tuple[str, ...]] = {
    "none": (),
    "self_consistency": (),
    "debate": ("judge",),
}
#: Role-assignment blocks -> their roles.
ROLE_ASSIGNMENTS: dict[str, tuple[str, ...]] = {
    "none": (),
    "router": ("router",),
}
MAX_REFINE_ROUNDS = 2
#: Ensembles a router can give its expert to (a debate's agents have their own personas).
ROUTABLE_ENSEMBLES = ("none", "self_consistency")

_SLOTS = {"blocks.answerer": ANSWERERS, "blocks.ensemble": ENSEMBLES,
          "blocks.role_assignment": ROLE_ASSIGNMENTS}


def role_condition(role: str) -> tuple[str, tuple[str | int, ...]] | None:
    """``(slot parameter, the values that bring the role)``, or None for every agent's role."""
    for slot, blocks in _SLOTS.items():
        users: tuple[str | int, ...] = tuple(n for n, roles in blocks.items() if role in roles)
        if users:
            return slot, users
    if role in ("critic", "refiner"):
        return "blocks.refine_rounds", tuple(range(1, MAX_REFINE_ROUNDS + 1))
    return None
