"""Checkpoint -> single-file ONNX with in-graph uint8 quantisation, parity gate and model card."""

EXPORTER_VERSION = "artctl-exporter-0.1"
