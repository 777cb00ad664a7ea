"""Bad credentials are fatal, with a message a person can act on (Mosquitto, password file)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import pytest

from ingest.gateway import Gateway, GatewayError
from tests.ingest_component.conftest import IngestProcess, LogWatcher, Prober
from tests.support.brokers import Mosquitto
from tests.support.publisher import Publisher

USERS = {"ingest": "right-horse-battery", "device": "device-secret"}
WRONG = "wrong-staple-9d1f"


@pytest.fixture
def secured(mosquitto_factory: Callable[..., Mosquitto]) -> Mosquitto:
    broker = mosquitto_factory(passwords=USERS)
    broker.start()
    return broker


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_gateway_with_a_wrong_password_fails_with_a_clear_error(
    protocol: Literal["5", "3.1.1"],
    secured: Mosquitto,
    gateways: Callable[..., Gateway],
) -> None:
    url = f"mqtt://ingest:{WRONG}@{secured.host}:{secured.port}"
    gateway = gateways(url, client_id=f"ingest-bad-{protocol}", protocol=protocol)
    with pytest.raises(GatewayError) as caught:
        gateway.wait_connected(10)
    message = str(caught.value)
    assert "refused the connection" in message
    assert "'ingest'" in message and f"{secured.host}:{secured.port}" in message
    assert WRONG not in message
    with pytest.raises(GatewayError):  # and it stays failed
        gateway.wait(timeout=1)
    assert gateway.stats.connects == 0


def test_gateway_with_the_right_password_ingests(
    secured: Mosquitto,
    gateways: Callable[..., Gateway],
    publishers: Callable[..., Publisher],
    watcher: LogWatcher,
    prober: Prober,
) -> None:
    """The control: the same broker and password file let the right credentials through."""
    url = f"mqtt://ingest:{USERS['ingest']}@{secured.host}:{secured.port}"
    gateway = gateways(url, client_id="ingest-good")
    assert gateway.wait_connected(10)
    publisher = publishers(
        secured.host,
        secured.port,
        client_id="dev-good",
        username="device",
        password=USERS["device"],
    )
    prober.until_logged(publisher, watcher, check=gateway.raise_if_failed)


@pytest.mark.parametrize(
    ("protocol", "password_from"), [("5", "url"), ("3.1.1", "env")], ids=["mqtt5-url", "v311-env"]
)
def test_estate_ingest_with_a_wrong_password_exits_with_one_line(
    protocol: str,
    password_from: str,
    secured: Mosquitto,
    ingest_processes: Callable[..., IngestProcess],
) -> None:
    if password_from == "url":
        url, env = f"mqtt://ingest:{WRONG}@{secured.host}:{secured.port}", {}
    else:
        url, env = f"mqtt://ingest@{secured.host}:{secured.port}", {"ESTATE_MQTT_PASSWORD": WRONG}
    process = ingest_processes(url, client_id="ingest-cli-bad", protocol=protocol, env=env)
    code = process.start().wait(timeout=30)
    stderr, stdout = process.stderr(), process.stdout()

    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("estate: MQTT broker ")
    assert "refused the connection" in lines[0] and "user 'ingest'" in lines[0]
    assert "Traceback" not in stderr
    assert WRONG not in stderr and WRONG not in stdout, "the password leaked into the output"
