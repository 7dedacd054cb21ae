// The cluster's queues with a policy (GET /v1/queues, AsyncQueue): held, in flight, ready
// in RabbitMQ, consumers, start rate, paused; a Pause or Resume button per queue. The counts
// are the operator's, rewritten every few seconds: the page reads them again every 5 s
// while it is open (one small list: a cluster has a handful of queues) and after an action.

import { api } from "./api.js";
import { append, h, nav, when } from "./dom.js";

const REFRESH_MS = 5000;

function queuePath(name, suffix = "") {
  return name ? `/v1/queues/${encodeURIComponent(name)}${suffix}` : "/v1/queues";
}

function rate(view) {
  const limit = view.rateLimit ? ` (limit ${view.rateLimit.perSecond}/s)` : "";
  return `${view.startRate ?? 0}/s${limit}`;
}

export function queuesPage(root, { namespace, notify }) {
  const abort = new AbortController();
  const tbody = h("tbody", { id: "queues" });
  append(root, [
    nav(namespace, "queues"),
    h("div", { className: "title" }, h("h2", {}, "Queues"),
      h("span", { className: "muted" }, "cluster-wide (AsyncQueue)")),
    h("div", { className: "table-wrap" }, h("table", { className: "queues" },
      h("caption", { className: "sr-only" }, "Queues, by name"),
      h("thead", {}, h("tr", {}, ["Name", "State", "Held", "In flight", "Max in flight", "Ready",
                                  "Consumers", "Start rate", "Oldest held", ""]
        .map((c) => h("th", { scope: "col" }, c)))),
      tbody)),
  ]);

  function row(view) {
    const action = view.paused ? ":resume" : ":pause";
    const button = h("button", { type: "button", className: view.paused ? "" : "danger",
                                 "data-action": action.slice(1),
                                 onclick: () => act(view.name, action) },
                     view.paused ? "Resume" : "Pause");
    return h("tr", { "data-name": view.name, "data-paused": String(view.paused) },
      h("th", { scope: "row" }, view.name),
      h("td", {}, h("span", { className: view.paused ? "flag on" : "flag" },
                    view.paused ? "paused" : "running")),
      h("td", { className: "held" }, String(view.held)), h("td", {}, String(view.inFlight)),
      h("td", {}, view.maxInFlight == null ? "—" : String(view.maxInFlight)),
      h("td", {}, String(view.ready)), h("td", {}, String(view.consumers)),
      h("td", {}, rate(view)), h("td", {}, when(view.oldestHeldTime)), h("td", {}, button));
  }

  async function load() {
    const { items } = await api(queuePath(), { signal: abort.signal });
    tbody.replaceChildren(...items.map(row));
    if (!items.length) {
      tbody.append(h("tr", {}, h("td", { colSpan: 10, className: "muted" },
                                 "No AsyncQueue: every queue publishes at once.")));
    }
    root.dataset.loaded = "true";
  }

  async function act(name, action) {
    try {
      await api(queuePath(name, action), { method: "POST" });
      notify({ text: `${name} ${action === ":pause" ? "paused" : "resumed"}.` });
      await load();
    } catch (error) {
      notify(error);
    }
  }

  const timer = setInterval(() => load().catch(() => {}), REFRESH_MS);
  abort.signal.addEventListener("abort", () => clearInterval(timer));
  load().catch((error) => { if (!abort.signal.aborted) notify(error); });
  return () => abort.abort();
}
