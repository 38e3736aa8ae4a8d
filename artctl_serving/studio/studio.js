// artctl studio: explore a served model, pin the seeds you like, export them as a curation file
// that `artctl mint --curation` renders exactly. Every picture is an immutable image URL
// (/v1/models/NAME/images/SEED.png?v=SHA&psi=&label=&edit=), so the browser and any CDN cache it.
"use strict";

const ROWS_UNCONDITIONAL = 4;
const NARROW = window.matchMedia("(max-width: 640px)");  // a phone: 4 columns, the detail below
const $ = (id) => document.getElementById(id);
const state = {
  models: [], model: null, page: 0, psi: null, selected: null, edits: {}, pins: [], bans: new Set(),
  collection: null,  // the view of a collection config (/v1/collection): its trait's values and labels
};

function cols() { return NARROW.matches ? 4 : 8; }

// The collection's conditioning trait, when it is for the model shown: mint accepts only its labels.
function trait() {
  const c = state.collection;
  return c && c.trait && state.model && c.model === state.model.name ? c.trait : null;
}

// The grid's rows: a trait value and its label each (only the mapped ones), else every label, else
// (an unconditional model) rows of seeds.
function rows() {
  const t = trait();
  if (t) return t.labels.map((label, i) => ({ label, title: t.values[i] }));
  if (state.model.labels.length) return state.model.labels.map((label) => ({ label, title: label }));
  return Array.from({ length: ROWS_UNCONDITIONAL }, () => ({ label: null, title: null }));
}

// What a label is called on screen: its trait value when a collection maps it.
function titleOf(label) {
  const t = trait();
  const i = t ? t.labels.indexOf(label) : -1;
  return i >= 0 ? t.values[i] : label;
}

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

function seedsPerPage() { return cols() * (state.model.labels.length ? 1 : ROWS_UNCONDITIONAL); }

function isSelected(seed, label) {
  const s = state.selected;
  return s !== null && s.seed === seed && (s.label ?? null) === (label ?? null);
}

function renderGrid() {
  const m = state.model;
  const grid = $("grid");
  const focused = [...grid.querySelectorAll(".tile")].indexOf(document.activeElement);
  grid.innerHTML = "";
  grid.style.setProperty("--cols", cols());
  const first = state.page * seedsPerPage();
  const COLS = cols();
  grid.appendChild(document.createElement("span"));
  for (let c = 0; c < COLS; c++) {
    const head = document.createElement("span");
    head.className = "col-title";
    head.textContent = m.labels.length ? `seed ${first + c}` : `+${c}`;
    grid.appendChild(head);
  }
  rows().forEach(({ label, title: name }, r) => {
    const title = document.createElement("span");
    title.className = "row-title";
    const base = m.labels.length ? first : first + r * COLS;
    title.textContent = name ?? `seeds ${base}-${base + COLS - 1}`;
    grid.appendChild(title);
    for (let c = 0; c < COLS; c++) {
      const seed = base + c;
      const tile = document.createElement("div");
      tile.className = "tile";
      tile.tabIndex = -1;  // one tile at a time is in the tab order (a roving tabindex, below)
      tile.setAttribute("role", "button");
      tile.dataset.seed = seed;
      if (label !== null) tile.dataset.label = label;
      if (isPinned(seed, label)) tile.classList.add("pinned");
      if (state.bans.has(entryKey(seed, label))) tile.classList.add("banned");
      if (isSelected(seed, label)) { tile.classList.add("selected"); tile.setAttribute("aria-current", "true"); }
      const img = document.createElement("img");
      img.src = imageUrl(seed, label);
      img.alt = `seed ${seed}${label ? " " + titleOf(label) : ""}`;
      tile.setAttribute("aria-label", img.alt);
      const caption = document.createElement("span");
      caption.className = "seed";
      caption.textContent = seed;
      tile.append(img, caption);
      tile.addEventListener("click", () => { rove(tile); select(seed, label, true); });
      grid.appendChild(tile);
    }
  });
  const tiles = [...grid.querySelectorAll(".tile")];
  const current = tiles[focused] || grid.querySelector(".tile.selected") || tiles[0];
  if (current) current.tabIndex = 0;
  if (focused >= 0 && current) current.focus();  // a pin or a ban re-renders: keep the keyboard's place
  $("page-label").textContent = `page ${state.page + 1}`;
}

function rove(tile) {
  document.querySelectorAll("#grid .tile").forEach((t) => { t.tabIndex = -1; });
  tile.tabIndex = 0;
}

// The grid by keyboard: Tab reaches it once, arrows move, Enter/Space choose, P pins, B bans.
function onGridKey(event) {
  const tiles = [...$("grid").querySelectorAll(".tile")];
  const i = tiles.indexOf(document.activeElement);
  if (i < 0 || event.altKey || event.ctrlKey || event.metaKey) return;
  const c = cols();
  const step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -c, ArrowDown: c, Home: -(i % c), End: c - 1 - (i % c) }[event.key];
  const tile = tiles[i];
  const seed = Number(tile.dataset.seed);
  const label = tile.dataset.label ?? null;
  if (step !== undefined) {
    const next = tiles[i + step];
    if (next) { rove(next); next.focus(); }
  } else if (event.key === "Enter" || event.key === " ") {
    select(seed, label);
  } else if (event.key === "p" || event.key === "b") {
    if (!isSelected(seed, label)) select(seed, label);
    if (event.key === "p") togglePin(); else toggleBan();
  } else return;
  event.preventDefault();
}

function select(seed, label, pointer = false) {
  stopWalk();
  state.selected = { seed, label };
  state.edits = {};
  document.querySelectorAll(".tile").forEach((t) => {
    const on = Number(t.dataset.seed) === seed && (t.dataset.label ?? null) === (label ?? null);
    t.classList.toggle("selected", on);
    if (on) t.setAttribute("aria-current", "true"); else t.removeAttribute("aria-current");
  });
  $("detail").hidden = false;
  renderDirections();
  renderDetail();
  if (pointer && NARROW.matches) $("detail").scrollIntoView({ block: "start" });  // below the grid on a phone
}

async function renderDetail() {
  const { seed, label } = state.selected;
  const m = state.model;
  $("detail-title").textContent = `seed ${seed}${label ? " · " + titleOf(label) : ""}${m.has_psi ? " · psi " + state.psi : ""}`;
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
    const show = throttle(renderDetail, 150);
    const moved = () => {
      state.edits[i] = Number(slider.value);
      value.textContent = slider.value;
      show();
    };
    slider.addEventListener("input", moved);  // while dragging, at most one render per 150 ms
    slider.addEventListener("change", moved);
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

// fn at most once per `ms`, and once more after the last call, so the final value is always shown.
function throttle(fn, ms) {
  let last = 0;
  let timer = null;
  return () => {
    clearTimeout(timer);
    const wait = last + ms - performance.now();
    if (wait <= 0) { last = performance.now(); fn(); return; }
    timer = setTimeout(() => { last = performance.now(); fn(); }, wait);
  };
}

let walkTimer = null;
function stopWalk() {
  clearInterval(walkTimer);
  walkTimer = null;
  $("walk-play").textContent = "Play";
}

function toggleWalk() {
  if (walkTimer !== null) stopWalk(); else playWalk();
}

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
  $("walk-play").textContent = "Stop";
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

function refresh() {
  renderGrid();
  renderPins();
  if (state.selected) renderDetail();
}

function chooseModel(name) {
  state.model = state.models.find((m) => m.name === name) || state.models[0];
  state.page = 0;
  state.selected = null;
  stopWalk();
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
      state.page = Math.floor(seed / seedsPerPage());
    renderGrid();
    select(seed, rows()[0].label);
  });
  $("pin").addEventListener("click", togglePin);
  $("ban").addEventListener("click", toggleBan);
  $("reset-edits").addEventListener("click", () => { state.edits = {}; renderDirections(); renderDetail(); });
  $("mix-style").addEventListener("change", renderMix);
  $("mix-layers").addEventListener("change", renderMix);
  $("walk-play").addEventListener("click", toggleWalk);
  $("grid").addEventListener("keydown", onGridKey);
  $("collection-file").addEventListener("change", (e) => { if (e.target.files[0]) loadCollectionFile(e.target.files[0]); });
  NARROW.addEventListener("change", () => { state.page = 0; renderGrid(); });
  $("export").addEventListener("click", exportCuration);
  $("clear-pins").addEventListener("click", () => { state.pins = []; save(); refresh(); });
  chooseModel(doc.default);
  $("status").textContent = `${doc.models.length} model(s)`;
  const served = await fetch("/v1/collection");
  if (served.status !== 404) await useCollection(served).catch((err) => { $("collection-name").textContent = `not used: ${err.message}`; });
  window.artctlStudio = { state, curation, bans, select, togglePin };
}

start().catch((err) => { $("status").textContent = `error: ${err}`; });
