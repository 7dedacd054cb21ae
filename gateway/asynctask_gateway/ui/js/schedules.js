// A namespace's schedules (GET …/schedules: next run, last run, suspended or not, Ready) and
// one schedule's page: its timing and policy, Suspend/Resume and "Run now" buttons, and its
// tasks (the tasks list with labelSelector=asynctask.dev/schedule=<name>). Schedules are read
// from the apiserver per call (few objects, a slot at a time): the page reads them again
// after each action and when Refresh is pressed, never on a timer.

import { api, query, tasksPath } from "./api.js";
import { append, h, hashFor, nav, phaseCell, when } from "./dom.js";

const LABEL = "asynctask.dev/schedule";

export function schedulesPath(namespace, name, suffix = "") {
  const base = `/v1/namespaces/${encodeURIComponent(namespace)}/schedules`;
  return name ? `${base}/${encodeURIComponent(name)}${suffix}` : base;
}

export function scheduleHash(namespace, name) {
  const base = `#/ns/${encodeURIComponent(namespace)}/schedules`;
  return name ? `${base}/${encodeURIComponent(name)}` : base;
}

export function timing(view) {
  if (view.intervalSeconds != null) return `every ${view.intervalSeconds} s`;
  const zone = view.timeZone && view.timeZone !== "UTC" ? ` (${view.timeZone})` : "";
  return `${view.schedule || ""}${zone}`;
}

function readiness(view) {
  const ready = view.ready;
  if (!ready) return h("span", { className: "muted" }, "not yet");
  const text = ready.status === "True" ? "Ready" : `${ready.reason || "NotReady"}`;
  return h("span", { className: `ready ready-${ready.status}`, title: ready.message || "" }, text);
}

function suspendCell(view) {
  return h("span", { className: view.suspend ? "flag on" : "flag" },
           view.suspend ? "suspended" : "active");
}

export function schedulesPage(root, { namespace, notify }) {
  const abort = new AbortController();
  const tbody = h("tbody", { id: "schedules" });
  const refresh = h("button", { type: "button", id: "refresh", onclick: () => load() }, "Refresh");
  append(root, [
    nav(namespace, "schedules"),
    h("div", { className: "title" }, h("h2", {}, `Schedules in ${namespace}`), refresh),
    h("div", { className: "table-wrap" }, h("table", { className: "schedules" },
      h("caption", { className: "sr-only" }, "Schedules, by name"),
      h("thead", {}, h("tr", {}, ["Name", "Schedule", "Queue", "State", "Active", "Last run",
                                  "Next run", "Ready"].map((c) => h("th", { scope: "col" }, c)))),
      tbody)),
  ]);

  async function load() {
    const { items } = await api(schedulesPath(namespace), { signal: abort.signal });
    tbody.replaceChildren(...items.map((v) => h("tr", { "data-name": v.name },
      h("th", { scope: "row" }, h("a", { href: scheduleHash(namespace, v.name) }, v.name)),
      h("td", {}, timing(v)), h("td", {}, v.queue), h("td", {}, suspendCell(v)),
      h("td", {}, String(v.active.length)), h("td", {}, when(v.lastScheduleTime)),
      h("td", { className: "next" }, when(v.nextScheduleTime)), h("td", {}, readiness(v)))));
    if (!items.length) {
      tbody.append(h("tr", {}, h("td", { colSpan: 8, className: "muted" },
                                 "No schedules in this namespace.")));
    }
    root.dataset.loaded = "true";
  }

  load().catch((error) => { if (!abort.signal.aborted) notify(error); });
  return () => abort.abort();
}

export function schedulePage(root, { namespace, name, notify }) {
  const abort = new AbortController();
  const fieldsBox = h("div", { id: "schedule-fields", className: "card" });
  const tasks = h("tbody", { id: "schedule-tasks" });
  const suspend = h("button", { type: "button", id: "suspend", onclick: () => act(":suspend") },
                    "Suspend");
  const resume = h("button", { type: "button", id: "resume", onclick: () => act(":resume") },
                   "Resume");
  const trigger = h("button", { type: "button", id: "trigger", onclick: () => runNow() },
                    "Run now");
  append(root, [
    nav(namespace, "schedules"),
    h("p", { className: "crumbs" },
      h("a", { href: scheduleHash(namespace) }, `← Schedules in ${namespace}`)),
    h("div", { className: "title" }, h("h2", {}, name), suspend, resume, trigger),
    fieldsBox,
    h("h3", {}, "Tasks of this schedule"),
    h("div", { className: "table-wrap" }, h("table", { className: "tasks" },
      h("thead", {}, h("tr", {}, ["Name", "Phase", "Progress", "Created"]
        .map((c) => h("th", { scope: "col" }, c)))),
      tasks)),
  ]);

  function show(view) {
    root.dataset.suspend = String(view.suspend);
    suspend.hidden = view.suspend;
    resume.hidden = !view.suspend;
    const active = view.active.map((a) => a.name).join(", ");
    fieldsBox.replaceChildren(h("dl", { className: "fields" }, [
      ["Schedule", timing(view)], ["Queue", view.queue], ["Concurrency", view.concurrencyPolicy],
      ["State", suspendCell(view)], ["Last run", when(view.lastScheduleTime)],
      ["Last success", when(view.lastSuccessfulTime)], ["Next run", when(view.nextScheduleTime)],
      ["Ready", readiness(view)], ["Why", view.ready?.message || null],
      ["Active tasks", active || null],
    ].map(([key, value]) => [h("dt", {}, key), h("dd", {}, value ?? "—")])));
  }

  async function loadTasks() {
    const path = tasksPath(namespace) + query({ labelSelector: `${LABEL}=${name}`, limit: "100" });
    const { items } = await api(path, { signal: abort.signal });
    items.sort((a, b) => (b.createdAt || "").localeCompare(a.createdAt || ""));
    tasks.replaceChildren(...items.map((t) => h("tr", { "data-name": t.name, "data-phase": t.phase },
      h("th", { scope: "row" }, h("a", { href: hashFor(namespace, t.name) }, t.name)),
      h("td", {}, phaseCell(t)), h("td", {}, `${t.progress}%`), h("td", {}, when(t.createdAt)))));
  }

  async function load() {
    show(await api(schedulesPath(namespace, name), { signal: abort.signal }));
    await loadTasks();
  }

  async function act(action) {
    try {
      show(await api(schedulesPath(namespace, name, action), { method: "POST" }));
      notify({ text: `${name} ${action === ":suspend" ? "suspended" : "resumed"}.` });
    } catch (error) {
      notify(error);
    }
  }

  async function runNow() {
    trigger.disabled = true;
    try {
      const task = await api(schedulesPath(namespace, name, ":trigger"), { method: "POST" });
      notify({ text: "Started ", link: [task.name, hashFor(namespace, task.name)] });
      await loadTasks();
    } catch (error) {
      notify(error);
    } finally {
      trigger.disabled = false;
    }
  }

  load().catch((error) => { if (!abort.signal.aborted) notify(error); });
  return () => abort.abort();
}
