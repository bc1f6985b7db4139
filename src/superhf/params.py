"""Loading ``params.yaml`` sections into validated, typed config objects.

Every stage's ``main()`` calls :func:`load_section` for its own section before doing any
heavy work, so a typo, a wrong type or an out-of-range value fails in milliseconds with a
message that names the key and what it accepts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from superhf.errors import UserError

DEFAULT_PARAMS = Path("params.yaml")


class ParamsError(UserError, ValueError):
    """A params file is missing, unreadable, or holds a value its stage cannot use."""


class Section(BaseModel):
    """Base of every params section: unknown keys and loose types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


S = TypeVar("S", bound=Section)


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-5`` as a float (YAML 1.2, like DVC's own parser)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _mapping_without_duplicates(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    """A key given twice is an error (plain YAML keeps the last one silently)."""
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicated key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def read_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Read a whole params file as a dict, with a clear error if it is missing or broken."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file not found: {path}")
    try:
        data = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or type(exc).__name__
        raise ParamsError(f"{path}: not valid YAML: {what}{where}") from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: top level must be a mapping of stage sections")
    return data


def _describe(err: dict[str, Any], model: type[BaseModel]) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        owner: Any = model
        for part in err["loc"][:-1]:
            field = owner.model_fields.get(str(part)) if hasattr(owner, "model_fields") else None
            owner = field.annotation if field is not None else None
        allowed = sorted(owner.model_fields) if hasattr(owner, "model_fields") else []
        return f"{loc}: unknown key; allowed keys are {', '.join(allowed)}"
    got = err.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{loc}: {err['msg']}{shown}"


def parse_section(name: str, raw: Any, model: type[S], source: str = "params") -> S:
    """Validate ``raw`` (the dict under ``name``) into ``model`` or raise ParamsError."""
    if raw is None or raw == {}:
        # an empty section would silently run the paper's defaults (a 1B model, 2000 prompts)
        raise ParamsError(
            f"{source}: section '{name}' is empty; give its keys (an empty mapping would "
            "silently mean the paper's defaults) or regenerate params.yaml with "
            "python -m superhf.profile <name>"
        )
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: section '{name}' must be a mapping, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{name}.{_describe(e, model)}" for e in exc.errors()]
        sep = " " if len(lines) == 1 else "\n  "  # one line for one problem
        raise ParamsError(f"{source}: invalid params:{sep}" + "\n  ".join(lines)) from None


def load_section(name: str, model: type[S], path: str | Path = DEFAULT_PARAMS) -> S:
    """Load and validate one stage's section of a params file."""
    data = read_params(path)
    if name not in data:
        raise ParamsError(f"{path}: missing section '{name}'")
    return parse_section(name, data[name], model, source=str(path))
