// The task list of a namespace: filters, counts per phase and queue, a submit form, and rows
// whose phase and progress bar follow the namespace stream (GET …/tasks:watch), no polling.
//
// Order that makes list + stream exact (see the gateway's watching.py): open the stream,
// wait for its first `counts` event, list, then apply the events that arrived meanwhile.

import { ApiError, api, query, readStream, tasksPath } from "./api.js";
import { PHASES, append, h, hashFor, nav, phaseCell, progressBar, updateBar, when } from "./dom.js";
import { FINAL, keepOpen } from "./live.js";

const PAGE = 500;

export function listPage(root, { namespace, params, notify, navigate }) {
  const filter = { queue: params.get("queue") || "", phase: params.get("phase") || "",
                   labelSelector: params.get("labelSelector") || "" };
  const views = new Map();
  const rows = new Map();
  const abort = new AbortController();
  let more = null;

  const tbody = h("tbody");
  const counts = h("div", { id: "counts" });
  const queues = h("datalist", { id: "queues" });
  const status = h("span", { id: "live-state", className: "muted", "aria-live": "polite" });
  const moreButton = h("button", { type: "button", hidden: true, onclick: () => loadMore() },
                       "Load more");

  const go = (changes) => {
    const next = { ...filter, ...changes };
    navigate(hashFor(namespace) + query(next));
  };

  append(root, [
    nav(namespace, "tasks"),
    h("div", { className: "title" }, h("h2", {}, `Tasks in ${namespace}`), status),
    submitForm(namespace, queues, notify),
    countsSection(counts),
    filterForm(filter, go),
    cancelMatching(namespace, filter.labelSelector, notify),
    h("div", { className: "table-wrap" },
      h("table", { className: "tasks" },
        h("caption", { className: "sr-only" }, "Tasks, newest first"),
        h("thead", {}, h("tr", {}, ["Name", "Queue", "Phase", "Progress", "Message",
                                    "Created"].map((c) => h("th", { scope: "col" }, c)))),
        tbody)),
    moreButton,
    queues,
  ]);

  function matches(view) {
    return !filter.phase || view.phase === filter.phase;
  }

  function apply(event) {
    if (event.event === "deleted") {
      views.delete(JSON.parse(event.data).name);
    } else if (event.event === "task") {
      const view = JSON.parse(event.data);
      if (matches(view)) views.set(view.name, view);
      else views.delete(view.name);
    }
  }

  function render() {
    const ordered = [...views.values()].sort((a, b) =>
      (b.createdAt || "").localeCompare(a.createdAt || "") || a.name.localeCompare(b.name));
    for (const [name, row] of rows) {
      if (!views.has(name)) {
        row.remove();
        rows.delete(name);
      }
    }
    let previous = null;
    for (const view of ordered) {
      let row = rows.get(view.name);
      if (!row) {
        row = taskRow(namespace, view);
        rows.set(view.name, row);
      } else if (row.dataset.version !== view.resourceVersion) {
        fillRow(row, view);
      }
      const expected = previous ? previous.nextSibling : tbody.firstChild;
      if (expected !== row) tbody.insertBefore(row, expected);
      previous = row;
    }
    if (!ordered.length) {
      const empty = h("tr", { className: "empty" },
                      h("td", { colSpan: 6 }, "No tasks match these filters."));
      tbody.replaceChildren(empty);
    } else {
      tbody.querySelector("tr.empty")?.remove();
    }
  }

  function showCounts(doc) {
    renderCounts(counts, doc, filter, go);
    queues.replaceChildren(...Object.keys(doc.queues).map((q) => h("option", { value: q })));
  }

  async function list(cont) {
    const page = await api(tasksPath(namespace) + query({ ...filter, limit: PAGE,
                                                          continue: cont }),
                           { signal: abort.signal });
    for (const view of page.items) views.set(view.name, view);
    more = page.continue;
    moreButton.hidden = !more;
  }

  async function loadMore() {
    try {
      await list(more);
      render();
    } catch (error) {
      notify(error);
    }
  }

  async function connect() {
    let buffered = [];
    let listing = null;
    const path = tasksPath(namespace, null, ":watch") +
      query({ queue: filter.queue, labelSelector: filter.labelSelector });
    const onEvent = (event) => {
      if (event.event === "counts") {
        showCounts(JSON.parse(event.data));
        if (!listing) {
          listing = list().then(() => {
            for (const e of buffered) apply(e);
            buffered = null;
            render();
            status.textContent = "live";
            root.dataset.live = "true";
          }).catch((error) => {
            notify(error);
            abort.abort();
          });
        }
        return;
      }
      if (buffered) buffered.push(event);
      else {
        apply(event);
        render();
      }
    };
    views.clear();
    await readStream(path, { onEvent, signal: abort.signal });
    return "ended";
  }

  keepOpen(connect, {
    signal: abort.signal,
    onState: (state) => {
      root.dataset.live = "false";
      if (state === "reconnecting") {
        status.textContent = "reconnecting…";
        return;
      }
      notify(state);
      if (state instanceof ApiError && FINAL.has(state.status)) {
        // Refused for good (bad token, no access): nothing below would ever fill.
        root.replaceChildren(h("div", { className: "title" }, h("h2", {}, `Tasks in ${namespace}`)),
                             h("p", { className: "prompt" },
                               "Nothing to show with this token (see the message above)."));
      }
    },
  });
  return () => abort.abort();
}

function countsSection(counts) {
  return h("section", { "aria-labelledby": "counts-title", className: "counts" },
           h("h3", { id: "counts-title" }, "Counts"), counts);
}

function renderCounts(container, doc, filter, go) {
  const chips = h("ul", { className: "chips", "aria-label": "Tasks per phase" },
    PHASES.map((phase) => {
      const pressed = filter.phase === phase;
      return h("li", {}, h("button", {
        type: "button", className: `chip phase-${phase}`, "aria-pressed": String(pressed),
        "data-phase": phase, onclick: () => go({ phase: pressed ? "" : phase }),
      }, `${phase} `, h("b", {}, String(doc.phases[phase] || 0))));
    }),
    h("li", { className: "total" }, `Total ${doc.total}`));
  const table = h("table", { className: "queues" },
    h("caption", {}, "Per queue"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Queue"),
                     PHASES.map((p) => h("th", { scope: "col" }, p)))),
    h("tbody", {}, Object.entries(doc.queues).map(([queue, byPhase]) =>
      h("tr", {}, h("th", { scope: "row" }, h("button", {
        type: "button", className: "link", "aria-pressed": String(filter.queue === queue),
        onclick: () => go({ queue: filter.queue === queue ? "" : queue }),
      }, queue)), PHASES.map((p) => h("td", {}, String(byPhase[p] || 0)))))));
  container.replaceChildren(chips, h("div", { className: "table-wrap" }, table));
}

function filterForm(filter, go) {
  const form = h("form", { className: "filters", "aria-label": "Filters" },
    h("label", {}, "Queue ", h("input", { name: "queue", value: filter.queue,
                                         list: "queues", spellcheck: false })),
    h("label", {}, "Phase ", h("select", { name: "phase" },
      h("option", { value: "" }, "any"),
      PHASES.map((p) => h("option", { value: p, selected: filter.phase === p }, p)))),
    h("label", {}, "Labels ", h("input", { name: "labelSelector", value: filter.labelSelector,
                                          placeholder: "app=web,tier in (a,b)",
                                          spellcheck: false })),
    h("button", { type: "submit" }, "Filter"),
    h("button", { type: "button", onclick: () => go({ queue: "", phase: "",
                                                      labelSelector: "" }) }, "Clear"));
  form.querySelector("input[name=queue]").setAttribute("list", "queues");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    go({ queue: data.get("queue").trim(), phase: data.get("phase"),
         labelSelector: data.get("labelSelector").trim() });
  });
  return form;
}

// "Cancel all matching": every task the label filter selects (POST …/tasks:cancel, page
// after page), asked twice; the counts are the notice. Shown only with a label filter: the
// gateway never cancels a whole namespace at once.
function cancelMatching(namespace, selector, notify) {
  const start = h("button", { type: "button", className: "danger", id: "cancel-matching" },
                  "Cancel all matching…");
  const yes = h("button", { type: "button", className: "danger", id: "cancel-matching-yes",
                            hidden: true }, `Yes, cancel every task matching ${selector}`);
  const no = h("button", { type: "button", hidden: true }, "No");
  const ask = (asking) => { start.hidden = asking; yes.hidden = !asking; no.hidden = !asking; };
  start.addEventListener("click", () => ask(true));
  no.addEventListener("click", () => ask(false));
  yes.addEventListener("click", async () => {
    yes.disabled = true;
    const total = { matched: 0, changed: 0, skipped: 0, failed: 0 };
    try {
      let token = "";
      do {
        const page = await api(tasksPath(namespace, "", ":cancel") +
                               query({ labelSelector: selector, limit: PAGE, continue: token }),
                               { method: "POST" });
        for (const key of Object.keys(total)) total[key] += page[key];
        token = page.continue || "";
      } while (token);
      notify({ text: `${total.matched} matched: ${total.changed} cancelled, ` +
                     `${total.skipped} skipped (already ended or cancelling), ` +
                     `${total.failed} failed.` });
    } catch (error) {
      notify(error);
    } finally {
      yes.disabled = false;
      ask(false);
    }
  });
  return h("div", { className: "bulk", hidden: !selector }, start, yes, no);
}

function taskRow(namespace, view) {
  const row = h("tr", { "data-name": view.name },
    h("td", { className: "name" }, h("a", { href: hashFor(namespace, view.name) }, view.name)),
    h("td", { className: "queue" }), h("td", { className: "phase-cell" }),
    h("td", { className: "progress" }, progressBar(view)), h("td", { className: "message" }),
    h("td", { className: "created" }));
  fillRow(row, view);
  return row;
}

function fillRow(row, view) {
  row.dataset.version = view.resourceVersion;
  row.dataset.phase = view.phase;
  row.querySelector(".queue").textContent = view.queue || "";
  row.querySelector(".phase-cell").replaceChildren(...phaseCell(view));
  updateBar(row.querySelector(".bar"), view);
  row.querySelector(".message").textContent = view.error?.message || view.message || "";
  row.querySelector(".created").textContent = when(view.createdAt);
}

function parseLabels(text) {
  const labels = {};
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const [key, ...rest] = part.split("=");
    if (!rest.length) throw new Error(`label "${part}" is not key=value`);
    labels[key.trim()] = rest.join("=").trim();
  }
  return labels;
}

function submitForm(namespace, queues, notify) {
  const form = h("form", { className: "submit", "aria-label": "Submit a task" },
    h("label", { htmlFor: "submit-queue" }, "Queue"),
    h("input", { id: "submit-queue", name: "queue", required: true, spellcheck: false }),
    h("label", { htmlFor: "submit-request" }, "Request (JSON)"),
    h("textarea", { id: "submit-request", name: "request", rows: 4, spellcheck: false,
                    value: "{}" }),
    h("label", { htmlFor: "submit-labels" }, "Labels (optional, key=value, …)"),
    h("input", { id: "submit-labels", name: "labels", spellcheck: false }),
    h("label", { htmlFor: "submit-not-before" }, "Not before (optional, your local time)"),
    h("input", { id: "submit-not-before", name: "notBefore", type: "datetime-local", step: 1 }),
    h("label", { htmlFor: "submit-priority" }, "Priority (optional, -100 to 100, higher first)"),
    h("input", { id: "submit-priority", name: "priority", type: "number", min: -100, max: 100,
                 step: 1 }),
    h("button", { type: "submit" }, "Submit"));
  form.querySelector("#submit-queue").setAttribute("list", "queues");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    let body;
    try {
      body = { queue: data.get("queue").trim(), request: JSON.parse(data.get("request")) };
      const labels = parseLabels(data.get("labels"));
      if (Object.keys(labels).length) body.labels = labels;
      const notBefore = data.get("notBefore");  // local time, sent as UTC (RFC 3339)
      if (notBefore) body.notBefore = new Date(notBefore).toISOString();
      const priority = data.get("priority");
      if (priority !== "") body.priority = Number(priority);
    } catch (error) {
      notify(new Error(`The request is not valid: ${error.message}`));
      return;
    }
    try {
      const view = await api(tasksPath(namespace), { method: "POST", body });
      notify({ text: "Submitted ", link: [view.name, hashFor(namespace, view.name)] });
    } catch (error) {
      notify(error);
    }
  });
  return h("details", { className: "submit-box", id: "submit-box" },
           h("summary", { id: "submit-toggle" }, "Submit a task"), form);
}
