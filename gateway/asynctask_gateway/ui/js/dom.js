// Building the page from data without ever parsing it as HTML: every value goes through
// textContent or a property, so a task's message or result cannot inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key in el && !key.includes("-") && key !== "list") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const PHASES = ["Pending", "Processing", "Succeeded", "Failed", "Error", "Cancelled",
                       "TimedOut"];

export function phaseBadge(phase) {
  return h("span", { className: `phase phase-${phase}`, "data-phase": phase }, phase);
}

// A task held for spec.notBefore: Pending, reason Scheduled, not run before that time.
export function held(view) {
  return view.phase === "Pending" && Boolean(view.notBefore) && view.attempts === 0 &&
    Date.parse(view.notBefore) > Date.now();
}

// The phase, and "Scheduled" with its due time while the task is held; a task held by its
// queue's policy (Paused, ConcurrencyLimit, RateLimited, WaitingForTurn) shows that reason,
// its message as the tooltip.
export function phaseCell(view) {
  if (view.phase === "Pending" && view.reason && view.reason !== "Scheduled") {
    return [phaseBadge(view.phase), " ", h("span", { className: "reason",
      "data-reason": view.reason, title: view.message || "" }, view.reason)];
  }
  if (!held(view)) return [phaseBadge(view.phase)];
  return [phaseBadge(view.phase), " ", h("span", { className: "reason", "data-reason": "Scheduled",
    title: `held until ${when(view.notBefore)}` }, `Scheduled · ${when(view.notBefore)}`)];
}

export function progressBar(view, label) {
  const bar = h("progress", { max: 100, value: view.progress,
                              "aria-label": label || `progress of ${view.name}` });
  const text = h("span", { className: "percent" }, `${view.progress}%`);
  return h("span", { className: "bar" }, bar, text);
}

export function updateBar(wrapper, view) {
  wrapper.querySelector("progress").value = view.progress;
  wrapper.querySelector(".percent").textContent = `${view.progress}%`;
}

export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}

export function hashFor(namespace, name) {
  const ns = encodeURIComponent(namespace);
  return name ? `#/ns/${ns}/tasks/${encodeURIComponent(name)}` : `#/ns/${ns}`;
}

// The links between a namespace's tasks, its history, its schedules and the cluster's queues.
export function nav(namespace, current) {
  const ns = encodeURIComponent(namespace);
  const links = [["tasks", "Tasks", `#/ns/${ns}`], ["history", "History", `#/ns/${ns}/history`],
                 ["schedules", "Schedules", `#/ns/${ns}/schedules`],
                 ["queues", "Queues", `#/ns/${ns}/queues`]];
  return h("nav", { className: "views", "aria-label": "Views" },
           links.map(([key, text, href]) => h("a", { href, id: `nav-${key}`,
             "aria-current": key === current ? "page" : undefined }, text)));
}
