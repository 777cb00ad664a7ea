"""Standard Webhooks signing: the specification's vector, rotation, verification failures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from alerts.signing import (
    SecretError,
    VerificationError,
    generate_secret,
    parse_secrets,
    sign,
    signed_headers,
    verify,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
AT = datetime.fromtimestamp(TIMESTAMP, UTC)


def test_specification_test_vector():
    assert sign(parse_secrets(SECRET), MSG_ID, TIMESTAMP, BODY) == EXPECTED
    headers = signed_headers(parse_secrets(SECRET), MSG_ID, TIMESTAMP, BODY)
    assert headers == {
        "webhook-id": MSG_ID,
        "webhook-timestamp": "1614265330",
        "webhook-signature": EXPECTED,
    }
    assert verify(parse_secrets(SECRET), headers, BODY, AT) == MSG_ID
    # the prefix is optional, as in the reference library
    assert parse_secrets(SECRET.removeprefix("whsec_")) == parse_secrets(SECRET)


def test_rotation_signs_with_every_secret_and_each_verifies():
    new = generate_secret()
    keys = parse_secrets(f"{new}\n {SECRET}")  # value of one variable during a rotation
    now = datetime.now(UTC)
    ts = int(now.timestamp())
    headers = signed_headers(keys, MSG_ID, ts, BODY)
    items = headers["webhook-signature"].split(" ")
    assert len(items) == 2 and all(i.startswith("v1,") for i in items)
    for secret in (new, SECRET):  # the reference implementation, with either secret alone
        assert Webhook(secret).verify(BODY, headers) == {"test": 2432232314}
        assert verify(parse_secrets(secret), headers, BODY, now) == MSG_ID
    with pytest.raises(VerificationError) as err:
        verify(parse_secrets(generate_secret()), headers, BODY, now)
    assert err.value.status == 401


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"body": b'{"test": 2432232315}'}, 401),
        ({"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJeK"}, 401),
        ({"webhook-timestamp": str(TIMESTAMP + 1)}, 401),
        ({"webhook-timestamp": str(TIMESTAMP + 301)}, 401),
        ({"webhook-timestamp": str(TIMESTAMP - 301)}, 401),
        ({"webhook-timestamp": "1614265330.5"}, 400),
        ({"webhook-timestamp": ""}, 400),
        ({"webhook-signature": "v1"}, 400),
        ({"webhook-signature": "v1,abc,def"}, 400),
        ({"webhook-signature": "v1,not*base64!"}, 400),
        ({"webhook-signature": "v1,AAAA"}, 400),
        ({"webhook-signature": "v1a,whatever"}, 401),
        ({"webhook-signature": EXPECTED + "  " + EXPECTED}, 400),
        ({"webhook-signature": " ".join([EXPECTED] * 40)}, 400),
        ({"webhook-id": "msg with spaces"}, 400),
        ({"webhook-id": None}, 400),
    ],
)
def test_verify_refuses(change, status):
    headers = signed_headers(parse_secrets(SECRET), MSG_ID, TIMESTAMP, BODY)
    body = change.pop("body", BODY)
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    with pytest.raises(VerificationError) as err:
        verify(parse_secrets(SECRET), headers, body, AT)
    assert err.value.status == status


def test_tolerance_is_inclusive_of_five_minutes():
    headers = signed_headers(parse_secrets(SECRET), MSG_ID, TIMESTAMP, BODY)
    for skew in (-300, 300):
        now = datetime.fromtimestamp(TIMESTAMP + skew, UTC)
        assert verify(parse_secrets(SECRET), headers, BODY, now) == MSG_ID


@pytest.mark.parametrize("value", ["", "   ", "whsec_###", "whsec_c2hvcnQ=", SECRET + " whsec_!!"])
def test_bad_secrets_are_refused_without_being_quoted(value):
    with pytest.raises(SecretError) as err:
        parse_secrets(value)
    assert "MfKQ9r8" not in str(err.value) and "###" not in str(err.value)
