// Quire's dashboard: a little JavaScript over the API's own routes. Values from the catalog are
// only ever put on the page as text (textContent), never as HTML; filters are JSON, never code.
"use strict";

const CONFIG = JSON.parse(document.getElementById("quire-config").textContent);
const CSRF = document.querySelector('meta[name="csrf-token"]').content;

async function api(path, options = {}) {
  const headers = {"X-CSRF-Token": CSRF, ...(options.headers || {})};
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(options.json);
  }
  const response = await fetch(path, {...options, headers, credentials: "same-origin"});
  const text = await response.text();
  let body = text;
  try { body = JSON.parse(text); } catch (e) { /* not JSON: keep the text */ }
  if (!response.ok) {
    const detail = body && body.detail !== undefined ? body.detail : text;
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function show(id, text) {
  const node = document.getElementById(id);
  node.textContent = text;
  node.hidden = !text;
}

function cell(value) {
  if (value === null || value === undefined) return "";
  if (Array.isArray(value)) return value.map(cell).join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

// The name people read for a field; the raw name (what filter documents use) is its tooltip.
const labelOf = (field) => (CONFIG.labels && CONFIG.labels[field]) || field;
const named = (field, extra = "") => el("span", {title: field, text: labelOf(field) + extra});

// A long UID is shortened, never wrapped: the whole on hover, and a button that copies it.
const UID = /^\d+(\.\d+){3,}$/;
function valueNode(text) {
  if (text.length <= 24 || !UID.test(text)) return document.createTextNode(text);
  return el("span", {class: "uid-cell"}, el("span", {class: "uid", title: text, text: `${text.slice(0, 6)}…${text.slice(-4)}`}),
            el("button", {type: "button", class: "copy", "data-copy": text, "aria-label": `Copy ${text}`, title: "Copy"}));
}
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  navigator.clipboard.writeText(button.dataset.copy).then(() => { button.classList.add("copied"); },
                                                          () => { button.title = "The browser refused: select the text"; });
});

function valueAt(doc, path) {
  return path.split(".").reduce((node, part) => (node && typeof node === "object" ? node[part] : undefined), doc);
}

function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.set(name, value);
  }
  return search.toString();
}

const escapeRegex = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const unescapeRegex = (text) => text.replace(/\\(.)/g, "$1");

// ---- Overview ------------------------------------------------------------------------------

const TILES = [["Total studies", "total_studies"], ["Total series", "total_series"], ["Total instances", "total_instances"],
               ["Total images (frames)", "total_images"], ["Total patients", "total_patients"],
               ["Average images per study", "average_images_per_study"]];
// Each chart: its title, its counts in the statistics, its axis, what it counts, and the filter a
// click on a bar adds (level, field, and the condition for the bar's value).
const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442", "#000000"];
const CHARTS = [
  {title: "Slice thickness distribution", pick: (s) => s.slice_thickness_distribution.series, x: "slice thickness (mm)",
   y: "series", level: "series", field: "slice_thickness", condition: Number, numeric: true},
  {title: "Sex distribution", pick: (s) => s.sex_distribution, x: "sex", y: "patients", level: "studies",
   field: "patient_sex", condition: (v) => v},
  {title: "Modality distribution", pick: (s) => s.modality_distribution, x: "modality", y: "series",
   level: "series", field: "modality", condition: (v) => v},
  {title: "Manufacturer (family) distribution", pick: (s) => s.manufacturer_distribution, x: "manufacturer",
   y: "series", level: "series", field: "manufacturer_family", condition: (v) => v},
  {title: "Study year distribution", pick: (s) => s.study_year_distribution, x: "year", y: "studies",
   level: "studies", field: "study_date", condition: (v) => ({$gte: `${v}-01-01`, $lte: `${v}-12-31`})},
  {title: "Body part distribution", pick: (s) => s.body_part_distribution, x: "body part", y: "series",
   level: "series", field: "body_part_examined", condition: (v) => v},
];

function chartLayout(title, xTitle, yTitle, numeric, small) {
  return {title: {text: title}, height: 320, margin: {t: 44, b: 56, l: 56, r: 16}, colorway: PALETTE,
          font: {family: "system-ui, sans-serif", size: 12}, plot_bgcolor: "white",
          xaxis: {title: {text: xTitle}, type: numeric ? "linear" : "category", showline: true},
          yaxis: {title: {text: yTitle}, tickformat: ",d", rangemode: "tozero", showline: true, gridcolor: "#eee",
                  ...(small ? {dtick: 1} : {})}};
}

// A bar's value, added to the page's filter (or, from a chart of another level, as that level's filter).
function filterWith(chart, value) {
  const params = new URLSearchParams(location.search);
  const level = params.get("level") || "studies";
  let where = {};
  try { where = level === chart.level ? JSON.parse(params.get("where") || "{}") : {}; } catch (e) { where = {}; }
  where[chart.field] = chart.condition(value);
  return "/?" + query({level: chart.level, where: JSON.stringify(where)});
}

async function overview() {
  const params = new URLSearchParams(location.search);
  const status = document.getElementById("status");
  try {
    const stats = await api("/api/v1/stats?" + query({where: params.get("where"), level: params.get("level")}));
    const tiles = document.getElementById("tiles");
    for (const [title, key] of TILES) {
      tiles.append(el("div", {class: "tile", "data-title": title},
        el("span", {class: "value", text: Number(stats[key]).toLocaleString("en")}), el("span", {class: "label", text: title})));
    }
    if (!stats.total_studies) {
      status.textContent = params.get("where") ? "No study matches this filter." :
        "The catalog is empty: run `quire ingest SOURCE` to fill it.";
      return;
    }
    status.textContent = "The figures are of the studies holding what the filter selects. Click a bar to add its " +
      "value to the filter.";
    const charts = document.getElementById("charts");
    const errors = CONFIG.admin ? await api("/api/v1/errors/distinct/reason?limit=50").catch(() => null) : null;
    const all = [...CHARTS];
    if (errors) {
      all.push({title: "Files not cataloged, by reason", x: "reason", y: "files", pick: () =>
        Object.fromEntries(errors.values.map((v) => [v.value, v.count]))});
    }
    // Every box in the grid first, then the charts: each is drawn at its final width.
    const boxes = all.map((chart) => el("section", {class: "chart", "data-title": chart.title}));
    charts.append(...boxes);
    for (const [i, chart] of all.entries()) {
      const entries = Object.entries(chart.pick(stats));
      const numeric = chart.numeric && entries.every(([k]) => k !== "" && !Number.isNaN(Number(k)));
      // JavaScript lists integer-like keys ("1", "3") before the others ("0.625"): put numbers back in order.
      if (numeric) entries.sort((a, b) => Number(a[0]) - Number(b[0]));
      const box = boxes[i];
      const x = entries.map((e) => (numeric ? Number(e[0]) : e[0]));
      const y = entries.map((e) => e[1]);
      if (!entries.length) {
        box.append(el("p", {class: "muted", text: `${chart.title}: nothing recorded`}));
        continue;
      }
      await Plotly.newPlot(box, [{type: "bar", x, y, text: y, textposition: "auto", marker: {color: PALETTE[0]},
                              hovertemplate: "%{x}: %{y}<extra></extra>"}],
                     chartLayout(chart.title, chart.x, chart.y, numeric, Math.max(...y) <= 10), {displaylogo: false, responsive: true});
      if (chart.field) {
        box.classList.add("clickable");
        box.on("plotly_click", (event) => {
          const value = event.points[0].x;
          if (value === "unknown" || String(value).startsWith("other (")) return;  // no such stored value
          location.assign(filterWith(chart, numeric ? Number(value) : String(value)));
        });
      }
    }
  } catch (error) {
    status.textContent = "Error: " + error.message;
    status.classList.add("error");
  }
}

// ---- Explore -------------------------------------------------------------------------------

const state = {level: CONFIG.level, where: {}, sort: CONFIG.sort[CONFIG.level], cursors: [null], page: 0};
let collectionNames = null;  // collection id → its name, for the collections facet

async function collectionName(id) {
  if (collectionNames === null) {
    collectionNames = {};
    try {
      for (const c of await api("/api/v1/collections")) collectionNames[c.collection_id] = c.name || c.collection_id;
    } catch (e) { /* names are a nicety: ids are shown */ }
  }
  return collectionNames[id] || id;
}

function setWhere(field, condition) {
  if (condition === undefined) delete state.where[field];
  else state.where[field] = condition;
  state.cursors = [null];
  state.page = 0;
  refresh();
}

function whereWithout(field) {
  const copy = {...state.where};
  delete copy[field];
  return JSON.stringify(copy);
}

function selectedValues(field) {
  const condition = state.where[field];
  if (condition && typeof condition === "object" && Array.isArray(condition.$in)) return condition.$in;
  if (condition !== undefined && (typeof condition !== "object" || condition === null)) return [condition];
  return [];
}

async function renderFacets() {
  const box = document.getElementById("facets");
  box.replaceChildren();
  const filters = CONFIG.filters[state.level];
  const words = renderWords(box);
  await Promise.all([words, ...filters.facets.map(async (field) => {
    const group = el("fieldset", {class: "facet", "data-field": field}, el("legend", {}, named(field)));
    box.append(group);
    const chosen = selectedValues(field);
    try {
      const body = await api(`/api/v1/${state.level}/distinct/${encodeURIComponent(field)}?` +
                             query({where: whereWithout(field), limit: 25}));
      const values = body.values.map((v) => v.value);
      for (const value of chosen) if (!values.includes(value)) body.values.push({value, count: 0});
      for (const {value, count} of body.values) {
        const id = `facet-${field}-${cell(value)}`.replace(/[^A-Za-z0-9_-]/g, "_");
        const box = el("input", {type: "checkbox", id, "data-value": JSON.stringify(value)});
        box.checked = chosen.includes(value);
        box.addEventListener("change", () => {
          const now = [...group.querySelectorAll("input:checked")].map((b) => JSON.parse(b.dataset.value));
          setWhere(field, now.length ? {$in: now} : undefined);
        });
        const shown = field === "collection_ids" ? await collectionName(value) : cell(value);
        group.append(el("div", {class: "choice"}, box, el("label", {for: id, title: cell(value), text: `${shown} (${count})`})));
      }
      if (!body.values.length) group.append(el("p", {class: "muted", text: "no values"}));
    } catch (error) {
      group.append(el("p", {class: "muted", text: error.message}));
    }
  })]);
}

// The range inputs; returns their hints' requests, to be sent once the table is drawn.
function renderRanges() {
  const box = document.getElementById("ranges");
  box.replaceChildren();
  const hints = [];
  for (const [field, kind] of CONFIG.filters[state.level].ranges) {
    const condition = state.where[field] && typeof state.where[field] === "object" ? state.where[field] : {};
    const low = el("input", {type: kind === "date" ? "date" : "number", step: "any", id: `min-${field}`,
                             "aria-label": `${labelOf(field)} from`});
    const high = el("input", {type: kind === "date" ? "date" : "number", step: "any", id: `max-${field}`,
                              "aria-label": `${labelOf(field)} to`});
    low.value = condition.$gte ?? "";
    high.value = condition.$lte ?? "";
    const apply = () => {
      const parse = (v) => (v === "" ? undefined : kind === "date" ? v : Number(v));
      const range = {};
      if (parse(low.value) !== undefined) range.$gte = parse(low.value);
      if (parse(high.value) !== undefined) range.$lte = parse(high.value);
      setWhere(field, Object.keys(range).length ? range : undefined);
    };
    low.addEventListener("change", apply);
    high.addEventListener("change", apply);
    const present = el("p", {class: "muted present"});
    box.append(el("fieldset", {class: "range", "data-field": field}, el("legend", {}, named(field)), low,
                  el("span", {text: " to "}), high, present));
    hints.push(() => rangeHint(field, low, high, present));
  }
  const field = CONFIG.filters[state.level].text;
  const textBox = document.getElementById("text-filter");
  textBox.replaceChildren();
  if (field) {
    const input = el("input", {type: "search", id: "text", placeholder: "words in the description"});
    input.value = description(field).text;
    input.addEventListener("change", () => setDescription(field, description(field).words, input.value));
    textBox.append(el("label", {for: "text", title: field, text: `Words in the ${labelOf(field).toLowerCase()}`}), input);
  }
  return hints;
}

// The smallest and largest values present under the rest of the filter, as the inputs' hints.
async function rangeHint(field, low, high, present) {
  const where = {...JSON.parse(whereWithout(field)), [field]: {$ne: null}};
  const end = async (direction) => {
    const page = await api(`/api/v1/${state.level}?` + query({where: JSON.stringify(where), sort: `${field}:${direction}`,
                                                              limit: 1, fields: field}));
    return page.items.length ? valueAt(page.items[0], field) : undefined;
  };
  // Fields the API cannot sort on (arrays, attributes in metadata): the ends of their distinct values.
  const ends = async () => {
    const body = await api(`/api/v1/${state.level}/distinct/${encodeURIComponent(field)}?` +
                           query({where: JSON.stringify(where), limit: 1000}));
    const values = body.values.flatMap((v) => (Array.isArray(v.value) ? v.value : [v.value]))
      .filter((v) => typeof v === "number" || typeof v === "string").sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return values.length ? [values[0], values[values.length - 1]] : [undefined, undefined];
  };
  try {
    const [first, last] = await Promise.all([end("asc"), end("desc")]).catch(ends);
    if (first === undefined) { present.textContent = "no values"; return; }
    low.placeholder = String(first);
    high.placeholder = String(last);
    present.textContent = `present: ${cell(first)} to ${cell(last)}`;
  } catch (error) { present.textContent = ""; }
}

// A description's words (a facet) and free text share one condition: a regex of look-aheads,
// (?=.*\bword\b) per chosen word and (?=.*text) for the text, matched case-insensitively.
function description(field) {
  const regex = (state.where[field] && state.where[field].$regex) || "";
  if (!regex.startsWith("(?=")) return {words: [], text: unescapeRegex(regex)};
  const words = [];
  let text = "";
  for (const [, part] of regex.matchAll(/\(\?=\.\*((?:\\.|[^\\)])*)\)/g)) {
    const word = part.match(/^\\b(.*)\\b$/);
    if (word) words.push(unescapeRegex(word[1])); else text = unescapeRegex(part);
  }
  return {words, text};
}

function setDescription(field, words, text) {
  const parts = words.map((w) => `(?=.*\\b${escapeRegex(w)}\\b)`);
  if (text) parts.push(words.length ? `(?=.*${escapeRegex(text)})` : escapeRegex(text));
  setWhere(field, parts.length ? {$regex: parts.join(""), $options: "i"} : undefined);
}

async function renderWords(box) {
  const field = CONFIG.filters[state.level].text;
  if (!field) return;
  const group = el("fieldset", {class: "facet", "data-field": `${field}-words`},
                   el("legend", {}, el("span", {title: field, text: `Words in the ${labelOf(field).toLowerCase()}`})));
  box.append(group);
  const chosen = description(field).words;
  try {
    const body = await api(`/api/v1/${state.level}/distinct/${encodeURIComponent(field)}?` +
                           query({where: whereWithout(field), limit: 10000}));
    const counts = new Map();
    for (const {value, count} of body.values) {
      // A word keeps its decimals: "0.625mm" is one word, not "625mm".
      const words = (String(value).toLowerCase().match(/[a-z0-9]+(?:\.[0-9]+)*[a-z]*/g) || []).filter((w) => w.length > 1);
      for (const word of new Set(words)) {
        counts.set(word, (counts.get(word) || 0) + count);
      }
    }
    for (const word of chosen) if (!counts.has(word)) counts.set(word, 0);
    const top = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .filter(([word], i) => i < 20 || chosen.includes(word));
    for (const [word, count] of top) {
      const id = `word-${field}-${word}`;
      const check = el("input", {type: "checkbox", id, "data-value": word});
      check.checked = chosen.includes(word);
      check.addEventListener("change", () => {
        const now = [...group.querySelectorAll("input:checked")].map((b) => b.dataset.value);
        setDescription(field, now, description(field).text);
      });
      group.append(el("div", {class: "choice"}, check, el("label", {for: id, text: `${word} (${count})`})));
    }
    if (!top.length) group.append(el("p", {class: "muted", text: "no words"}));
  } catch (error) {
    group.append(el("p", {class: "muted", text: error.message}));
  }
}

async function renderTable() {
  const table = document.getElementById("table");
  const summary = document.getElementById("summary");
  const key = CONFIG.keys[state.level];
  const where = JSON.stringify(state.where);
  table.setAttribute("aria-busy", "true");
  summary.textContent = "Loading…";
  show("error", "");
  try {
    const cursor = state.cursors[state.page];
    const [page, count] = await Promise.all([
      api(`/api/v1/${state.level}?` + query({where, limit: 25, cursor, sort: state.sort})),
      api(`/api/v1/${state.level}/count?` + query({where}))]);
    // Columns empty on the whole page are left out (the opening column and the key stay).
    const columns = CONFIG.columns[state.level].filter((c, i) => i === 0 || c === key ||
      page.items.some((doc) => cell(valueAt(doc, c)) !== ""));
    const head = el("tr");
    for (const column of columns) {
      const mark = state.sort && state.sort.startsWith(column + ":") ? (state.sort.endsWith(":desc") ? " ▼" : " ▲") : "";
      head.append(el("th", {scope: "col", "data-column": column}, el("button", {type: "button", class: "sort", "data-column": column,
        title: column, text: labelOf(column) + mark, onclick: () => {
          state.sort = state.sort === `${column}:asc` ? `${column}:desc` : `${column}:asc`;
          state.cursors = [null];
          state.page = 0;
          renderTable().catch(() => {});
        }})));
    }
    table.tHead.replaceChildren(head);
    const rows = page.items.map((doc) => {
      const row = el("tr");
      columns.forEach((column, i) => {
        const text = cell(valueAt(doc, column));
        // The first column opens the document (its key is the link, whatever the column shows).
        row.append(el("td", {"data-column": column, title: text}, i === 0 ?
          el("a", {href: `/${state.level}/${encodeURIComponent(doc[key])}`, text: text || "(open)"}) : valueNode(text)));
      });
      return row;
    });
    table.tBodies[0].replaceChildren(...rows);
    state.cursors[state.page + 1] = page.next_cursor;
    document.getElementById("next").disabled = !page.next_cursor;
    document.getElementById("prev").disabled = state.page === 0;
    summary.textContent = count.count ? `${count.count.toLocaleString("en")} ${state.level} (page ${state.page + 1})` :
      (Object.keys(state.where).length ? `No ${state.level} match this filter.` :
        "The catalog is empty: run `quire ingest SOURCE` to fill it.");
    summary.dataset.count = String(count.count);
  } catch (error) {
    clearResults(error.message);
    throw error;  // the facets of a filter that failed are not drawn
  } finally {
    table.setAttribute("aria-busy", "false");
  }
}

// Nothing on the screen may belong to another filter than the one shown: on an error the table,
// the count and the facets go, and the error is said in words.
function clearResults(message) {
  const table = document.getElementById("table");
  table.tHead.replaceChildren();
  table.tBodies[0].replaceChildren();
  const summary = document.getElementById("summary");
  summary.textContent = "";
  summary.dataset.count = "";
  document.getElementById("facets").replaceChildren();
  document.getElementById("next").disabled = true;
  document.getElementById("prev").disabled = true;
  show("error", message);
}

function refresh() {
  const where = JSON.stringify(state.where);
  document.getElementById("raw").value = JSON.stringify(state.where, null, 2);
  history.replaceState(null, "", "/explore?" + query({level: state.level, where: where === "{}" ? "" : where}));
  document.getElementById("cohort-link").href = "/cohort?" + query({level: state.level, where});
  document.getElementById("overview-link").href = "/?" + query({level: state.level, where});
  let hints;
  try {
    hints = renderRanges();
  } catch (error) {
    clearResults(error.message);
    return;
  }
  // The table first: the facets' counts and the ranges' hints follow, without slowing the answer a
  // click waits for (the API serves a page's requests two at a time).
  renderTable().then(() => Promise.all([renderFacets(), ...hints.map((hint) => hint())]), () => {});
}

function explore() {
  try {
    const parsed = JSON.parse(CONFIG.where || "{}");
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) state.where = parsed;
  } catch (e) { show("error", "the filter in the address is not JSON"); }
  for (const tab of document.querySelectorAll("[role=tab]")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll("[role=tab]")) other.setAttribute("aria-selected", "false");
      tab.setAttribute("aria-selected", "true");
      state.level = tab.dataset.level;
      state.where = {};
      state.sort = CONFIG.sort[state.level];
      state.cursors = [null];
      state.page = 0;
      refresh();
    });
  }
  document.getElementById("apply-raw").addEventListener("click", () => {
    let parsed;
    try { parsed = JSON.parse(document.getElementById("raw").value || "{}"); } catch (error) {
      clearResults("The filter is not valid JSON: " + error.message);
      return;
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
      clearResults("A filter is a JSON object, e.g. {\"modality\": \"CT\"}");
      return;
    }
    state.where = parsed;
    state.cursors = [null];
    state.page = 0;
    refresh();
  });
  document.getElementById("ask-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = document.getElementById("ask").value.trim();
    const box = document.getElementById("ask-answer");
    show("error", "");
    if (!question) return;
    box.hidden = false;
    box.textContent = "Reading the question…";
    try {
      const answer = await api("/api/v1/ask?" + query({q: question}));
      const said = [`Read as ${answer.level}${answer.count ? ` (how many: ${answer.total})` : ""}; the filter below.`];
      if (answer.sort) said.push(`Sorted by ${answer.sort.map(([f, d]) => `${f} ${d < 0 ? "desc" : "asc"}`).join(", ")}.`);
      if (answer.limit) said.push(`The first ${answer.limit}.`);
      for (const note of answer.notes) said.push(note + ".");
      box.replaceChildren();
      // Words it did not use come first: the answer is to the question without them.
      if (answer.partial) {
        box.append(el("p", {class: "warning", id: "ask-partial",
                            text: `Partial answer: these words were not used: ${answer.unrecognized.join(", ")}.`}));
      }
      box.append(el("p", {text: said.join(" ")}));
      if (answer.group_by) {
        const rows = answer.groups.map((g) => el("tr", {}, el("td", {text: cell(g.value)}),
                                                 el("td", {text: g.count.toLocaleString("en")})));
        box.append(el("table", {id: "ask-groups", class: "groups"},
          el("thead", {}, el("tr", {}, el("th", {scope: "col", text: answer.group_by}),
                                       el("th", {scope: "col", text: answer.level}))),
          el("tbody", {}, ...rows)));
      }
      box.dataset.total = String(answer.total);
      for (const tab of document.querySelectorAll("[role=tab]")) {
        tab.setAttribute("aria-selected", String(tab.dataset.level === answer.level));
      }
      state.level = answer.level;
      state.where = answer.filter;
      state.sort = answer.sort ? answer.sort.map(([f, d]) => `${f}:${d < 0 ? "desc" : "asc"}`)[0] : CONFIG.sort[answer.level];
      state.cursors = [null];
      state.page = 0;
      refresh();
    } catch (error) {
      box.hidden = true;
      clearResults(error.message);
    }
  });
  document.getElementById("clear").addEventListener("click", () => { state.where = {}; state.cursors = [null]; state.page = 0; refresh(); });
  document.getElementById("next").addEventListener("click", () => { state.page += 1; renderTable().catch(() => {}); });
  document.getElementById("prev").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); renderTable().catch(() => {}); });
  refresh();
}

// ---- Cohort --------------------------------------------------------------------------------

async function cohort() {
  const where = CONFIG.where;
  const level = CONFIG.level;
  const count = document.getElementById("cohort-count");
  try {
    const body = await api(`/api/v1/${level}/count?` + query({where}));
    count.textContent = `${body.count.toLocaleString("en")} ${level} in this cohort.`;
  } catch (error) {
    count.textContent = "";
    show("error", error.message);
  }
  document.getElementById("save-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    show("error", "");
    try {
      const saved = await api("/api/v1/cohorts", {method: "POST", json: {
        collection_id: form.get("collection_id"), name: form.get("name") || null,
        description: form.get("description") || null, level, where: JSON.parse(where)}});
      show("message", `Saved the collection ${saved.collection_id} with ${saved.cases.length} cases.`);
    } catch (error) { show("error", error.message); }
  });
  document.getElementById("submit-job").addEventListener("click", async () => {
    show("error", "");
    try {
      const values = await api(`/api/v1/${level}/distinct/accession_number?` + query({where, limit: 10000}));
      const accessions = values.values.map((v) => String(v.value));
      if (!accessions.length) throw new Error("these documents have no accession numbers to extract");
      const job = await api("/api/v1/jobs", {method: "POST", json: {accessions,
        name: document.getElementById("job-name").value || null}});
      const message = document.getElementById("message");
      message.replaceChildren(`Submitted job ${job.job_id} (${job.num_accessions} accessions): `,
                              el("a", {href: "/jobs", text: "follow it on the Jobs page"}));
      message.hidden = false;
    } catch (error) { show("error", error.message); }
  });
}

// ---- Jobs ----------------------------------------------------------------------------------

async function jobsPage() {
  const status = document.getElementById("status");
  const box = document.getElementById("jobs");
  try {
    const jobs = await api("/api/v1/jobs");
    status.textContent = jobs.length ? "" : "No jobs yet: submit one from the Cohort page or with `quire jobs submit`.";
    box.replaceChildren(...jobs.map((job) => {
      const rows = Object.entries(job.accessions).map(([accession, s]) =>
        el("tr", {}, el("td", {text: accession}), el("td", {class: `state-${s.status}`, text: s.status}),
           el("td", {}, runLink(s.run_id)), el("td", {class: "detail", text: s.detail || CONFIG.outcomes[s.status] || ""})));
      return el("section", {class: "job", "data-job": job.job_id, "data-status": job.status},
        el("h2", {text: `${job.name} · ${job.status}`}),
        el("p", {class: "muted", text: `${job.job_id} · ${job.researcher_id} · collection ${job.collection_id} · ${job.created_at}`}),
        el("table", {}, el("thead", {}, el("tr", {}, ...["accession", "status", "run", "detail"].map(
          (c) => el("th", {scope: "col", text: c})))), el("tbody", {}, ...rows)),
        ...retryForm(job));
    }));
    if (jobs.some((job) => job.status === "pending" || job.status === "running")) setTimeout(jobsPage, 2000);
  } catch (error) {
    status.textContent = "Error: " + error.message;
  }
}

// A run in the Dagster UI when its address is configured (QUIRE_DAGSTER_URL), else its id as text.
function runLink(runId) {
  if (!runId) return "";
  if (!CONFIG.dagster_url) return runId;
  return el("a", {href: `${CONFIG.dagster_url}/runs/${encodeURIComponent(runId)}`, target: "_blank", rel: "noopener",
                  title: runId, text: runId.slice(0, 8)});
}

// The rows of a finished job that delivered nothing, each editable, resubmitted as a new job.
function retryForm(job) {
  const rows = Object.entries(job.accessions).filter(([, s]) => s.status === "not_found" || s.status === "failed");
  if (!rows.length || job.status === "pending" || job.status === "running") return [];
  const inputs = rows.map(([accession]) => el("input", {value: accession, "data-accession": accession,
    class: "retry-row", "aria-label": `the accession number to ask for instead of ${accession}`}));
  const resubmit = async () => {
    const corrections = {};
    for (const input of inputs) {
      const value = input.value.trim();
      if (value && value !== input.dataset.accession) corrections[input.dataset.accession] = value;
    }
    try {
      const made = await api(`/api/v1/jobs/${encodeURIComponent(job.job_id)}/retry`,
                             {method: "POST", json: {corrections}});
      show("message", `Resubmitted as ${made.job_id}.`);
      jobsPage();
    } catch (error) { show("message", "Error: " + error.message); }
  };
  return [el("details", {class: "retry"}, el("summary", {text: `Fix and resubmit the ${rows.length} row(s) not found or failed`}),
    ...inputs.map((input) => el("p", {}, input)),
    el("button", {type: "button", class: "resubmit", onclick: resubmit, text: "Resubmit"}))];
}

// ---- Integrity -----------------------------------------------------------------------------

async function integrityPage() {
  const status = document.getElementById("status");
  const box = document.getElementById("report");
  try {
    const report = await api("/api/v1/integrity");
    status.textContent = report.ok ? `All links hold: ${Object.entries(report.checked).map(([k, v]) => `${v} ${k}`).join(", ")} checked.`
      : "Problems found:";
    box.replaceChildren(...["orphan_series", "orphan_instances", "count_mismatches"].filter((k) => report.totals[k]).map(
      (k) => el("section", {}, el("h2", {text: `${k.replace("_", " ")} (${report.totals[k]})`}),
        el("ul", {}, ...report[k].map((item) => el("li", {text: cell(item)}))))));
  } catch (error) {
    status.textContent = "Error: " + error.message;
  }
  const repair = document.getElementById("repair");
  if (repair && !repair.dataset.bound) {
    repair.dataset.bound = "1";
    repair.addEventListener("click", async () => {
      try {
        const done = await api("/api/v1/integrity/repair", {method: "POST"});
        show("message", `Re-rolled ${done.recounted.series} series and ${done.recounted.studies} studies` +
             (done.job_id ? `; job ${done.job_id} ingests the orphans' accessions again.` : "."));
        integrityPage();
      } catch (error) { show("message", "Error: " + error.message); }
    });
  }
}

({overview, explore, cohort, jobs: jobsPage, integrity: integrityPage})[CONFIG.page]?.();
