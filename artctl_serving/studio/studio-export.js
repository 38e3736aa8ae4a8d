// artctl studio, what leaves the page: the pinned list, the curation file `artctl mint --curation`
// renders, the bans beside it, and the collection config that decides which labels may be pinned.
// Loaded before studio.js, whose `state`, `$` and renderers these share.
"use strict";

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
    text.textContent = `${p.seed}${p.label ? " " + titleOf(p.label) : ""}${p.edits ? " *" : ""}`;
    const t = trait();
    if (t && p.label !== undefined && !t.labels.includes(p.label)) {  // mint would refuse it
      item.classList.add("outside");
      text.textContent += " (not in the collection)";
    }
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

// The seeds turned down, so another session (or person) need not look at them again. Not part of
// the curation, which mint reads strictly: a file of its own beside it.
function bans() {
  const m = state.model;
  const entries = [...state.bans].map((key) => {
    const [seed, label] = key.split("|");
    return label ? { seed, label } : { seed };
  });
  return { format: "artctl-studio-bans-v1", model: { name: m.name, sha256: m.sha256 }, entries };
}

function download(name, text) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  link.download = name;
  link.click();
  URL.revokeObjectURL(link.href);
}

function exportCuration() {
  const text = JSON.stringify(curation(), null, 2) + "\n";
  $("curation").value = text;
  download("curation.json", text);
  const banned = JSON.stringify(bans(), null, 2) + "\n";
  $("bans").value = banned;
  if (state.bans.size) download("bans.json", banned);
}

async function useCollection(reply) {
  const doc = await reply.json();
  if (!reply.ok) throw new Error(doc.error || reply.statusText);
  state.collection = doc;
  $("collection-name").textContent = `${doc.name}${doc.trait ? ": " + doc.trait.labels.length + " " + doc.trait.name : ""}`;
  $("model").value = doc.model;
  chooseModel(doc.model);
}

async function loadCollectionFile(file) {
  try {
    await useCollection(await fetch("/v1/collection", { method: "POST", body: await file.text() }));
  } catch (err) { $("collection-name").textContent = `not used: ${err.message}`; }
}
