// The playground: chat with streaming, a model selector (auto / an adapter / the base model), and for every
// answer which model answered, why (per-label score bars, fallback reason) and how fast.
import { api, ApiError, el, events, headers, raise, routingPill, scoreBars, adapterScores, topBar } from "/ui/static/common.js";

const HISTORY = "lora-router.playground.history"; // sessionStorage: one conversation per browser tab
const transcript = document.querySelector("[data-testid=transcript]");
const composer = document.querySelector("[data-testid=composer]");
const input = composer.elements.message;
const modelSelect = document.querySelector("[data-testid=model]");
const modelHelp = document.querySelector("[data-testid=model-help]");
const systemPrompt = document.querySelector("[data-testid=system-prompt]");
let cards = new Map(); // model id -> card from /v1/models

// [{role: "user"|"assistant", content, meta?}]; meta holds the routing and timing shown under an answer.
let history = JSON.parse(sessionStorage.getItem(HISTORY) || "[]");

function save() {
  sessionStorage.setItem(HISTORY, JSON.stringify(history));
  document.querySelector("[data-testid=conversation-info]").textContent =
    `${history.filter((m) => m.role === "user").length} question(s), kept in this browser tab only.`;
}

function bubble(role) {
  const node = el("div", { class: `msg ${role}`, "data-testid": role === "user" ? "question" : "answer" });
  transcript.append(node);
  transcript.scrollTop = transcript.scrollHeight;
  return node;
}

function renderMeta(node, routing) {
  const answeredBy = el("strong", { "data-testid": "answered-by" }, routing.model);
  const meta = el("div", { class: "meta" }, answeredBy, routingPill(routing));
  if (routing.mode === "auto" && routing.confidence != null)
    meta.append(el("span", { class: "muted" }, `label ${routing.label} · confidence ${routing.confidence.toFixed(2)}` +
      (routing.similarity != null ? ` · similarity ${routing.similarity.toFixed(2)}` : "")));
  if (routing.latency_ms != null) meta.append(el("span", { class: "muted" }, `routed in ${routing.latency_ms.toFixed(1)} ms`));
  node.append(meta);
  if (routing.detail) node.append(el("div", { class: "sysprompt", "data-testid": "fallback-detail" }, routing.detail));
  if (routing.scores) node.append(scoreBars(routing.scores, routing.label));
  const sums = adapterScores(routing);
  if (sums) node.append(sums);
  const prompt = cards.get(routing.model)?.system_prompt;
  if (prompt) node.append(el("div", { class: "sysprompt" }, `system prompt: ${prompt}`));
}

function renderStats(node, stats) {
  const parts = [];
  if (stats.ttft != null) parts.push(el("span", { "data-testid": "ttft" }, `TTFT ${stats.ttft.toFixed(2)} s`));
  if (stats.tokensPerS != null) parts.push(el("span", { "data-testid": "tps" }, `${stats.tokensPerS.toFixed(1)} tok/s`));
  if (stats.tokens != null) parts.push(el("span", {}, `${stats.tokens} tokens`));
  const line = el("div", { class: "stats" });
  parts.forEach((p, i) => line.append(...(i ? [" · ", p] : [p])));
  node.append(line);
}

function renderHistory() {
  transcript.replaceChildren();
  for (const message of history) {
    const node = bubble(message.role);
    if (message.meta) renderMeta(node, message.meta.routing);
    node.append(el("div", { class: "text" }, message.content));
    if (message.meta) renderStats(node, message.meta.stats);
  }
  save();
}

function describeModel() {
  const card = cards.get(modelSelect.value);
  if (modelSelect.value === "auto") {
    modelHelp.textContent = "The router picks an adapter for every message; unsure → the base model.";
    systemPrompt.textContent = "Each adapter's own (shown under its answers).";
  } else {
    modelHelp.textContent = card?.parent ? `Pinned: ${card.description || "adapter"} (no routing).` : "The base model, no adapter.";
    systemPrompt.textContent = card?.system_prompt || "none";
  }
  sessionStorage.setItem(`${HISTORY}.model`, modelSelect.value);
}

async function loadModels() {
  const models = (await api("/v1/models")).data;
  cards = new Map(models.map((m) => [m.id, m]));
  const auto = models.filter((m) => m.id === "auto");
  const adapters = models.filter((m) => m.parent && m.id !== "auto");
  const base = models.filter((m) => !m.parent && m.id !== "auto");
  modelSelect.replaceChildren(
    ...auto.map((m) => el("option", { value: m.id }, "auto — let the router choose")),
    el("optgroup", { label: "Adapters (manual override)" }, ...adapters.map((m) => el("option", { value: m.id }, m.id))),
    el("optgroup", { label: "Base model" }, ...base.map((m) => el("option", { value: m.id }, m.id))),
  );
  const kept = sessionStorage.getItem(`${HISTORY}.model`);
  if (kept && cards.has(kept)) modelSelect.value = kept;
  describeModel();
}

async function send(text) {
  const question = { role: "user", content: text };
  bubble("user").append(el("div", { class: "text" }, text));
  const node = bubble("assistant");
  const head = el("div", {}, el("div", { class: "muted meta" }, "…"));
  const body = el("div", { class: "text" });
  node.append(head, body);
  const started = performance.now();
  let routing = null;
  let firstToken = null;
  let tokens = null;
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({
        model: modelSelect.value,
        messages: [...history.map(({ role, content }) => ({ role, content })), question],
        max_tokens: Number(document.querySelector("[data-testid=max-tokens]").value) || 64,
        temperature: Number(document.getElementById("temperature").value),
        stream: true,
        stream_options: { include_usage: true },
      }),
    });
    if (!response.ok) await raise(response);
    for await (const chunk of events(response)) {
      if (chunk.error) throw new ApiError(0, chunk.error.message);
      if (chunk.routing) {
        routing = chunk.routing;
        head.replaceChildren();
        renderMeta(head, routing);
      }
      const delta = chunk.choices?.[0]?.delta?.content;
      if (delta) {
        firstToken ??= performance.now();
        body.textContent += delta;
        transcript.scrollTop = transcript.scrollHeight;
      }
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
    }
    const ended = performance.now();
    const stats = {
      ttft: firstToken == null ? null : (firstToken - started) / 1000,
      tokens,
      tokensPerS: tokens > 1 && firstToken != null && ended > firstToken ? (tokens - 1) / ((ended - firstToken) / 1000) : null,
    };
    renderStats(node, stats);
    history.push(question, { role: "assistant", content: body.textContent, meta: { routing, stats } });
    save();
  } catch (error) {
    // The failed exchange stays on screen but out of the history, so the next request does not carry it.
    node.append(el("div", { class: "error", "data-testid": "error" }, error.message));
  }
}

composer.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  const button = composer.querySelector("button");
  button.disabled = true;
  try {
    await send(text);
  } finally {
    button.disabled = false;
    input.focus();
  }
});
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    composer.requestSubmit();
  }
});
modelSelect.addEventListener("change", describeModel);
document.querySelector("[data-testid=new-chat]").addEventListener("click", () => {
  history = [];
  renderHistory();
});

topBar("Playground");
renderHistory();
loadModels().catch((error) => {
  modelHelp.replaceChildren(el("span", { class: "error", "data-testid": "error" }, error.message));
});
