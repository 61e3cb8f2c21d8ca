"""Generated from proto/; do not edit. Regenerate with `python tools/gen_protos.py`."""
