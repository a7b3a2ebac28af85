// What both pages share: the API key, calls in OpenAI's error shape, score bars and the top bar.

const KEY = "lora-router.api-key";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function apiKey() {
  return localStorage.getItem(KEY) || "";
}

export function headers() {
  const h = { "Content-Type": "application/json" };
  if (apiKey()) h.Authorization = `Bearer ${apiKey()}`;
  return h;
}

export async function raise(response) {
  const text = await response.text();
  let message = text || response.statusText;
  try {
    message = JSON.parse(text).error.message;
  } catch {}
  throw new ApiError(response.status, `${response.status}: ${message}`);
}

export async function api(path, { method = "GET", body } = {}) {
  const init = { method, headers: headers() };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  if (!response.ok) await raise(response);
  return response.json();
}

// Server-sent events of an OpenAI stream: yields each parsed `data:` payload until [DONE].
export async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        yield JSON.parse(data);
      }
    }
  }
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== undefined && c !== null));
  return node;
}

// Per-label scores as horizontal bars, highest first; the chosen label is highlighted.
export function scoreBars(scores, chosen) {
  const box = el("div", { class: "bars", "data-testid": "score-bars" });
  const sorted = Object.entries(scores || {}).sort((a, b) => b[1] - a[1]);
  for (const [label, score] of sorted) {
    const mark = label === chosen ? "chosen" : "";
    box.append(
      el("span", { class: `label ${mark}` }, label),
      el(
        "div",
        { class: "track" },
        el("div", {
          class: `fill ${mark}`,
          style: `width:${(score * 100).toFixed(1)}%`,
          "data-testid": "score-bar",
          "data-label": label,
          "data-score": score.toFixed(4),
        }),
      ),
      el("span", { class: "value" }, score.toFixed(2)),
    );
  }
  return box;
}

// How a model was chosen, as a pill: routed, fallback (with its reason), blend, pinned, composed or base.
export function routingPill(routing) {
  if (routing.mode === "pinned") return el("span", { class: "pill", "data-testid": "outcome" }, "pinned");
  if (routing.mode === "composed") return el("span", { class: "pill", "data-testid": "outcome" }, "composed");
  if (routing.mode === "blend") return el("span", { class: "pill", "data-testid": "outcome" }, "blend");
  if (routing.mode === "base") return el("span", { class: "pill base", "data-testid": "outcome" }, "base");
  if (routing.sticky) return el("span", { class: "pill", "data-testid": "outcome" }, "sticky");
  if (routing.fallback_reason)
    return el("span", { class: "pill fallback", "data-testid": "outcome" }, `fallback: ${routing.fallback_reason}`);
  return el("span", { class: "pill", "data-testid": "outcome" }, "routed");
}

export function topBar(active) {
  const key = el("input", {
    type: "password",
    placeholder: "API key (if the service needs one)",
    value: apiKey(),
    "data-testid": "api-key",
    onchange: (e) => {
      localStorage.setItem(KEY, e.target.value.trim());
      location.reload();
    },
  });
  const dot = el("span", { class: "dot", title: "engine" });
  const state = el("span", { class: "muted" }, "…");
  const link = (href, name) => el("a", { href, class: active === name ? "active" : "" }, name);
  document.body.prepend(
    el(
      "header",
      { class: "top" },
      el("span", { class: "brand" }, "lora-router"),
      el("nav", {}, link("/ui", "Playground"), link("/ui/operator", "Operator")),
      el("span", { class: "spacer" }),
      dot,
      state,
      key,
    ),
  );
  const poll = async () => {
    try {
      const health = await api("/health");
      dot.className = `dot ${health.engine === "ready" ? "ok" : "bad"}`;
      state.textContent = `engine ${health.engine} · ${health.in_flight} in flight`;
    } catch {
      dot.className = "dot bad";
      state.textContent = "service unreachable";
    }
  };
  poll();
  setInterval(poll, 5000);
}

// Where sub-intents add up to their adapter ("billing/refund" → billing), the sums, best first.
export function adapterScores(routing) {
  const labels = Object.keys(routing.scores || {});
  if (!routing.adapter_scores || !labels.some((label) => label.includes("/"))) return null;
  const sums = Object.entries(routing.adapter_scores).sort((a, b) => b[1] - a[1])
    .map(([model, score]) => `${model} ${score.toFixed(2)}`).join(", ");
  return el("div", { class: "muted", "data-testid": "adapter-scores" }, `adapters: ${sums} · sub-intent ${routing.label}`);
}
