"""Reply protocols: how an agent asks the model for its output fields and reads them back.

Three protocols: ``json`` or ``sections`` for a run (``AgentSettings.protocol``),
and any of the three for one agent (``LLMAgentBase(..., protocol=...)``):

* ``json`` -- ADAS's format: the system prompt asks for EXACTLY one JSON object
  with the fields, and the request carries a ``json_schema`` response format
  with every field required (the gateway falls back to ``json_object`` where a
  provider refuses schemas).
* ``sections`` -- one ``## <field>`` markdown section per field. Small local
  models do far better with it (see docs on the local model measurements).
* ``answer_line`` -- free text (the first field), then one ``field: value``
  line per other field: how models write when no format is imposed.

Both parse leniently. A protocol is pure: it builds text and parses text; the
call / repair loop lives in :mod:`metasearch.runtime.agent_base`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from metasearch.errors import ConfigError


def describe_fields(fields: list[str], answer_hint: str) -> dict[str, str]:
    """ADAS-style field descriptions; fields whose name contains "answer" get the suite hint."""
    hint = answer_hint.strip()
    if not hint:
        answer_desc = "Your answer."
    elif hint.endswith("."):
        answer_desc = f"Your answer. {hint}"
    else:
        answer_desc = f"Your answer. Return ONLY {hint}, nothing else."
    return {f: answer_desc if "answer" in f.lower() else f"Your {f}." for f in fields}


def _value_to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _unfence(text: str) -> str:
    """Return the inside of a code fence when the whole text is one fenced block."""
    s = text.strip()
    m = re.fullmatch(r"```[\w+-]*[ \t]*\n?(.*?)\n?[ \t]*```", s, flags=re.DOTALL)
    return m.group(1).strip() if m else s


class JsonProtocol:
    """Reply EXACTLY with one JSON object holding every field (ADAS)."""

    name = "json"

    def format_instruction(self, descriptions: dict[str, str]) -> str:
        body = json.dumps(descriptions, indent=2, ensure_ascii=False)
        return (
            "# Output Format:\n"
            "Reply EXACTLY with the following JSON format.\n"
            f"{body}\n"
            "Fill in every field listed above, and make the whole reply one well-formed "
            "JSON object with nothing before or after it."
        )

    def response_format(self, fields: list[str]) -> dict[str, Any]:
        schema = {
            "type": "object",
            "properties": {f: {"type": "string"} for f in fields},
            "required": list(fields),
            "additionalProperties": False,
        }
        return {"type": "json_schema", "json_schema": {"name": "agent_reply", "schema": schema}}

    def parse(self, text: str, fields: list[str]) -> dict[str, str] | None:
        obj = find_json_object(text)
        if obj is None:
            return None
        lowered = {str(k).strip().lower(): v for k, v in obj.items()}
        out: dict[str, str] = {}
        for f in fields:
            value = obj[f] if f in obj else lowered.get(f.lower())
            if value is not None:
                out[f] = _value_to_text(value)
        return out

    def failure_reason(self) -> str:
        return "it does not contain a well-formed JSON object"


def scan_json_object(text: str, start: int) -> tuple[int | None, str]:
    """From the ``{`` at ``start``, return (end index past the balanced close, closer).

    String-aware: braces inside JSON strings do not count. When the text ends
    before the object closes (a truncated reply), returns ``(None, closer)``
    where ``closer`` is the text that would close what is open.
    """
    stack: list[str] = []
    in_string = escape = False
    for i in range(start, len(text)):
        c = text[i]
        if in_string:
            if escape:
                escape = False
            elif c == "\\":
                escape = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "{[":
            stack.append("}" if c == "{" else "]")
        elif c in "}]":
            if not stack or stack[-1] != c:
                return None, ""
            stack.pop()
            if not stack:
                return i + 1, ""
    return None, ('"' if in_string else "") + "".join(reversed(stack))


def find_json_object(text: str, max_starts: int = 20) -> dict[str, Any] | None:
    """The first JSON object in ``text``: code fences stripped, trailing text tolerated.

    Tries each ``{`` in turn (up to ``max_starts``), matching braces while
    skipping string contents; a reply cut off mid-object is closed and tried too.
    """
    candidates = [m.group(1) for m in re.finditer(r"```[\w+-]*\n(.*?)```", text, re.DOTALL)]
    candidates.append(text)
    for cand in candidates:
        starts = [m.start() for m in re.finditer(r"\{", cand)][:max_starts]
        for start in starts:
            end, closer = scan_json_object(cand, start)
            snippet = cand[start:end] if end is not None else cand[start:].rstrip() + closer
            if end is None and not closer:
                continue
            try:
                obj = json.loads(snippet, strict=False)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


class SectionsProtocol:
    """One ``## <field>`` markdown section per field."""

    name = "sections"

    def format_instruction(self, descriptions: dict[str, str]) -> str:
        parts = [f"## {f}\n<{d}>" for f, d in descriptions.items()]
        return (
            "# Output Format:\n"
            "Reply with exactly these markdown sections, in this order, each starting with "
            "its heading on a line of its own:\n\n"
            + "\n\n".join(parts)
            + "\n\nWrite every section. Put nothing before the first heading and add no other headings."
        )

    def response_format(self, fields: list[str]) -> None:
        return None

    def parse(self, text: str, fields: list[str]) -> dict[str, str] | None:
        return parse_sections(text, fields)

    def failure_reason(self) -> str:
        return "none of the required `## <field>` section headings were found"


# strength: 0 = markdown heading, 1 = bold label, 2 = plain "field:" label
_MARKERS = [
    (0, r"^[ \t]*#{1,6}[ \t]*\**[ \t]*({f})(?!\w)[ \t]*\**[ \t]*:?[ \t]*\**[ \t]*(.*)$"),
    (1, r"^[ \t]*\*\*[ \t]*({f})(?!\w)[ \t]*:?[ \t]*\*\*[ \t]*:?[ \t]*(.*)$"),
    (2, r"^[ \t]*({f})(?!\w)[ \t]*:[ \t]*(.*)$"),
]


def parse_sections(text: str, fields: list[str]) -> dict[str, str] | None:
    """Split a reply into the requested fields by their headings.

    Headings are matched case-insensitively, with any number of ``#``. Where a
    field has no heading, ``**field**:`` and then ``field:`` lines are used.
    For each field the strongest kind of marker wins (the first heading, or
    the last weaker label); a field's text runs to the next chosen marker.
    Returns None when no field is found at all (with one requested field, the
    whole reply is taken as that field instead).
    """
    body = _unfence(text)
    chosen: dict[str, tuple[int, int, int, str]] = {}  # field -> (strength, start, end, rest)
    for f in fields:
        for strength, pattern in _MARKERS:
            regex = re.compile(pattern.replace("{f}", re.escape(f)), re.IGNORECASE | re.MULTILINE)
            hits = list(regex.finditer(body))
            if hits:
                m = hits[0] if strength == 0 else hits[-1]
                chosen[f] = (strength, m.start(), m.end(), m.group(2))
                break
    if not chosen:
        if len(fields) == 1 and body.strip():
            return {fields[0]: body.strip()}
        return None
    order = sorted(chosen.items(), key=lambda kv: kv[1][1])
    out: dict[str, str] = {}
    for i, (f, (_, _start, end, rest)) in enumerate(order):
        stop = order[i + 1][1][1] if i + 1 < len(order) else len(body)
        content = (rest + body[end:stop]).strip()
        if content.endswith("```") and content.count("```") % 2:  # a stray closing fence
            content = content[:-3].rstrip()
        out[f] = _unfence(content)
    return out


class AnswerLineProtocol:
    """Free text for the first field, then a final ``field: value`` line for each other one.

    With a single field the reply is free text ending in that field's line.
    Parsing takes the last such line of each field; a reply written with
    ``## field`` headings instead is read as ``sections``.
    """

    name = "answer_line"

    def format_instruction(self, descriptions: dict[str, str]) -> str:
        fields = list(descriptions)
        lines = fields[1:] or fields
        text = (f"Write your {fields[0]} as plain text first." if len(fields) > 1
                else "Think it through in plain text first.")
        body = "\n".join(f"{f}: <{descriptions[f]}>" for f in lines)
        return (
            "# Output Format:\n"
            f"{text} Then end your reply with exactly these line(s), each starting with the "
            f"name and a colon:\n\n{body}\n\nPut nothing after the last line."
        )

    def response_format(self, fields: list[str]) -> None:
        return None

    def parse(self, text: str, fields: list[str]) -> dict[str, str] | None:
        body = _unfence(text)
        lines = fields[1:] or fields
        out: dict[str, str] = {}
        cut = len(body)
        for f in lines:
            regex = re.compile(rf"^[ \t>*#-]*\**[ \t]*(?:final[ \t]+)?{re.escape(f)}(?!\w)[ \t]*\**[ \t]*[:=]"
                               r"[ \t]*\**[ \t]*(.*)$", re.IGNORECASE | re.MULTILINE)
            hits = list(regex.finditer(body))
            if hits:
                m = hits[-1]
                value = m.group(1).strip().strip("*").strip()
                if not value:  # the value on the next non-empty line
                    value = next((ln.strip() for ln in body[m.end():].splitlines() if ln.strip()), "")
                out[f] = value
                cut = min(cut, m.start())
        if not out:
            return parse_sections(text, fields)
        if len(fields) > 1:
            out[fields[0]] = body[:cut].strip()
        return out

    def failure_reason(self) -> str:
        return "it does not end with the required `field: value` line(s)"


ReplyProtocol = JsonProtocol | SectionsProtocol | AnswerLineProtocol

#: Every protocol an agent may name (``LLMAgentBase(..., protocol=...)``).
PROTOCOLS: dict[str, type[ReplyProtocol]] = {
    "json": JsonProtocol, "sections": SectionsProtocol, "answer_line": AnswerLineProtocol}


def get_protocol(name: str) -> ReplyProtocol:
    if name in PROTOCOLS:
        return PROTOCOLS[name]()
    raise ConfigError(
        f"Unknown reply protocol {name!r}: the runtime expects one of "
        f"{', '.join(repr(p) for p in PROTOCOLS)} ('auto' must be resolved before the agent runs)."
    )
