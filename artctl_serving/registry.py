"""The models a server holds: name -> runtime + batchers, with `default` always resolving."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from artctl.directions import Directions
from artctl.models import W_SPACE_HINT
from artctl_serving.batcher import DynamicBatcher
from artctl_serving.errors import InvalidRequestError, ModelNotFoundError
from artctl_serving.runtime import ModelRuntime
from artctl_serving.styles import StyleGraphs
from artctl_serving.tally import Tally

DEFAULT_ALIAS = "default"


@dataclass
class StyleServed:
    """A model's w-space graphs and the batcher around its synthesis graph (Mix, Interpolate)."""

    graphs: StyleGraphs
    batcher: DynamicBatcher


@dataclass
class ServedModel:
    runtime: ModelRuntime
    batcher: DynamicBatcher
    styles: StyleServed | None = None
    tally: Tally = field(default_factory=Tally)
    directions: Directions | None = None  # NAME.directions.json, when shipped and fitting
    latents: DynamicBatcher | None = None  # renders z given directly (models without a w space)

    @property
    def name(self) -> str:
        return self.runtime.name

    def batchers(self) -> list[DynamicBatcher]:
        extra = [self.styles.batcher] if self.styles else []
        return [self.batcher, *extra, *([self.latents] if self.latents else [])]

    def style(self) -> StyleServed:
        """The w-space graphs, or INVALID_ARGUMENT for a model without them."""
        if self.styles is None:
            raise InvalidRequestError(
                f"model {self.name!r} has no mapping/synthesis graphs: style mixing and walks need a "
                f"StyleGAN-type model exported with its companions; {W_SPACE_HINT}"
            )
        return self.styles


NAME_SHOWN = 64  # characters of an unknown name echoed back in an error


def shown_name(name: str) -> str:
    """A client's model name as an error may show it: escaped (no control bytes reach a log or a
    terminal) and cut short."""
    text = repr(name[:NAME_SHOWN])
    return text + "…" if len(name) > NAME_SHOWN else text


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

    def resolve(self, name: str) -> str | None:
        """The name of the loaded model a request for `name` reaches ("" and `default` mean the
        default model), or None."""
        if name in ("", DEFAULT_ALIAS):
            return self.default_name
        return name if name in self._models else None

    def get(self, name: str) -> ServedModel:
        if name in ("", DEFAULT_ALIAS):
            if self.default_name is None:
                raise ModelNotFoundError("no default model is loaded")
            return self._models[self.default_name]
        try:
            return self._models[name]
        except KeyError:
            known = ", ".join(sorted(self._models)) or "none"
            raise ModelNotFoundError(f"unknown model {shown_name(name)} (loaded: {known})") from None

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(list(self._models.values()))

    def __len__(self) -> int:
        return len(self._models)
