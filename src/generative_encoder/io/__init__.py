"""Files on disk: atomic writes and JSON, image files, checkpoints (safetensors + JSON), and the
named models the package ships."""
