"""The device catalogue: kinds, streams, reading models, units and the topic scheme.

This package knows nothing of the other packages.
"""

from devices.catalogue import (
    CATALOGUE,
    DeviceKind,
    Reading,
    StreamSpec,
    model_for,
    streams_of,
)

__all__ = ["CATALOGUE", "DeviceKind", "Reading", "StreamSpec", "model_for", "streams_of"]
