"""Data: datasets (``detkit.data.datasets``), transforms (``detkit.data.transforms``), loaders, samplers, I/O."""
