"""Weight converters: torchvision and Ultralytics checkpoints to detkit state dicts."""
