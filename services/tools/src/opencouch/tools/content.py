"""The service's written content (response skills, guided exercises) as data files.

Each skill and each exercise is one TOML file, checked when the service starts: a file that is
malformed, missing or inconsistent stops the service with a ``ContentError`` naming the file and
the problem, rather than failing one user mid-conversation.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from opencouch.runtime.errors import describe_validation

ModelT = TypeVar("ModelT", bound=BaseModel)


class ContentError(RuntimeError):
    """Packaged or configured content that the service refuses to serve."""


def content_root(override: Path | None) -> Traversable:
    """Where ``skills/`` and ``exercises/`` are: ``override`` if given, else the packaged data."""
    if override is not None:
        if not override.is_dir():
            raise ContentError(f"content directory {override} does not exist")
        return override
    return resources.files(__package__).joinpath("data")


def load_models(
    root: Traversable, folder: str, model: type[ModelT]
) -> Iterator[tuple[str, ModelT]]:
    """Each ``*.toml`` file in ``root/folder``, parsed and validated as ``model``, by file stem."""
    directory = root.joinpath(folder)
    if not directory.is_dir():
        raise ContentError(f"{folder}/ is missing from the content directory")
    files = sorted(
        (entry for entry in directory.iterdir() if entry.name.endswith(".toml")),
        key=lambda entry: entry.name,
    )
    if not files:
        raise ContentError(f"{folder}/ holds no .toml files")
    for entry in files:
        yield entry.name.removesuffix(".toml"), _parse(entry, f"{folder}/{entry.name}", model)


def _parse(entry: Traversable, name: str, model: type[ModelT]) -> ModelT:
    try:
        raw: dict[str, Any] = tomllib.loads(entry.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ContentError(f"{name} is not valid TOML: {error}") from error
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise ContentError(f"{name} is invalid: {describe_validation(error, root=name)}") from None
