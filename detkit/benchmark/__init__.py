"""Measurement code: timing against torchvision and Ultralytics, tiling recall, data-loading throughput, model size."""
