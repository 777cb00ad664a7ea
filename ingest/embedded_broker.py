"""The embedded MQTT broker (amqtt) that ``estate up`` starts on loopback.

amqtt speaks MQTT 3.1.1 only, so the gateway talks 3.1.1 to it; an external
broker (Mosquitto, EMQX) is used with MQTT 5 through ``--mqtt-url``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from amqtt.broker import Broker


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedBroker:
    """An amqtt broker bound to ``host:port`` (anonymous, loopback by default)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host = host
        self.port = port
        self._broker: Broker | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }

    async def start(self) -> None:
        # amqtt logs every connection at INFO, and warns about PUBACKs of QoS 1 deliveries
        # it already retired (a late manual ack after its own redelivery); neither loses
        # a message, and the service's own status lines say what arrived.
        logging.getLogger("amqtt").setLevel(logging.ERROR)
        logging.getLogger("transitions").setLevel(logging.WARNING)
        self._broker = Broker(self._config())
        await self._broker.start()

    async def stop(self) -> None:
        if self._broker is not None:
            broker, self._broker = self._broker, None
            await asyncio.wait_for(broker.shutdown(), timeout=10)
