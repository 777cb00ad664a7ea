"""The operations of ``/api/v1``: each declared once (see :mod:`console.http`)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from aiohttp import web
from pydantic import AwareDatetime, Field, JsonValue

from console.auth import identify, principal
from console.context import CONSOLE, COOKIE, Console, KeyReader
from console.http import (
    Api,
    Call,
    InputModel,
    Operation,
    OutputModel,
    Page,
    ProblemError,
    decode_cursor,
    encode_cursor,
    json_response,
    next_link,
    not_found,
)
from console.metrics import CONTENT_TYPE, render
from console.tokens import Principal, Role
from console.views import (
    DeviceOut,
    Health,
    HealthCounts,
    alert_out,
    alerts_snapshot,
    building_of,
    count_health,
    device_health,
    device_out,
    open_by_severity,
)
from devices.catalogue import DeviceKind
from devices.severity import Severity
from eventlog.envelope import Envelope, Ident, Stream, deterministic_id
from eventlog.log import StoredRecord
from processors import alarm
from processors.alarm import AlertEventKind
from processors.projections import RESOLVED, AlertView, HistoryEntry
from processors.runner import COMMANDS

api = Api()

#: Records of a stream scanned per request at most when filtering (then ``next`` goes on).
SCAN_BUDGET: Final = 20_000
Limit = Annotated[int, Field(ge=1, le=500)]
Cursor = Annotated[str, Field(min_length=1, max_length=512)]
Text = Annotated[str, Field(min_length=1, max_length=2000)]


def console_of(call: Call) -> Console:
    return call.request.app[CONSOLE]


# --- models ----------------------------------------------------------------------------------


class EstatePath(InputModel):
    estate: Ident


class DevicePath(EstatePath):
    device: Ident


class AlertPath(InputModel):
    alert_id: uuid.UUID


class WebhookPath(InputModel):
    office: Ident
    endpoint: Ident


class EstateOut(OutputModel):
    id: str
    name: str
    timezone: str
    district: str
    street_office: str
    households: int
    buildings: int
    health: HealthCounts
    open_alerts: dict[str, int] = Field(description="open alerts by severity")


class EstateList(OutputModel):
    items: list[EstateOut]


class BuildingOut(OutputModel):
    id: str | None = Field(description="null: devices of the estate outside any building")
    name: str
    households: int
    health: HealthCounts
    offline: list[str] = Field(description="ids of the offline devices")
    low_battery: list[str] = Field(description="ids of the devices low on battery")


class BuildingList(OutputModel):
    estate: str
    health: HealthCounts
    items: list[BuildingOut]


class DevicesQuery(InputModel):
    building: Ident | None = None
    kind: DeviceKind | None = None
    health: Health | None = None
    limit: Limit = 100
    cursor: Cursor | None = None


class DevicePage(Page):
    items: list[DeviceOut]


class RecordOut(OutputModel):
    """A record of the log: its position in its stream and the envelope."""

    position: int
    id: str
    kind: str
    occurred_at: str
    received_at: str
    estate: str | None
    building: str | None
    device: str | None
    payload: dict[str, JsonValue]


class RecordPage(Page):
    items: list[RecordOut]


class ReadingsQuery(InputModel):
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    order: Literal["asc", "desc"] = Field(default="desc", description="desc: newest first")
    limit: Limit = 100
    cursor: Cursor | None = None


class EventsQuery(InputModel):
    estate: Ident | None = None
    kind: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    severity: Severity | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    limit: Limit = 100
    cursor: Cursor | None = None


AlertStatus = Literal["open", "raised", "cleared", "resolved", "all"]


class AlertsQuery(InputModel):
    estate: Ident | None = None
    building: Ident | None = None
    device: Ident | None = None
    condition: Ident | None = None
    severity: Severity | None = None
    status: AlertStatus = "all"
    since: AwareDatetime | None = Field(default=None, description="raised at or after")
    until: AwareDatetime | None = Field(default=None, description="raised at or before")
    limit: Limit = 100
    cursor: Cursor | None = None


class AlertPage(Page):
    items: list[AlertView]


class AcknowledgeIn(InputModel):
    comment: Text | None = None


class AssignIn(InputModel):
    to: Annotated[str, Field(min_length=1, max_length=100)]


class CommentIn(InputModel):
    text: Text


class ResolveIn(InputModel):
    comment: Text | None = None


class CommandAccepted(OutputModel):
    """The command is in the log but its outcome was not projected yet: poll the alert."""

    command_id: str
    alert_id: str
    alert: str = Field(description="URL of the alert")


class WebhooksQuery(InputModel):
    estate: Ident | None = None


class WebhookOut(OutputModel):
    office: str
    id: str
    url: str
    events: list[str]
    min_severity: str
    estates: list[str] | None
    status: dict[str, JsonValue] | None = Field(
        description="delivery status from the alerts package; null when not wired"
    )


class WebhookList(OutputModel):
    items: list[WebhookOut]


class DeliveriesQuery(InputModel):
    limit: Limit = 50


class DeliveryList(OutputModel):
    endpoint: str
    available: bool = Field(description="false when delivery tracking is not wired")
    items: list[dict[str, JsonValue]]


class Me(OutputModel):
    name: str
    role: str
    estates: list[str] | None = Field(description="null: every estate")
    can_act: bool


class SessionOut(OutputModel):
    authenticated: bool
    me: Me | None


class LoginIn(InputModel):
    token: Annotated[str, Field(min_length=1, max_length=200)]


class Status(OutputModel):
    status: str
    lag: int | None = None


class GrafanaLink(OutputModel):
    title: str
    url: str


class ConsoleConfig(OutputModel):
    grafana: list[GrafanaLink]


class StreamQuery(InputModel):
    access_token: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="the token, for EventSource (which cannot send headers)"
    )


# --- helpers ---------------------------------------------------------------------------------


def visible_estate(call: Call, estate: str) -> Console:
    """The console, once ``estate`` exists and is in the caller's scope (else 404)."""
    console = console_of(call)
    if console.index.estate(estate) is None or not call.who.can_read(estate):
        raise not_found(f"estate {estate!r}")
    return console


def scope_filter(call: Call, estate: str | None) -> Callable[[str | None], bool]:
    """Whether a record's estate passes the caller's scope and the ``estate`` filter (403
    when the filter names an estate outside the scope)."""
    who = call.who
    if estate is not None and not who.can_read(estate):
        raise ProblemError(403, "Forbidden", f"estate {estate!r} is not in your scope")
    return lambda e: e is not None and (estate is None or e == estate) and who.can_read(e)


def record_out(record: StoredRecord) -> RecordOut:
    e = record.envelope
    return RecordOut(
        position=record.position,
        id=str(e.id),
        kind=e.kind,
        occurred_at=e.occurred_at.isoformat(),
        received_at=e.received_at.isoformat(),
        estate=e.estate,
        building=e.building,
        device=e.device,
        payload=dict(e.payload),
    )


def in_range(at: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or at >= since) and (until is None or at <= until)


def scan(
    console: Console,
    stream: str,
    start: int,
    keep: Callable[[Envelope], bool],
    limit: int,
) -> tuple[list[StoredRecord], int | None]:
    """Records of ``stream`` (one partition) from ``start`` that ``keep`` accepts: at most
    ``limit``, reading at most :data:`SCAN_BUDGET`; the position to continue from, or None
    at the end of the log."""
    found: list[StoredRecord] = []
    read = 0
    while read < SCAN_BUDGET:
        records = console.log.read(stream, 0, start, min(1000, SCAN_BUDGET - read))
        if not records:
            return found, None
        for record in records:
            start = record.position + 1
            if keep(record.envelope):
                found.append(record)
                if len(found) == limit:
                    return found, start
        read += len(records)
    return found, start


# --- identity and health ---------------------------------------------------------------------


async def _health(call: Call) -> web.StreamResponse:
    return json_response(Status(status="ok"))


async def _ready(call: Call) -> web.StreamResponse:
    console = console_of(call)
    lag = await asyncio.to_thread(console.projections.lag)
    if lag > console.options.ready_max_lag:
        raise ProblemError(
            503, "Not Ready", f"the projections are {lag} records behind the log (catching up)"
        )
    return json_response(Status(status="ready", lag=lag))


def me_of(who: Principal) -> Me:
    estates = None if who.estates is None else sorted(who.estates)
    return Me(name=who.name, role=who.role.value, estates=estates, can_act=who.can_act)


async def _me(call: Call) -> web.StreamResponse:
    return json_response(me_of(call.who))


async def _session(call: Call) -> web.StreamResponse:
    console = console_of(call)
    try:
        found = identify(console, call.request)
    except ProblemError:  # a stale cookie: logged out
        found = None
    me = None if found is None else me_of(principal(console, found[0]))
    return json_response(SessionOut(authenticated=me is not None, me=me))


async def _login(call: Call) -> web.StreamResponse:
    console = console_of(call)
    token = call.body_as(LoginIn).token
    if console.tokens.check(token) is None:
        raise ProblemError(401, "Unauthorized", "unknown token")
    response = web.Response(status=204)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=console.options.secure_cookie,
        path="/",
        max_age=12 * 3600,
    )
    return response


async def _logout(call: Call) -> web.StreamResponse:
    response = web.Response(status=204)
    response.del_cookie(COOKIE, path="/")
    return response


async def _config(call: Call) -> web.StreamResponse:
    options = console_of(call).options
    base = (options.grafana_url or "").rstrip("/")
    links = [GrafanaLink(title=b.title, url=f"{base}/d/{b.uid}") for b in options.grafana_boards]
    return json_response(ConsoleConfig(grafana=links if base else []))


# --- estates, buildings, devices, readings ---------------------------------------------------


def estate_out(console: Console, estate: str) -> EstateOut:
    ref = console.index.estate(estate)
    assert ref is not None
    healths = [d.health for d in device_health(console.index, console.projections, estate)]
    return EstateOut(
        id=estate,
        name=ref.estate.name,
        timezone=ref.estate.timezone,
        district=ref.district.id,
        street_office=ref.street_office.id,
        households=ref.estate.households,
        buildings=len(ref.estate.buildings),
        health=count_health(healths),
        open_alerts=open_by_severity(console.projections, estate),
    )


async def _estates(call: Call) -> web.StreamResponse:
    console = console_of(call)
    estates = call.who.visible(console.index.estate_ids())
    return json_response(EstateList(items=[estate_out(console, e) for e in estates]))


async def _estate(call: Call) -> web.StreamResponse:
    estate = call.path_as(EstatePath).estate
    return json_response(estate_out(visible_estate(call, estate), estate))


async def _buildings(call: Call) -> web.StreamResponse:
    estate = call.path_as(EstatePath).estate
    console = visible_estate(call, estate)
    ref = console.index.estate(estate)
    assert ref is not None
    devices = device_health(console.index, console.projections, estate)
    by_building: dict[str | None, list[DeviceOut]] = {}
    for d in devices:
        by_building.setdefault(d.building, []).append(d)
    items = []
    for b in [*ref.estate.buildings, None]:
        members = by_building.get(None if b is None else b.id, [])
        if b is None and not members:
            continue
        items.append(
            BuildingOut(
                id=None if b is None else b.id,
                name=ref.estate.name if b is None else b.name,
                households=0 if b is None else b.households,
                health=count_health(d.health for d in members),
                offline=[d.id for d in members if d.health is Health.OFFLINE],
                low_battery=[d.id for d in members if d.health is Health.LOW_BATTERY],
            )
        )
    health = count_health(d.health for d in devices)
    return json_response(BuildingList(estate=estate, health=health, items=items))


async def _devices(call: Call) -> web.StreamResponse:
    estate = call.path_as(EstatePath).estate
    q = call.query_as(DevicesQuery)
    console = visible_estate(call, estate)
    after = decode_cursor(q.cursor, [str])[0] if q.cursor else None
    refs = sorted(console.index.devices_of(estate), key=lambda r: r.device)
    items: list[DeviceOut] = []
    more = False
    for ref in refs:
        if (after is not None and ref.device <= after) or (
            (q.building is not None and ref.building != q.building)
            or (q.kind is not None and ref.kind != q.kind)
        ):
            continue
        device = device_out(ref, console.projections)
        if q.health is not None and device.health is not q.health:
            continue
        if len(items) == q.limit:
            more = True
            break
        items.append(device)
    cursor = encode_cursor([items[-1].id]) if more else None
    return json_response(DevicePage(items=items, next=next_link(call.request, cursor)))


def visible_device(call: Call) -> tuple[Console, str, str]:
    p = call.path_as(DevicePath)
    console = visible_estate(call, p.estate)
    if console.index.device(p.estate, p.device) is None:
        raise not_found(f"device {p.device!r} in estate {p.estate!r}")
    return console, p.estate, p.device


async def _device(call: Call) -> web.StreamResponse:
    console, estate, device = visible_device(call)
    ref = console.index.device(estate, device)
    assert ref is not None
    return json_response(device_out(ref, console.projections))


async def _readings(call: Call) -> web.StreamResponse:
    console, estate, device = visible_device(call)
    q = call.query_as(ReadingsQuery)
    after = decode_cursor(q.cursor, [int])[0] if q.cursor else None
    key = f"{estate}/{device}"
    log = console.log
    if isinstance(log, KeyReader):
        records = await asyncio.to_thread(
            log.read_key,
            Stream.READINGS.value,
            key,
            q.since,
            q.until,
            q.limit + 1,
            after=after,
            newest_first=q.order == "desc",
        )
        more = len(records) > q.limit
        records = records[: q.limit]
        cursor = encode_cursor([records[-1].position]) if more else None
    else:  # a backend without read_key: scan the stream in log order
        records, resume = await asyncio.to_thread(
            scan,
            console,
            Stream.READINGS.value,
            0 if after is None else after + 1,
            lambda e: e.key == key and in_range(e.occurred_at, q.since, q.until),
            q.limit,
        )
        cursor = None if resume is None else encode_cursor([resume - 1])
    page = RecordPage(items=[record_out(r) for r in records], next=next_link(call.request, cursor))
    return json_response(page)


# --- events ----------------------------------------------------------------------------------


async def _events(call: Call) -> web.StreamResponse:
    q = call.query_as(EventsQuery)
    console = console_of(call)
    in_scope = scope_filter(call, q.estate)
    start = decode_cursor(q.cursor, [int])[0] if q.cursor else 0
    severity = None if q.severity is None else q.severity.value

    def keep(e: Envelope) -> bool:
        return (
            in_scope(e.estate)
            and (q.kind is None or e.kind == q.kind)
            and (severity is None or e.payload.get("severity") == severity)
            and in_range(e.occurred_at, q.since, q.until)
        )

    records, resume = await asyncio.to_thread(
        scan, console, Stream.EVENTS.value, start, keep, q.limit
    )
    cursor = None if resume is None else encode_cursor([resume])
    page = RecordPage(items=[record_out(r) for r in records], next=next_link(call.request, cursor))
    return json_response(page)


# --- alerts ----------------------------------------------------------------------------------


def _alert_sort_key(a: AlertView) -> tuple[str, str]:
    return (a.raised_at.isoformat(), a.alert_id)


async def _alerts(call: Call) -> web.StreamResponse:
    q = call.query_as(AlertsQuery)
    console = console_of(call)
    in_scope = scope_filter(call, q.estate)
    after = tuple(decode_cursor(q.cursor, [str, str])) if q.cursor else None
    severity = None if q.severity is None else q.severity.value

    def keep(a: AlertView) -> bool:
        status_ok = (
            q.status == "all"
            or (q.status == "open" and a.status != RESOLVED)
            or a.status == q.status
        )
        return (
            in_scope(a.estate)
            and status_ok
            and (q.building is None or building_of(console.index, a) == q.building)
            and (q.device is None or a.device == q.device)
            and (q.condition is None or a.condition == q.condition)
            and (severity is None or a.severity == severity)
            and in_range(a.raised_at, q.since, q.until)
        )

    chosen = sorted(
        (a for a in alerts_snapshot(console.projections) if keep(a)),
        key=_alert_sort_key,
        reverse=True,  # newest first
    )
    if after is not None:
        chosen = [a for a in chosen if _alert_sort_key(a) < after]
    items = [alert_out(console.index, a) for a in chosen[: q.limit]]
    more = len(chosen) > q.limit
    cursor = encode_cursor(list(_alert_sort_key(items[-1]))) if more else None
    return json_response(AlertPage(items=items, next=next_link(call.request, cursor)))


def visible_alert(call: Call) -> tuple[Console, AlertView]:
    console = console_of(call)
    alert_id = str(call.path_as(AlertPath).alert_id)
    view = console.projections.alerts.get(alert_id)
    if view is None or not call.who.can_read(view.estate):
        raise not_found(f"alert {alert_id}")
    return console, view


async def _alert(call: Call) -> web.StreamResponse:
    console, view = visible_alert(call)
    return json_response(alert_out(console.index, view))


# --- operator actions ------------------------------------------------------------------------

#: What an action sends and how its outcome shows in the alert's history.
Expect = Callable[[HistoryEntry], bool]


def command_id(call: Call, action: str, alert_id: str) -> uuid.UUID:
    """From the ``Idempotency-Key`` header when given (a retry appends nothing new)."""
    key = call.request.headers.get("Idempotency-Key")
    if key is None:
        return uuid.uuid4()
    if not 1 <= len(key) <= 200:
        raise ProblemError(400, "Invalid Input", "Idempotency-Key must be 1 to 200 characters")
    return deterministic_id("console-command", call.who.token_id, key, action, alert_id)


async def act(
    call: Call,
    action: str,
    make: Callable[[uuid.UUID, str, datetime], alarm.AlarmCommand],
    kind: AlertEventKind,
    matches: Callable[[HistoryEntry], bool],
) -> web.StreamResponse:
    """Append one operator command to ``commands``; wait for its outcome in the projection."""
    who = call.who
    if not who.can_act:
        raise ProblemError(403, "Forbidden", f"the {who.role.value} role is read-only")
    console, view = visible_alert(call)
    now = datetime.now(UTC)
    actor = who.name
    command = make(uuid.UUID(view.alert_id), actor, now)
    cid = command_id(call, action, view.alert_id)
    envelope = Envelope(
        id=cid,
        kind=command.command,
        occurred_at=now,
        received_at=now,
        estate=view.estate,
        building=view.building,
        device=view.device,
        payload=command.model_dump(mode="json"),
    )
    seen = len(view.history)
    appended = (await asyncio.to_thread(console.log.append, COMMANDS, [envelope])).appended
    start = seen if appended else 0  # a retry: its outcome may already be in the history

    def outcome() -> bool:
        return any(
            e.kind == kind.value and e.actor == actor and matches(e)
            for e in list(view.history)[start:]
        )

    deadline = time.monotonic() + console.options.command_wait_s
    while True:
        reason = console.projections.rejections.get(str(cid))
        if reason is not None:
            raise ProblemError(
                409,
                "Command Rejected",
                reason,
                type_="/api/v1/problems/command-rejected",
                command_id=str(cid),
            )
        if outcome():
            return json_response(alert_out(console.index, view))
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.02)
    url = f"/api/v1/alerts/{view.alert_id}"
    accepted = CommandAccepted(command_id=str(cid), alert_id=view.alert_id, alert=url)
    response = json_response(accepted, status=202)
    response.headers["Location"] = url
    return response


async def _acknowledge(call: Call) -> web.StreamResponse:
    comment = call.body_as(AcknowledgeIn).comment
    return await act(
        call,
        "acknowledge",
        lambda a, by, at: alarm.AcknowledgeAlert(alert_id=a, by=by, at=at, comment=comment),
        AlertEventKind.ACKNOWLEDGED,
        lambda e: e.comment == comment,
    )


async def _assign(call: Call) -> web.StreamResponse:
    to = call.body_as(AssignIn).to
    return await act(
        call,
        "assign",
        lambda a, by, at: alarm.AssignAlert(alert_id=a, by=by, at=at, to=to),
        AlertEventKind.ASSIGNED,
        lambda e: e.assignee == to,
    )


async def _comment(call: Call) -> web.StreamResponse:
    text = call.body_as(CommentIn).text
    return await act(
        call,
        "comment",
        lambda a, by, at: alarm.CommentAlert(alert_id=a, by=by, at=at, text=text),
        AlertEventKind.COMMENTED,
        lambda e: e.comment == text,
    )


async def _resolve(call: Call) -> web.StreamResponse:
    comment = call.body_as(ResolveIn).comment
    return await act(
        call,
        "resolve",
        lambda a, by, at: alarm.ResolveAlert(alert_id=a, by=by, at=at, comment=comment),
        AlertEventKind.RESOLVED,
        lambda e: e.comment == comment,
    )


# --- webhooks --------------------------------------------------------------------------------


def _redact(url: str) -> str:
    """Scheme, host and path only: query strings of receiver URLs may carry credentials."""
    head, _, _ = url.partition("?")
    scheme, sep, rest = head.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}"


async def _webhooks(call: Call) -> web.StreamResponse:
    q = call.query_as(WebhooksQuery)
    console = console_of(call)
    in_scope = scope_filter(call, q.estate)
    estates = [e for e in console.index.estate_ids() if in_scope(e)]
    found: dict[str, WebhookOut] = {}
    for estate in estates:
        ref = console.index.estate(estate)
        assert ref is not None
        office = ref.street_office.id
        for hook in console.index.webhooks_for(estate):
            name = f"{office}/{hook.id}"
            if name in found:
                continue
            status = await _status(console, name)
            found[name] = WebhookOut(
                office=office,
                id=hook.id,
                url=_redact(hook.url),
                events=list(hook.events),
                min_severity=hook.min_severity.value,
                estates=None if hook.estates is None else list(hook.estates),
                status=status,
            )
    return json_response(WebhookList(items=list(found.values())))


async def _status(console: Console, name: str) -> dict[str, JsonValue] | None:
    source = console.deliveries
    if source is None:
        return None
    status = await asyncio.to_thread(source.endpoint_status, name)
    return None if status is None else dict(status)


def visible_webhook(call: Call) -> tuple[Console, str]:
    p = call.path_as(WebhookPath)
    console = console_of(call)
    office = console.index.street_office(p.office)
    visible = office is not None and any(
        call.who.can_read(e.id)
        and any(w.id == p.endpoint for w in console.index.webhooks_for(e.id))
        for e in office.estates
    )
    if not visible:
        raise not_found(f"webhook endpoint {p.office}/{p.endpoint}")
    return console, f"{p.office}/{p.endpoint}"


async def _deliveries(call: Call) -> web.StreamResponse:
    console, name = visible_webhook(call)
    limit = call.query_as(DeliveriesQuery).limit
    source = console.deliveries
    if source is None:
        return json_response(DeliveryList(endpoint=name, available=False, items=[]))
    rows = await asyncio.to_thread(source.deliveries, name, limit)
    return json_response(DeliveryList(endpoint=name, available=True, items=[dict(r) for r in rows]))


# --- metrics and the live feed ---------------------------------------------------------------


async def _metrics(call: Call) -> web.StreamResponse:
    console = console_of(call)
    if call.principal is not None and call.principal.role is not Role.ADMIN:
        raise ProblemError(403, "Forbidden", "metrics cover every estate: admin tokens only")

    def collect() -> str:
        return render(m for provider in console.metric_providers for m in provider())

    text = await asyncio.to_thread(collect)
    return web.Response(text=text, headers={"Content-Type": CONTENT_TYPE})


async def _stream(call: Call) -> web.StreamResponse:
    return await console_of(call).feed.stream(call.request, call.who)


# --- the table -------------------------------------------------------------------------------

V1 = "/api/v1"


def _op(method: str, path: str, handler: Any, summary: str, tag: str, **kw: Any) -> None:
    api.add(Operation(method, V1 + path, handler, summary, tag, **kw))


_op(
    "GET",
    "/health",
    _health,
    "Liveness: the process answers",
    "service",
    response=Status,
    auth=False,
)
_op(
    "GET",
    "/ready",
    _ready,
    "Readiness: projections caught up with the log",
    "service",
    response=Status,
    auth=False,
    errors=(503,),
)
_op("GET", "/me", _me, "Who the token belongs to, its role and scope", "auth", response=Me)
_op(
    "GET",
    "/session",
    _session,
    "Whether the caller is logged in (never 401: the page asks before showing its login)",
    "auth",
    response=SessionOut,
    auth=False,
)
_op(
    "POST",
    "/session",
    _login,
    "Log in: set the HttpOnly token cookie (console page)",
    "auth",
    body=LoginIn,
    status=204,
    auth=False,
)
_op(
    "DELETE", "/session", _logout, "Log out: clear the token cookie", "auth", status=204, auth=False
)
_op(
    "GET",
    "/config",
    _config,
    "Console settings: links to the Grafana boards",
    "auth",
    response=ConsoleConfig,
)
_op(
    "GET",
    "/estates",
    _estates,
    "Estates in scope with health and open alerts",
    "estates",
    response=EstateList,
)
_op(
    "GET",
    "/estates/{estate}",
    _estate,
    "One estate",
    "estates",
    path_model=EstatePath,
    response=EstateOut,
)
_op(
    "GET",
    "/estates/{estate}/buildings",
    _buildings,
    "Buildings with device health (online %, offline and low-battery devices)",
    "estates",
    path_model=EstatePath,
    response=BuildingList,
)
_op(
    "GET",
    "/estates/{estate}/devices",
    _devices,
    "Devices with state, last seen, battery, health",
    "devices",
    path_model=EstatePath,
    query=DevicesQuery,
    response=DevicePage,
)
_op(
    "GET",
    "/estates/{estate}/devices/{device}",
    _device,
    "One device",
    "devices",
    path_model=DevicePath,
    response=DeviceOut,
)
_op(
    "GET",
    "/estates/{estate}/devices/{device}/readings",
    _readings,
    "Readings of one device over a time range",
    "devices",
    path_model=DevicePath,
    query=ReadingsQuery,
    response=RecordPage,
)
_op(
    "GET",
    "/events",
    _events,
    "Events of the log, filtered (oldest first)",
    "events",
    query=EventsQuery,
    response=RecordPage,
)
_op(
    "GET",
    "/alerts",
    _alerts,
    "Alerts, newest first, filtered",
    "alerts",
    query=AlertsQuery,
    response=AlertPage,
)
_op(
    "GET",
    "/alerts/{alert_id}",
    _alert,
    "One alert with its whole history",
    "alerts",
    path_model=AlertPath,
    response=AlertView,
)
for _name, _handler, _body in (
    ("acknowledge", _acknowledge, AcknowledgeIn),
    ("assign", _assign, AssignIn),
    ("comment", _comment, CommentIn),
    ("resolve", _resolve, ResolveIn),
):
    _op(
        "POST",
        f"/alerts/{{alert_id}}/{_name}",
        _handler,
        f"{_name.capitalize()} an alert (an operator command in the log)",
        "alerts",
        path_model=AlertPath,
        body=_body,
        response=AlertView,
        errors=(409,),
        extra_responses={202: "CommandAccepted"},
    )
_op(
    "GET",
    "/webhooks",
    _webhooks,
    "Webhook endpoints of the street offices in scope",
    "webhooks",
    query=WebhooksQuery,
    response=WebhookList,
)
_op(
    "GET",
    "/webhooks/{office}/{endpoint}/deliveries",
    _deliveries,
    "Recent deliveries to one endpoint",
    "webhooks",
    path_model=WebhookPath,
    query=DeliveriesQuery,
    response=DeliveryList,
)
_op(
    "GET",
    "/stream",
    _stream,
    "Live feed (Server-Sent Events): alert and device events",
    "live",
    query=StreamQuery,
    content_type="text/event-stream",
    token_in_query=True,
)
api.add(
    Operation(
        "GET", "/metrics", _metrics, "Prometheus metrics", "service", content_type=CONTENT_TYPE
    )
)

#: Models the document names but no operation returns directly.
EXTRA_MODELS: Final = (CommandAccepted,)
