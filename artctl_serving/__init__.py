"""The gRPC inference server. Imports onnxruntime and grpc, never torch (a test proves it)."""
