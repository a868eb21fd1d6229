"""The fixed text of the meta agent's prompts: the runtime API, rules, examples, formats.

Written for small models as well as large ones: short sentences, one explicit
rule per line, a correct example next to each wrong one.
"""

from __future__ import annotations

from metasearch.search.adas.parse import OutputFormat

Message = dict[str, str]


RUNTIME_API = """\
These three names already exist in the agent's namespace. Use them; never import, define or subclass them.

Info: a namedtuple Info(name, author, content, iteration_idx).
- taskInfo is Info('task', 'User', <the question>, -1). The question text is taskInfo.content.
- To make your own Info, give all four fields: Info('hint', 'forward', text, -1).

LLMAgentBase(output_fields, agent_name, role='helpful assistant', temperature=0.5)
- output_fields: list of field names the LLM fills in, e.g. ['thinking', 'answer'].
  The field named 'answer' is automatically told the required answer format.
- agent(input_infos, instruction) calls the LLM. input_infos is a LIST of Info
  (taskInfo and/or Infos returned by other agents); instruction is a string.
- It RETURNS A LIST of Info, one per output field, in order. Always unpack it:
      thinking, answer = agent([taskInfo], "Think step by step, then answer.")
  Each item is an Info; answer.content is the text. Pass Infos on to other agents:
      feedback, correct = critic([taskInfo, thinking, answer], "Check the answer.")

run_python(code) runs a Python program (standard library only, a few seconds) and returns what it printed
as a string; if the program fails, the string starts with "Error:". Use it to compute exactly.

forward(self, taskInfo) returns the final answer: an Info (e.g. `answer`) or a string."""

RULES = """\
1. Write exactly one top-level function `def forward(self, taskInfo):`. Small helper functions at the top level are allowed, but every function must have a real body.
2. No classes. Do not define, import or assign Info, LLMAgentBase or AgentSystem.
3. No code outside functions: no example calls, no print, no `if __name__ == "__main__":`.
4. Import standard-library modules inside forward (e.g. `from collections import Counter`). No other packages.
5. Call agents with a list of Info: agent([taskInfo, ...], "instruction"). Never pass a plain string as the first argument.
6. Unpack every agent call (thinking, answer = ...) and return one Info or a string, never the list.
7. Solve every question with LLMAgentBase calls on taskInfo. The example question is only an example: never compute or hard-code its numbers or answer.
8. Use at most {max_calls} LLM calls per task."""

WRONG_EXAMPLES = """\
Wrong: returning the list an agent call returns.
    return cot([taskInfo], "Solve the task.")
Right:
    thinking, answer = cot([taskInfo], "Solve the task.")
    return answer

Wrong: using the returned list as one Info.
    result = cot([taskInfo], "Solve the task.")
    return result.content
Right:
    thinking, answer = cot([taskInfo], "Solve the task.")
    return answer.content

Wrong: an Info with fields missing.
    return Info(content=best)
Right:
    return Info('answer', 'forward', best, -1)    # or simply: return best

Wrong: a string instead of a list of Info.
    thinking, answer = cot(taskInfo.content, "Solve the task.")
Right:
    thinking, answer = cot([taskInfo], "Solve the task.")

Wrong: a helper left empty, or forward inside a class.
    def check_answer(answer):
        pass
    class MyAgent:
        def forward(self, taskInfo): ...
Right: write the step inside the top-level forward with another LLMAgentBase call."""

CHECKLIST = """\
- forward is a top-level function `def forward(self, taskInfo):` (not in a class).
- Every agent call is unpacked: `thinking, answer = agent([...], "...")`.
- Agents get a list of Info as the first argument, never a string.
- forward returns an Info or a string, never a list of Info.
- Every Info you create has all four fields: Info(name, author, content, -1).
- No classes, no definitions of Info or LLMAgentBase, no code outside functions.
- No function body is only `pass` or `...`."""

EXAMPLE_CODE = """\
def forward(self, taskInfo):
    solver = LLMAgentBase(['thinking', 'answer'], 'Solver', temperature=0.7)
    critic = LLMAgentBase(['feedback', 'correct'], 'Critic', role='careful reviewer')
    thinking, answer = solver([taskInfo], "Think step by step, then answer.")
    feedback, correct = critic([taskInfo, thinking, answer], "Is the answer correct? Reply True or False in 'correct'.")
    if str(correct.content).strip().lower() != 'true':
        thinking, answer = solver([taskInfo, thinking, answer, feedback], "Use the feedback to fix the answer.")
    return answer"""


def format_spec(output_format: OutputFormat, *, reflection: bool = False) -> str:
    """How to lay out the reply, with a skeleton."""
    if output_format == "json":
        keys = (
            '"reflection", "thought", "name", "code"' if reflection else '"thought", "name", "code"'
        )
        refl = '"reflection": "<what you checked and changed>", ' if reflection else ""
        return (
            f"Reply with ONE JSON object with exactly the keys {keys}, and nothing else.\n"
            '- "thought": Insights (what the archive teaches), Overall Idea, Implementation (the steps).\n'
            '- "name": a short name for the agent.\n'
            '- "code": the complete Python source as one string (newlines written as \\n), '
            "starting with `def forward(self, taskInfo):`.\n"
            f'Example: {{{refl}"thought": "...", "name": "...", '
            '"code": "def forward(self, taskInfo):\\n    ..."}'
        )
    refl = "## reflection\n<what you checked and changed>\n\n" if reflection else ""
    return (
        "Reply with exactly these sections, in this order, and nothing else:\n\n"
        f"{refl}## thought\n<Insights: what the archive teaches. Overall Idea: your agent. "
        "Implementation: the steps.>\n\n## name\n<a short name for the agent>\n\n"
        "## code\n```python\ndef forward(self, taskInfo):\n    ...\n```"
    )


def debug_format_spec(output_format: OutputFormat) -> str:
    if output_format == "json":
        return (
            'Reply with ONE JSON object with the keys "debug_thought" (what went wrong and '
            'how you fix it) and "code" (the complete corrected source), and nothing else.'
        )
    return (
        "Reply with exactly these sections and nothing else:\n\n## debug_thought\n"
        "<what went wrong and how you fix it>\n\n## code\n```python\n"
        "def forward(self, taskInfo):\n    ...\n```"
    )


def system_message() -> Message:
    return {
        "role": "system",
        "content": (
            "You are an expert designer of LLM agents. You write agents as Python code that "
            "calls language models through a small runtime. You follow the output format "
            "exactly and write complete, working code."
        ),
    }
