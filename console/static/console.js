// Control-room console: plain JS, no build step, no external assets.
"use strict";

const I18N = {
  zh: {
    title: "小区监控中心", estate: "小区", token: "访问令牌", login: "登录",
    live_alerts: "实时告警", sev_critical: "紧急", sev_major: "重要", sev_warning: "警告",
    sev_info: "提示", recently_resolved: "最近已处理", device_health: "设备健康",
    building: "楼栋", online_pct: "在线率", offline: "离线", low_battery: "低电量",
    latest_readings: "最新读数", device: "设备", time: "时间", kind: "类型", values: "数值",
    comment: "备注（可选）", assign_to: "指派给", acknowledge: "确认", assign: "指派",
    resolve: "解决", online_feed: "实时推送已连接", offline_feed: "实时推送断开",
    status_raised: "告警中", status_cleared: "已恢复", status_resolved: "已解决",
    acked_by: "已确认：", assigned_to: "负责人：", since: "发生于 ", unknown_token: "令牌无效",
    devices_summary: "共 {total} 台设备：在线 {online}，离线 {offline}，低电量 {low_battery}，未上报 {unknown}",
    no_readings: "暂无读数", last_seen: "最后上报 ", battery: "电量 ", health_online: "在线",
    health_offline: "离线", health_low_battery: "低电量", health_unknown: "未上报",
    estate_wide: "公共区域", need_assignee: "请填写负责人",
  },
  en: {
    title: "Estate control room", estate: "Estate", token: "Access token", login: "Log in",
    live_alerts: "Live alerts", sev_critical: "Critical", sev_major: "Major",
    sev_warning: "Warning", sev_info: "Info", recently_resolved: "Recently resolved",
    device_health: "Device health", building: "Building", online_pct: "Online",
    offline: "Offline", low_battery: "Low battery", latest_readings: "Latest readings",
    device: "Device", time: "Time", kind: "Kind", values: "Values",
    comment: "Comment (optional)", assign_to: "Assign to", acknowledge: "Acknowledge",
    assign: "Assign", resolve: "Resolve", online_feed: "Live feed connected",
    offline_feed: "Live feed disconnected", status_raised: "Raised", status_cleared: "Cleared",
    status_resolved: "Resolved", acked_by: "Acknowledged by ", assigned_to: "Assignee: ",
    since: "since ", unknown_token: "Unknown token",
    devices_summary: "{total} devices: {online} online, {offline} offline, {low_battery} low battery, {unknown} never reported",
    no_readings: "No readings yet", last_seen: "last seen ", battery: "battery ",
    health_online: "online", health_offline: "offline", health_low_battery: "low battery",
    health_unknown: "never reported", estate_wide: "Estate-wide",
    need_assignee: "Enter an assignee",
  },
};
// Condition names of the detector packs; unknown ones show their id.
const CONDITIONS = {
  device_offline: ["设备离线", "Device offline"],
  low_battery: ["电量低", "Low battery"],
  clock_skew: ["设备时钟偏差", "Clock skew"],
  bin_overflow: ["垃圾桶满溢", "Bin overflowing"],
  bin_not_emptied: ["垃圾桶未清运", "Bin not emptied"],
  bin_fill_forecast: ["垃圾桶即将装满", "Bin filling up"],
  bin_fire_risk: ["垃圾桶火灾风险", "Bin fire risk"],
  bin_stuck_sensor: ["垃圾桶传感器卡滞", "Bin sensor stuck"],
  water_night_flow: ["夜间用水异常", "Night-time water flow"],
  water_continuous_flow: ["持续用水（疑似漏水）", "Continuous flow (leak?)"],
  water_burst: ["疑似爆管", "Suspected burst"],
  water_backflow: ["水表倒流", "Backflow"],
  water_no_use: ["长期无用水", "No water use"],
};
const conditionLabel = (c) => (CONDITIONS[c] ? CONDITIONS[c][state.lang === "zh" ? 0 : 1] : c);
const MAX_RESOLVED = 10;

const state = {
  lang: localStorage.getItem("console.lang") || "zh",
  estate: null,
  alerts: new Map(), // alert id -> alert (without history)
  cards: new Map(), // alert id -> <li>
  source: null,
  healthTimer: null,
};

const $ = (sel, root = document) => root.querySelector(sel);
const t = (key) => I18N[state.lang][key] ?? key;

function applyLanguage() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
  $("#lang").textContent = state.lang === "zh" ? "EN" : "中文";
  for (const alert of state.alerts.values()) fillCard(state.cards.get(alert.alert_id), alert);
  setLive(state.source !== null && state.source.readyState === EventSource.OPEN);
}

class HttpError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || String(status));
    this.status = status;
  }
}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", headers: { Accept: "application/json" } };
  if (options.body !== undefined) {
    init.method = options.method || "POST";
    init.headers["Content-Type"] = "application/json";
    init.headers["X-Requested-With"] = "estate-console";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (response.status === 401) showLogin();
  if (!response.ok) throw new HttpError(response.status, data);
  return data;
}

function showLogin() {
  $("#main").hidden = true;
  $("#login").hidden = false;
  $("#token").focus();
}

async function login(event) {
  event.preventDefault();
  $("#login-error").textContent = "";
  try {
    await api("/api/v1/session", { body: { token: $("#token").value.trim() } });
    $("#token").value = "";
    await start();
  } catch (err) {
    $("#login-error").textContent = err.status === 401 ? t("unknown_token") : err.message;
  }
}

async function start() {
  const session = await api("/api/v1/session");
  if (!session.authenticated) { showLogin(); return; }
  const me = session.me;
  $("#login").hidden = true;
  $("#main").hidden = false;
  $("#who").textContent = `${me.name} · ${me.role}`;
  document.body.dataset.canAct = me.can_act ? "yes" : "no";
  const [estates, config] = await Promise.all([api("/api/v1/estates"), api("/api/v1/config")]);
  const select = $("#estate");
  select.replaceChildren(...estates.items.map((e) => new Option(`${e.name} (${e.id})`, e.id)));
  const grafana = $("#grafana");
  grafana.replaceChildren(...config.grafana.map((link) => {
    const a = document.createElement("a");
    a.textContent = link.title;
    a.dataset.base = link.url;
    a.target = "_blank";
    a.rel = "noopener";
    return a;
  }));
  connect();
  if (estates.items.length) await chooseEstate(estates.items[0].id);
}

async function chooseEstate(estate) {
  state.estate = estate;
  $("#estate").value = estate;
  for (const a of document.querySelectorAll("#grafana a")) {
    a.href = `${a.dataset.base}?var-estate=${encodeURIComponent(estate)}`;
  }
  state.alerts.clear();
  state.cards.clear();
  for (const ol of document.querySelectorAll(".sev ol")) ol.replaceChildren();
  await Promise.all([loadAlerts(), loadHealth(), loadDevices()]);
}

async function loadAlerts() {
  const estate = encodeURIComponent(state.estate);
  const open = await api(`/api/v1/alerts?estate=${estate}&status=open&limit=500`);
  const done = await api(`/api/v1/alerts?estate=${estate}&status=resolved&limit=${MAX_RESOLVED}`);
  for (const alert of [...open.items, ...done.items]) upsert(alert, false);
}

function upsert(alert, fresh) {
  if (alert.estate !== state.estate) return;
  const known = state.alerts.get(alert.alert_id);
  if (known && known.updated_at > alert.updated_at) return;
  state.alerts.set(alert.alert_id, alert);
  let card = state.cards.get(alert.alert_id);
  if (!card) {
    card = $("#alert-card").content.firstElementChild.cloneNode(true);
    card.dataset.alertId = alert.alert_id;
    for (const el of card.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of card.querySelectorAll("[data-i18n-placeholder]")) {
      el.placeholder = t(el.dataset.i18nPlaceholder);
    }
    card.querySelector(".do-ack").addEventListener("click", () => act(card, "acknowledge"));
    card.querySelector(".do-assign").addEventListener("click", () => act(card, "assign"));
    card.querySelector(".do-resolve").addEventListener("click", () => act(card, "resolve"));
    state.cards.set(alert.alert_id, card);
  }
  fillCard(card, alert);
  place(card, alert);
  if (fresh) {
    card.classList.remove("fresh");
    void card.offsetWidth; // restart the animation
    card.classList.add("fresh");
  }
  updateCount();
}

function fillCard(card, alert) {
  if (!card) return;
  card.className = `card ${alert.status === "resolved" ? "resolved" : alert.severity}`;
  card.dataset.status = alert.status;
  card.dataset.severity = alert.severity;
  card.dataset.acknowledged = alert.acknowledged_at ? "yes" : "no";
  $(".what", card).textContent = conditionLabel(alert.condition);
  $(".what", card).title = alert.condition;
  $(".where", card).textContent = `${alert.building || t("estate_wide")} · ${alert.device}`;
  $(".explanation", card).textContent = alert.explanation;
  $(".status", card).textContent = t(`status_${alert.status}`);
  $(".since", card).textContent = t("since") + formatTime(alert.raised_at);
  $(".ack", card).textContent = alert.acknowledged_by ? t("acked_by") + alert.acknowledged_by : "";
  $(".assignee", card).textContent = alert.assignee ? t("assigned_to") + alert.assignee : "";
  const canAct = document.body.dataset.canAct === "yes";
  for (const el of card.querySelectorAll(".actions button, .actions input")) el.hidden = !canAct;
  if (alert.acknowledged_at) $(".do-ack", card).hidden = true;
}

function place(card, alert) {
  const list = alert.status === "resolved" ? $("#resolved ol") : $(`#sev-${alert.severity} ol`);
  const siblings = [...list.children].filter((c) => c !== card);
  const key = alert.status === "resolved" ? alert.resolved_at : alert.raised_at;
  const before = siblings.find((c) => {
    const other = state.alerts.get(c.dataset.alertId);
    return (other.status === "resolved" ? other.resolved_at : other.raised_at) < key;
  });
  if (card.parentElement !== list || card.nextElementSibling !== (before || null)) {
    list.insertBefore(card, before || null);
  }
  const resolved = $("#resolved ol");
  while (resolved.children.length > MAX_RESOLVED) {
    const last = resolved.lastElementChild;
    state.cards.delete(last.dataset.alertId);
    state.alerts.delete(last.dataset.alertId);
    last.remove();
  }
}

function updateCount() {
  const open = [...state.alerts.values()].filter((a) => a.status !== "resolved").length;
  $("#alert-count").textContent = `(${open})`;
}

async function act(card, action) {
  const id = card.dataset.alertId;
  const comment = $(".comment", card).value.trim();
  const to = $(".assign-to", card).value.trim();
  const error = $(".error", card);
  error.textContent = "";
  let body;
  if (action === "assign") {
    if (!to) { error.textContent = t("need_assignee"); return; }
    body = { to };
  } else {
    body = comment ? { comment } : {};
  }
  const buttons = card.querySelectorAll("button");
  for (const b of buttons) b.disabled = true;
  try {
    const result = await api(`/api/v1/alerts/${id}/${action}`, { body });
    if (result && result.alert_id && result.updated_at) upsert(result, false);
    if (action === "assign") $(".assign-to", card).value = "";
    else $(".comment", card).value = "";
  } catch (err) {
    error.textContent = err.message;
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

function connect() {
  if (state.source) state.source.close();
  const source = new EventSource("/api/v1/stream");
  state.source = source;
  source.addEventListener("hello", () => {
    setLive(true);
    if (state.estate) loadAlerts().catch(() => {});
  });
  source.addEventListener("alert", (event) => upsert(JSON.parse(event.data), true));
  source.addEventListener("device", (event) => {
    const device = JSON.parse(event.data);
    if (device.estate !== state.estate) return;
    clearTimeout(state.healthTimer);
    state.healthTimer = setTimeout(() => loadHealth().catch(() => {}), 300);
    if ($("#device").value === device.id) loadReadings().catch(() => {});
  });
  source.addEventListener("error", () => setLive(false));
}

function setLive(on) {
  const live = $("#live");
  live.className = `live ${on ? "on" : "off"}`;
  live.textContent = t(on ? "online_feed" : "offline_feed");
}

async function loadHealth() {
  const data = await api(`/api/v1/estates/${encodeURIComponent(state.estate)}/buildings`);
  const h = data.health;
  $("#health-summary").textContent = t("devices_summary").replace(/\{(\w+)\}/g, (_, k) => h[k]);
  $("#health-table tbody").replaceChildren(...data.items.map((b) => {
    const row = document.createElement("tr");
    row.dataset.building = b.id || "";
    const pct = b.health.online_pct;
    row.append(
      cell(b.id ? `${b.name} (${b.id})` : t("estate_wide")),
      cell(pct === null ? "—" : `${pct}%`, pct === null ? "" : pct < 80 ? "pct-low" : pct < 95 ? "pct-mid" : "pct-ok"),
      deviceButtons(b.offline),
      deviceButtons(b.low_battery),
    );
    return row;
  }));
}

function cell(text, cls = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function deviceButtons(ids) {
  const td = document.createElement("td");
  for (const id of ids) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = id;
    b.addEventListener("click", () => { $("#device").value = id; loadReadings(); });
    td.append(b);
  }
  if (!ids.length) td.textContent = "—";
  return td;
}

async function loadDevices() {
  const items = [];
  let next = `/api/v1/estates/${encodeURIComponent(state.estate)}/devices?limit=500`;
  while (next) {
    const page = await api(next);
    items.push(...page.items);
    next = page.next;
  }
  items.sort((a, b) => (b.last_seen || "").localeCompare(a.last_seen || "") || a.id.localeCompare(b.id));
  $("#device").replaceChildren(...items.map((d) => new Option(`${d.id} · ${d.kind}`, d.id)));
  if (items.length) await loadReadings();
}

async function loadReadings() {
  const id = $("#device").value;
  if (!id) return;
  const base = `/api/v1/estates/${encodeURIComponent(state.estate)}/devices/${encodeURIComponent(id)}`;
  const [device, readings] = await Promise.all([api(base), api(`${base}/readings?limit=10&order=desc`)]);
  const parts = [t(`health_${device.health}`)];
  if (device.last_seen) parts.push(t("last_seen") + formatTime(device.last_seen));
  if (device.battery_pct !== null) parts.push(`${t("battery")}${device.battery_pct}%`);
  $("#device-state").textContent = parts.join(" · ");
  const rows = readings.items.map((r) => {
    const row = document.createElement("tr");
    const values = Object.entries(r.payload).filter(([k]) => k !== "_flags")
      .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join("  ");
    row.append(cell(formatTime(r.occurred_at)), cell(r.kind), cell(values));
    return row;
  });
  if (!rows.length) {
    const row = document.createElement("tr");
    const td = cell(t("no_readings"));
    td.colSpan = 3;
    row.append(td);
    rows.push(row);
  }
  $("#readings-table tbody").replaceChildren(...rows);
}

function formatTime(iso) {
  const d = new Date(iso);
  return d.toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB", { hour12: false });
}

document.addEventListener("DOMContentLoaded", () => {
  $("#lang").addEventListener("click", () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem("console.lang", state.lang);
    applyLanguage();
  });
  $("#login-form").addEventListener("submit", login);
  $("#estate").addEventListener("change", (e) => chooseEstate(e.target.value));
  $("#device").addEventListener("change", () => loadReadings());
  applyLanguage();
  start().catch((err) => {
    if (err.status !== 401) console.warn("console start failed:", err.message);
  });
});
