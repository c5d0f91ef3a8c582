"""Exported generators: a folder with the weights (safetensors or ONNX) and ``export.json``, which says what is
needed to rebuild and run them. ``schema`` builds and validates the JSON, ``folder`` writes a folder atomically
and reads a safetensors export back as a checkpoint's parts (no pickle), ``onnx_export`` writes ONNX files.
The layout is documented in docs/export.md."""
