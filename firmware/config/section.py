"""What every config section shares: the strict base model, the bounded field types TOML values
arrive as, and `by_type`, the `type` key that picks a backend."""
from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Strict, Tag

DAY = 86_400.0                 # the longest any duration may be


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False,
                              str_max_length=4096)


# TOML has no tuple or path type: these take a list / a string, their items stay strict.
AnyPath = Annotated[Path, Strict(False)]
Unit = Annotated[float, Field(ge=0, le=1)]
RGB = Annotated[tuple[Unit, Unit, Unit], Strict(False)]
IpPort = Annotated[int, Field(ge=1, le=65535)]


def by_type(*models: type[BaseModel], default: str, aliases: dict[str, str] | None = None):
    """A device section: the `type` key picks the backend's model; a section without `type` gets
    `default`. Unknown types fall through to pydantic's error, which lists the valid tags."""
    aliases = aliases or {}

    def pick(v: Any) -> str:
        if isinstance(v, dict):          # a TOML table
            t = v.get("type", default)
        elif isinstance(v, models):      # a section built in code
            t = v.type
        else:                            # not a table at all: the default model says what is wrong
            t = default
        if not isinstance(t, str):   # `type = []`: an unknown backend, named in the error, not a crash
            return repr(t)
        return aliases.get(t, t)
    tagged = tuple(Annotated[m, Tag(_tag(m))] for m in models)
    return Annotated[Union[tagged], Discriminator(pick)]


def _tag(model: type[BaseModel]) -> str:
    return typing.get_args(model.model_fields["type"].annotation)[0]
