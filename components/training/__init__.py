"""The one generic trainer, the device helper and checkpoints."""
