// One task's page: its record (GET …/detail: request, result, error and traceback, attempts,
// timestamps, conditions, webhook delivery) and its live phase and progress from the task's
// own stream (GET …/events, resumed with Last-Event-ID); a Cancel button while it runs.
// The path names the task by name or uid; a task that is no longer live comes from the
// history archive (marked archived, no stream). A finished task has a Resubmit button
// (POST …/tasks/{name or uid}:resubmit: a new task from its spec).

import { api, readStream, tasksPath } from "./api.js";
import { append, h, hashFor, json, phaseCell, progressBar, updateBar, when } from "./dom.js";
import { keepOpen } from "./live.js";

const RESUBMITTED_FROM = "asynctask.dev/resubmitted-from";

export function taskPage(root, { namespace, name: key, notify }) {
  const abort = new AbortController();
  const badge = h("span", { id: "task-phase" });
  const archivedFlag = h("span", { id: "task-archived", className: "flag archived", hidden: true,
                                   title: "no longer live: read from the history archive" },
                         "archived");
  const heading = h("h2", {}, key);
  const bar = progressBar({ name: key, progress: 0 }, `progress of ${key}`);
  const message = h("p", { id: "task-message", className: "message" });
  const cancel = h("button", { type: "button", id: "cancel", className: "danger", hidden: true,
                               onclick: () => cancelTask() }, "Cancel task");
  const resubmit = h("button", { type: "button", id: "resubmit", hidden: true,
                                 onclick: () => resubmitTask() }, "Resubmit");
  const details = h("div", { id: "task-detail", className: "sections" });
  const status = h("span", { id: "live-state", className: "muted", "aria-live": "polite" });
  let view = null;
  let lastEventId = null;
  let name = key;  // the task's name once read (the path may hold its uid)

  append(root, [
    h("p", { className: "crumbs" }, h("a", { href: hashFor(namespace) }, `← Tasks in ${namespace}`),
      " · ", h("a", { href: `#/ns/${encodeURIComponent(namespace)}/history` }, "History")),
    h("div", { className: "title" }, heading, badge, archivedFlag, status),
    h("div", { className: "task-head" }, bar, cancel, resubmit),
    message,
    details,
  ]);

  function show(next) {
    view = next;
    root.dataset.phase = view.phase;
    badge.replaceChildren(...phaseCell(view));
    updateBar(bar, view);
    message.textContent = view.message || "";
    cancel.hidden = view.done;
    resubmit.hidden = !view.done;
    archivedFlag.hidden = !view.archived;
    root.dataset.archived = String(Boolean(view.archived));
  }

  async function refresh() {
    const record = await api(tasksPath(namespace, key, "/detail"), { signal: abort.signal });
    name = record.task.name;
    heading.textContent = name;
    document.title = `${name} · AsyncTask`;
    details.replaceChildren(...sections(record));
    if (!view || record.task.resourceVersion !== view.resourceVersion) show(record.task);
  }

  async function resubmitTask() {
    resubmit.disabled = true;
    try {
      const made = await api(tasksPath(namespace, key, ":resubmit"), { method: "POST" });
      notify({ text: `Resubmitted ${name} as `, link: [made.name, hashFor(namespace, made.name)] });
    } catch (error) {
      notify(error);
    } finally {
      resubmit.disabled = false;
    }
  }

  async function cancelTask() {
    cancel.disabled = true;
    try {
      show(await api(tasksPath(namespace, name, "/cancel"), { method: "POST" }));
      notify({ text: `Cancellation of ${name} requested.` });
    } catch (error) {
      notify(error);
    } finally {
      cancel.disabled = false;
    }
  }

  async function connect() {
    const code = await readStream(tasksPath(namespace, name, "/events"), {
      lastEventId,
      signal: abort.signal,
      onEvent: (event) => {
        if (event.event === "deleted") {
          notify(new Error(`The task ${name} was deleted.`));
          abort.abort();
          return;
        }
        lastEventId = event.id;
        const next = JSON.parse(event.data);
        const phaseChanged = !view || next.phase !== view.phase;
        show(next);
        status.textContent = "live";
        if (phaseChanged) refresh().catch(notify);
      },
    });
    if (code === 204 || view?.done) {
      status.textContent = "";
      return "done";
    }
    return "ended";
  }

  refresh()
    .then(() => view.archived ? "archived" : keepOpen(connect, {
      signal: abort.signal,
      onState: (state) => (state === "reconnecting" ? (status.textContent = "reconnecting…")
                                                    : notify(state)),
    }))
    .catch((error) => {
      if (!abort.signal.aborted) notify(error);
    });
  return () => abort.abort();
}

function section(title, ...content) {
  const id = `section-${title.toLowerCase().replace(/[^a-z]+/g, "-")}`;
  return h("section", { className: "card", "aria-labelledby": id, id: `${id}-body` },
           h("h3", { id }, title), ...content);
}

function pre(value, label) {
  return h("pre", { tabIndex: 0, "aria-label": label }, typeof value === "string" ? value : json(value));
}

function fields(pairs) {
  return h("dl", { className: "fields" },
           pairs.map(([key, value]) => [h("dt", {}, key), h("dd", {}, value ?? "—")]));
}

function sections(record) {
  const { task, spec, status, labels } = record;
  const out = [
    section("Request", pre(spec.request ?? null, "request")),
  ];
  if (task.phase === "Succeeded") out.push(section("Result", pre(task.result, "result")));
  if (task.error) {
    out.push(section("Error", fields([["Reason", task.error.reason], ["Message", task.error.message]]),
                     task.error.traceback ? pre(task.error.traceback, "traceback") : null));
  }
  if (status.lastError && !task.done) {
    out.push(section("Last error (retry waiting)",
                     fields([["Reason", status.lastError.reason], ["Message", status.lastError.message],
                             ["Next attempt", when(status.nextAttemptTime)]])));
  }
  out.push(section("Run", fields([
    ["Queue", spec.queue], ["Priority", String(spec.priority ?? 0)],
    ["Held because", task.phase === "Pending" && task.reason ? task.reason : null],
    ["Attempts", String(task.attempts)],
    ["Retries allowed", String(spec.retries ?? 0)], ["Worker", status.worker],
    ["Timeout", spec.timeoutSeconds ? `${spec.timeoutSeconds} s` : null],
    ["Cancel requested", spec.cancel ? "yes" : "no"],
    ["Not before", spec.notBefore ? when(spec.notBefore) : null],
  ])));
  out.push(section("Timestamps", fields([
    ["Created", when(task.createdAt)], ["Queued", when(status.queuedTime)],
    ["Started", when(task.startTime)], ["Completed", when(task.completionTime)],
  ])));
  out.push(section("Conditions", conditionsTable(status.conditions || [])));
  out.push(section("Webhook delivery", webhook(spec.webhook, status.webhook)));
  if (Object.keys(labels).length) {
    // A resubmitted task's original, by its uid: its page (live or archived).
    const link = ([label, value]) => [label, label === RESUBMITTED_FROM && value
      ? h("a", { href: hashFor(task.namespace, value), id: "resubmitted-from" }, value) : value];
    out.push(section("Labels", fields(Object.entries(labels).map(link))));
  }
  return out;
}

function conditionsTable(conditions) {
  if (!conditions.length) return h("p", { className: "muted" }, "None yet.");
  return h("div", { className: "table-wrap" }, h("table", {},
    h("thead", {}, h("tr", {}, ["Type", "Status", "Reason", "Message", "Since"]
      .map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, conditions.map((c) => h("tr", {},
      h("th", { scope: "row" }, c.type), h("td", {}, c.status), h("td", {}, c.reason || ""),
      h("td", {}, c.message || ""), h("td", {}, when(c.lastTransitionTime)))))));
}

function webhook(spec, delivery) {
  if (!spec) return h("p", { className: "muted" }, "No webhook for this task.");
  if (!delivery) return fields([["URL", spec.url], ["Delivery", "nothing delivered yet"]]);
  return fields([["URL", spec.url], ...Object.entries(delivery).map(([k, v]) =>
    [k, typeof v === "object" ? json(v) : String(v)])]);
}
