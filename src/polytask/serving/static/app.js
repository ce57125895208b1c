// The page of `polytask serve`: one task at a time, or every task on the same text.
"use strict";

let TASKS = {};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "style") Object.assign(node.style, value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function ask(task, input) {
  const response = await fetch("/predict", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({task: task, texts: [input]}),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body.predictions[0];
}

// A hue per chunk type (B-NP and I-NP share one); "O" stays plain.
function tagColour(tag) {
  const type = tag.replace(/^[BIES]-/, "");
  if (type === "O") return "transparent";
  let hash = 0;
  for (const c of type) hash = (hash * 31 + c.charCodeAt(0)) % 360;
  return `hsl(${hash}, 70%, 82%)`;
}

function percent(p) { return (100 * p).toFixed(1) + "%"; }

function bars(probabilities, best) {
  const rows = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
  const grid = el("div", {class: "bars"});
  for (const [label, p] of rows) {
    grid.append(el("span", {class: "bar-label"}, label),
                el("div", {class: label === best ? "bar top" : "bar"}, el("div", {style: {width: percent(p)}})),
                el("span", {class: "pct"}, percent(p)));
  }
  return grid;
}

// One prediction record, drawn by what it holds (label, score, tags or answer).
function render(record, compact = false) {
  const box = el("div", {class: "record"});
  if (record.error) {
    box.append(el("div", {class: "error"}, record.error));
  } else if ("label" in record) {
    if (compact) {             // one line: the label, its probability bar
      box.append(bars({[record.label]: record.probability}, record.label));
      box.querySelector(".bar-label").classList.add("label-name");
    } else {
      box.append(el("div", {class: "prediction"}, "label ", el("b", {class: "label-name"}, record.label),
                    ` (${percent(record.probability)})`), bars(record.probabilities, record.label));
    }
  } else if ("score" in record) {
    box.append(el("div", {class: "prediction"}, "score ", el("b", {class: "score"}, record.score.toFixed(3))));
  } else if ("tags" in record) {
    const line = el("div", {class: "tokens"});
    record.tokens.forEach((token, i) => {
      const tag = record.tags[i];
      line.append(el("span", {class: "token", title: tag, style: {background: tagColour(tag)}},
                     token, el("small", {class: "tag"}, tag)));
    });
    box.append(line);
  } else if ("answer" in record) {
    box.append(el("div", {class: "answer"}, record.answer || "(empty answer)"));
  }
  return box;
}

function showError(target, error) {
  target.replaceChildren(el("div", {class: "error"}, error.message));
}

// ------------------------------------------------------------------ one task

const PLACEHOLDER = {text: "a text", text_b: "the second text", tokens: "words separated by spaces",
                     context: "the context", question: "the question"};

function drawFields() {
  const task = TASKS[document.getElementById("task").value];
  document.getElementById("kind").textContent = task.kind + (task.labels.length && task.kind !== "tagging"
    ? ": " + task.labels.join(", ") : "");
  const fields = document.getElementById("fields");
  fields.replaceChildren(...task.inputs.map(part => el("label", {}, part.replace("_", " "),
    el("textarea", {id: "field-" + part, rows: part === "context" || part === "text" ? 3 : 2,
                    placeholder: PLACEHOLDER[part] || part}))));
}

function readInput(task) {
  const values = task.inputs.map(part => document.getElementById("field-" + part).value);
  if (task.inputs[0] === "tokens") return values[0].trim().split(/\s+/).filter(Boolean);
  return values.length === 1 ? values[0] : values;
}

async function predictOne(event) {
  event.preventDefault();
  const name = document.getElementById("task").value;
  const result = document.getElementById("result");
  result.replaceChildren(el("span", {class: "hint"}, "…"));
  try {
    result.replaceChildren(render(await ask(name, readInput(TASKS[name]))));
    result.dataset.done = name;
  } catch (error) {
    showError(result, error);
  }
}

// ------------------------------------------------------------------ every task

function compareInput(task, text, textB) {
  if (task.inputs.length === 2) return textB.trim() ? [text, textB] : null;
  if (task.inputs[0] === "tokens") return text.trim().split(/\s+/).filter(Boolean);
  return text;
}

async function compareAll(event) {
  event.preventDefault();
  const text = document.getElementById("all-text").value;
  const textB = document.getElementById("all-text-b").value;
  const body = document.querySelector("#compare-table tbody");
  body.replaceChildren();
  const jobs = Object.entries(TASKS).map(async ([name, task]) => {
    const cell = el("td", {class: "output"}, "…");
    body.append(el("tr", {"data-task": name}, el("td", {}, name), el("td", {class: "kind"}, task.kind), cell));
    const input = compareInput(task, text, textB);
    if (input === null) {
      cell.replaceChildren(el("span", {class: "skipped"}, `needs a second text (${task.inputs.join(", ")})`));
      return;
    }
    try {
      cell.replaceChildren(render(await ask(name, input), true));
    } catch (error) {
      showError(cell, error);
    }
  });
  await Promise.all(jobs);
  body.dataset.done = "yes";
}

// ------------------------------------------------------------------ start

function showTab(which) {
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.show === which);
  document.getElementById("one").hidden = which !== "one";
  document.getElementById("all").hidden = which !== "all";
}

async function start() {
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showTab(tab.dataset.show));
  document.getElementById("one-form").addEventListener("submit", predictOne);
  document.getElementById("all-form").addEventListener("submit", compareAll);
  try {
    const response = await fetch("/tasks");
    TASKS = (await response.json()).tasks;
  } catch (error) {
    showError(document.getElementById("result"), error);
    return;
  }
  const select = document.getElementById("task");
  for (const [name, task] of Object.entries(TASKS)) select.append(el("option", {value: name}, `${name} (${task.kind})`));
  select.addEventListener("change", drawFields);
  drawFields();
  const kinds = new Set(Object.values(TASKS).map(t => t.kind));
  document.getElementById("summary").textContent = `${Object.keys(TASKS).length} tasks: ${[...kinds].join(", ")}`;
  document.body.dataset.ready = "yes";
}

start();
