"""Low-level helpers that any room may import (no engine, no models): atomic files, jsonl, checkpoint reading."""
