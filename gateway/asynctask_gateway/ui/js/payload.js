// A request or result stored in object storage (spec.requestRef, status.resultRef): its
// size, type and sha256, and for a result two ways to get it: "Download" fetches it through
// the gateway with the token (GET …/result, which checks its sha256) and saves it; "Direct
// link" asks for a presigned URL (GET …/result/url, 5 minutes) for a store the browser can
// reach. The token never goes into a URL.

import { api, fetchBlob, tasksPath } from "./api.js";
import { h } from "./dom.js";

const UNITS = ["bytes", "KiB", "MiB", "GiB", "TiB"];

export function size(bytes) {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const shown = unit === 0 ? String(value) : `${value.toFixed(1)} ${UNITS[unit]}`;
  return unit === 0 ? `${shown} bytes` : `${shown} (${bytes} bytes)`;
}

function refFields(ref, what) {
  return h("dl", { className: "fields", id: `${what}-ref` },
    h("dt", {}, "Size"), h("dd", { id: `${what}-size` }, size(ref.size)),
    h("dt", {}, "Type"), h("dd", { id: `${what}-type` }, ref.contentType),
    h("dt", {}, "sha256"), h("dd", { className: "mono" }, ref.sha256));
}

/** A stored request: what it is (its bytes are the worker's). */
export function storedRequest(ref) {
  return [h("p", { className: "muted" }, "Stored in object storage."), refFields(ref, "request")];
}

/** A stored result: what it is, and its download. */
export function storedResult(task, ref, notify) {
  const path = tasksPath(task.namespace, task.name, "/result");
  const link = h("a", { id: "result-url", hidden: true, rel: "noreferrer" }, "");
  const status = h("span", { className: "muted", "aria-live": "polite" });
  const download = h("button", { type: "button", id: "result-download" }, "Download");
  const direct = h("button", { type: "button", id: "result-link" }, "Direct link");
  download.onclick = async () => {
    download.disabled = true;
    status.textContent = "downloading…";
    try {
      const blob = await fetchBlob(path);
      const url = URL.createObjectURL(blob);
      const save = h("a", { href: url, download: `${task.name}-result` });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      status.textContent = "";
    } catch (error) {
      status.textContent = "";
      notify(error);
    } finally {
      download.disabled = false;
    }
  };
  direct.onclick = async () => {
    direct.disabled = true;
    try {
      const answer = await api(`${path}/url`);
      link.href = answer.url;
      link.textContent = `${task.name} result (until ${answer.expiresAt})`;
      link.hidden = false;
    } catch (error) {
      notify(error);
    } finally {
      direct.disabled = false;
    }
  };
  return [refFields(ref, "result"), h("p", { className: "actions" }, download, " ", direct, " ",
                                       status), h("p", {}, link)];
}
