"""Regenerate the committed gRPC/protobuf stubs from proto/ (needs the dev extra's grpcio-tools).

The stubs are committed so that users need no code generator; tests/test_proto.py regenerates them
into a temporary folder and fails on any difference, so the .proto files stay the source of truth.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTO_DIR = REPO / "proto"
PROTO_FILES = (
    "artctl/v1/generator.proto",
    "artctl/kserve/v2/grpc_service.proto",
    "artctl/kserve/v2/model_config.proto",
)


def generated_files(out_dir: Path) -> list[Path]:
    """Every file the generator writes for PROTO_FILES, under `out_dir`."""
    files = []
    for proto in PROTO_FILES:
        stem = out_dir / proto.removesuffix(".proto")
        files += [Path(f"{stem}_pb2.py"), Path(f"{stem}_pb2.pyi"), Path(f"{stem}_pb2_grpc.py")]
    return files


def generate(out_dir: Path) -> list[Path]:
    """Run protoc (from grpcio-tools) on every proto file, writing into `out_dir`."""
    import grpc_tools
    from grpc_tools import protoc  # dev-only dependency, imported on use

    include = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *PROTO_FILES,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed; see the messages above")
    return generated_files(out_dir)


if __name__ == "__main__":
    written = generate(REPO)
    print("\n".join(str(p.relative_to(REPO)) for p in written))
    sys.exit(0)
