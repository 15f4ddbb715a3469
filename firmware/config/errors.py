"""Config errors as a technician reads them: `ConfigError`, and for each pydantic error the section and
key (without the backend tags pydantic puts in the location), what is wrong, and the nearest valid key
for a misspelt one."""
from __future__ import annotations

import difflib
import functools
import types
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel


class ConfigError(Exception):
    """A config that cannot be used. The message names the file and every offending key."""


@functools.cache
def type_tags(root: type[BaseModel]) -> frozenset[str]:
    """Every backend tag (`type = "..."`) of every section below `root`, read from the models."""
    tags: set[str] = set()
    seen: set[type] = set()

    def walk(ann: Any) -> None:
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            if ann in seen:
                return
            seen.add(ann)
            for name, field in ann.model_fields.items():
                if name == "type" and typing.get_origin(field.annotation) is Literal:
                    tags.update(typing.get_args(field.annotation))
                walk(field.annotation)
            return
        for arg in typing.get_args(ann):
            walk(arg)

    walk(root)
    return frozenset(tags)


def _model_for(loc: tuple, root: type[BaseModel], data: Any = None) -> list[str]:
    """Valid keys at the place an error points to (for 'did you mean')."""
    model: Any = root
    node = data
    for part in loc[:-1]:
        fields = getattr(model, "model_fields", None)
        if fields is None:
            return []
        if part in fields:
            ann = fields[part].annotation
            node = node.get(part) if isinstance(node, dict) else None
            model = _resolve(ann, node)
        elif isinstance(part, str) and hasattr(model, "model_fields"):
            # discriminated union tag (e.g. 'v4l2') or list index: stay on the current model
            continue
        else:
            continue
    return list(getattr(model, "model_fields", {}).keys())


def _resolve(ann: Any, node: Any) -> Any:
    args = typing.get_args(ann)
    if typing.get_origin(ann) is Annotated:
        return _resolve(args[0], node)
    if args and typing.get_origin(ann) in (Union, types.UnionType):   # UnionType: `X | None`
        kind = node.get("type") if isinstance(node, dict) else None
        for a in args:
            t = getattr(a, "model_fields", {}).get("type")
            if t is not None and kind in typing.get_args(t.annotation):
                return a
        return args[0]
    if args and typing.get_origin(ann) in (list, dict):
        return _resolve(args[-1], None)
    return ann


def describe(err: dict, data: dict, root: type[BaseModel]) -> str:
    """One pydantic error as a technician reads it: section.key, what is wrong, the key meant."""
    loc = tuple(err["loc"])
    # Drop discriminator tags ('v4l2') from the printed location: a tech thinks in sections and keys.
    shown = [str(p) for p in loc if not (isinstance(p, str) and "-" in p or p in type_tags(root))]
    where = ".".join(shown) or "(top level)"
    if err["type"] == "extra_forbidden":
        valid = _model_for(loc, root, data)
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (valid keys: {', '.join(valid)})"
        return f"{where}: unknown key{hint}"
    if err["type"] == "union_tag_invalid":
        ctx = err.get("ctx", {})
        return f"{where}.type: unknown backend '{ctx.get('tag')}' (valid: {ctx.get('expected_tags')})"
    return f"{where}: {err['msg']}"

