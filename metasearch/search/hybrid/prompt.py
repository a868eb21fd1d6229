"""What the meta agent is told about knobs, and the propose prompt with that section in it.

The prompt is the ADAS propose prompt (``search/adas/messages.py``) with one
more section after the runtime: ``tunable`` and an example. The small local
meta model follows examples far better than rules, so the example is a
complete agent whose sample count and temperature are knobs. Told only that it *may*
declare knobs, the 1.5B wrote a vote over a fixed 3 samples (its first local run), so the
section asks for at least one.
"""

from __future__ import annotations

from metasearch.search.adas.context import MetaContext
from metasearch.search.adas.messages import meta_messages
from metasearch.search.adas.parse import OutputFormat
from metasearch.search.adas.text import Message

__all__ = ["KNOBS_SECTION", "hybrid_messages"]

KNOBS_SECTION = """\
# Tunable knobs
This campaign tunes the numbers and choices in your agent for you. When you are unsure of a value
(how many samples to vote over, a temperature, how many refine rounds, which instruction style),
declare it as a knob instead of a plain literal:

    tunable(name, default, low=..., high=...)        # an int or float range (log=True for a log scale)
    tunable(name, default, choices=[...])            # one of a few numbers or strings

tunable is already in the namespace, like LLMAgentBase. It returns the value chosen for this run
(the default until tuned). After your agent is evaluated, several values of each knob are tried
and the best are kept. Arguments must be literals; each knob has its own name; the default must
lie in its range; at most {max_knobs} knobs. Declare at least one: write the number of samples,
a temperature or a choice of your design as tunable(...), as the example does.

Example:
```python
def forward(self, taskInfo):
    from collections import Counter
    n = tunable('samples', 3, low=1, high=7)
    temperature = tunable('temperature', 0.7, low=0.1, high=1.2)
    style = tunable('style', 'step by step', choices=['step by step', 'briefly'])
    solver = LLMAgentBase(['thinking', 'answer'], 'Solver', temperature=temperature)
    answers = []
    for _ in range(n):
        thinking, answer = solver([taskInfo], 'Solve the task ' + style + '.')
        answers.append(str(answer.content).strip())
    return Counter(answers).most_common(1)[0][0]
```"""

_ANCHOR = "# A correct example"


def hybrid_messages(ctx: MetaContext, output_format: OutputFormat, *,
                    max_knobs: int) -> list[Message]:
    """The ADAS propose prompt with the knobs section after the runtime."""
    messages = meta_messages(ctx, output_format)
    user = dict(messages[-1])
    section = KNOBS_SECTION.format(max_knobs=max_knobs)
    content = str(user["content"])
    if _ANCHOR in content:
        content = content.replace(_ANCHOR, section + "\n\n" + _ANCHOR, 1)
    else:  # the ADAS prompt changed shape: still tell the meta agent, before its job
        content = content.replace("# Your job", section + "\n\n# Your job", 1)
    user["content"] = content
    return [*messages[:-1], user]  # type: ignore[list-item]
