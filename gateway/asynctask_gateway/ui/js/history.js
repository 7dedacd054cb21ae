// The namespace's history (GET …/history, the gateway's archive: docs/history.md): finished
// tasks, newest first, with the same filters as the API (queue, phase, label selector,
// creator, a time range on the finish time) kept in the hash, and "More" for the next page
// (the keyset `continue` token). Each row says whether the task is still live or archived
// only; an archived row opens its task page by uid (that very run), a live one by name.

import { api, query } from "./api.js";
import { PHASES, append, h, nav, phaseBadge, when } from "./dom.js";

const PAGE = 50;
const TERMINAL = PHASES.filter((p) => p !== "Pending" && p !== "Processing");
// The filters, and the page size (`limit`, 1 to 500: kept in the hash, not in the form).
const FILTERS = ["queue", "phase", "labelSelector", "creator", "since", "until", "limit"];

export function historyPath(namespace) {
  return `/v1/namespaces/${encodeURIComponent(namespace)}/history`;
}

export function historyHash(namespace, filter = {}) {
  return `#/ns/${encodeURIComponent(namespace)}/history${query(filter)}`;
}

export function historyPage(root, { namespace, params, notify, navigate }) {
  const filter = Object.fromEntries(FILTERS.map((key) => [key, params.get(key) || ""]));
  const abort = new AbortController();
  const tbody = h("tbody", { id: "history-rows" });
  const more = h("button", { type: "button", id: "history-more", hidden: true,
                             onclick: () => load(token) }, "More");
  const count = h("span", { id: "history-count", className: "muted", "aria-live": "polite" });
  let token = null;
  let shown = 0;

  append(root, [
    nav(namespace, "history"),
    h("div", { className: "title" }, h("h2", {}, `History of ${namespace}`), count),
    filterForm(filter, (next) => navigate(historyHash(namespace, { ...next, limit: filter.limit }))),
    h("div", { className: "table-wrap" }, h("table", { className: "tasks history" },
      h("caption", { className: "sr-only" }, "Finished tasks, newest first"),
      h("thead", {}, h("tr", {}, ["Name", "Queue", "Phase", "Record", "Message", "Finished"]
        .map((c) => h("th", { scope: "col" }, c)))),
      tbody)),
    more,
  ]);

  async function load(cont) {
    more.disabled = true;
    try {
      const page = await api(historyPath(namespace) + query({ ...filter,
                                                              limit: filter.limit || PAGE,
                                                              continue: cont }),
                             { signal: abort.signal });
      if (!cont) tbody.replaceChildren();
      tbody.append(...page.items.map((view) => row(namespace, view)));
      shown += page.items.length;
      if (!shown) {
        tbody.replaceChildren(h("tr", { className: "empty" },
                                h("td", { colSpan: 6 }, "No finished task matches these filters.")));
      }
      token = page.continue;
      more.hidden = !token;
      count.textContent = `${shown} shown${token ? ", more below" : ""}`;
      root.dataset.loaded = "true";
    } catch (error) {
      if (!abort.signal.aborted) notify(error);
    } finally {
      more.disabled = false;
    }
  }

  load(null);
  return () => abort.abort();
}

function row(namespace, view) {
  const key = view.archived ? view.uid : view.name;
  const href = `#/ns/${encodeURIComponent(namespace)}/tasks/${encodeURIComponent(key)}`;
  const record = view.archived ? "archived" : "live";
  return h("tr", { "data-name": view.name, "data-uid": view.uid, "data-phase": view.phase,
                   "data-record": record },
    h("td", { className: "name" }, h("a", { href }, view.name)),
    h("td", {}, view.queue || ""),
    h("td", {}, phaseBadge(view.phase)),
    h("td", {}, h("span", { className: view.archived ? "flag archived" : "flag",
                            title: view.archived ? "no longer live: read from the archive"
                                                 : "still live (and already archived)" },
                  record)),
    h("td", { className: "message" }, view.error?.message || view.message || ""),
    h("td", {}, when(view.completionTime)));
}

// A datetime-local value (the person's local time) as RFC 3339 in UTC, and back.
function toRfc3339(local) {
  return local ? new Date(local).toISOString().replace(/\.\d{3}Z$/, "Z") : "";
}

function toLocal(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

function filterForm(filter, go) {
  const text = (name, label, extra = {}) => h("label", {}, `${label} `,
    h("input", { name, id: `history-${name}`, value: filter[name], spellcheck: false, ...extra }));
  const time = (name, label) => h("label", {}, `${label} `,
    h("input", { name, id: `history-${name}`, type: "datetime-local", step: 1,
                 value: toLocal(filter[name]) }));
  const form = h("form", { className: "filters", "aria-label": "History filters" },
    text("queue", "Queue"),
    h("label", {}, "Phase ", h("select", { name: "phase", id: "history-phase" },
      h("option", { value: "" }, "any"),
      TERMINAL.map((p) => h("option", { value: p, selected: filter.phase === p }, p)))),
    text("labelSelector", "Labels", { placeholder: "app=web,tier in (a,b)" }),
    text("creator", "Creator"),
    time("since", "Finished from"),
    time("until", "to"),
    h("button", { type: "submit", id: "history-filter" }, "Filter"),
    h("button", { type: "button", onclick: () => go({}) }, "Clear"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    go({ queue: data.get("queue").trim(), phase: data.get("phase"),
         labelSelector: data.get("labelSelector").trim(), creator: data.get("creator").trim(),
         since: toRfc3339(data.get("since")), until: toRfc3339(data.get("until")) });
  });
  return form;
}
