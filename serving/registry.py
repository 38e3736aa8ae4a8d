"""The models a server holds: name -> runtime + batcher, with `default` always resolving."""

from __future__ import annotations

from dataclasses import dataclass

from serving.batcher import DynamicBatcher
from serving.runtime import ModelRuntime

DEFAULT_ALIAS = "default"


class ModelNotFoundError(LookupError):
    """No model of that name (NOT_FOUND)."""


@dataclass
class ServedModel:
    runtime: ModelRuntime
    batcher: DynamicBatcher

    @property
    def name(self) -> str:
        return self.runtime.name


class ModelRegistry:
    def __init__(self) -> None:
        self._models: dict[str, ServedModel] = {}
        self.default_name: str | None = None

    def add(self, model: ServedModel, default: bool = False) -> None:
        """A model named `default` (the embedded one, or any default.onnx) is the default model."""
        if model.name in self._models:
            raise ValueError(f"model name {model.name!r} is taken")
        self._models[model.name] = model
        if default or self.default_name is None or model.name == DEFAULT_ALIAS:
            self.default_name = model.name

    def replace(self, model: ServedModel) -> ServedModel | None:
        """Put `model` in place of the one with its name (or add it); returns the one it replaced."""
        old = self._models.get(model.name)
        self._models[model.name] = model
        if self.default_name is None or model.name == DEFAULT_ALIAS:
            self.default_name = model.name
        return old

    def remove(self, name: str) -> ServedModel | None:
        old = self._models.pop(name, None)
        if self.default_name == name:
            self.default_name = next(iter(self._models), None)
        return old

    def names(self) -> list[str]:
        return list(self._models)

    def get(self, name: str) -> ServedModel:
        if name in ("", DEFAULT_ALIAS):
            if self.default_name is None:
                raise ModelNotFoundError("no default model is loaded")
            return self._models[self.default_name]
        try:
            return self._models[name]
        except KeyError:
            known = ", ".join(sorted(self._models)) or "none"
            raise ModelNotFoundError(f"unknown model {name!r} (loaded: {known})") from None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)
