// artctl studio: explore a served model, pin the seeds you like, export them as a curation file
// that `artctl mint --curation` renders exactly. Every picture is an immutable image URL
// (/v1/models/NAME/images/SEED.png?v=SHA&psi=&label=&edit=), so the browser and any CDN cache it.
"use strict";

const COLS = 8;
const ROWS_UNCONDITIONAL = 4;
const $ = (id) => document.getElementById(id);
const state = { models: [], model: null, page: 0, psi: null, selected: null, edits: {}, pins: [], bans: new Set() };

function storageKey() { return `artctl-studio:${state.model.sha256}`; }

function save() {
  localStorage.setItem(storageKey(), JSON.stringify({ pins: state.pins, bans: [...state.bans] }));
}

function load() {
  const saved = JSON.parse(localStorage.getItem(storageKey()) || "{}");
  state.pins = saved.pins || [];
  state.bans = new Set(saved.bans || []);
}

function query(params) {
  const parts = [`v=${state.model.sha256.slice(0, 16)}`];
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") parts.push(`${key}=${encodeURIComponent(value)}`);
  }
  return parts.join("&");
}

function editText(edits) {
  return Object.entries(edits || {}).filter(([, a]) => Number(a) !== 0).map(([d, a]) => `${d}:${a}`).join(",");
}

function imageUrl(seed, label, edits) {
  const m = state.model;
  return `/v1/models/${encodeURIComponent(m.name)}/images/${seed}.png?` +
    query({ psi: m.has_psi ? state.psi : null, label, edit: editText(edits) });
}

function entryKey(seed, label) { return `${seed}|${label ?? ""}`; }

function isPinned(seed, label) {
  return state.pins.some((p) => p.seed === String(seed) && (p.label ?? null) === (label ?? null));
}

function renderGrid() {
  const m = state.model;
  const grid = $("grid");
  grid.innerHTML = "";
  const rows = m.labels.length ? m.labels : Array.from({ length: ROWS_UNCONDITIONAL }, (_, r) => null);
  const first = state.page * COLS * (m.labels.length ? 1 : ROWS_UNCONDITIONAL);
  grid.appendChild(document.createElement("span"));
  for (let c = 0; c < COLS; c++) {
    const head = document.createElement("span");
    head.className = "col-title";
    head.textContent = m.labels.length ? `seed ${first + c}` : `+${c}`;
    grid.appendChild(head);
  }
  rows.forEach((label, r) => {
    const title = document.createElement("span");
    title.className = "row-title";
    const base = m.labels.length ? first : first + r * COLS;
    title.textContent = label ?? `seeds ${base}-${base + COLS - 1}`;
    grid.appendChild(title);
    for (let c = 0; c < COLS; c++) {
      const seed = base + c;
      const tile = document.createElement("div");
      tile.className = "tile";
      tile.dataset.seed = seed;
      if (label !== null) tile.dataset.label = label;
      if (isPinned(seed, label)) tile.classList.add("pinned");
      if (state.bans.has(entryKey(seed, label))) tile.classList.add("banned");
      const img = document.createElement("img");
      img.src = imageUrl(seed, label);
      img.alt = `seed ${seed}${label ? " " + label : ""}`;
      const caption = document.createElement("span");
      caption.className = "seed";
      caption.textContent = seed;
      tile.append(img, caption);
      tile.addEventListener("click", () => select(seed, label));
      grid.appendChild(tile);
    }
  });
  $("page-label").textContent = `page ${state.page + 1}`;
}

function select(seed, label) {
  state.selected = { seed, label };
  state.edits = {};
  document.querySelectorAll(".tile.selected").forEach((t) => t.classList.remove("selected"));
  $("detail").hidden = false;
  renderDirections();
  renderDetail();
}

async function renderDetail() {
  const { seed, label } = state.selected;
  const m = state.model;
  $("detail-title").textContent = `seed ${seed}${label ? " · " + label : ""}${m.has_psi ? " · psi " + state.psi : ""}`;
  const url = imageUrl(seed, label, state.edits);
  $("detail-image").src = url;
  $("pin").textContent = isPinned(seed, label) ? "Unpin" : "Pin";
  $("ban").textContent = state.bans.has(entryKey(seed, label)) ? "Unban" : "Ban";
  renderMix();
  try {
    const reply = await fetch(url, { method: "GET" });
    $("detail-hash").textContent = `pixel_sha256 ${reply.headers.get("X-Pixel-Sha256") || reply.headers.get("ETag")}`;
  } catch (err) { $("detail-hash").textContent = String(err); }
}

function renderDirections() {
  const d = state.model.directions;
  $("directions-box").hidden = !d;
  const box = $("directions");
  box.innerHTML = "";
  if (!d) return;
  for (let i = 0; i < Math.min(d.count, 8); i++) {
    const row = document.createElement("label");
    row.className = "direction";
    const name = document.createElement("span");
    name.textContent = `direction ${i}`;
    const slider = document.createElement("input");
    Object.assign(slider, { type: "range", min: -10, max: 10, step: 0.5, value: 0, id: `direction-${i}` });
    const value = document.createElement("output");
    value.textContent = "0";
    slider.addEventListener("change", () => {
      state.edits[i] = Number(slider.value);
      value.textContent = slider.value;
      renderDetail();
    });
    row.append(name, slider, value);
    box.appendChild(row);
  }
}

function renderMix() {
  const m = state.model;
  $("mix-box").hidden = !m.mix;
  if (!m.mix) return;
  const { seed, label } = state.selected;
  const style = Number($("mix-style").value) || 0;
  $("mix-image").src = `/v1/models/${encodeURIComponent(m.name)}/mix/${seed}/${style}.png?` +
    query({ layers: $("mix-layers").value, psi: m.has_psi ? state.psi : null, label });
}

let walkTimer = null;
function playWalk() {
  const m = state.model;
  const { seed, label } = state.selected;
  const to = Number($("walk-to").value) || 0;
  const frames = Math.max(2, Math.min(64, Number($("walk-frames").value) || 16));
  const urls = Array.from({ length: frames }, (_, i) =>
    `/v1/models/${encodeURIComponent(m.name)}/walk/${seed}/${to}/${i}.png?` +
    query({ frames, psi: m.has_psi ? state.psi : null, label }));
  urls.forEach((u) => { new Image().src = u; });  // fetch every frame once; the browser caches them
  let i = 0;
  clearInterval(walkTimer);
  walkTimer = setInterval(() => { $("walk-image").src = urls[i]; i = (i + 1) % frames; }, 1000 / 12);
}

function currentEntry() {
  const { seed, label } = state.selected;
  const entry = { seed: String(seed) };
  if (state.model.has_psi) entry.psi = state.psi;
  if (label !== null && label !== undefined) entry.label = label;
  const edits = Object.entries(state.edits).filter(([, a]) => a !== 0).map(([d, a]) => ({ direction: Number(d), amount: a }));
  if (edits.length) entry.edits = edits;
  return entry;
}

function togglePin() {
  const { seed, label } = state.selected;
  if (isPinned(seed, label)) {
    state.pins = state.pins.filter((p) => !(p.seed === String(seed) && (p.label ?? null) === (label ?? null)));
  } else {
    state.pins.push(currentEntry());
    state.bans.delete(entryKey(seed, label));
  }
  save();
  refresh();
}

function toggleBan() {
  const { seed, label } = state.selected;
  const key = entryKey(seed, label);
  if (state.bans.has(key)) state.bans.delete(key); else state.bans.add(key);
  save();
  refresh();
}

function renderPins() {
  const list = $("pins");
  list.innerHTML = "";
  state.pins.forEach((p, i) => {
    const item = document.createElement("li");
    const img = document.createElement("img");
    const edits = Object.fromEntries((p.edits || []).map((e) => [e.direction, e.amount]));
    const psi = state.psi;
    state.psi = p.psi ?? psi;
    img.src = imageUrl(Number(p.seed), p.label ?? null, edits);
    state.psi = psi;
    const text = document.createElement("span");
    text.textContent = `${p.seed}${p.label ? " " + p.label : ""}${p.edits ? " *" : ""}`;
    const remove = document.createElement("button");
    remove.textContent = "remove";
    remove.addEventListener("click", () => { state.pins.splice(i, 1); save(); refresh(); });
    item.append(img, text, remove);
    list.appendChild(item);
  });
  $("pin-count").textContent = state.pins.length;
}

function curation() {
  const m = state.model;
  const doc = { format: "artctl-curation-v1", model: { name: m.name, sha256: m.sha256 }, entries: state.pins };
  if (m.directions && state.pins.some((p) => p.edits)) doc.directions_sha256 = m.directions.sha256;
  return doc;
}

function exportCuration() {
  const text = JSON.stringify(curation(), null, 2) + "\n";
  $("curation").value = text;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  link.download = "curation.json";
  link.click();
  URL.revokeObjectURL(link.href);
}

function refresh() {
  renderGrid();
  renderPins();
  if (state.selected) renderDetail();
}

function chooseModel(name) {
  state.model = state.models.find((m) => m.name === name) || state.models[0];
  state.page = 0;
  state.selected = null;
  $("detail").hidden = true;
  $("psi-box").hidden = !state.model.has_psi;
  state.psi = state.model.default_psi;
  $("psi").value = state.psi;
  $("psi-value").textContent = state.psi;
  load();
  refresh();
}

async function start() {
  const reply = await fetch("/v1/models");
  if (reply.status === 401) {
    const token = prompt("This server needs its bearer token:");
    if (token) { document.cookie = `artctl_token=${encodeURIComponent(token)}; path=/; SameSite=Strict`; location.reload(); }
    return;
  }
  const doc = await reply.json();
  state.models = doc.models;
  const picker = $("model");
  for (const m of doc.models) picker.add(new Option(`${m.name} (${m.architecture}, ${m.resolution} px)`, m.name));
  picker.value = doc.default;
  picker.addEventListener("change", () => chooseModel(picker.value));
  $("psi").addEventListener("change", (e) => { state.psi = Number(e.target.value); $("psi-value").textContent = state.psi; refresh(); });
  $("prev").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); renderGrid(); });
  $("next").addEventListener("click", () => { state.page += 1; renderGrid(); });
  $("jump").addEventListener("change", (e) => {
    const seed = Math.max(0, Math.floor(Number(e.target.value) || 0));
    state.page = Math.floor(seed / (COLS * (state.model.labels.length ? 1 : ROWS_UNCONDITIONAL)));
    renderGrid();
    select(seed, state.model.labels[0] ?? null);
  });
  $("pin").addEventListener("click", togglePin);
  $("ban").addEventListener("click", toggleBan);
  $("reset-edits").addEventListener("click", () => { state.edits = {}; renderDirections(); renderDetail(); });
  $("mix-style").addEventListener("change", renderMix);
  $("mix-layers").addEventListener("change", renderMix);
  $("walk-play").addEventListener("click", playWalk);
  $("export").addEventListener("click", exportCuration);
  $("clear-pins").addEventListener("click", () => { state.pins = []; save(); refresh(); });
  chooseModel(doc.default);
  $("status").textContent = `${doc.models.length} model(s)`;
  window.artctlStudio = { state, curation, select, togglePin };
}

start().catch((err) => { $("status").textContent = `error: ${err}`; });
