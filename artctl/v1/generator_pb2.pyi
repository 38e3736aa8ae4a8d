from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImageFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_FORMAT_PNG: _ClassVar[ImageFormat]
    IMAGE_FORMAT_RAW: _ClassVar[ImageFormat]

class LayerGroup(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LAYER_GROUP_UNSPECIFIED: _ClassVar[LayerGroup]
    LAYER_GROUP_COARSE: _ClassVar[LayerGroup]
    LAYER_GROUP_MIDDLE: _ClassVar[LayerGroup]
    LAYER_GROUP_FINE: _ClassVar[LayerGroup]

class LatentSpace(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LATENT_SPACE_Z: _ClassVar[LatentSpace]
    LATENT_SPACE_W: _ClassVar[LatentSpace]
IMAGE_FORMAT_PNG: ImageFormat
IMAGE_FORMAT_RAW: ImageFormat
LAYER_GROUP_UNSPECIFIED: LayerGroup
LAYER_GROUP_COARSE: LayerGroup
LAYER_GROUP_MIDDLE: LayerGroup
LAYER_GROUP_FINE: LayerGroup
LATENT_SPACE_Z: LatentSpace
LATENT_SPACE_W: LatentSpace

class GenerateRequest(_message.Message):
    __slots__ = ("model", "seeds", "psi", "labels", "format", "include_metadata", "traits", "edits", "scale", "truncation_cutoff")
    class TraitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    PSI_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_METADATA_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    EDITS_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_CUTOFF_FIELD_NUMBER: _ClassVar[int]
    model: str
    seeds: _containers.RepeatedScalarFieldContainer[int]
    psi: float
    labels: _containers.RepeatedScalarFieldContainer[int]
    format: ImageFormat
    include_metadata: bool
    traits: _containers.ScalarMap[str, str]
    edits: _containers.RepeatedCompositeFieldContainer[DirectionEdit]
    scale: int
    truncation_cutoff: int
    def __init__(self, model: _Optional[str] = ..., seeds: _Optional[_Iterable[int]] = ..., psi: _Optional[float] = ..., labels: _Optional[_Iterable[int]] = ..., format: _Optional[_Union[ImageFormat, str]] = ..., include_metadata: _Optional[bool] = ..., traits: _Optional[_Mapping[str, str]] = ..., edits: _Optional[_Iterable[_Union[DirectionEdit, _Mapping]]] = ..., scale: _Optional[int] = ..., truncation_cutoff: _Optional[int] = ...) -> None: ...

class DirectionEdit(_message.Message):
    __slots__ = ("direction", "amount")
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    direction: int
    amount: float
    def __init__(self, direction: _Optional[int] = ..., amount: _Optional[float] = ...) -> None: ...

class RenderProfile(_message.Message):
    __slots__ = ("model_sha256", "runtime", "provider", "device", "exec_batch", "precision", "latent_contract", "graph_optimization", "execution_mode", "cpu_isa")
    MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    EXEC_BATCH_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    LATENT_CONTRACT_FIELD_NUMBER: _ClassVar[int]
    GRAPH_OPTIMIZATION_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_MODE_FIELD_NUMBER: _ClassVar[int]
    CPU_ISA_FIELD_NUMBER: _ClassVar[int]
    model_sha256: str
    runtime: str
    provider: str
    device: str
    exec_batch: int
    precision: str
    latent_contract: str
    graph_optimization: str
    execution_mode: str
    cpu_isa: str
    def __init__(self, model_sha256: _Optional[str] = ..., runtime: _Optional[str] = ..., provider: _Optional[str] = ..., device: _Optional[str] = ..., exec_batch: _Optional[int] = ..., precision: _Optional[str] = ..., latent_contract: _Optional[str] = ..., graph_optimization: _Optional[str] = ..., execution_mode: _Optional[str] = ..., cpu_isa: _Optional[str] = ...) -> None: ...

class Artwork(_message.Message):
    __slots__ = ("seed", "image", "mime", "width", "height", "channels", "pixel_sha256", "metadata_json", "psi", "label", "index")
    SEED_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MIME_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    PIXEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    PSI_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    seed: int
    image: bytes
    mime: str
    width: int
    height: int
    channels: int
    pixel_sha256: str
    metadata_json: str
    psi: float
    label: int
    index: int
    def __init__(self, seed: _Optional[int] = ..., image: _Optional[bytes] = ..., mime: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., channels: _Optional[int] = ..., pixel_sha256: _Optional[str] = ..., metadata_json: _Optional[str] = ..., psi: _Optional[float] = ..., label: _Optional[int] = ..., index: _Optional[int] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("model", "profile", "artworks")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    ARTWORKS_FIELD_NUMBER: _ClassVar[int]
    model: str
    profile: RenderProfile
    artworks: _containers.RepeatedCompositeFieldContainer[Artwork]
    def __init__(self, model: _Optional[str] = ..., profile: _Optional[_Union[RenderProfile, _Mapping]] = ..., artworks: _Optional[_Iterable[_Union[Artwork, _Mapping]]] = ...) -> None: ...

class ModelCard(_message.Message):
    __slots__ = ("name", "architecture", "resolution", "channels", "z_dim", "label_names", "default_psi", "has_psi", "has_label", "sha256", "data_fingerprint", "exporter_version", "contracts", "metadata", "profile", "directions_sha256", "directions")
    class ContractsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    Z_DIM_FIELD_NUMBER: _ClassVar[int]
    LABEL_NAMES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PSI_FIELD_NUMBER: _ClassVar[int]
    HAS_PSI_FIELD_NUMBER: _ClassVar[int]
    HAS_LABEL_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    DATA_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    EXPORTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTRACTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    DIRECTIONS_SHA256_FIELD_NUMBER: _ClassVar[int]
    DIRECTIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    architecture: str
    resolution: int
    channels: int
    z_dim: int
    label_names: _containers.RepeatedScalarFieldContainer[str]
    default_psi: float
    has_psi: bool
    has_label: bool
    sha256: str
    data_fingerprint: str
    exporter_version: str
    contracts: _containers.ScalarMap[str, str]
    metadata: _containers.ScalarMap[str, str]
    profile: RenderProfile
    directions_sha256: str
    directions: int
    def __init__(self, name: _Optional[str] = ..., architecture: _Optional[str] = ..., resolution: _Optional[int] = ..., channels: _Optional[int] = ..., z_dim: _Optional[int] = ..., label_names: _Optional[_Iterable[str]] = ..., default_psi: _Optional[float] = ..., has_psi: _Optional[bool] = ..., has_label: _Optional[bool] = ..., sha256: _Optional[str] = ..., data_fingerprint: _Optional[str] = ..., exporter_version: _Optional[str] = ..., contracts: _Optional[_Mapping[str, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., profile: _Optional[_Union[RenderProfile, _Mapping]] = ..., directions_sha256: _Optional[str] = ..., directions: _Optional[int] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "default_model")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelCard]
    default_model: str
    def __init__(self, models: _Optional[_Iterable[_Union[ModelCard, _Mapping]]] = ..., default_model: _Optional[str] = ...) -> None: ...

class MixRequest(_message.Message):
    __slots__ = ("model", "content_seeds", "style_seeds", "group", "first_layer", "last_layer", "psi", "labels", "format")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SEEDS_FIELD_NUMBER: _ClassVar[int]
    STYLE_SEEDS_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    FIRST_LAYER_FIELD_NUMBER: _ClassVar[int]
    LAST_LAYER_FIELD_NUMBER: _ClassVar[int]
    PSI_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    model: str
    content_seeds: _containers.RepeatedScalarFieldContainer[int]
    style_seeds: _containers.RepeatedScalarFieldContainer[int]
    group: LayerGroup
    first_layer: int
    last_layer: int
    psi: float
    labels: _containers.RepeatedScalarFieldContainer[int]
    format: ImageFormat
    def __init__(self, model: _Optional[str] = ..., content_seeds: _Optional[_Iterable[int]] = ..., style_seeds: _Optional[_Iterable[int]] = ..., group: _Optional[_Union[LayerGroup, str]] = ..., first_layer: _Optional[int] = ..., last_layer: _Optional[int] = ..., psi: _Optional[float] = ..., labels: _Optional[_Iterable[int]] = ..., format: _Optional[_Union[ImageFormat, str]] = ...) -> None: ...

class MixedArtwork(_message.Message):
    __slots__ = ("content_seed", "style_seed", "image", "mime", "width", "height", "channels", "pixel_sha256", "index")
    CONTENT_SEED_FIELD_NUMBER: _ClassVar[int]
    STYLE_SEED_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MIME_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    PIXEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    content_seed: int
    style_seed: int
    image: bytes
    mime: str
    width: int
    height: int
    channels: int
    pixel_sha256: str
    index: int
    def __init__(self, content_seed: _Optional[int] = ..., style_seed: _Optional[int] = ..., image: _Optional[bytes] = ..., mime: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., channels: _Optional[int] = ..., pixel_sha256: _Optional[str] = ..., index: _Optional[int] = ...) -> None: ...

class MixResponse(_message.Message):
    __slots__ = ("model", "profile", "first_layer", "last_layer", "num_ws", "artworks")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    FIRST_LAYER_FIELD_NUMBER: _ClassVar[int]
    LAST_LAYER_FIELD_NUMBER: _ClassVar[int]
    NUM_WS_FIELD_NUMBER: _ClassVar[int]
    ARTWORKS_FIELD_NUMBER: _ClassVar[int]
    model: str
    profile: RenderProfile
    first_layer: int
    last_layer: int
    num_ws: int
    artworks: _containers.RepeatedCompositeFieldContainer[MixedArtwork]
    def __init__(self, model: _Optional[str] = ..., profile: _Optional[_Union[RenderProfile, _Mapping]] = ..., first_layer: _Optional[int] = ..., last_layer: _Optional[int] = ..., num_ws: _Optional[int] = ..., artworks: _Optional[_Iterable[_Union[MixedArtwork, _Mapping]]] = ...) -> None: ...

class InterpolateRequest(_message.Message):
    __slots__ = ("model", "seeds", "frames", "space", "loop", "psi", "label", "format")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    LOOP_FIELD_NUMBER: _ClassVar[int]
    PSI_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    model: str
    seeds: _containers.RepeatedScalarFieldContainer[int]
    frames: int
    space: LatentSpace
    loop: bool
    psi: float
    label: int
    format: ImageFormat
    def __init__(self, model: _Optional[str] = ..., seeds: _Optional[_Iterable[int]] = ..., frames: _Optional[int] = ..., space: _Optional[_Union[LatentSpace, str]] = ..., loop: _Optional[bool] = ..., psi: _Optional[float] = ..., label: _Optional[int] = ..., format: _Optional[_Union[ImageFormat, str]] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("index", "seed_from", "seed_to", "t", "image", "mime", "width", "height", "channels", "pixel_sha256")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SEED_FROM_FIELD_NUMBER: _ClassVar[int]
    SEED_TO_FIELD_NUMBER: _ClassVar[int]
    T_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MIME_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    PIXEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    index: int
    seed_from: int
    seed_to: int
    t: float
    image: bytes
    mime: str
    width: int
    height: int
    channels: int
    pixel_sha256: str
    def __init__(self, index: _Optional[int] = ..., seed_from: _Optional[int] = ..., seed_to: _Optional[int] = ..., t: _Optional[float] = ..., image: _Optional[bytes] = ..., mime: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., channels: _Optional[int] = ..., pixel_sha256: _Optional[str] = ...) -> None: ...
