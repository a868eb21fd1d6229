"""The meta agent's loops: propose -> reflexion -> normalise -> validate -> repair, and debug.

:class:`Proposer` talks to the model only through the injected ``complete``
function (the gateway's ``complete`` in production, a plain function in
tests) and checks code only through the injected ``validate`` and
``is_duplicate``, so it owns no gateway, validator or archive.

Each call is a short, bounded conversation: the base prompt, the latest
proposal as the assistant turn, and one follow-up (a reflexion question, a
repair request with findings, or debug feedback). The prompt never grows with
the number of rounds, which keeps small context windows workable.

Requests are deterministic: the same generation, slot and round always send
the same messages with the same ``sample_index``, so a resumed campaign is
served from the cache. Two slots of one generation get different sample
indices, so they are sampled apart even when their prompts are equal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from metasearch.candidate.normalize import normalize_proposal
from metasearch.llm.types import LLMRequest, LLMResponse
from metasearch.search.adas.context import MetaContext, TaskBrief
from metasearch.search.adas.messages import (
    FindingLike,
    debug_base_messages,
    debug_prompt,
    meta_messages,
    proposal_turn,
    reflexion_prompt,
    repair_prompt,
)
from metasearch.search.adas.parse import (
    Draft,
    OutputFormat,
    ProposalParseError,
    parse_proposal,
)
from metasearch.search.adas.text import Message
from metasearch.search.base import STAGES, Proposal, ProposalOutcome
from metasearch.search.feedback import DebugFeedback

Status = Literal["valid", "invalid"]
Failure = Literal["unparseable", "invalid", "duplicate"]

#: Validator finding codes that repeat a normalisation finding on the same line.
_SAME_AS = {"bad-signature": "forward-signature"}

#: ``sample_index`` of a request = generation * GENERATION_STRIDE + slot.
GENERATION_STRIDE = 1000


@dataclass(frozen=True)
class ProposerResult:
    """What one propose (or debug) run produced, with its bookkeeping.

    ``proposal`` holds the normalised code when ``status == "valid"``; when
    invalid it is the last proposal that parsed (or None), for the record.
    ``stages`` are the yield stages reached, in order: ``parsed`` (some reply
    parsed), ``normalised`` (normalisation left no findings), ``valid``
    (validation clean and not a duplicate). ``first_try_stages`` is the same
    for the first proposal before any repair.
    """

    status: Status
    proposal: Draft | None
    reason: str = ""
    failure: Failure | None = None
    stages: tuple[str, ...] = ()
    first_try_stages: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()
    transcript: tuple[dict[str, Any], ...] = ()
    calls: int = 0
    repairs: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "valid"

    def transcript_markdown(self) -> str:
        """The conversation as markdown (the MLflow artifact)."""
        out = []
        for m in self.transcript:
            out.append(f"### {m.get('stage', '')} · {m['role']}\n\n{m['content']}\n")
        return "\n".join(out)

    def to_outcome(self, parents: tuple[str, ...] = ()) -> ProposalOutcome:
        """The strategy-neutral outcome the campaign loop archives."""
        d = self.proposal
        proposal = None if d is None else Proposal(
            code=d.code, name=d.name, thought=d.thought, parents=parents)
        return ProposalOutcome(
            status=self.status, proposal=proposal, reason=self.reason, failure=self.failure,
            stages=self.stages, changes=self.changes, transcript=self.transcript_markdown(),
        )


@dataclass
class _Run:
    """Mutable bookkeeping of one propose/debug run."""

    candidate: str | None
    key: int
    is_duplicate: Callable[[str], bool | str] | None = None  # this run's view of the archive
    transcript: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    stages: list[str] = field(default_factory=list)
    first_try: tuple[str, ...] | None = None

    def reach(self, stage: str) -> None:
        if stage not in self.stages:
            self.stages.append(stage)


@dataclass
class _Check:
    code: str
    changes: list[str]
    findings: list[FindingLike]
    duplicate: str  # why it repeats an archived agent ("" = it does not)
    normalised_ok: bool

    @property
    def ok(self) -> bool:
        return not self.findings and not self.duplicate


class Proposer:
    """Turn the meta agent's replies into valid proposals, or into reasons why not."""

    def __init__(
        self,
        *,
        complete: Callable[[LLMRequest], LLMResponse],
        model: str,
        temperature: float = 0.8,
        max_tokens: int | None = 2048,
        output_format: OutputFormat = "sections",
        reflexion_rounds: int = 1,
        repair_rounds: int = 2,
        validate: Callable[[str], Sequence[FindingLike]] = lambda code: [],
        is_duplicate: Callable[[str], bool | str] = lambda code: False,
        json_mode: bool = True,
    ) -> None:
        if output_format not in ("sections", "json"):
            raise ValueError(f"output_format must be 'sections' or 'json', not {output_format!r}")
        self._complete = complete
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.output_format: OutputFormat = output_format
        self.reflexion_rounds = max(0, reflexion_rounds)
        self.repair_rounds = max(0, repair_rounds)
        self._validate = validate
        self._is_duplicate = is_duplicate
        self._response_format = (
            {"type": "json_object"} if output_format == "json" and json_mode else None
        )

    # ------------------------------------------------------------- public

    def propose(
        self,
        context: MetaContext,
        *,
        generation: int,
        sample_index: int = 0,
        candidate: str | None = None,
        is_duplicate: Callable[[str], bool | str] | None = None,
    ) -> ProposerResult:
        """Ask for a new agent, reflect on it, then normalise, validate and repair it.

        ``sample_index`` is the slot within the generation; ``is_duplicate``
        (default: the one given at construction) checks against what this
        slot may see. Gateway errors (``BudgetExceeded``, endpoint errors)
        propagate: the caller stops.
        """
        return self.propose_from(
            meta_messages(context, self.output_format), generation=generation,
            sample_index=sample_index, candidate=candidate, is_duplicate=is_duplicate,
            idea=context.idea)

    def propose_from(
        self,
        base: list[Message],
        *,
        generation: int,
        sample_index: int = 0,
        candidate: str | None = None,
        is_duplicate: Callable[[str], bool | str] | None = None,
        idea: str = "",
    ) -> ProposerResult:
        """:meth:`propose` from a prompt the caller built (an edit strategy's own request).

        The same loop: the reply is parsed, reflected on, normalised, validated
        and repaired, each follow-up appended to ``base``.
        """
        run = _Run(candidate, generation * GENERATION_STRIDE + sample_index, is_duplicate)
        self._log(run, "propose", base)
        reply = self._ask(run, "propose", base, log=False)
        repairs_left = self.repair_rounds
        proposal, error = self._parse(reply, "proposal")
        if proposal is None:
            run.first_try = ()
        while proposal is None and repairs_left > 0:
            repairs_left -= 1
            nr = self.repair_rounds - repairs_left
            follow = repair_prompt(output_format=self.output_format, parse_error=error)
            reply = self._ask(run, f"repair-{nr}", base + [_raw_turn(reply), _user(follow)])
            proposal, error = self._parse(reply, "proposal")
        if proposal is None:
            return self._finish(run, None, "unparseable", error, ())
        run.reach("parsed")

        for r in range(1, self.reflexion_rounds + 1):
            follow = reflexion_prompt(r, self.output_format)
            reply = self._ask(
                run,
                f"reflexion-{r}",
                base + [proposal_turn(proposal, self.output_format), _user(follow)],
            )
            revised, err = self._parse(
                reply, "proposal", fallback_name=proposal.name, fallback_thought=proposal.thought
            )
            if revised is None:
                self._note(
                    run, f"reflexion-{r}", f"reply not usable ({err}); kept the previous proposal"
                )
            else:
                proposal = revised
        return self._check_and_repair(run, base, proposal, repairs_left, "proposal", idea=idea)

    def debug(
        self,
        proposal: Draft,
        feedback: DebugFeedback,
        *,
        task: TaskBrief,
        generation: int,
        sample_index: int = 0,
        debug_round: int = 1,
        candidate: str | None = None,
        is_duplicate: Callable[[str], bool | str] | None = None,
    ) -> ProposerResult:
        """Hand evaluation feedback back to the meta agent and get fixed code.

        The reply (``debug_thought`` + ``code``) keeps the proposal's name and
        thought unless it gives new ones; it then goes through the same
        normalise / validate / repair loop as a proposal.
        """
        run = _Run(candidate, generation * GENERATION_STRIDE + sample_index, is_duplicate)
        base = debug_base_messages(task, self.output_format)
        messages = base + [
            proposal_turn(proposal, self.output_format),
            _user(debug_prompt(feedback, self.output_format)),
        ]
        self._log(run, f"debug-{debug_round}", messages)
        reply = self._ask(run, f"debug-{debug_round}", messages, log=False)
        fixed, error = self._parse(
            reply, "debug", fallback_name=proposal.name, fallback_thought=proposal.thought
        )
        repairs_left = self.repair_rounds
        if fixed is None:
            run.first_try = ()
        while fixed is None and repairs_left > 0:
            repairs_left -= 1
            nr = self.repair_rounds - repairs_left
            follow = repair_prompt(output_format=self.output_format, parse_error=error)
            reply = self._ask(
                run,
                f"debug-{debug_round}-repair-{nr}",
                messages + [_raw_turn(reply), _user(follow)],
            )
            fixed, error = self._parse(
                reply, "debug", fallback_name=proposal.name, fallback_thought=proposal.thought
            )
        if fixed is None:
            return self._finish(run, None, "unparseable", error, ())
        run.reach("parsed")
        return self._check_and_repair(run, base, fixed, repairs_left, f"debug-{debug_round}")

    # ---------------------------------------------------------- the loop

    def _check_and_repair(
        self,
        run: _Run,
        base: list[Message],
        proposal: Draft,
        repairs_left: int,
        label: str,
        *,
        idea: str = "",
    ) -> ProposerResult:
        nr = self.repair_rounds - repairs_left
        while True:
            check = self._check(proposal.code, run.is_duplicate or self._is_duplicate)
            self._note(run, f"{label}-check", _describe_check(check))
            if run.first_try is None:
                run.first_try = (
                    tuple(run.stages)
                    + (("normalised",) if check.normalised_ok else ())
                    + (("valid",) if check.ok else ())
                )
            if check.normalised_ok:
                run.reach("normalised")
            if check.ok:
                run.reach("valid")
                return self._finish(run, proposal.with_code(check.code), None, "", check.changes)
            if repairs_left <= 0:
                failure: Failure = "invalid" if check.findings else "duplicate"
                return self._finish(
                    run, proposal.with_code(check.code), failure, _reason(check), check.changes
                )
            repairs_left -= 1
            nr += 1
            follow = repair_prompt(
                output_format=self.output_format,
                code=check.code,
                findings=check.findings,
                changes=check.changes,
                duplicate=check.duplicate,
                idea=idea,
            )
            stage = f"repair-{nr}" if label == "proposal" else f"{label}-repair-{nr}"
            reply = self._ask(
                run, stage, base + [proposal_turn(proposal, self.output_format), _user(follow)]
            )
            repaired, err = self._parse(
                reply, "proposal", fallback_name=proposal.name, fallback_thought=proposal.thought
            )
            if repaired is None:
                self._note(run, stage, f"reply not usable ({err}); kept the previous proposal")
            else:
                proposal = repaired

    def _check(self, code: str, is_duplicate: Callable[[str], bool | str]) -> _Check:
        norm = normalize_proposal(code)
        findings: list[FindingLike] = list(norm.findings)
        if not any(f.code == "syntax-error" for f in norm.findings):
            seen = {(f.line, _SAME_AS.get(f.code, f.code)) for f in findings}
            for f in self._validate(norm.code):
                key = (f.line, _SAME_AS.get(f.code, f.code))
                if getattr(f, "severity", "error") == "warning" or key in seen:
                    continue
                findings.append(f)
        dup = False if findings else is_duplicate(norm.code)
        duplicate = dup if isinstance(dup, str) else (
            "identical to an agent already in the archive" if dup else "")
        return _Check(norm.code, list(norm.changes), findings, duplicate, norm.ok)

    # ------------------------------------------------------------ calls

    def _ask(
        self, run: _Run, stage: str, messages: list[Message], *, log: bool = True
    ) -> LLMResponse:
        if log:
            self._log(run, stage, messages[-1:])
        request = LLMRequest(
            model=self.model,
            messages=tuple(dict(m) for m in messages),
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            response_format=self._response_format,
            sample_index=run.key,
            role="meta",
            candidate=run.candidate,
        )
        response = self._complete(request)
        run.calls += 1
        run.prompt_tokens += response.prompt_tokens
        run.completion_tokens += response.completion_tokens
        run.cost_usd += response.cost_usd
        entry: dict[str, Any] = {"stage": stage, "role": "assistant", "content": response.text}
        if response.truncated:
            entry["truncated"] = True
        if response.cached:
            entry["cached"] = True
        run.transcript.append(entry)
        return response

    def _parse(
        self,
        reply: LLMResponse,
        kind: Literal["proposal", "debug"],
        *,
        fallback_name: str = "",
        fallback_thought: str = "",
    ) -> tuple[Draft | None, str]:
        try:
            return (
                parse_proposal(
                    reply.text,
                    expected=self.output_format,
                    kind=kind,
                    truncated=reply.truncated,
                    fallback_name=fallback_name,
                    fallback_thought=fallback_thought,
                ),
                "",
            )
        except ProposalParseError as e:
            return None, e.reason

    @staticmethod
    def _log(run: _Run, stage: str, messages: Sequence[Message]) -> None:
        for m in messages:
            run.transcript.append({"stage": stage, "role": m["role"], "content": m["content"]})

    @staticmethod
    def _note(run: _Run, stage: str, text: str) -> None:
        run.transcript.append({"stage": stage, "role": "metasearch", "content": text})

    def _finish(
        self,
        run: _Run,
        proposal: Draft | None,
        failure: Failure | None,
        reason: str,
        changes: Sequence[str],
    ) -> ProposerResult:
        if failure is not None:
            reason = f"{failure}: {reason}"
            self._note(run, "result", reason)
        else:
            self._note(run, "result", "valid")
        repairs = sum(
            1 for m in run.transcript if m["role"] == "assistant" and "repair" in m["stage"]
        )
        return ProposerResult(
            status="invalid" if failure else "valid",
            proposal=proposal,
            reason=reason,
            failure=failure,
            stages=tuple(run.stages),
            first_try_stages=run.first_try if run.first_try is not None else tuple(run.stages),
            changes=tuple(changes),
            transcript=tuple(run.transcript),
            calls=run.calls,
            repairs=repairs,
            prompt_tokens=run.prompt_tokens,
            completion_tokens=run.completion_tokens,
            cost_usd=run.cost_usd,
        )


def _user(text: str) -> Message:
    return {"role": "user", "content": text}


def _raw_turn(reply: LLMResponse) -> Message:
    return {"role": "assistant", "content": reply.text}


def _describe_check(check: _Check) -> str:
    parts = []
    if check.changes:
        parts.append("normalised: " + "; ".join(check.changes))
    if check.findings:
        parts.append(
            "findings: "
            + "; ".join(f"line {f.line} [{f.code}] {f.message}" for f in check.findings)
        )
    if check.duplicate:
        parts.append(f"duplicate: {check.duplicate}")
    return " | ".join(parts) or "clean"


def _reason(check: _Check) -> str:
    if check.findings:
        f = check.findings[0]
        more = f" (and {len(check.findings) - 1} more)" if len(check.findings) > 1 else ""
        return f"line {f.line} [{f.code}] {f.message}{more}"
    return f"the code is {check.duplicate}"


def yield_summary(outcomes: Sequence[ProposerResult]) -> dict[str, int]:
    """How many outcomes reached each stage (the meta agent's yield)."""
    out = {"proposals": len(outcomes)}
    for stage in STAGES:
        out[stage] = sum(1 for o in outcomes if stage in o.stages)
        out[f"{stage}_first_try"] = sum(1 for o in outcomes if stage in o.first_try_stages)
    return out
