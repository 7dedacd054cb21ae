// The dashboard's entry point: the token and namespace forms, messages, and a hash router
// (#/ns/<namespace>[?filters], #/ns/<namespace>/tasks/<name or uid>,
// #/ns/<namespace>/history[?filters], #/ns/<namespace>/schedules[/<name>] and
// #/ns/<namespace>/queues): the hash never reaches the server, and nothing secret is
// ever put in it.

import { ApiError, getToken, setToken } from "./api.js";
import { h } from "./dom.js";
import { historyPage } from "./history.js";
import { listPage } from "./list.js";
import { queuesPage } from "./queues.js";
import { schedulePage, schedulesPage } from "./schedules.js";
import { taskPage } from "./task.js";

const NS_KEY = "asynctask.namespace";
const main = document.getElementById("main");
const notice = document.getElementById("notice");
const tokenState = document.getElementById("token-state");
let close = () => {};

function notify(what) {
  notice.hidden = false;
  notice.className = what instanceof Error ? "error" : "info";
  const text = h("div", { className: "notice-text" });
  if (what instanceof Error) {
    const hint = what instanceof ApiError ? what.hint : "";
    text.append(h("strong", {}, what.message), hint ? ` ${hint}` : "");
  } else if (what.link) {
    text.append(what.text, h("a", { href: what.link[1] }, what.link[0]));
  } else {
    text.append(what.text);
  }
  notice.replaceChildren(text);
  const dismiss = h("button", { type: "button", className: "dismiss",
                                "aria-label": "Dismiss message",
                                onclick: () => { notice.hidden = true; } }, "×");
  notice.append(dismiss);
}

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function parse(hash) {
  const [path, search] = hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(search || "") };
}

function route() {
  close();
  close = () => {};
  notice.hidden = true;
  main.replaceChildren();
  main.removeAttribute("data-live");
  main.removeAttribute("data-phase");
  main.removeAttribute("data-loaded");
  main.removeAttribute("data-suspend");
  const { parts, params } = parse(location.hash);
  const namespace = parts[0] === "ns" ? parts[1] : sessionStorage.getItem(NS_KEY);
  document.getElementById("namespace").value = namespace || "";
  if (!getToken()) {
    main.append(h("p", { className: "prompt" },
                  "Paste a bearer token above to begin: the same token as for the HTTP API ",
                  "(for example from kubectl create token). It is kept in this tab only."));
    return;
  }
  if (!namespace) {
    main.append(h("p", { className: "prompt" }, "Choose a namespace above."));
    return;
  }
  sessionStorage.setItem(NS_KEY, namespace);
  const ctx = { namespace, params, notify, navigate };
  if (parts[0] === "ns" && parts[2] === "tasks" && parts[3]) {
    document.title = `${parts[3]} · AsyncTask`;
    close = taskPage(main, { ...ctx, name: parts[3] });
  } else if (parts[0] === "ns" && parts[2] === "schedules" && parts[3]) {
    document.title = `${parts[3]} · Schedules · AsyncTask`;
    close = schedulePage(main, { ...ctx, name: parts[3] });
  } else if (parts[0] === "ns" && parts[2] === "schedules") {
    document.title = `Schedules in ${namespace} · AsyncTask`;
    close = schedulesPage(main, ctx);
  } else if (parts[0] === "ns" && parts[2] === "history") {
    document.title = `History of ${namespace} · AsyncTask`;
    close = historyPage(main, ctx);
  } else if (parts[0] === "ns" && parts[2] === "queues") {
    document.title = "Queues · AsyncTask";
    close = queuesPage(main, ctx);
  } else {
    document.title = `Tasks in ${namespace} · AsyncTask`;
    close = listPage(main, ctx);
  }
}

function showTokenState() {
  tokenState.textContent = getToken() ? "token set for this tab" : "no token";
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("token");
  setToken(input.value.trim());
  input.value = "";
  showTokenState();
  route();
});

document.getElementById("forget-token").addEventListener("click", () => {
  setToken("");
  showTokenState();
  route();
});

document.getElementById("namespace-form").addEventListener("submit", (event) => {
  event.preventDefault();
  navigate(`#/ns/${encodeURIComponent(document.getElementById("namespace").value.trim())}`);
});

window.addEventListener("hashchange", route);
showTokenState();
route();
