"""PyTorch GAN training: networks, data, the training loop and checkpoints (needs the `train` extra)."""
