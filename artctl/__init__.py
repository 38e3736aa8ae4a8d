"""artctl: train a GAN on your art, export it to ONNX, serve it over gRPC, mint reproducible drops.

The core package stays light (numpy, pillow, grpcio): it never imports torch or onnxruntime at
import time, so clients and mint tooling install without them.
"""

__version__ = "0.1.0"
