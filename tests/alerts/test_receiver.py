"""The reference receiver against hostile and broken requests, over real HTTP."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import aiohttp
import pytest

from alerts.clock import VirtualClock
from alerts.payload import build_payload, encode
from alerts.receiver import MAX_BODY
from alerts.signing import parse_secrets, signed_headers

from .conftest import T0, Estate, alert_event, free_port, receiver_for, stats_of, store_of


def good_message(estate, n=1):
    event = alert_event("huamu", n, explanation="<script>alert(1)</script> & more")
    body = encode(build_payload(event, estate.index, T0))
    msg_id = f"msg_test{n}"
    headers = signed_headers(
        parse_secrets(estate.secrets["huamu"]), msg_id, int(T0.timestamp()), body
    )
    return msg_id, headers, body


def tampered(estate):
    msg_id, headers, body = good_message(estate)
    cases = {
        "tampered body": (headers, body.replace(b"major", b"minor")),
        "tampered id": ({**headers, "webhook-id": "msg_test2"}, body),
        "tampered timestamp": (
            {**headers, "webhook-timestamp": str(int(T0.timestamp()) + 1)},
            body,
        ),
        "signature v1": ({**headers, "webhook-signature": "v1"}, body),
        "signature v1,abc,def": ({**headers, "webhook-signature": "v1,abc,def"}, body),
        "signature not base64": ({**headers, "webhook-signature": "v1,@@@@"}, body),
        "signature wrong length": ({**headers, "webhook-signature": "v1,AAAA"}, body),
        "no signature": ({k: v for k, v in headers.items() if k != "webhook-signature"}, body),
        "timestamp text": ({**headers, "webhook-timestamp": "yesterday"}, body),
        "id with newline escape": ({**headers, "webhook-id": "msg\\nx"}, body),
    }
    for skew in (-301, 301):
        stamp = int(T0.timestamp()) + skew
        resigned = signed_headers(parse_secrets(estate.secrets["huamu"]), msg_id, stamp, body)
        cases[f"timestamp {skew:+} s"] = (resigned, body)
    for name, raw in {
        "not JSON": b"{not json",
        "JSON array": b"[1, 2]",
        "other type": json.dumps({**json.loads(body), "type": "invoice.paid"}).encode(),
        "version 2": json.dumps({**json.loads(body), "version": 2}).encode(),
        "missing data": json.dumps({"type": "alert.raised", "version": 1}).encode(),
        "invalid UTF-8": b"\xff\xfe{}",
    }.items():
        signed = signed_headers(
            parse_secrets(estate.secrets["huamu"]), msg_id, int(T0.timestamp()), raw
        )
        cases[name] = (signed, raw)
    return cases


@pytest.fixture
def estate(tmp_path):
    e = Estate(tmp_path, {"huamu": "http://127.0.0.1:9/hook"})
    yield e
    e.close()


def test_hostile_requests_get_4xx_and_nothing_is_stored(estate):
    async def main():
        clock = VirtualClock(T0)
        receiver = receiver_for(estate, "huamu", free_port(), clock)
        await receiver.start()
        statuses = {}
        async with aiohttp.ClientSession() as session:
            for name, (headers, body) in tampered(estate).items():
                async with session.post(receiver.url + "/hook", data=body, headers=headers) as r:
                    statuses[name] = r.status
            _, headers, body = good_message(estate)
            huge_header = {**headers, "webhook-signature": "v1," + "A" * 65536}
            async with session.post(receiver.url + "/hook", data=body, headers=huge_header) as r:
                statuses["64 KiB header"] = r.status
            async with session.post(
                receiver.url + "/hook", data=b"x" * (MAX_BODY + 1), headers=headers
            ) as r:
                statuses["huge body"] = r.status

            async def chunks():
                for _ in range(MAX_BODY // 1024 + 2):
                    yield b"x" * 1024

            async with session.post(receiver.url + "/hook", data=chunks(), headers=headers) as r:
                statuses["huge chunked body"] = r.status
        statuses["garbage request line"] = await raw_status(
            receiver.port, b"\x00\x01 garbage\r\n\r\n"
        )
        statuses["bad content-length"] = await raw_status(
            receiver.port, b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"
        )
        print(statuses)
        assert all(400 <= s < 500 for s in statuses.values()), statuses
        assert statuses["tampered body"] == statuses["timestamp +301 s"] == 401
        assert statuses["signature v1,abc,def"] == statuses["not JSON"] == 400
        assert statuses["huge body"] == 413
        assert store_of(receiver).count() == 0
        await receiver.stop()

    asyncio.run(main())


async def raw_status(port: int, request: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    line = await reader.readline()
    writer.close()
    return int(line.split()[1])


def test_deduplicates_and_lists_alerts_as_html_and_json(estate):
    async def main():
        clock = VirtualClock(T0 + timedelta(seconds=30))
        receiver = receiver_for(estate, "huamu", free_port(), clock)
        await receiver.start()
        async with aiohttp.ClientSession() as session:
            results = []
            for n in (1, 1, 2, 1):
                _, headers, body = good_message(estate, n)
                async with session.post(receiver.url + "/x", data=body, headers=headers) as r:
                    results.append((r.status, (await r.json())["status"]))
            assert results == [
                (200, "accepted"),
                (200, "duplicate"),
                (200, "accepted"),
                (200, "duplicate"),
            ]
            async with session.get(receiver.url + "/alerts.json") as r:
                listing = await r.json()
            async with session.get(receiver.url + "/") as r:
                page = await r.text()
                csp = r.headers["Content-Security-Policy"]
        assert listing["count"] == 2
        assert {a["webhook_id"] for a in listing["alerts"]} == {"msg_test1", "msg_test2"}
        assert (
            listing["alerts"][0]["building"] is None
            and listing["alerts"][0]["estate"] == "huamu-estate"
        )
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
        assert "<script>" not in page and "http" not in page.split("</style>")[1].replace(
            "alerts.json", ""
        )
        assert csp.startswith("default-src 'none'")
        assert stats_of(receiver).duplicates == 2 and stats_of(receiver).accepted == 2
        await receiver.stop()

    asyncio.run(main())
