"""What a client POSTs to create a schedule, and the AsyncTaskSchedule it becomes (pure: no
I/O, unit-tested directly).

The body is the schedule's spec with its name and labels beside it, as a task's body is
(:mod:`asynctask_gateway.submissions`). The template's spec is a task's body without what a
template cannot hold (``cancel``, ``notBefore``: a schedule says when) nor a name or labels
(the template's ``metadata`` has them), with the same bounds, patterns and strict types.
What a schema cannot say (a cron expression the operator cannot read, an unknown time zone)
is the CRD's CEL rules' and the operator's to refuse: the apiserver's 422 passes through
verbatim, and the operator writes ``Ready=False`` with a reason.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from asynctask_gateway import patterns
from asynctask_gateway.kube import GROUP, VERSION
from asynctask_gateway.submissions import CREATED_BY, INTEGERS, TaskRequest, _integral

KIND = "AsyncTaskSchedule"
PLURAL = "asynctaskschedules"
#: metadata.name's bound: the tasks are named <schedule>-<unix seconds> (the CRD's rule).
MAX_SCHEDULE_NAME = 52
#: The task body's fields a template's spec leaves out.
#: A stored request (requestRef) belongs to one task: a schedule's runs would share it.
NOT_IN_TEMPLATE = frozenset({"name", "labels", "cancel", "not_before", "request_ref"})
#: The schedule's own integer fields (JSON Schema counts 10.0 as the integer 10).
SCHEDULE_INTEGERS = frozenset(
    {"intervalSeconds", "startingDeadlineSeconds", "successfulTasksHistoryLimit"}
    | {"failedTasksHistoryLimit"}
)

TemplateSpec: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "TemplateSpec",
    __config__=ConfigDict(extra="forbid", populate_by_name=True, frozen=True),
    __doc__="The spec of each task the schedule creates: a task's body without name, "
    "labels, cancel, notBefore and requestRef.",
    **{
        name: (field.annotation, field)
        for name, field in TaskRequest.model_fields.items()
        if name not in NOT_IN_TEMPLATE
    },
)

LabelKey = Annotated[str, Field(max_length=patterns.MAX_LABEL_KEY, pattern=patterns.LABEL_KEY)]
#: A label value of the schedule itself: the apiserver checks it (its 422 passes through).
LabelValue = Annotated[
    str, Field(max_length=63, json_schema_extra={"pattern": patterns.LABEL_VALUE})
]
#: A label value of the template: nobody else checks it before a slot's task is created, so
#: the gateway does.
TemplateLabelValue = Annotated[str, Field(max_length=63, pattern=patterns.LABEL_VALUE)]


def keys_by_pattern(schema: dict[str, Any], *names: str) -> None:
    """State the key pattern as ``propertyNames`` too: ``patternProperties`` alone says
    nothing about keys that do not match it, and the model refuses them."""
    for name in names:
        schema["properties"][name]["propertyNames"] = {
            "maxLength": patterns.MAX_LABEL_KEY,
            "pattern": patterns.LABEL_KEY,
        }


class TemplateMetadata(BaseModel):
    """Labels and annotations each task gets (besides the schedule's own label)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra=lambda s: keys_by_pattern(s, "labels", "annotations"),
    )

    labels: dict[LabelKey, TemplateLabelValue] = Field(default_factory=dict)
    annotations: dict[LabelKey, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _key_prefix(self) -> TemplateMetadata:
        for key in [*self.labels, *self.annotations]:
            if len(key.rpartition("/")[0]) > patterns.MAX_NAME:
                raise ValueError(f"the prefix of the key {key!r} is over 253 characters")
        return self


class Template(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    metadata: TemplateMetadata | None = None
    spec: TemplateSpec


#: Fields that are either absent or set: ``null`` is not "unset" here, so that "exactly one
#: of" reads the same in the model and in the document (``required`` means present).
NOT_NULL = ("schedule", "intervalSeconds", "timeZone")


def _timing_schema(schema: dict[str, Any]) -> None:
    """The document's form of :meth:`ScheduleRequest._one_timing`: a cron ``schedule``
    (with or without ``timeZone``) or ``intervalSeconds`` (without ``timeZone``), never
    both, never neither; and those three never ``null``."""
    keys_by_pattern(schema, "labels")
    properties = schema["properties"]
    for name in NOT_NULL:
        choices = properties[name].pop("anyOf")
        properties[name].update(next(c for c in choices if c.get("type") != "null"))
        properties[name].pop("default", None)
    schema["oneOf"] = [
        {"required": ["schedule"], "not": {"required": ["intervalSeconds"]}},
        {
            "required": ["intervalSeconds"],
            "not": {"anyOf": [{"required": ["schedule"]}, {"required": ["timeZone"]}]},
        },
    ]


class ScheduleRequest(BaseModel):
    """One schedule to create: exactly one of ``schedule`` (cron) and ``intervalSeconds``;
    ``timeZone`` only with ``schedule``. Types are JSON Schema's, as a task's body."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, frozen=True, json_schema_extra=_timing_schema
    )

    name: Annotated[
        str,
        Field(min_length=1, max_length=MAX_SCHEDULE_NAME, pattern=patterns.NAME_PATTERN),
    ]
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    schedule: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=128,
            pattern=patterns.CRON,
            description="A cron expression of 5 fields, or a macro such as @hourly.",
        ),
    ] = None
    interval_seconds: Annotated[int | None, Field(alias="intervalSeconds", ge=1, le=31622400)] = (
        None
    )
    time_zone: Annotated[
        str | None,
        Field(alias="timeZone", min_length=1, max_length=64, pattern=patterns.TIME_ZONE),
    ] = None
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] | None = Field(
        None, alias="concurrencyPolicy"
    )
    starting_deadline_seconds: Annotated[
        int | None, Field(alias="startingDeadlineSeconds", ge=0, le=2**53)
    ] = None
    suspend: bool | None = None
    successful_tasks_history_limit: Annotated[
        int | None, Field(alias="successfulTasksHistoryLimit", ge=0, le=2**31 - 1)
    ] = None
    failed_tasks_history_limit: Annotated[
        int | None, Field(alias="failedTasksHistoryLimit", ge=0, le=2**31 - 1)
    ] = None
    template: Template

    @classmethod
    def parse(cls, raw: Any) -> ScheduleRequest:
        """The body of a POST, validated strictly as the document's JSON Schema reads it
        (integral numbers taken as integers, in the template's spec too)."""
        if isinstance(raw, dict):
            nulls = [k for k in NOT_NULL if k in raw and raw[k] is None]
            if nulls:  # absent or set: a null is refused as the document says
                raw = {k: v for k, v in raw.items() if k not in nulls} | {nulls[0]: []}
            raw = {k: _integral(v) if k in SCHEDULE_INTEGERS else v for k, v in raw.items()}
            template = raw.get("template")
            if isinstance(template, dict) and isinstance(template.get("spec"), dict):
                spec = {
                    k: _integral(v) if k in INTEGERS else v for k, v in template["spec"].items()
                }
                raw["template"] = {**template, "spec": spec}
        return cls.model_validate(raw, strict=True)

    @model_validator(mode="after")
    def _one_timing(self) -> ScheduleRequest:
        if (self.schedule is None) == (self.interval_seconds is None):
            raise ValueError("set exactly one of schedule (cron) and intervalSeconds")
        if self.time_zone is not None and self.schedule is None:
            raise ValueError("timeZone applies to a cron schedule only, not to intervalSeconds")
        return self

    def spec(self) -> dict[str, Any]:
        """The schedule's spec in the CRD's camelCase names, unset fields left out."""
        spec = self.model_dump(
            mode="json", by_alias=True, exclude_unset=True, exclude={"name", "labels", "template"}
        )
        spec = {k: v for k, v in spec.items() if v is not None}
        template: dict[str, Any] = {
            "spec": {
                k: v
                for k, v in self.template.spec.model_dump(
                    mode="json", by_alias=True, exclude_unset=True
                ).items()
                if v is not None
            }
        }
        if self.template.metadata is not None:
            template["metadata"] = self.template.metadata.model_dump(mode="json")
        spec["template"] = template
        return spec


def schedule_manifest(req: ScheduleRequest, namespace: str, *, user: str) -> dict[str, Any]:
    """The AsyncTaskSchedule to create, its creator recorded in an annotation."""
    metadata: dict[str, Any] = {
        "name": req.name,
        "namespace": namespace,
        "annotations": {CREATED_BY: user},
    }
    if req.labels:
        metadata["labels"] = dict(req.labels)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": metadata,
        "spec": req.spec(),
    }
