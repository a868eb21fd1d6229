"""Parse the meta agent's reply into a :class:`Draft`.

Two reply formats are accepted, whatever was asked for, because small models
drift between them:

- **sections**: ``## thought`` / ``## name`` / ``## code`` (the code usually in
  a ```python fence); a reflexion reply may add ``## reflection``, a debug reply
  uses ``## debug_thought`` and ``## code``;
- **json**: one object with ``thought``, ``name``, ``code`` (or
  ``debug_thought`` and ``code``), possibly wrapped in a code fence or in
  prose. Parsing is lenient: the first balanced object holding a ``code`` key
  wins, raw newlines inside strings are allowed and invalid escapes repaired.

As a last resort a reply that is only a fenced block defining ``forward`` is
accepted with an empty thought. Anything else raises
:class:`ProposalParseError`, whose ``reason`` is written to be handed back to
the meta agent as is.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from metasearch.runtime.protocols import scan_json_object

OutputFormat = Literal["sections", "json"]
Kind = Literal["proposal", "debug"]

_KEYS = ("thought", "name", "code", "reflection", "debug_thought")
_HEADER = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]*|\*\*[ \t]*)"
    r"(thought|name|code|reflection|debug[_ ]?thought)"
    r"[ \t]*(?:\*\*)?[ \t]*(?::[ \t]*(?:\*\*)?[ \t]*(.*?))?[ \t]*(?:\*\*)?[ \t]*$",
    re.IGNORECASE,
)
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+-]*)[ \t]*$")
_INVALID_ESCAPE = re.compile(r'(?<!\\)((?:\\\\)*)\\(?=[^"\\/bfnrtu])')


@dataclass(frozen=True)
class Draft:
    """One agent as the meta agent wrote it (``code`` is the raw source), before checks."""

    thought: str
    name: str
    code: str
    reflection: str = ""
    format: str = "sections"

    def with_code(self, code: str) -> Draft:
        return Draft(self.thought, self.name, code, self.reflection, self.format)


class ProposalParseError(ValueError):
    """The reply held no usable agent; ``reason`` tells the meta agent what to fix."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def parse_proposal(
    text: str,
    *,
    expected: OutputFormat = "sections",
    kind: Kind = "proposal",
    truncated: bool = False,
    fallback_name: str = "",
    fallback_thought: str = "",
) -> Draft:
    """Parse a proposal (``kind="proposal"``) or a debug reply (``kind="debug"``).

    ``expected`` only shapes the wording of the error; both formats are read.
    For a debug reply, ``debug_thought`` becomes the reflection, and a missing
    name or thought falls back to ``fallback_name`` / ``fallback_thought``.
    ``truncated`` (the reply hit ``max_tokens``) is mentioned in the reason.
    """
    fields, fmt = _extract(text or "")
    if fields is None:
        raise ProposalParseError(_reason_unreadable(text or "", expected, kind, truncated))
    code = _clean_code(fields.get("code", ""))
    if not code.strip():
        raise ProposalParseError(_reason_no_code(expected, kind, truncated, fmt))
    if kind == "debug":
        reflection = fields.get("debug_thought", "") or fields.get("reflection", "")
    else:
        reflection = fields.get("reflection", "")
    thought = fields.get("thought", "").strip() or fallback_thought
    name = _clean_name(fields.get("name", "")) or fallback_name or _name_from_thought(thought)
    return Draft(
        thought=thought, name=name, code=code, reflection=reflection.strip(), format=fmt
    )


def render_proposal(proposal: Draft, output_format: OutputFormat) -> str:
    """The proposal written back in the reply format (used as the assistant turn)."""
    if output_format == "json":
        return json.dumps(
            {"thought": proposal.thought, "name": proposal.name, "code": proposal.code},
            ensure_ascii=False,
        )
    return (
        f"## thought\n{proposal.thought}\n\n## name\n{proposal.name}\n\n"
        f"## code\n```python\n{proposal.code.rstrip()}\n```"
    )


# ---------------------------------------------------------------- extraction


def _extract(text: str) -> tuple[dict[str, str] | None, str]:
    sections = _parse_sections(text)
    if sections is not None and sections.get("code", "").strip():
        return sections, "sections"
    obj = _parse_json(text)
    if obj is not None:
        return obj, "json"
    if sections is not None:
        fenced = _fenced_blocks(text)
        forward = [b for b in fenced if "def forward" in b]
        if forward and not sections.get("code", "").strip():
            sections["code"] = "\n\n".join(forward)
        return sections, "sections"
    blocks = [b for b in _fenced_blocks(text) if "def forward" in b]
    if blocks:
        return {"code": "\n\n".join(blocks)}, "code-only"
    if re.search(r"^def forward\s*\(", text, re.MULTILINE) and "```" not in text:
        return {"code": text}, "code-only"
    return None, ""


def _parse_sections(text: str) -> dict[str, str] | None:
    """Split on headers outside code fences; None when there is no header."""
    found: dict[str, list[str]] = {}
    current: str | None = None
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            m = _HEADER.match(line)
            if m:
                key = m.group(1).lower().replace(" ", "_")
                if key == "debugthought":
                    key = "debug_thought"
                current = key
                found[current] = []
                if m.group(2):
                    found[current].append(m.group(2))
                continue
        if current is not None:
            found[current].append(line)
    if not found:
        return None
    out = {k: "\n".join(v).strip() for k, v in found.items()}
    if "code" in out:
        blocks = _fenced_blocks(out["code"])
        if blocks:
            out["code"] = "\n\n".join(blocks)
    return out


def _fenced_blocks(text: str) -> list[str]:
    """Contents of fenced blocks (non-python languages skipped), in order."""
    blocks: list[str] = []
    current: list[str] | None = None
    lang = ""
    for line in text.splitlines():
        m = _FENCE.match(line)
        if m and current is None:
            current, lang = [], m.group(2).lower()
            continue
        if m and current is not None and not m.group(2):
            if lang in ("", "python", "py", "python3"):
                blocks.append("\n".join(current))
            current = None
            continue
        if current is not None:
            current.append(line)
    if current is not None and lang in ("", "python", "py", "python3"):
        blocks.append("\n".join(current))  # unterminated fence (truncated reply)
    return [b for b in blocks if b.strip()]


def _parse_json(text: str) -> dict[str, str] | None:
    for candidate in _balanced_objects(text):
        obj = _loads_lenient(candidate)
        if isinstance(obj, dict) and any(k in obj for k in ("code", "debug_thought")):
            return {k: _as_text(obj.get(k, "")) for k in _KEYS if k in obj}
    return None


def _balanced_objects(text: str) -> list[str]:
    """Every top-level ``{...}`` span; braces inside JSON strings don't count."""
    spans: list[str] = []
    i = text.find("{")
    while i != -1:
        end, _ = scan_json_object(text, i)
        if end is None:
            i = text.find("{", i + 1)
            continue
        spans.append(text[i:end])
        i = text.find("{", end)
    return spans


def _loads_lenient(s: str) -> Any:
    for attempt in (s, _INVALID_ESCAPE.sub(r"\1\\\\", s)):
        try:
            return json.loads(attempt, strict=False)
        except json.JSONDecodeError:
            continue
    return None


def _as_text(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return "" if value is None else str(value)


def _clean_code(code: str) -> str:
    code = code.strip("\n")
    blocks = _fenced_blocks(code) if "```" in code or "~~~" in code else []
    if blocks:
        code = "\n\n".join(blocks)
    return code.rstrip() + "\n" if code.strip() else ""


def _clean_name(name: str) -> str:
    name = name.strip().splitlines()[0] if name.strip() else ""
    return name.strip(" *#`\"'")[:80]


def _name_from_thought(thought: str) -> str:
    words = re.findall(r"[A-Za-z][A-Za-z-]+", thought)[:4]
    return " ".join(words) if words else "Unnamed agent"


# ------------------------------------------------------------------ reasons


def format_instructions_short(expected: OutputFormat, kind: Kind) -> str:
    if kind == "debug":
        if expected == "json":
            return 'one JSON object with the keys "debug_thought" and "code"'
        return "two sections, `## debug_thought` and `## code` (the code in a ```python fence)"
    if expected == "json":
        return 'one JSON object with the keys "thought", "name" and "code"'
    return "three sections, `## thought`, `## name` and `## code` (the code in a ```python fence)"


def _reason_unreadable(text: str, expected: OutputFormat, kind: Kind, truncated: bool) -> str:
    what = "empty" if not text.strip() else "not in the requested format"
    reason = (
        f"Your reply was {what}: it had no code section and no JSON object with a "
        f'"code" key. Reply with {format_instructions_short(expected, kind)}, and nothing else.'
    )
    return reason + (_TRUNCATED if truncated else "")


def _reason_no_code(expected: OutputFormat, kind: Kind, truncated: bool, fmt: str) -> str:
    where = "the `## code` section" if fmt == "sections" else 'the "code" value'
    reason = (
        f"Your reply had no code: {where} was missing or empty. Write the complete "
        f"`def forward(self, taskInfo):` function there. Reply with "
        f"{format_instructions_short(expected, kind)}."
    )
    return reason + (_TRUNCATED if truncated else "")


_TRUNCATED = (
    " Your reply was also cut off because it was too long; keep the thought short "
    "and the code compact."
)
