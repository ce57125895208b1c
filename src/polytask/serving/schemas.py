"""The server's pydantic models, built from what each task's kind declares
(:meth:`~polytask.kinds.base.TaskKind.input_type`, :attr:`~polytask.kinds.base.TaskKind.record_type`):
one request model per task, with its name as the ``task`` tag, so that ``/docs`` shows what each
task takes and answers."""
from __future__ import annotations

import re
from typing import Any, Dict, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model
from typing_extensions import Annotated

from ..kinds import get_kind


class PredictionError(BaseModel):
    """In place of a prediction the model could not give (a non-finite output)."""
    error: str


class TaskDescription(BaseModel):
    kind: str = Field(description="the task's kind: classification, pair_classification, regression, tagging, qa")
    labels: List[str] = Field(description="the label (or tag) set; empty for regression and qa")
    inputs: List[str] = Field(description="the texts one input is made of: one is a string, two a [a, b] pair, "
                                          "'tokens' a sentence or a list of tokens")
    metrics: List[str]


class TasksResponse(BaseModel):
    tasks: Dict[str, TaskDescription]


class Health(BaseModel):
    status: Literal["ok"]
    tasks: int


class ErrorResponse(BaseModel):
    error: str
    details: Optional[List[Dict[str, Any]]] = None


def _model_name(task: str, suffix: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^0-9A-Za-z]+", task) if part) + suffix


class TaskSchemas:
    """The request and response models of every task of a run.

    Args:
        tasks: name -> (kind name, TaskConfig) of the run's tasks.
        max_texts: the most inputs one request may hold.
    """

    def __init__(self, tasks: dict[str, tuple[str, Any]], max_texts: int):
        self.requests: dict[str, type[BaseModel]] = {}
        self.adapters: dict[str, TypeAdapter] = {}
        responses = []
        for name, (kind_name, tcfg) in tasks.items():
            kind = get_kind(kind_name)
            item = kind.input_type(tcfg)
            request = create_model(
                _model_name(name, "Request"),
                __config__=ConfigDict(extra="forbid"),
                __doc__=f"Inputs of task {name!r} ({kind_name}).",
                task=(Literal[name], ...),   # type: ignore[valid-type]
                texts=(List[item], Field(min_length=1, max_length=max_texts,  # type: ignore[valid-type]
                                         description=f"{', '.join(kind.input_parts(tcfg))} per input")))
            self.requests[name] = request
            self.adapters[name] = TypeAdapter(request)
            responses.append(kind.record_type)
        records = tuple(dict.fromkeys(responses))
        prediction = Union[records + (PredictionError,)]              # type: ignore[valid-type]
        self.response = create_model("PredictResponse", task=(str, ...), kind=(str, ...),
                                     predictions=(List[prediction], ...))   # type: ignore[valid-type]

    def request_schema(self) -> dict:
        """The JSON schema of a ``/predict`` body: one of the tasks' requests, told apart by ``task``."""
        models = tuple(self.requests.values())
        union = models[0] if len(models) == 1 else Annotated[Union[models], Field(discriminator="task")]
        return TypeAdapter(union).json_schema(ref_template="#/components/schemas/{model}")
