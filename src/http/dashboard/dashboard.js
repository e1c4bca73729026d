// The deployments dashboard: reads /graphpilot/analytics with the session cookie and draws every
// figure from the answers as they are (the numbers shown are the API's; only their format changes).
"use strict";

(function () {
  const API = "/graphpilot/analytics/";
  const $ = (id) => document.getElementById(id);
  const HOUR = 3600 * 1000;
  const PRESETS = { "24h": 24 * HOUR, "7d": 7 * 24 * HOUR, "30d": 30 * 24 * HOUR };

  /** An element with attributes and children (text nodes for strings): never HTML from data. */
  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value !== null && value !== undefined) node.setAttribute(name, value);
    }
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attributes) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    return node;
  }

  const count = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
  const percent = (rate) => (rate === null || rate === undefined ? "–" : (rate * 100).toFixed(1) + " %");

  /** An ISO 8601 duration as a person reads it: "24 min 13 s", "1 d 2 h". */
  function duration(iso) {
    if (iso === null || iso === undefined) return "–";
    const m = /^(-)?P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(iso);
    if (!m) return iso;
    const [, minus, d, h, min, s] = m;
    const parts = [];
    if (d) parts.push(d + " d");
    if (h) parts.push(h + " h");
    if (min) parts.push(min + " min");
    if (s && !d) parts.push(Math.round(Number(s)) + " s");
    return (minus ? "−" : "") + (parts.length ? parts.join(" ") : "0 s");
  }

  /** A DateTimeOffset as "2026-12-01 17:04 UTC". */
  function when(iso) {
    if (!iso) return "–";
    return iso.slice(0, 16).replace("T", " ") + " UTC";
  }

  /** The phases a reason failed in, those with events only: "device setup 9, account setup 2". */
  function phases(counts) {
    const names = { deviceSetup: "device setup", accountSetup: "account setup", unknown: "unknown" };
    return Object.entries(names)
      .filter(([key]) => counts[key] > 0)
      .map(([key, name]) => `${name} ${counts[key]}`)
      .join(", ");
  }

  function show(id, text, raw) {
    const node = $(id);
    node.textContent = text;
    if (raw !== undefined) node.dataset.value = raw === null ? "" : String(raw);
  }

  function status(text, isError) {
    const node = $("status");
    node.textContent = text;
    node.classList.toggle("error", Boolean(isError));
  }

  /** The window and filters as the API's parameters. */
  function parameters() {
    const form = $("filters");
    const preset = form.querySelector("input[name=preset]:checked").value;
    const params = new URLSearchParams();
    if (preset === "custom") {
      const from = $("from").value;
      const to = $("to").value;
      if (from) params.set("from", localToIso(from));
      if (to) params.set("to", localToIso(to));
    } else {
      const to = new Date();
      params.set("from", new Date(to.getTime() - PRESETS[preset]).toISOString());
      params.set("to", to.toISOString());
    }
    for (const name of ["profile", "esp", "enrollmentType"]) {
      const value = $(name).value;
      if (value !== "") params.set(name, value);
    }
    return params;
  }

  /** A datetime-local value, read as UTC. */
  function localToIso(value) {
    return (value.length === 16 ? value + ":00" : value) + "Z";
  }

  class SignedOut extends Error {}

  /** A query string with %20 for spaces: the API reads "+" as a plus, as Graph does. */
  function toQuery(params) {
    return [...(params || [])]
      .map(([name, value]) => encodeURIComponent(name) + "=" + encodeURIComponent(value))
      .join("&");
  }

  async function get(endpoint, params) {
    const text = toQuery(params);
    const query = text ? "?" + text : "";
    return getUrl(API + endpoint + query);
  }

  async function getUrl(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.status === 401) throw new SignedOut();
    const body = await response.json();
    if (!response.ok) throw new Error((body.error && body.error.message) || response.statusText);
    return body;
  }

  function fill(tableId, rows, cells) {
    const body = $(tableId).tBodies[0];
    body.replaceChildren();
    if (rows.length === 0) {
      const columns = $(tableId).tHead.rows[0].cells.length;
      body.append(el("tr", {}, el("td", { colspan: columns, class: "empty" }, "None in this window.")));
      return;
    }
    for (const row of rows) body.append(el("tr", {}, ...cells(row)));
  }

  const num = (text, raw) => el("td", { class: "n", "data-value": raw }, text);

  function drawTimeline(timeline) {
    const rows = timeline.rows;
    const box = $("timeline");
    box.replaceChildren();
    $("bucket").textContent = timeline.bucket;
    const width = 900, height = 220, left = 44, bottom = 24, top = 8;
    const max = Math.max(1, ...rows.map((r) => r.succeeded + r.failed));
    const step = (width - left) / Math.max(1, rows.length);
    const barWidth = Math.max(1, step * 0.8);
    const scale = (height - bottom - top) / max;
    const chart = svg("svg", {
      viewBox: `0 0 ${width} ${height}`, role: "img", class: "timeline",
      "aria-label": `Succeeded and failed deployments per ${timeline.bucket}, ${rows.length} ${timeline.bucket}s; ` +
        `${rows.reduce((a, r) => a + r.succeeded, 0)} succeeded and ${rows.reduce((a, r) => a + r.failed, 0)} failed in all`,
    });
    for (const fraction of [0, 0.5, 1]) {
      const y = height - bottom - fraction * max * scale;
      chart.append(svg("line", { x1: left, x2: width, y1: y, y2: y, class: "grid" }));
      const label = svg("text", { x: left - 6, y: y + 4, class: "axis", "text-anchor": "end" });
      label.textContent = String(Math.round(fraction * max));
      chart.append(label);
    }
    rows.forEach((row, i) => {
      const x = left + i * step + (step - barWidth) / 2;
      const okHeight = row.succeeded * scale;
      const badHeight = row.failed * scale;
      const group = svg("g", { "data-start": row.start, "data-succeeded": row.succeeded, "data-failed": row.failed });
      const title = svg("title", {});
      title.textContent = `${row.start.slice(0, 10)}: ${row.succeeded} succeeded, ${row.failed} failed, ${row.inProgress} in progress`;
      group.append(title);
      group.append(svg("rect", { x, width: barWidth, y: height - bottom - okHeight, height: okHeight, class: "ok" }));
      group.append(svg("rect", { x, width: barWidth, y: height - bottom - okHeight - badHeight, height: badHeight, class: "bad" }));
      chart.append(group);
      const every = Math.ceil(rows.length / 8);
      if (i % every === 0) {
        const label = svg("text", { x: x + barWidth / 2, y: height - 6, class: "axis", "text-anchor": "middle" });
        label.textContent = row.start.slice(5, 10);
        chart.append(label);
      }
    });
    box.append(chart);
  }

  let stuckNext = null;

  /** A serial number that opens the device's history below. */
  function serialButton(serial) {
    const button = el("button", { type: "button", class: "link", title: `Show the history of ${serial}` }, serial);
    button.addEventListener("click", () => {
      $("serial").value = serial;
      showDevice(serial);
      $("device-title").scrollIntoView();
    });
    return button;
  }

  function stuckRows(rows) {
    return rows.map((row) => el("tr", { "data-id": row.id },
      el("td", {}, row.deviceSerialNumber === null ? "–" : serialButton(row.deviceSerialNumber)),
      el("td", {}, row.managedDeviceName ?? "–"),
      el("td", {}, row.windowsAutopilotDeploymentProfileDisplayName ?? "–"),
      el("td", {}, when(row.deploymentStartDateTime)),
      num(duration(row.age), row.age)));
  }

  async function moreStuck() {
    if (!stuckNext) return;
    try {
      const page = await getUrl(stuckNext);
      $("stuck").tBodies[0].append(...stuckRows(page.value));
      stuckNext = page.nextLink || null;
      $("stuckMore").hidden = !stuckNext;
    } catch (error) {
      failed(error);
    }
  }

  async function fillOptions(params) {
    const unfiltered = new URLSearchParams(params);
    unfiltered.delete("profile");
    unfiltered.delete("esp");
    const [profiles, esps] = await Promise.all([
      get("breakdown", withParams(unfiltered, { by: "profile", top: "100" })),
      get("breakdown", withParams(unfiltered, { by: "esp", top: "100" })),
    ]);
    for (const [id, breakdown, all] of [["profile", profiles, "All profiles"], ["esp", esps, "All pages"]]) {
      const select = $(id);
      const chosen = select.value;
      select.replaceChildren(el("option", { value: "" }, all));
      for (const row of breakdown.rows) {
        if (row.key === null || row.key === "") continue;
        select.append(el("option", { value: row.key }, row.key));
      }
      if (chosen && ![...select.options].some((o) => o.value === chosen)) {
        select.append(el("option", { value: chosen }, chosen));
      }
      select.value = chosen;
    }
  }

  function withParams(base, extra) {
    const params = new URLSearchParams(base);
    for (const [name, value] of Object.entries(extra)) params.set(name, value);
    return params;
  }

  function failed(error) {
    if (error instanceof SignedOut) {
      window.location.assign("/dashboard");
      return;
    }
    status("Could not load the figures: " + error.message, true);
  }

  async function refresh() {
    const params = parameters();
    status("Loading…");
    try {
      const from = params.get("from");
      const to = params.get("to");
      const span = from && to ? Date.parse(to) - Date.parse(from) : 30 * 24 * HOUR;
      const bucket = span > 92 * 24 * HOUR ? "week" : "day";
      const [summary, timeline, profiles, failures, stuck, blockers] = await Promise.all([
        get("summary", params),
        get("timeline", withParams(params, { bucket })),
        get("breakdown", withParams(params, { by: "profile", top: "20" })),
        get("failures", withParams(params, { top: "10" })),
        get("stuck", withParams(params, { top: "20" })),
        get("blockers", withParams(params, { top: "10" })),
        fillOptions(params),
      ]);
      const main = $("content");
      main.dataset.from = summary.from;
      main.dataset.to = summary.to;
      show("successRate", percent(summary.successRate), summary.successRate);
      show("finished", count(summary.finished), summary.finished);
      for (const name of ["deployments", "succeeded", "failed", "inProgress", "timedOut"]) {
        show(name, count(summary[name]), summary[name]);
      }
      const total = summary.durations.deploymentTotalDuration;
      show("p50", duration(total.p50), total.p50);
      show("p90", duration(total.p90), total.p90);
      drawTimeline(timeline);
      fill("profiles", profiles.rows, (row) => [
        el("td", {}, row.key === null ? "(none)" : row.key === "" ? "(empty)" : row.key),
        num(count(row.deployments), row.deployments),
        num(percent(row.successRate), row.successRate),
        num(count(row.failed), row.failed),
        num(count(row.inProgress), row.inProgress),
        num(duration(row.p50), row.p50),
        num(duration(row.p90), row.p90),
      ]);
      fill("failures", failures.rows, (row) => [
        el("td", { class: "reason" }, row.reason ?? "(no details)"),
        num(count(row.count), row.count),
        num(percent(row.share), row.share),
        el("td", {}, phases(row.phases)),
        el("td", {}, when(row.lastEventDateTime)),
      ]);
      $("stuckCount").textContent = `(${count(stuck.count)})`;
      $("stuckCount").dataset.value = stuck.count;
      fill("stuck", stuck.value, () => []);
      if (stuck.value.length) $("stuck").tBodies[0].replaceChildren(...stuckRows(stuck.value));
      stuckNext = stuck.nextLink || null;
      $("stuckMore").hidden = !stuckNext;
      fill("blockers", blockers.rows, (row) => [
        el("td", {}, row.displayName ?? "(unnamed)"),
        el("td", {}, row.policyType),
        num(count(row.affectedDeployments), row.affectedDeployments),
        num(count(row.failedDeployments), row.failedDeployments),
        el("td", { "data-value": row.topErrorCode },
          row.topErrorCode === null ? "–" :
            `${row.topErrorCode} (0x${(row.topErrorCode >>> 0).toString(16).padStart(8, "0")}) on ${row.topErrorCodeCount}`),
      ]);
      status(`${when(summary.from)} – ${when(summary.to)}: ${count(summary.deployments)} deployments.`);
    } catch (error) {
      failed(error);
    }
  }

  async function showDevice(serial) {
    try {
      const device = await get("devices/" + encodeURIComponent(serial));
      $("device").hidden = false;
      show("deviceSerial", device.deviceSerialNumber);
      show("deviceAttempts", count(device.attempts), device.attempts);
      show("deviceSucceeded", count(device.succeeded), device.succeeded);
      show("deviceFailed", count(device.failed), device.failed);
      show("deviceFirstTimeRight",
        device.firstTimeRight === null ? "not yet known" : device.firstTimeRight ? "yes" : "no",
        device.firstTimeRight);
      fill("deviceEvents", device.value, (event) => [
        el("td", {}, when(event.eventDateTime)),
        el("td", {}, event.deploymentState),
        el("td", {}, event.windowsAutopilotDeploymentProfileDisplayName ?? "–"),
        num(duration(event.deploymentTotalDuration), event.deploymentTotalDuration),
        el("td", { class: "reason" }, event.enrollmentFailureDetails ?? ""),
      ]);
    } catch (error) {
      failed(error);
    }
  }

  function presetChanged() {
    const custom = $("filters").querySelector("input[name=preset]:checked").value === "custom";
    $("from").disabled = !custom;
    $("to").disabled = !custom;
    if (custom && !$("from").value) {
      const main = $("content");
      if (main.dataset.from) $("from").value = main.dataset.from.slice(0, 19);
      if (main.dataset.to) $("to").value = main.dataset.to.slice(0, 19);
    }
    if (!custom) refresh();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      refresh();
    });
    for (const radio of document.querySelectorAll("input[name=preset]")) {
      radio.addEventListener("change", presetChanged);
    }
    for (const id of ["profile", "esp", "enrollmentType"]) $(id).addEventListener("change", refresh);
    $("stuckMore").addEventListener("click", moreStuck);
    $("deviceSearch").addEventListener("submit", (event) => {
      event.preventDefault();
      const serial = $("serial").value;
      if (serial) showDevice(serial);
    });
    refresh();
  });
})();
