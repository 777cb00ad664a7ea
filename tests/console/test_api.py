"""Every endpoint of /api/v1 against the real stack, with each role and scope violations."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from console.api import api
from eventlog.envelope import Envelope, Stream
from processors.projections import Projections
from processors.runner import COMMANDS
from processors.statestore import StateStore
from tests.console.conftest import A, B, PlainLog, Stack, running_stack
from tests.processors.traffic import T0

PROBLEM = "application/problem+json"


def problem(r: requests.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["title"]
    return body


def open_alert(stack: Stack, condition: str | None = None, exclude: Sequence[str] = ()) -> str:
    for a in stack.get(f"/api/v1/alerts?estate={A}&status=open&limit=500").json()["items"]:
        if (condition is None or a["condition"] == condition) and a["alert_id"] not in exclude:
            return str(a["alert_id"])
    raise AssertionError(f"no open {condition} alert left")


def pages(stack: Stack, path: str, token: str = "admin") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    url: str | None = path
    while url:
        body = stack.get(url, token).json()
        items += body["items"]
        url = body["next"]
    return items


# --- service, auth ---------------------------------------------------------------------------


def test_health_and_readiness_need_no_token(stack: Stack) -> None:
    assert stack.get("/api/v1/health", None).json() == {"status": "ok", "lag": None}
    ready = stack.get("/api/v1/ready", None).json()
    assert ready["status"] == "ready" and ready["lag"] == 0


def concrete(path: str, stack: Stack) -> str:
    values = {
        "estate": A,
        "device": "wm-01-101",
        "alert_id": open_alert(stack),
        "office": "huamu",
        "endpoint": "huamu-control",
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


@pytest.mark.parametrize(
    "op", [o for o in api.operations if o.auth], ids=lambda o: f"{o.method} {o.path}"
)
def test_every_protected_operation_answers_401_without_a_valid_token(stack: Stack, op: Any) -> None:
    path = concrete(op.path, stack)
    body = problem(stack.call(op.method, path, None, json={}), 401)
    assert "token" in body["detail"]
    r = stack.call(op.method, path, None, json={}, headers={"Authorization": "Bearer est_nope"})
    assert problem(r, 401)["detail"] == "unknown token"
    assert r.headers["WWW-Authenticate"] == "Bearer"
    r = stack.call(op.method, path, None, json={}, headers={"Authorization": "Basic eDp5"})
    problem(r, 401)


def test_me_for_each_role(stack: Stack) -> None:
    assert stack.get("/api/v1/me").json() == {
        "name": "admin",
        "role": "admin",
        "estates": None,
        "can_act": True,
    }
    assert stack.get("/api/v1/me", "operator_a").json()["estates"] == [A]
    office = stack.get("/api/v1/me", "office_b").json()
    assert office == {"name": "office_b", "role": "street_office", "estates": [B], "can_act": False}


def test_login_cookie_and_csrf_guard(stack: Stack) -> None:
    s = requests.Session()
    assert s.get(stack.url + "/api/v1/session").json() == {"authenticated": False, "me": None}
    problem(s.post(stack.url + "/api/v1/session", json={"token": "est_wrong"}), 401)
    r = s.post(stack.url + "/api/v1/session", json={"token": stack.tokens["operator_a"]})
    assert r.status_code == 204
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert s.get(stack.url + "/api/v1/session").json()["me"]["name"] == "operator_a"
    assert s.get(stack.url + "/api/v1/me").json()["role"] == "operator"
    alert = open_alert(stack)
    url = f"{stack.url}/api/v1/alerts/{alert}/comment"
    body = problem(s.post(url, json={"text": "from another site"}), 403)
    assert "X-Requested-With" in body["detail"]
    r = s.post(
        url, json={"text": "from the console"}, headers={"X-Requested-With": "estate-console"}
    )
    assert r.status_code == 200, r.text
    assert s.delete(stack.url + "/api/v1/session").status_code == 204
    problem(s.get(stack.url + "/api/v1/me"), 401)


# --- estates, buildings, devices, readings ---------------------------------------------------


def test_estates_are_scoped(stack: Stack) -> None:
    assert [e["id"] for e in stack.get("/api/v1/estates").json()["items"]] == [A, B, "jinqiao"]
    mine = stack.get("/api/v1/estates", "operator_a").json()["items"]
    assert [e["id"] for e in mine] == [A]
    assert sum(mine[0]["open_alerts"].values()) == len(stack.projections.open_alerts(A))
    assert [e["id"] for e in stack.get("/api/v1/estates", "office_b").json()["items"]] == [B]
    assert stack.get(f"/api/v1/estates/{A}", "office_a").json()["street_office"] == "huamu"
    for token, estate in (("operator_a", B), ("operator_b", A), ("office_b", A)):
        for path in ("", "/buildings", "/devices", "/devices/wm-01-101"):
            r = stack.get(f"/api/v1/estates/{estate}{path}", token)
            body = problem(r, 404)
            assert "items" not in body and "health" not in body
    problem(stack.get("/api/v1/estates/nowhere"), 404)


def test_buildings_show_device_health(stack: Stack) -> None:
    body = stack.get(f"/api/v1/estates/{A}/buildings", "operator_a").json()
    offline = {d for b in body["items"] for d in b["offline"]}
    low = {d for b in body["items"] for d in b["low_battery"]}
    p = stack.projections
    expected_offline = {a.device for a in p.open_alerts(A) if a.condition == "device_offline"}
    assert offline == expected_offline and offline
    assert low and not low & offline
    total = body["health"]
    assert total["total"] == len(stack.index.devices_of(A))
    assert total["offline"] == len(offline)
    reporting = total["total"] - total["unknown"]
    assert total["online_pct"] == round(100 * (reporting - len(offline)) / reporting, 1)


def test_devices_page_and_filter(stack: Stack) -> None:
    everything = pages(stack, f"/api/v1/estates/{A}/devices?limit=7", "office_a")
    ids = [d["id"] for d in everything]
    assert ids == sorted({r.device for r in stack.index.devices_of(A)})
    offline = stack.get(f"/api/v1/estates/{A}/devices?health=offline").json()["items"]
    assert offline and all("device_offline" in d["open_conditions"] for d in offline)
    bins = stack.get(f"/api/v1/estates/{A}/devices?kind=waste_bin&limit=500").json()["items"]
    assert bins and {d["kind"] for d in bins} == {"waste_bin"}
    seen = stack.get(f"/api/v1/estates/{A}/devices/bin-cp01-kitchen").json()
    assert seen["health"] == "low_battery" and seen["battery_pct"] is not None
    assert seen["last_seen"] and seen["readings"] > 0 and "level" in seen["latest"]


def test_readings_over_a_time_range(stack: Stack, traffic: list[Envelope]) -> None:
    device = "wm-01-101"
    mine = [e for e in traffic if e.device == device]
    since, until = T0 + timedelta(hours=2), T0 + timedelta(hours=5)
    want = sorted(str(e.id) for e in mine if since <= e.occurred_at <= until)
    q = f"since={since.isoformat()}&until={until.isoformat()}".replace("+", "%2B")
    base = f"/api/v1/estates/{A}/devices/{device}/readings"
    got = pages(stack, f"{base}?{q}&limit=5&order=asc", "operator_a")
    assert sorted(r["id"] for r in got) == want
    assert [r["position"] for r in got] == sorted(r["position"] for r in got)
    assert {r["device"] for r in got} == {device}
    newest = stack.get(f"{base}?limit=3").json()
    assert len(newest["items"]) == 3 and newest["next"]
    times = [r["occurred_at"] for r in newest["items"]]
    assert max(e.occurred_at for e in mine).isoformat() in times
    # the same device id in estate B: B's own (none), never A's
    assert stack.get(f"/api/v1/estates/{B}/devices/{device}/readings", "operator_b").json() == {
        "next": None,
        "items": [],
    }
    problem(stack.get(f"{base}", "operator_b"), 404)
    problem(stack.get(f"/api/v1/estates/{A}/devices/no-such/readings"), 404)


# --- events and alerts -----------------------------------------------------------------------


def test_events_filtered_and_paged(stack: Stack) -> None:
    raised = pages(stack, f"/api/v1/events?estate={A}&kind=AlertRaised&limit=2", "operator_a")
    in_log = [
        r.envelope for r in stack.log.iterate(Stream.EVENTS) if r.envelope.kind == "AlertRaised"
    ]
    assert [e["id"] for e in raised] == [str(e.id) for e in in_log]
    warn = stack.get("/api/v1/events?severity=warning&limit=500").json()["items"]
    assert warn and {e["payload"]["severity"] for e in warn} == {"warning"}
    late = T0 + timedelta(hours=20)
    q = late.isoformat().replace("+", "%2B")
    after = stack.get(f"/api/v1/events?since={q}&limit=500").json()["items"]
    assert all(e["occurred_at"] >= late.isoformat() for e in after)
    assert len(after) < len(stack.get("/api/v1/events?limit=500").json()["items"])
    problem(stack.get(f"/api/v1/events?estate={A}", "operator_b"), 403)
    assert stack.get("/api/v1/events?limit=500", "operator_b").json()["items"] == []
    assert stack.get("/api/v1/events?limit=500", "office_b").json()["items"] == []


def test_alerts_list_filter_page_and_get(stack: Stack) -> None:
    listed = pages(stack, "/api/v1/alerts?limit=2")
    assert len(listed) == len({a["alert_id"] for a in listed}) == len(stack.projections.alerts)
    raised = [a["raised_at"] for a in listed]
    assert raised == sorted(raised, reverse=True)
    warn = stack.get(f"/api/v1/alerts?estate={A}&severity=warning&status=open").json()["items"]
    assert warn and all(a["severity"] == "warning" and a["status"] != "resolved" for a in warn)
    offline = stack.get(f"/api/v1/alerts?estate={A}&condition=device_offline").json()["items"]
    assert offline and all(
        a["building"] == stack.index.device(A, a["device"]).building for a in offline
    )
    in_b01 = stack.get(f"/api/v1/alerts?estate={A}&building=b01&limit=500").json()["items"]
    assert in_b01 and {a["building"] for a in in_b01} == {"b01"}
    assert {a["alert_id"] for a in offline} <= {a["alert_id"] for a in in_b01}
    bins = stack.get("/api/v1/alerts?condition=low_battery&device=bin-cp01-kitchen").json()
    assert {a["device"] for a in bins["items"]} == {"bin-cp01-kitchen"}
    one = stack.get(f"/api/v1/alerts/{listed[0]['alert_id']}", "office_a").json()
    assert one["history"][0]["kind"] == "AlertRaised"
    assert stack.get("/api/v1/alerts", "operator_b").json()["items"] == []
    problem(stack.get(f"/api/v1/alerts?estate={A}", "office_b"), 403)
    body = problem(stack.get(f"/api/v1/alerts/{listed[0]['alert_id']}", "operator_b"), 404)
    assert listed[0]["device"] not in str(body)


# --- operator actions ------------------------------------------------------------------------


def test_acknowledge_assign_comment_resolve_through_the_log(stack: Stack) -> None:
    alert = open_alert(stack, "bin_overflow")
    url = f"/api/v1/alerts/{alert}"
    r = stack.post(f"{url}/acknowledge", "operator_a", json={"comment": "going"})
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["acknowledged_by"] == "operator_a"
    assert view["history"][-1] == {
        **view["history"][-1],
        "kind": "AlertAcknowledged",
        "actor": "operator_a",
        "comment": "going",
    }
    again = problem(stack.post(f"{url}/acknowledge", "operator_a", json={}), 409)
    assert "already acknowledged by operator_a" in again["detail"]
    assert again["command_id"] in stack.projections.rejections
    assert (
        stack.post(f"{url}/assign", "operator_a", json={"to": "王师傅"}).json()["assignee"]
        == "王师傅"
    )
    comment = stack.post(f"{url}/comment", "admin", json={"text": "truck at the gate"}).json()
    assert comment["history"][-1]["comment"] == "truck at the gate"
    done = stack.post(f"{url}/resolve", "operator_a", json={"comment": "emptied"}).json()
    assert done["status"] == "resolved" and done["resolved_at"]
    late = problem(stack.post(f"{url}/comment", "operator_a", json={"text": "x"}), 409)
    assert "resolved" in late["detail"]
    kinds = [
        r.envelope.kind
        for r in stack.log.iterate(COMMANDS)
        if r.envelope.payload["alert_id"] == alert
    ]
    assert kinds == [
        "AcknowledgeAlert",
        "AcknowledgeAlert",
        "AssignAlert",
        "CommentAlert",
        "ResolveAlert",
        "CommentAlert",
    ]
    events = [
        r.envelope.kind
        for r in stack.log.iterate(Stream.EVENTS)
        if r.envelope.payload.get("alert_id") == alert
    ]
    assert events[-6:] == [
        "AlertAcknowledged",
        "AlertCommandRejected",
        "AlertAssigned",
        "AlertCommented",
        "AlertResolved",
        "AlertCommandRejected",
    ]


def test_actions_respect_role_and_scope(stack: Stack) -> None:
    alert = open_alert(stack)
    before = stack.log.end_position(COMMANDS)
    body = problem(
        stack.post(f"/api/v1/alerts/{alert}/comment", "office_a", json={"text": "x"}), 403
    )
    assert "read-only" in body["detail"]
    problem(stack.post(f"/api/v1/alerts/{alert}/resolve", "operator_b", json={}), 404)
    problem(stack.post(f"/api/v1/alerts/{alert}/resolve", "office_b", json={}), 403)
    problem(stack.post("/api/v1/alerts/00000000-0000-4000-8000-000000000000/resolve", json={}), 404)
    assert stack.log.end_position(COMMANDS) == before  # nothing reached the log
    assert stack.get(f"/api/v1/alerts/{alert}").json()["status"] != "resolved"


def test_a_retry_with_the_same_idempotency_key_appends_once(stack: Stack) -> None:
    alert = open_alert(stack)
    headers = {"Idempotency-Key": "retry-1"}
    first = stack.post(f"/api/v1/alerts/{alert}/comment", json={"text": "once"}, headers=headers)
    second = stack.post(f"/api/v1/alerts/{alert}/comment", json={"text": "once"}, headers=headers)
    assert first.status_code == second.status_code == 200
    comments = [
        r
        for r in stack.log.iterate(COMMANDS)
        if r.envelope.payload["alert_id"] == alert and r.envelope.payload.get("text") == "once"
    ]
    assert len(comments) == 1
    assert [h["comment"] for h in second.json()["history"]].count("once") == 1


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"comment": "x", "extra": 1}, "body.extra"),
        ({"comment": ""}, "body.comment"),
        ({"comment": 5}, "body.comment"),
        (["x"], "body"),
    ],
)
def test_bad_bodies_are_400_and_append_nothing(stack: Stack, body: Any, where: str) -> None:
    alert = open_alert(stack)
    before = stack.log.end_position(COMMANDS)
    r = stack.post(f"/api/v1/alerts/{alert}/acknowledge", json=body)
    assert problem(r, 400)["errors"][0]["loc"].startswith(where)
    assert stack.log.end_position(COMMANDS) == before


def test_hostile_input_is_a_4xx_problem(stack: Stack) -> None:
    alert = open_alert(stack)
    problem(stack.post(f"/api/v1/alerts/{alert}/acknowledge", data=b"{not json"), 400)
    problem(stack.post(f"/api/v1/alerts/{alert}/acknowledge", data=b"x" * 70_000), 413)
    problem(stack.get("/api/v1/alerts/not-a-uuid"), 400)
    problem(stack.get("/api/v1/alerts?limit=0"), 400)
    problem(stack.get("/api/v1/alerts?limit=1&limit=2"), 400)
    problem(stack.get("/api/v1/alerts?colour=red"), 400)
    problem(stack.get("/api/v1/alerts?cursor=bm9wZQ"), 400)
    problem(stack.get("/api/v1/events?cursor=%E2%98%83"), 400)
    problem(stack.get("/api/v1/events?since=2026-01-01T00:00:00"), 400)  # naive
    problem(stack.get(f"/api/v1/estates/{A}/devices/x%00y"), 400)
    problem(stack.get("/api/v1/estates/" + "a" * 65), 400)
    problem(stack.get("/api/v1/nothing-here"), 404)
    r = stack.call("PUT", "/api/v1/alerts")
    problem(r, 405)
    assert "GET" in r.headers["Allow"]


# --- webhooks, metrics, feed -----------------------------------------------------------------


def test_webhooks_from_the_registry_scoped(stack: Stack) -> None:
    everything = stack.get("/api/v1/webhooks").json()["items"]
    assert {f"{w['office']}/{w['id']}" for w in everything} == {
        "huamu/huamu-control",
        "gumei/gumei-control",
        "tianlin/tianlin-control",
    }
    assert all(w["status"] is None for w in everything)
    mine = stack.get("/api/v1/webhooks", "office_a").json()["items"]
    assert [w["id"] for w in mine] == ["huamu-control"]
    problem(stack.get(f"/api/v1/webhooks?estate={B}", "office_a"), 403)
    r = stack.get("/api/v1/webhooks/huamu/huamu-control/deliveries", "operator_a")
    assert r.json() == {"endpoint": "huamu/huamu-control", "available": False, "items": []}
    problem(stack.get("/api/v1/webhooks/gumei/gumei-control/deliveries", "operator_a"), 404)
    problem(stack.get("/api/v1/webhooks/huamu/nope/deliveries"), 404)


def sample(text: str, name: str, labels: str = "") -> float:
    line = f"{name}{{{labels}}} " if labels else f"{name} "
    found = [ln for ln in text.splitlines() if ln.startswith(line)]
    assert len(found) == 1, (line, text)
    return float(found[0].split()[-1])


def test_metrics(stack: Stack) -> None:
    r = stack.get("/metrics")
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = r.text
    opened = stack.projections.open_alerts()
    for severity in ("critical", "major", "warning", "info"):
        want = sum(1 for a in opened if a.severity == severity)
        assert sample(text, "estate_open_alerts", f'severity="{severity}"') == want
    ends = sample(text, "estate_log_end_position", 'stream="readings"')
    assert ends == stack.log.end_position(Stream.READINGS)
    assert sample(text, "estate_projection_lag_records") == 0
    assert 'estate_consumer_lag_records{consumer="detectors",stream="commands"}' in text
    problem(stack.get("/metrics", "operator_a"), 403)
    problem(stack.get("/metrics", None), 401)


def read_sse(
    response: requests.Response, into: list[tuple[str, str]], stop: threading.Event
) -> None:
    event = ""
    try:
        for raw in response.iter_lines():
            if stop.is_set():
                return
            line = raw.decode()
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                into.append((event, line[6:]))
    except requests.RequestException:
        return


def test_live_feed_is_scoped(stack: Stack) -> None:
    feeds: dict[str, list[tuple[str, str]]] = {"operator_a": [], "operator_b": [], "office_a": []}
    stop = threading.Event()
    responses = []
    for token, into in feeds.items():
        r = requests.get(
            f"{stack.url}/api/v1/stream",
            params={"access_token": stack.tokens[token]},
            stream=True,
            timeout=30,
        )
        assert r.headers["Content-Type"] == "text/event-stream"
        responses.append(r)
        threading.Thread(target=read_sse, args=(r, into, stop), daemon=True).start()
    stack.wait(lambda: all(any(e == "hello" for e, _ in f) for f in feeds.values()), 10)
    alert = open_alert(stack, "low_battery")
    assert (
        stack.post(f"/api/v1/alerts/{alert}/acknowledge", "operator_a", json={}).status_code == 200
    )
    stack.wait(lambda: any(alert in d for e, d in feeds["office_a"] if e == "alert"), 5)
    stack.wait(lambda: any(e == "device" for e, _ in feeds["operator_a"]), 5)
    stop.set()
    for r in responses:
        r.close()
    assert [e for e, _ in feeds["operator_b"]] == ["hello"]
    problem(stack.get("/api/v1/stream?access_token=est_nope", None), 401)


def test_openapi_document_lists_every_operation(stack: Stack) -> None:
    doc = stack.get("/api/v1/openapi.json", None).json()
    assert doc["openapi"].startswith("3.")
    listed = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert listed == {(o.method, o.path) for o in api.operations}
    assert "Problem" in doc["components"]["schemas"]


def test_rebuilding_the_projections_reproduces_the_alert_history(
    stack: Stack, tmp_path: Path
) -> None:
    alert = open_alert(stack, "water_continuous_flow")
    for action, body in (
        ("assign", {"to": "plumber"}),
        ("acknowledge", {"comment": "ok"}),
        ("resolve", {"comment": "valve fixed"}),
    ):
        assert (
            stack.post(f"/api/v1/alerts/{alert}/{action}", "operator_a", json=body).status_code
            == 200
        )
    stack.settled()
    rebuilt = Projections(stack.log, StateStore(tmp_path / "state.db"))
    rebuilt.catch_up()
    assert rebuilt.alerts[alert].history == stack.projections.alerts[alert].history
    assert [h.kind for h in rebuilt.alerts[alert].history][-3:] == [
        "AlertAssigned",
        "AlertAcknowledged",
        "AlertResolved",
    ]
    assert rebuilt.digest() == stack.projections.digest()
    rebuilt.store.close()


# --- a stack with delivery status wired, public metrics and no waiting ----------------------


class Deliveries:
    """What the alerts package provides (the lead wires the real one)."""

    def endpoint_status(self, endpoint: str) -> Mapping[str, Any] | None:
        return (
            {"endpoint": endpoint, "pending": 2, "failed": 0}
            if endpoint.startswith("huamu")
            else None
        )

    def deliveries(self, endpoint: str, limit: int) -> Sequence[Mapping[str, Any]]:
        return [{"message_id": f"m{i}", "status": "delivered"} for i in range(min(limit, 3))]


@pytest.fixture(scope="module")
def wired(tmp_path_factory: pytest.TempPathFactory, traffic: list[Envelope]) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("wired"),
        traffic[: len(traffic) // 2],
        deliveries=Deliveries(),
        command_wait_s=0.0,
        public_metrics=True,
        app_log=PlainLog,
    ) as stack:
        yield stack


def test_delivery_status_from_the_wired_source(wired: Stack) -> None:
    hooks = {w["id"]: w for w in wired.get("/api/v1/webhooks").json()["items"]}
    assert hooks["huamu-control"]["status"] == {
        "endpoint": "huamu/huamu-control",
        "pending": 2,
        "failed": 0,
    }
    assert hooks["gumei-control"]["status"] is None
    r = wired.get("/api/v1/webhooks/huamu/huamu-control/deliveries?limit=2", "office_a").json()
    assert r["available"] is True and len(r["items"]) == 2


def test_an_action_not_yet_projected_is_202_with_its_location(wired: Stack) -> None:
    alert = open_alert(wired)
    r = wired.post(f"/api/v1/alerts/{alert}/comment", json={"text": "later"})
    assert r.status_code == 202, r.text
    assert r.headers["Location"] == f"/api/v1/alerts/{alert}"
    assert r.json()["alert_id"] == alert
    wired.wait(
        lambda: wired.get(f"/api/v1/alerts/{alert}").json()["history"][-1]["comment"] == "later", 10
    )


def test_public_metrics_need_no_token(wired: Stack) -> None:
    assert "estate_open_alerts" in wired.get("/metrics", None).text


def test_readings_without_read_key_scan_the_log(wired: Stack, traffic: list[Envelope]) -> None:
    device, since = "wm-01-102", T0 + timedelta(hours=1)
    appended = traffic[: len(traffic) // 2]  # what the wired stack holds
    want = {str(e.id) for e in appended if e.device == device and e.occurred_at >= since}
    q = since.isoformat().replace("+", "%2B")
    got = pages(wired, f"/api/v1/estates/{A}/devices/{device}/readings?since={q}&limit=4")
    assert want and sorted(r["id"] for r in got) == sorted(want)
    assert [r["position"] for r in got] == sorted(r["position"] for r in got)  # log order
