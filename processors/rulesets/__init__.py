"""Rule files shipped with the package (``default.yaml``); data only."""
