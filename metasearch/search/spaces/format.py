"""The search-space TOML format as pydantic models: what a file may say, checked field by field.

Every *knob* of a space (a block choice, a count, a role's temperature ...)
is written either as a fixed value or as a parameter table::

    temperature = 0.7                                              # fixed
    temperature = { kind = "float", low = 0.1, high = 1.0, step = 0.1 }
    max_tokens = { kind = "int", low = 128, high = 1024, log = true }
    protocol = { kind = "categorical", choices = ["campaign", "answer_line"] }

and any parameter table may add ``when = { "blocks.ensemble" = "debate" }``
(or a list of values): the parameter exists only when those other parameters
have those values. Parameters are named by their dotted path in the file.
The conditions implied by the blocks (a judge's knobs exist only in a
debate) are added by :mod:`.space`; cross-field checks live there too.

Tables are ``extra="forbid"`` and strict, like the campaign config, so a
misspelt field is an error that suggests the right name.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from metasearch.runtime.protocols import PROTOCOLS
from metasearch.search.spaces.blocks import (
    ANSWERERS,
    ENSEMBLES,
    MAX_REFINE_ROUNDS,
    ROLE_ASSIGNMENTS,
)

__all__ = [
    "PROTOCOL_CHOICES",
    "CategoricalParam",
    "FloatParam",
    "IntParam",
    "Knob",
    "RoleTable",
    "Scalar",
    "SpaceFile",
    "WarmStart",
]

Scalar = bool | int | float | str
#: A role's reply protocol: one the runtime knows, or "campaign" (the run's own: no keyword).
PROTOCOL_CHOICES = ("campaign", *PROTOCOLS)
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Param(_Table):
    when: dict[str, Scalar | list[Scalar]] = Field(
        default_factory=dict,
        description='a table of other parameters and the value (or list of values) they must '
        'have for this one to exist, e.g. when = { "blocks.ensemble" = "debate" }')


class IntParam(_Param):
    kind: Literal["int"]
    low: int
    high: int
    step: int = Field(1, ge=1, description="an integer >= 1")
    log: bool = Field(False, description="true or false: sample on a log scale")

    @model_validator(mode="after")
    def _range(self) -> IntParam:
        if self.low > self.high:
            raise ValueError(f"low = {self.low} is above high = {self.high}")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("a log-scale int needs low >= 1 and no step")
        if (self.high - self.low) % self.step:
            raise ValueError(f"high - low = {self.high - self.low} is not a multiple of "
                             f"step = {self.step}")
        return self


class FloatParam(_Param):
    kind: Literal["float"]
    low: float
    high: float
    step: float | None = Field(None, gt=0, description="a number > 0 (omit for continuous)")
    log: bool = Field(False, description="true or false: sample on a log scale")

    @model_validator(mode="after")
    def _range(self) -> FloatParam:
        if self.low > self.high:
            raise ValueError(f"low = {self.low} is above high = {self.high}")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("a log-scale float needs low > 0 and no step")
        return self


class CategoricalParam(_Param):
    kind: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=1, description="a non-empty list of values")

    @model_validator(mode="after")
    def _distinct(self) -> CategoricalParam:
        if len({(type(c), c) for c in self.choices}) != len(self.choices):
            raise ValueError("a choice is listed twice")
        return self


def _knob_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        kind = value.get("kind")
        return kind if kind in ("int", "float", "categorical") else None
    return "fixed"


Knob = Annotated[
    Annotated[Scalar, Tag("fixed")] | Annotated[IntParam, Tag("int")]
    | Annotated[FloatParam, Tag("float")] | Annotated[CategoricalParam, Tag("categorical")],
    Discriminator(
        _knob_tag, custom_error_type="knob",
        custom_error_message='a value, or a table with kind = "int", "float" or "categorical"'),
]


def check_knob(knob: Any, *, what: str, number: tuple[float, float] | None = None,
               integer: bool = False, words: Collection[str] | None = None) -> Any:
    """Raise ValueError unless every value ``knob`` can take is a valid ``what``."""
    if knob is None:
        return knob
    if isinstance(knob, IntParam | FloatParam):
        if words is not None or integer != isinstance(knob, IntParam):
            raise ValueError(f"{what} cannot be a {knob.kind} parameter")
        values: list[Any] = [knob.low, knob.high]
    elif isinstance(knob, CategoricalParam):
        values = list(knob.choices)
    else:
        values = [knob]
    for v in values:
        if number is not None:
            lo, hi = number
            numeric = isinstance(v, int | float) and not isinstance(v, bool)
            if not numeric or (integer and not isinstance(v, int)) or not lo <= v <= hi:
                kind = "an integer" if integer else "a number"
                raise ValueError(f"{what} is {kind} from {lo:g} to {hi:g}; {v!r} is not")
        elif not isinstance(v, str) or (words and v not in words):
            allowed = f"one of {', '.join(map(repr, words))}" if words else "a name"
            raise ValueError(f"{what} is {allowed}; {v!r} is not")
    return knob


_KNOB = 'a value, or a table with kind = "int", "float" or "categorical"'


class SpaceInfo(_Table):
    name: str = Field(pattern=_NAME, description="a short name such as reasoning")
    description: str = Field("", description="a sentence saying what the space explores")


class BlocksTable(_Table):
    answerer: Knob = Field("chain_of_thought", description=f"{', '.join(ANSWERERS)} ({_KNOB})")
    ensemble: Knob = Field("none", description=f"{', '.join(ENSEMBLES)} ({_KNOB})")
    refine_rounds: Knob = Field(0, description=f"0 to {MAX_REFINE_ROUNDS} ({_KNOB})")
    role_assignment: Knob = Field(
        "none", description=f"{', '.join(ROLE_ASSIGNMENTS)} ({_KNOB})")

    @field_validator("answerer")
    @classmethod
    def _answerer(cls, v: Any) -> Any:
        return check_knob(v, what="an answerer", words=ANSWERERS)

    @field_validator("ensemble")
    @classmethod
    def _ensemble(cls, v: Any) -> Any:
        return check_knob(v, what="an ensemble", words=ENSEMBLES)

    @field_validator("refine_rounds")
    @classmethod
    def _rounds(cls, v: Any) -> Any:
        return check_knob(v, what="refine_rounds", number=(0, MAX_REFINE_ROUNDS), integer=True)

    @field_validator("role_assignment")
    @classmethod
    def _roles(cls, v: Any) -> Any:
        return check_knob(v, what="a role assignment", words=ROLE_ASSIGNMENTS)


class SelfConsistencyTable(_Table):
    samples: Knob = Field(5, description=f"the number of samples voted on, 2 to 15 ({_KNOB})")

    @field_validator("samples")
    @classmethod
    def _samples(cls, v: Any) -> Any:
        return check_knob(v, what="samples", number=(2, 15), integer=True)


class DebateTable(_Table):
    agents: Knob = Field(3, description=f"debaters, 2 to the number of personas ({_KNOB})")
    rounds: Knob = Field(2, description=f"debate rounds, 1 to 4 ({_KNOB})")
    personas: list[str] = Field(
        ["careful analyst", "skeptical critic who double-checks every step",
         "creative problem solver"],
        min_length=2, max_length=8, description="2 to 8 roles, one per debater, in order")
    rebuttal: str = Field(
        "Consider the reasoning and answers of the other debaters above. Point out any "
        "mistakes, update your own reasoning if they convinced you, and give your answer.",
        min_length=1, description="the instruction of rounds after the first")

    @field_validator("agents")
    @classmethod
    def _agents(cls, v: Any) -> Any:
        return check_knob(v, what="agents", number=(2, 8), integer=True)

    @field_validator("rounds")
    @classmethod
    def _rounds(cls, v: Any) -> Any:
        return check_knob(v, what="rounds", number=(1, 4), integer=True)


class RouterTable(_Table):
    experts: list[str] = Field(
        ["Math Professor", "Grade School Teacher", "Careful Accountant", "Puzzle Solver"],
        min_length=2, max_length=10, description="2 to 10 expert roles the router chooses from")


class RoleTable(_Table):
    """One role's knobs; an omitted knob keeps the role's default (``blocks.ROLES``)."""

    temperature: Knob | None = Field(None, description=f"a number from 0 to 2 ({_KNOB})")
    max_tokens: Knob | None = Field(
        None, description=f"an integer from 16 to 100000, at most the run's limit ({_KNOB})")
    protocol: Knob | None = Field(
        None, description=f"{', '.join(PROTOCOL_CHOICES)} ({_KNOB})")
    instruction: Knob | None = Field(
        None, description="the name of an instruction variant: default, or a key of "
        f"instructions ({_KNOB})")
    instructions: dict[str, str] = Field(
        default_factory=dict, description="a table of instruction variants, name = text")
    model: Knob | None = Field(
        None, description="campaign (the run's task model: no keyword) or a model string such "
        "as local/qwen2.5-coder-1.5b, which the campaign must allow in "
        f"models.task.alternatives ({_KNOB})")

    @field_validator("temperature")
    @classmethod
    def _temperature(cls, v: Any) -> Any:
        return check_knob(v, what="a temperature", number=(0, 2))

    @field_validator("max_tokens")
    @classmethod
    def _max_tokens(cls, v: Any) -> Any:
        return check_knob(v, what="max_tokens", number=(16, 100_000), integer=True)

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, v: Any) -> Any:
        return check_knob(v, what="a protocol", words=PROTOCOL_CHOICES)

    @field_validator("instruction")
    @classmethod
    def _instruction(cls, v: Any) -> Any:
        return check_knob(v, what="an instruction variant", words=())

    @field_validator("model")
    @classmethod
    def _model(cls, v: Any) -> Any:
        check_knob(v, what="a model", words=())
        values = v.choices if isinstance(v, CategoricalParam) else [v]
        bad = [m for m in values if m != "campaign" and "/" not in str(m).strip("/")]
        if bad:
            raise ValueError(f"a model is 'campaign' or <provider>/<model> such as "
                             f"local/qwen2.5-coder-1.5b; {bad[0]!r} is not")
        return v

    @field_validator("instructions")
    @classmethod
    def _texts(cls, v: dict[str, str]) -> dict[str, str]:
        empty = [k for k, text in v.items() if not text.strip()]
        if empty:
            raise ValueError(f"the instruction variant {empty[0]!r} is empty")
        return v


class RolesTable(_Table):
    solver: RoleTable = Field(default_factory=RoleTable, description="the [roles.solver] table")
    principle: RoleTable = Field(default_factory=RoleTable, description="[roles.principle]")
    judge: RoleTable = Field(default_factory=RoleTable, description="[roles.judge]")
    critic: RoleTable = Field(default_factory=RoleTable, description="[roles.critic]")
    refiner: RoleTable = Field(default_factory=RoleTable, description="[roles.refiner]")
    coder: RoleTable = Field(default_factory=RoleTable, description="[roles.coder]")
    router: RoleTable = Field(default_factory=RoleTable, description="[roles.router]")


class WarmStart(_Table):
    """One ``[[warm_start]]`` entry: a named configuration a study evaluates first."""

    name: str = Field(min_length=1, pattern=_NAME,
                      description="a name such as chain_of_thought (the seed it reproduces)")
    params: dict[str, Scalar] = Field(
        min_length=1, description='a table of searched parameters and their values, e.g. '
        '{ "blocks.answerer" = "step_back" }; the ones left out are sampled')


class SpaceFile(_Table):
    """A whole space file. Only ``[space]`` is required; every knob has a default."""

    space: SpaceInfo = Field(description="the [space] table: name and description")
    blocks: BlocksTable = Field(default_factory=BlocksTable, description="the [blocks] table")
    self_consistency: SelfConsistencyTable = Field(
        default_factory=SelfConsistencyTable, description="the [self_consistency] table")
    debate: DebateTable = Field(default_factory=DebateTable, description="the [debate] table")
    router: RouterTable = Field(default_factory=RouterTable, description="the [router] table")
    roles: RolesTable = Field(default_factory=RolesTable, description="the [roles.*] tables")
    warm_start: list[WarmStart] = Field(
        default_factory=list, description="[[warm_start]] entries: configurations (such as "
        "the ones that reproduce the seed agents) the optuna strategy enqueues first")
