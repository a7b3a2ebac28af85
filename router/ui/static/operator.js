// The operator page: adapters (list, register from the adapter root, unregister), the router's examples
// (view, edit, retrain with progress), routing tried out, and the evaluation before and after a retrain.
import { api, el, routingPill, scoreBars, adapterScores, topBar } from "/ui/static/common.js";

const $ = (id) => document.querySelector(`[data-testid=${id}]`);
let examples = []; // the working copy of the router's training examples: [{text, label}]
let trainedExamples = "";
let router = null;

function mib(bytes) {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

async function loadAdapters() {
  const adapters = (await api("/v1/adapters")).data;
  $("adapters").replaceChildren(
    ...adapters.map((a) =>
      el(
        "tr",
        { "data-testid": "adapter-row", "data-name": a.name },
        el("td", {}, el("strong", {}, a.name)),
        el("td", { class: "num" }, String(a.rank)),
        el("td", { class: "num" }, mib(a.size_bytes)),
        el("td", {}, el("span", { class: `dot ${a.loaded ? "ok" : ""}`, title: a.loaded ? "in the engine" : "not loaded" })),
        el("td", { class: "num", "data-testid": "served" }, String(a.requests_served)),
        el("td", { class: "muted clip", title: a.description || "" }, a.description || ""),
        el("td", {}, el("button", { class: "danger", type: "button", "data-testid": "unregister", onclick: () => unregister(a.name) }, "Unregister")),
      ),
    ),
  );
  const bases = [...new Set(adapters.map((a) => a.base_model))];
  $("base-model").textContent = bases.length ? `on ${bases.join(", ")}` : "";
  const folders = (await api("/v1/adapter-folders")).data.filter((f) => !f.registered_as);
  $("folder").replaceChildren(
    ...(folders.length
      ? folders.map((f) => el("option", { value: f.path }, f.path))
      : [el("option", { value: "" }, "no unregistered adapter folder under the adapter root")]),
  );
  suggestName();
}

function suggestName() {
  const path = $("folder").value;
  if (path) $("adapter-name").value = path.split("/").pop().toLowerCase().replace(/[^a-z0-9_.-]/g, "-");
}

async function unregister(name) {
  if (!confirm(`Unregister ${name}? Requests streaming on it finish first; new ones get 404.`)) return;
  try {
    await api(`/v1/adapters/${encodeURIComponent(name)}`, { method: "DELETE" });
    await loadAdapters();
  } catch (error) {
    alert(error.message);
  }
}

// One example per line; "[refund] I want my money back" puts it under the sub-intent "refund" (label
// "<adapter>/refund"). Either every line names a sub-intent or none does.
function adapterExamples(text) {
  const lines = text.split("\n").map((s) => s.trim()).filter(Boolean);
  const tagged = lines.map((line) => line.match(/^\[([^\]]+)\]\s*(.+)$/));
  if (!tagged.some(Boolean)) return lines;
  if (!tagged.every(Boolean)) throw new Error("either every example line starts with [sub-intent] or none does");
  const examples = {};
  for (const [, sub, utterance] of tagged) (examples[sub.trim()] ||= []).push(utterance);
  return examples;
}

async function register(event) {
  event.preventDefault();
  const form = event.target;
  const status = $("register-status");
  status.className = "muted";
  status.textContent = "registering…";
  try {
    const body = {
      name: form.elements.name.value.trim(),
      path: form.elements.path.value,
      description: form.elements.description.value.trim(),
      examples: adapterExamples(form.elements.examples.value),
    };
    const system = form.elements.system_prompt.value.trim();
    if (system) body.defaults = { system_prompt: system };
    const adapter = await api("/v1/adapters", { method: "POST", body });
    status.textContent = `registered ${adapter.name} (id ${adapter.id}); retrain the router to route to it`;
    form.reset();
    await loadAdapters();
  } catch (error) {
    status.className = "error";
    status.textContent = error.message;
  }
}

function showPending() {
  const changed = JSON.stringify(examples) !== trainedExamples;
  $("pending").textContent = changed ? "edited: retrain to use these examples" : "";
}

function renderExamples() {
  const labels = [...new Set(examples.map((e) => e.label))].sort();
  const filter = $("label-filter");
  const chosen = filter.value;
  filter.replaceChildren(el("option", { value: "" }, `all labels (${examples.length})`),
    ...labels.map((l) => el("option", { value: l }, `${l} (${examples.filter((e) => e.label === l).length})`)));
  filter.value = labels.includes(chosen) ? chosen : "";
  document.getElementById("labels").replaceChildren(...labels.map((l) => el("option", { value: l })));
  $("examples").replaceChildren(
    ...examples
      .map((e, i) => [e, i])
      .filter(([e]) => !filter.value || e.label === filter.value)
      .map(([e, i]) =>
        el("tr", { "data-testid": "example-row" },
          el("td", {}, el("span", { class: "pill" }, e.label)),
          el("td", {}, e.text),
          el("td", {}, el("button", { class: "danger", type: "button", title: "remove", onclick: () => {
            examples.splice(i, 1);
            renderExamples();
          } }, "×")),
        ),
      ),
  );
  showPending();
}

async function loadRouter() {
  router = await api("/v1/router");
  const info = router.version
    ? `version ${router.version.slice(0, 12)} · ${router.labels.length} labels (${router.labels.join(", ")}) · ` +
      `${router.num_examples} examples · threshold ${router.threshold} · fallback ${router.fallback}`
    : "no router trained yet";
  $("router-info").textContent = info;
  const data = await api("/v1/router/examples");
  examples = data.data.map(({ text, label }) => ({ text, label }));
  trainedExamples = JSON.stringify(examples);
  renderExamples();
}

function addExample(event) {
  event.preventDefault();
  const form = event.target;
  examples.push({ label: form.elements.label.value.trim(), text: form.elements.text.value.trim() });
  form.elements.text.value = "";
  renderExamples();
}

// A confusion matrix as a picture: rows are true labels, columns predicted; shade = share of the row.
function confusionSvg(evaluation) {
  const n = evaluation.labels.length;
  const cell = Math.max(18, Math.min(26, Math.floor(180 / n)));
  const left = 8 + 6.5 * Math.max(...evaluation.labels.map((l) => l.length));
  const top = 0.8 * left;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  const size = [left + n * cell + 4, top + n * cell + 4];
  svg.setAttribute("width", size[0]);
  svg.setAttribute("height", size[1]);
  svg.setAttribute("data-testid", "confusion");
  svg.setAttribute("role", "img");
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
  };
  evaluation.labels.forEach((label, i) => {
    add("text", { x: left - 6, y: top + i * cell + cell / 2 + 4, "text-anchor": "end", "font-size": 11 }, label);
    add("text", { transform: `translate(${left + i * cell + cell / 2 + 4},${top - 6}) rotate(-60)`, "font-size": 11 }, label);
  });
  evaluation.confusion.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    row.forEach((count, j) => {
      const share = count / total;
      const light = Math.round(97 - 55 * share);
      add("rect", { x: left + j * cell, y: top + i * cell, width: cell - 1, height: cell - 1,
        fill: `hsl(${i === j ? 218 : 12}, 80%, ${count ? light : 97}%)` });
      if (count) add("text", { x: left + j * cell + cell / 2, y: top + i * cell + cell / 2 + 4, "text-anchor": "middle",
        "font-size": 11, fill: share > 0.6 ? "#fff" : "#1d2330" }, String(count));
    });
  });
  return svg;
}

function extraExamples() {
  return $("eval-extra").value.split("\n").map((line) => line.match(/^\s*([^:]+?)\s*:\s*(.+?)\s*$/))
    .filter(Boolean).map(([, label, text]) => ({ label, text }));
}

async function evaluate(caption) {
  const evaluation = await api("/v1/router/evaluate", { method: "POST", body: { examples: extraExamples() } });
  const figure = el("figure", { "data-testid": "evaluation", "data-version": evaluation.version },
    el("figcaption", {},
      el("strong", {}, caption), ` · router ${evaluation.version.slice(0, 12)} · `,
      el("span", { "data-testid": "accuracy" }, `accuracy ${(100 * evaluation.accuracy).toFixed(1)} %`),
      ` · macro-F1 ${evaluation.macro_f1.toFixed(3)} · ${evaluation.count} messages · `,
      el("span", { "data-testid": "policy-accuracy" },
        `under the live policy ${(100 * evaluation.policy.accuracy_with_fallback).toFixed(1)} % right, `
        + `${(100 * evaluation.policy.fallback_rate).toFixed(1)} % to the fallback`)),
  );
  figure.append(confusionSvg(evaluation));
  return figure;
}

async function showEvaluation() {
  const button = $("evaluate");
  button.disabled = true;
  try {
    $("evals").replaceChildren(await evaluate("live"));
  } catch (error) {
    $("evals").replaceChildren(el("span", { class: "error" }, error.message));
  } finally {
    button.disabled = false;
  }
}

async function retrain() {
  const button = $("retrain");
  const status = $("train-status");
  const bar = $("progress");
  button.disabled = true;
  status.className = "muted";
  try {
    status.textContent = "evaluating the live router…";
    const before = router?.version ? await evaluate("before") : null;
    $("evals").replaceChildren(...(before ? [before] : []));
    status.textContent = "training…";
    const poll = setInterval(async () => {
      const info = await api("/v1/router").catch(() => null);
      if (info?.training) {
        bar.style.width = `${(100 * info.training_progress).toFixed(0)}%`;
        status.textContent = `training… ${(100 * info.training_progress).toFixed(0)} %`;
      }
    }, 250);  // training takes seconds: a slower poll can miss every step of it
    let trained;
    try {
      trained = await api("/v1/router/train", { method: "POST", body: { mode: "replace", examples } });
    } finally {
      clearInterval(poll);
    }
    bar.style.width = "100%";
    status.textContent = `router ${trained.version.slice(0, 12)} is live with labels ${trained.labels.join(", ")}`;
    $("evals").append(await evaluate("after"));
    await loadRouter();
  } catch (error) {
    status.className = "error";
    status.textContent = error.message;
    bar.style.width = "0";
  } finally {
    button.disabled = false;
  }
}

async function tryRouting(event) {
  event.preventDefault();
  const out = $("try-result");
  try {
    const routing = await api("/v1/route", { method: "POST", body: { text: event.target.elements.text.value } });
    out.replaceChildren(
      el("div", { class: "row" }, el("strong", { "data-testid": "try-model" }, routing.model), routingPill(routing),
        routing.confidence != null ? el("span", { class: "muted" }, `confidence ${routing.confidence.toFixed(2)}`) : null),
      routing.scores ? scoreBars(routing.scores, routing.label) : null,
      adapterScores(routing),
    );
  } catch (error) {
    out.replaceChildren(el("span", { class: "error" }, error.message));
  }
}

topBar("Operator");
$("register").addEventListener("submit", register);
$("folder").addEventListener("change", suggestName);
$("label-filter").addEventListener("change", renderExamples);
$("add-example").addEventListener("submit", addExample);
$("retrain").addEventListener("click", retrain);
$("evaluate").addEventListener("click", showEvaluation);
$("try").addEventListener("submit", tryRouting);
Promise.all([loadAdapters(), loadRouter()]).catch((error) => {
  $("router-info").replaceChildren(el("span", { class: "error", "data-testid": "error" }, error.message));
});
