// musegen studio: the page. No build step, no network beyond this studio's own API.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, props = {}, ...kids) => {
  const e = document.createElement(tag);
  Object.assign(e, props);
  for (const k of kids) e.append(k);
  return e;
};

async function api(path, opts = {}) {
  const r = await fetch(path, opts);
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) throw new Error((body && body.error) || `${r.status} ${r.statusText}`);
  return body;
}

const state = { presets: [], engines: [], kinds: [], jobs: new Map(), cards: new Map(), ab: { a: null, b: null, hear: "a" },
  limits: {}, sweepAxes: [], styleFiles: [], stylesSeen: new Set() };

// -- presets -----------------------------------------------------------------------------

function tempoText(t) { return t[0] === t[1] ? `${t[0]} BPM` : `${t[0]}–${t[1]} BPM`; }

function renderPresets() {
  const q = $("#preset-search").value.trim().toLowerCase();
  const sel = $("#preset");
  const keep = sel.value;
  sel.replaceChildren();
  for (const p of state.presets) {
    if (p.error) continue;
    const text = `${p.name} ${p.description} ${p.style} ${p.origin}`.toLowerCase();
    if (q && !text.includes(q)) continue;
    const label = `${p.name}${p.origin === "style" ? " (learned)" : ""} · ${tempoText(p.tempo)} · ${p.key} ${p.mode} · ${p.meter}`;
    sel.append(el("option", { value: p.name, textContent: label }));
  }
  if ([...sel.options].some(o => o.value === keep)) sel.value = keep;
  else if (sel.options.length) sel.selectedIndex = 0;
  showPreset();
}

function currentPreset() { return state.presets.find(p => p.name === $("#preset").value); }

function showPreset() {
  const p = currentPreset();
  $("#preset-info").textContent = p ? `${p.description} (engine ${p.engine})` : "no preset matches";
}

// -- engines and their options -----------------------------------------------------------

function renderEngines() {
  const sel = $("#engine");
  sel.replaceChildren(el("option", { value: "", textContent: "preset's engine" }));
  for (const e of state.engines) {
    sel.append(el("option", { value: e.name, textContent: e.name + (e.available ? "" : " (not installed)"),
      disabled: !e.available, title: e.error || e.description }));
  }
  const kinds = $("#kinds");
  kinds.replaceChildren();
  state.kinds.forEach((k, i) => {
    const input = el("input", { type: "radio", name: "kind", value: k.name, checked: i === 0 });
    input.addEventListener("change", kindChanged);
    kinds.append(el("label", { title: k.help }, input, " " + k.name));
  });
  renderOptions();
}

function engineName() {
  return $("#engine").value || (currentPreset() || {}).engine || "";
}

function renderOptions() {
  const eng = state.engines.find(e => e.name === engineName());
  const box = $("#options");
  box.replaceChildren();
  const opts = (eng && eng.options) || [];
  $("#options-box").hidden = opts.length === 0;
  for (const o of opts) {
    let input;
    if (o.type === "bool") {
      input = el("select", {}, el("option", { value: "", textContent: `default (${o.default})` }),
        el("option", { value: "true", textContent: "true" }), el("option", { value: "false", textContent: "false" }));
    } else if (o.type === "choice") {
      input = el("select", {}, el("option", { value: "", textContent: `default (${o.default ?? "engine's"})` }),
        ...o.choices.map(c => el("option", { value: c, textContent: c })));
    } else {
      input = el("input", { type: o.type === "int" || o.type === "float" ? "number" : "text",
        placeholder: o.default === null ? "engine's" : String(o.default) });
      if (o.type === "int") input.step = "1";
      if (o.type === "float") input.step = "any";
      if (o.range) {
        if (isFinite(o.range[0])) input.min = o.range[0];
        if (isFinite(o.range[1])) input.max = o.range[1];
      }
    }
    input.dataset.option = o.name;
    input.dataset.type = o.type;
    box.append(el("label", { title: `${o.help} (${o.allowed})` }, o.name, input));
  }
}

function optionValues() {
  const out = {};
  for (const input of document.querySelectorAll("#options [data-option]")) {
    const v = input.value.trim();
    if (v === "") continue;
    const t = input.dataset.type;
    out[input.dataset.option] = t === "int" ? parseInt(v, 10) : t === "float" ? parseFloat(v)
      : t === "bool" ? v === "true" : t === "list[str]" ? v.split(",").map(s => s.trim()).filter(Boolean) : v;
  }
  return out;
}

function kindChanged() {
  const kind = (document.querySelector("input[name=kind]:checked") || {}).value;
  $("#add-parts-row").hidden = kind !== "extend";
  $("#go").textContent = kind === "extend" ? "Extend" : "Generate";
}

// -- sketches ----------------------------------------------------------------------------

async function loadSketches(select) {
  const { sketches } = await api("/api/sketches");
  const sel = $("#sketch");
  const keep = select || sel.value;
  sel.replaceChildren(el("option", { value: "", textContent: "no sketch" }));
  for (const s of sketches) {
    sel.append(el("option", { value: s.id, textContent: `${s.name} · ${s.notes} notes · ${s.duration_s.toFixed(1)} s` }));
  }
  if ([...sel.options].some(o => o.value === keep)) sel.value = keep;
}

async function upload(file) {
  $("#sketch-info").textContent = `uploading ${file.name}…`;
  $("#sketch-info").className = "hint";
  try {
    const s = await api(`/api/upload?name=${encodeURIComponent(file.name)}`, { method: "POST", body: file,
      headers: { "Content-Type": "audio/midi" } });
    await loadSketches(s.id);
    $("#sketch-info").textContent = `${s.name}: ${s.tracks} tracks, ${s.notes} notes, ${s.duration_s.toFixed(1)} s`;
  } catch (e) {
    $("#sketch-info").textContent = e.message;
    $("#sketch-info").className = "hint error";
  }
}

function setupDrop() {
  const drop = $("#drop");
  for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, e => { e.preventDefault(); drop.classList.add("over"); });
  for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, () => drop.classList.remove("over"));
  drop.addEventListener("drop", e => { e.preventDefault(); if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]); });
  $("#file").addEventListener("change", e => { if (e.target.files[0]) upload(e.target.files[0]); e.target.value = ""; });
  // a file dropped anywhere else on the page must not navigate away from the studio
  window.addEventListener("dragover", e => e.preventDefault());
  window.addEventListener("drop", e => e.preventDefault());
}

// -- recording from a MIDI keyboard (Web MIDI, where the browser has it) -----------------

/** A type-0 Standard MIDI File from note events ``{t: ms, on: bool, pitch, vel}`` at ``bpm``. */
function smf(events, bpm) {
  const tpq = 480, usPerQuarter = Math.round(60e6 / bpm);
  const ticks = ms => Math.max(0, Math.round(ms / 1000 * bpm / 60 * tpq));
  const vlq = n => { const out = [n & 0x7f]; while ((n >>= 7) > 0) out.unshift((n & 0x7f) | 0x80); return out; };
  const track = [0, 0xff, 0x51, 3, (usPerQuarter >> 16) & 255, (usPerQuarter >> 8) & 255, usPerQuarter & 255,
    0, 0xff, 0x58, 4, 4, 2, 24, 8];
  let last = 0;
  for (const e of [...events].sort((a, b) => a.t - b.t || (a.on ? 1 : 0) - (b.on ? 1 : 0))) {
    const t = ticks(e.t);
    track.push(...vlq(t - last), e.on ? 0x90 : 0x80, e.pitch & 0x7f, e.on ? Math.max(1, e.vel & 0x7f) : 64);
    last = t;
  }
  track.push(0, 0xff, 0x2f, 0);
  const n = track.length;
  return new Uint8Array([0x4d, 0x54, 0x68, 0x64, 0, 0, 0, 6, 0, 0, 0, 1, tpq >> 8, tpq & 255,
    0x4d, 0x54, 0x72, 0x6b, (n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255, ...track]);
}

const recorder = { access: null, events: [], held: new Map(), t0: null, on: false };

function midiMessage(msg) {
  if (!recorder.on) return;
  const [status, pitch, vel] = msg.data;
  const kind = status & 0xf0;
  const now = msg.timeStamp || performance.now();
  if (kind === 0x90 && vel > 0) {
    if (recorder.t0 === null) recorder.t0 = now;  // the take starts with the first note
    recorder.events.push({ t: now - recorder.t0, on: true, pitch, vel });
    recorder.held.set(pitch, true);
  } else if ((kind === 0x80 || kind === 0x90) && recorder.held.has(pitch)) {
    recorder.events.push({ t: now - recorder.t0, on: false, pitch, vel: 0 });
    recorder.held.delete(pitch);
  }
  $("#record").textContent = `Stop recording (${recorder.events.filter(e => e.on).length} notes)`;
}

async function toggleRecording() {
  const button = $("#record");
  if (!recorder.on) {
    try {
      recorder.access = recorder.access || await navigator.requestMIDIAccess();
    } catch (e) {
      $("#sketch-info").textContent = "no MIDI access: " + e.message;
      return;
    }
    const inputs = [...recorder.access.inputs.values()];
    if (!inputs.length) { $("#sketch-info").textContent = "no MIDI keyboard is connected"; return; }
    for (const input of inputs) input.onmidimessage = midiMessage;
    Object.assign(recorder, { events: [], held: new Map(), t0: null, on: true });
    button.classList.add("on");
    button.textContent = "Stop recording (0 notes)";
    $("#sketch-info").textContent = `recording from ${inputs.map(i => i.name).join(", ")} at the preset's tempo…`;
    return;
  }
  recorder.on = false;
  button.classList.remove("on");
  button.textContent = "Record from a MIDI keyboard";
  const end = performance.now() - (recorder.t0 ?? performance.now());
  for (const pitch of recorder.held.keys()) recorder.events.push({ t: end, on: false, pitch, vel: 0 });
  if (!recorder.events.length) { $("#sketch-info").textContent = "nothing was played"; return; }
  const bpm = ((currentPreset() || {}).tempo || [100])[0];
  const name = `recording-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-")}.mid`;
  await upload(new File([smf(recorder.events, bpm)], name, { type: "audio/midi" }));
}

function setupRecording() {
  if (!navigator.requestMIDIAccess) return;  // the button stays hidden where there is no Web MIDI
  $("#record").hidden = false;
  $("#record").addEventListener("click", toggleRecording);
}

window.musegenStudio = { smf };  // for the tests: the recorder's file writer

// -- the form ----------------------------------------------------------------------------

function formParams() {
  const kind = (document.querySelector("input[name=kind]:checked") || {}).value || "generate";
  const num = (id, parse) => { const v = $(id).value.trim(); return v === "" ? null : parse(v); };
  const length = num("#length", Number);
  const unit = $("#length-unit").value;
  return {
    kind, preset: $("#preset").value || null, engine: $("#engine").value || null,
    bars: unit === "bars" ? length : null, seconds: unit === "seconds" ? length : null,
    seed: num("#seed", v => parseInt(v, 10)), temperature: num("#temperature", parseFloat),
    variations: num("#variations", v => parseInt(v, 10)) || 1,
    options: optionValues(), sketch: $("#sketch").value || null,
    add_parts: kind === "extend" && $("#add-parts").checked,
    stems: $("#stems").checked || null,  // unchecked: as the preset says
  };
}

async function submit(e) {
  e.preventDefault();
  $("#form-error").textContent = "";
  $("#go").disabled = true;
  try {
    const job = await api("/api/jobs", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(formParams()) });
    state.jobs.set(job.id, job);
    renderHistory();
    poll();
  } catch (err) {
    $("#form-error").textContent = err.message;
  } finally {
    $("#go").disabled = false;
  }
}

function prefill(job, take) {
  const p = job.params;
  $("#preset-search").value = "";
  renderPresets();
  if (p.preset) $("#preset").value = p.preset;
  showPreset();
  $("#engine").value = p.engine || "";
  renderOptions();
  for (const input of document.querySelectorAll("#options [data-option]")) {
    const v = (p.options || {})[input.dataset.option];
    input.value = v === undefined || v === null ? "" : Array.isArray(v) ? v.join(", ") : String(v);
  }
  for (const r of document.querySelectorAll("input[name=kind]")) r.checked = r.value === p.kind;
  kindChanged();
  $("#add-parts").checked = !!p.add_parts;
  $("#stems").checked = !!p.stems;
  $("#length-unit").value = p.seconds !== null && p.seconds !== undefined ? "seconds" : "bars";
  $("#length").value = p.seconds ?? p.bars ?? "";
  $("#seed").value = take && take.seed !== null && take.seed !== undefined ? take.seed : (p.seed ?? "");
  $("#temperature").value = p.temperature ?? "";
  $("#variations").value = p.variations || 1;
  if (p.sketch) $("#sketch").value = p.sketch;
  $("#form-note").textContent = `Filled from ${take ? take.stem + " of " : ""}job ${job.id} (same seed): change one setting and press ${$("#go").textContent}.`;
  $("#form").scrollIntoView({ behavior: "smooth" });
}

// -- piano roll --------------------------------------------------------------------------

const COLOURS = ["#f0a13c", "#5ab0f0", "#59c27a", "#d77be0", "#e0d05a", "#ef6461", "#7fe0d0", "#b0b0ff"];

class PianoRoll {
  constructor(canvas, audio) {
    this.canvas = canvas; this.audio = audio; this.notes = []; this.frame = 0;
    const tick = () => { this.draw(); if (!audio.paused) this.frame = requestAnimationFrame(tick); };
    audio.addEventListener("play", () => { cancelAnimationFrame(this.frame); tick(); });
    for (const ev of ["pause", "seeked", "timeupdate", "loadedmetadata"]) audio.addEventListener(ev, () => this.draw());
    canvas.addEventListener("click", e => {
      const r = canvas.getBoundingClientRect();
      if (this.length() > 0) audio.currentTime = (e.clientX - r.left) / r.width * this.length();
    });
    new ResizeObserver(() => this.draw()).observe(canvas);
  }
  load(notes) { this.notes = notes || []; this.draw(); }
  length() {
    const end = this.notes.reduce((m, n) => Math.max(m, n[0] + n[1]), 0);
    return isFinite(this.audio.duration) && this.audio.duration > 0 ? Math.max(this.audio.duration, 0.001) : end;
  }
  draw() {
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(c.clientWidth * dpr)), h = Math.max(1, Math.round(c.clientHeight * dpr));
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    const g = c.getContext("2d");
    g.clearRect(0, 0, w, h);
    const total = this.length();
    if (!this.notes.length || total <= 0) {
      g.fillStyle = "#666"; g.font = `${12 * dpr}px sans-serif`; g.fillText("no notes", 8 * dpr, 18 * dpr); return;
    }
    const pitched = this.notes.filter(n => !n[5]);
    const drums = this.notes.filter(n => n[5]);
    const drumH = drums.length ? 18 * dpr : 0;
    let lo = 127, hi = 0;
    for (const n of pitched) { lo = Math.min(lo, n[2]); hi = Math.max(hi, n[2]); }
    if (lo > hi) { lo = 60; hi = 72; }
    lo -= 1; hi += 1;
    const rowH = (h - drumH) / (hi - lo + 1);
    const now = this.audio.currentTime || 0;
    const x = t => t / total * w;
    // octave lines
    g.fillStyle = "#1b1d23";
    for (let p = lo; p <= hi; p++) if (p % 12 === 0) g.fillRect(0, (hi - p) * rowH, w, 1);
    for (const n of pitched) {
      const on = n[0] <= now && now < n[0] + n[1];
      g.fillStyle = COLOURS[n[4] % COLOURS.length];
      g.globalAlpha = on ? 1 : 0.35 + 0.4 * (n[3] / 127);
      g.fillRect(x(n[0]), (hi - n[2]) * rowH, Math.max(1, x(n[1]) - 1), Math.max(1, rowH - 1));
    }
    g.globalAlpha = 1;
    if (drumH) {
      g.fillStyle = "#24262d"; g.fillRect(0, h - drumH, w, drumH);
      for (const n of drums) {
        const on = Math.abs(now - n[0]) < 0.06;
        g.fillStyle = on ? "#fff" : "#8a8f99";
        g.fillRect(x(n[0]), h - drumH + (n[2] % 6) * (drumH / 6), Math.max(1, 2 * dpr), drumH / 6);
      }
    }
    g.fillStyle = "#ff4a4a";
    g.fillRect(x(now) - dpr, 0, 2 * dpr, h);
  }
}

// -- history -----------------------------------------------------------------------------

function fileUrl(rel, download) { return "/files/" + rel.split("/").map(encodeURIComponent).join("/") + (download ? "?download=1" : ""); }

function describe(p) {
  if (p.kind === "style") {
    return [`learn style ${p.name}`, `${p.sketches.length} files`, `${p.steps} steps`, `at most ${p.minutes} min`,
      p.from_preset ? `from ${p.from_preset}` : "from the closest built-in"].join(" · ");
  }
  if (p.kind === "sweep") {
    const len = p.seconds ? `${p.seconds} s` : p.bars ? `${p.bars} bars` : "default length";
    const axes = Object.entries(p.grid).map(([k, v]) => `${k} ${v.join(", ")}`).join(" × ");
    return ["sweep", p.preset || "default preset", p.engine || "preset's engine", len, axes, `${p.jobs} jobs`].join(" · ");
  }
  const len = p.seconds ? `${p.seconds} s` : p.bars ? `${p.bars} bars` : "default length";
  const bits = [p.kind, p.preset || "default preset", p.engine || "preset's engine", len];
  if (p.seed !== null && p.seed !== undefined) bits.push(`seed ${p.seed}`);
  if (p.temperature) bits.push(`temperature ${p.temperature}`);
  if (p.variations > 1) bits.push(`${p.variations} variations`);
  if (p.sketch) bits.push("with sketch" + (p.add_parts ? " + added parts" : ""));
  if (p.stems) bits.push("stems");
  const opts = Object.entries(p.options || {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return bits.join(" · ") + (opts.length ? " · " + opts.join(" ") : "");
}

function takeElement(job, take) {
  const node = $("#take-tpl").content.firstElementChild.cloneNode(true);
  const s = take.summary || {};
  $(".take-name", node).textContent = take.stem;
  const stats = [];
  if (s.key) stats.push(s.key);
  if (s.tempo_bpm) stats.push(`${s.tempo_bpm} BPM`);
  if (s.meter) stats.push(s.meter);
  if (s.lufs !== null && s.lufs !== undefined) stats.push(`${Number(s.lufs).toFixed(1)} LUFS`);
  if (s.duration_s) stats.push(`${Number(s.duration_s).toFixed(1)} s`);
  if (take.seed !== null && take.seed !== undefined) stats.push(`seed ${take.seed}`);
  $(".stats", node).textContent = stats.join(" · ");
  const audio = $("audio", node);
  audio.src = fileUrl(take.wav);
  const roll = new PianoRoll($("canvas", node), audio);
  if (take.notes) api(fileUrl(take.notes)).then(n => roll.load(n)).catch(() => roll.load([]));
  showPicture(node, take);
  $(".dl-wav", node).href = fileUrl(take.wav, true);
  $(".dl-json", node).href = fileUrl(take.json, true);
  if (take.mid) $(".dl-mid", node).href = fileUrl(take.mid, true); else $(".dl-mid", node).remove();
  const stems = take.stems || [];
  $(".dl-stems", node).hidden = stems.length === 0;
  stems.forEach((s, i) => {
    $(".dl-stems", node).append(i ? " · " : "", s.name + " ",
      el("a", { className: "dl-stem", href: fileUrl(s.wav, true), download: "", textContent: "WAV" }),
      ...(s.mid ? [" ", el("a", { href: fileUrl(s.mid, true), download: "", textContent: "MIDI" })] : []));
  });
  const ref = { job, take };
  $(".pick-a", node).addEventListener("click", () => pickAB("a", ref));
  $(".pick-b", node).addEventListener("click", () => pickAB("b", ref));
  $(".rerun", node).addEventListener("click", () => prefill(job, take));
  node.dataset.key = `${job.id}/${take.stem}`;
  return node;
}

function showPicture(node, take) {
  const img = $("img", node);
  if (take.png && !img.getAttribute("src")) { img.src = fileUrl(take.png); img.alt = `spectrogram of ${take.stem}`; }
  img.hidden = !take.png;
  $(".pic-note", node).textContent = take.png ? "" : take.drawn ? "no spectrogram" : "drawing the spectrogram…";
}

function jobTitle(p) {
  if (p.kind === "style") return `style ${p.name}`;
  if (p.kind === "sweep") return `sweep of ${p.preset || "default preset"}`;
  return p.preset || "default preset";
}

function sweepRows(job) {
  const box = el("div", { className: "sweep-rows" });
  for (const r of job.rows || []) {
    const what = Object.entries(r.params).map(([k, v]) => `${k} ${v}`).join(" ");
    box.append(el("span", { className: r.status, textContent: `${what}: ${r.status}`, title: r.error || r.id }));
  }
  return box;
}

function outcome(job) {
  const p = job.params;
  if (p.kind === "style" && job.style) {
    const s = job.style;
    const loss = s.best_valid_loss !== null && s.best_valid_loss !== undefined
      ? `, validation loss ${Number(s.base_valid_loss).toFixed(3)} → ${Number(s.best_valid_loss).toFixed(3)}` : "";
    const use = el("button", { type: "button", className: "use-style", textContent: "Use it" });
    use.addEventListener("click", () => selectPreset(s.name));
    return el("p", { className: "outcome" }, `Learned ${s.name} from ${s.files} files (base preset ${s.base_preset}, `
      + `${s.steps} steps${loss}). `, use);
  }
  if (p.kind === "sweep") {
    const s = job.sweep || {};
    const line = el("p", { className: "outcome" }, `${s.ok} of ${s.total} jobs ok` + (s.failed ? `, ${s.failed} failed` : "")
      + ` in ${Number(s.seconds || 0).toFixed(1)} s. `);
    if (job.report) {
      line.append(el("a", { className: "report", href: fileUrl(job.report), target: "_blank", rel: "noopener",
        textContent: "Open the batch report" }), " · ",
      el("a", { href: fileUrl(`sweeps/${job.id}/manifest.csv`, true), textContent: "manifest.csv" }));
    } else if (s.report_error) line.append(el("span", { className: "error", textContent: s.report_error }));
    return el("div", {}, line, sweepRows(job));
  }
  return null;
}

function jobCard(job) {
  const card = el("article", { className: "job" });
  card.dataset.id = job.id;
  card.dataset.kind = job.params.kind;
  const head = el("div", { className: "job-head" },
    el("span", { className: "job-title", textContent: jobTitle(job.params) }),
    el("span", { className: `status ${job.status}`, textContent: job.status }),
    el("span", { className: "job-when", textContent: new Date(job.created * 1000).toLocaleString() }));
  card.append(head, el("p", { className: "params", textContent: describe(job.params) }));
  if (job.status === "queued" || job.status === "running") {
    const bar = el("progress", { max: 1, value: job.progress || 0 });
    const msg = el("span", { className: "msg", textContent: job.message || "" });
    const cancel = el("button", { type: "button", textContent: "Cancel" });
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try { state.jobs.set(job.id, await api(`/api/jobs/${job.id}/cancel`, { method: "POST" })); renderHistory(); }
      catch (e) { msg.textContent = e.message; }
    });
    card.append(el("div", { className: "progress-row" }, bar, msg, cancel));
    if (job.params.kind === "sweep") card.append(sweepRows(job));
  } else if (job.status === "failed") {
    card.append(el("p", { className: "error", textContent: "Error: " + (job.error || "failed") }));
  } else if (job.status === "done") {
    const o = outcome(job);
    if (o) card.append(o);
    for (const t of job.takes) card.append(takeElement(job, t));
  }
  if (job.status !== "queued" && job.status !== "running") {
    const row = el("div", { className: "take-actions" });
    if (job.status !== "done" && (job.params.kind === "generate" || job.params.kind === "extend")) {
      const again = el("button", { type: "button", textContent: "Edit and retry…" });
      again.addEventListener("click", () => prefill(job, null));
      row.append(again);
    }
    const remove = el("button", { type: "button", className: "remove", textContent: "Remove",
      title: "forget this job and delete its files from the studio folder" });
    remove.addEventListener("click", async () => {
      const what = job.params.kind === "style" ? " (the learned style stays)" : "";
      if (!confirm(`Remove ${jobTitle(job.params)} job ${job.id} and its files${what}?`)) return;
      try {
        await api(`/api/jobs/${job.id}`, { method: "DELETE" });
        state.jobs.delete(job.id);
        renderHistory();
      } catch (e) { $("#form-error").textContent = e.message; }
    });
    row.append(remove);
    card.append(row);
  }
  return card;
}

function renderHistory() {
  const list = $("#history");
  const jobs = [...state.jobs.values()].sort((a, b) => b.created - a.created);
  $("#empty").hidden = jobs.length > 0;
  const wanted = [];
  for (const job of jobs) {
    const key = job.status;
    let entry = state.cards.get(job.id);
    if (!entry || entry.key !== key) {
      entry = { key, card: jobCard(job) };
      const old = state.cards.get(job.id);
      if (old) old.card.replaceWith(entry.card);
      state.cards.set(job.id, entry);
    } else if (key === "running" || key === "queued") {
      $("progress", entry.card).value = job.progress || 0;
      $(".msg", entry.card).textContent = job.message || "";
      const rows = $(".sweep-rows", entry.card);
      if (rows) rows.replaceWith(sweepRows(job));
    } else if (key === "done") {  // pictures come after the sound: fill them in place (players keep playing)
      for (const t of job.takes) {
        const node = entry.card.querySelector(`.take[data-key="${CSS.escape(job.id + "/" + t.stem)}"]`);
        if (node) showPicture(node, t);
      }
    }
    wanted.push(entry.card);
  }
  // keep the order newest first without rebuilding cards (players keep playing)
  wanted.forEach((card, i) => { if (list.children[i] !== card) list.insertBefore(card, list.children[i] || null); });
  while (list.children.length > wanted.length) list.lastElementChild.remove();  // removed jobs, pushed last
  for (const id of [...state.cards.keys()]) if (!state.jobs.has(id)) state.cards.delete(id);
}

let polling = null;
async function poll() {
  if (polling) return;
  polling = true;
  try {
    for (;;) {
      const { jobs } = await api("/api/takes");
      await stylesLearned(jobs);  // before the card that says so, whose "Use it" picks the style
      state.jobs = new Map(jobs.map(j => [j.id, j]));
      renderHistory();
      if (!jobs.some(j => j.status === "queued" || j.status === "running" || j.pictures === "pending")) break;
      await new Promise(r => setTimeout(r, 400));
    }
  } catch (e) {
    $("#form-error").textContent = "lost the studio: " + e.message;
  } finally {
    polling = false;
  }
}

// -- learned styles appear in the preset list as soon as their job is done ---------------

async function reloadPresets() {
  const presets = await api("/api/presets");
  state.presets = presets.presets;
  renderPresets();
  renderStyleBases();
}

async function stylesLearned(jobs) {
  const fresh = jobs.filter(j => j.params.kind === "style" && j.status === "done" && !state.stylesSeen.has(j.id));
  fresh.forEach(j => state.stylesSeen.add(j.id));
  if (fresh.length && state.presetsLoaded) await reloadPresets();
}

function selectPreset(name) {
  $("#preset-search").value = "";
  renderPresets();
  $("#preset").value = name;
  showPreset();
  renderOptions();
  $("#form").scrollIntoView({ behavior: "smooth" });
}

function renderStyleBases() {
  const sel = $("#style-base");
  const keep = sel.value;
  sel.replaceChildren(el("option", { value: "", textContent: "closest built-in" }));
  for (const p of state.presets) if (!p.error && p.origin === "built-in") sel.append(el("option", { value: p.name, textContent: p.name }));
  sel.value = [...sel.options].some(o => o.value === keep) ? keep : "";
}

// -- learn a style: files dropped here are uploaded (checked like any sketch), then learned from

function renderStyleFiles() {
  const list = $("#style-list");
  list.replaceChildren();
  for (const f of state.styleFiles) {
    const li = el("li", { className: f.error ? "error" : "" },
      el("span", { textContent: f.error || `${f.name} · ${f.notes} notes · ${f.duration_s.toFixed(1)} s`, title: f.name }));
    const x = el("button", { type: "button", textContent: "×", title: "leave this file out" });
    x.addEventListener("click", () => { state.styleFiles.splice(state.styleFiles.indexOf(f), 1); renderStyleFiles(); });
    li.append(x);
    list.append(li);
  }
  const ok = state.styleFiles.filter(f => !f.error).length;
  $("#style-go").textContent = ok ? `Learn from ${ok} file${ok === 1 ? "" : "s"}` : "Learn";
}

async function addStyleFiles(files) {
  for (const file of files) {
    try {
      const s = await api(`/api/upload?name=${encodeURIComponent(file.name)}`, { method: "POST", body: file,
        headers: { "Content-Type": "audio/midi" } });
      if (!state.styleFiles.some(f => f.id === s.id)) state.styleFiles.push(s);
    } catch (e) {
      state.styleFiles.push({ name: file.name, error: e.message });
    }
    renderStyleFiles();
  }
  loadSketches();  // they are sketches too
}

async function submitStyle(e) {
  e.preventDefault();
  $("#style-error").textContent = "";
  const num = (id, parse) => { const v = $(id).value.trim(); return v === "" ? null : parse(v); };
  const body = { kind: "style", name: $("#style-name").value.trim(),
    sketches: state.styleFiles.filter(f => !f.error).map(f => f.id),
    steps: num("#style-steps", v => parseInt(v, 10)), minutes: num("#style-minutes", parseFloat),
    from_preset: $("#style-base").value || null };
  $("#style-go").disabled = true;
  try {
    const job = await api("/api/jobs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    state.jobs.set(job.id, job);
    state.styleFiles = [];
    renderStyleFiles();
    renderHistory();
    poll();
  } catch (err) {
    $("#style-error").textContent = err.message;
  } finally {
    $("#style-go").disabled = false;
  }
}

function setupStyle() {
  const drop = $("#style-drop");
  for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, e => { e.preventDefault(); drop.classList.add("over"); });
  for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, () => drop.classList.remove("over"));
  drop.addEventListener("drop", e => { e.preventDefault(); addStyleFiles([...e.dataTransfer.files]); });
  $("#style-files").addEventListener("change", e => { addStyleFiles([...e.target.files]); e.target.value = ""; });
  $("#style-form").addEventListener("submit", submitStyle);
}

// -- a sweep: one or two parameters, a list of values each; the batch runner runs every combination

const AXIS_HINTS = { seed: "1, 2, 3 or 1..8", temperature: "0.8, 1.0, 1.2", tempo: "80, 100, 120", key: "C, F, A", lufs: "-18, -14, -9" };

function axisValues(name, text) {
  const t = text.trim();
  if (!name || t === "") return [];
  const range = t.match(/^(-?\d+)\s*\.\.\s*(-?\d+)$/);
  if (name === "seed" && range) {
    const [a, b] = [parseInt(range[1], 10), parseInt(range[2], 10)];
    const out = [];
    for (let i = Math.min(a, b); i <= Math.max(a, b) && out.length <= 1000; i++) out.push(i);
    return out;
  }
  const parts = t.split(/[\s,;]+/).filter(Boolean);
  if (name === "key") return parts;
  return parts.map(v => (name === "seed" ? (/^-?\d+$/.test(v) ? parseInt(v, 10) : v) : (isFinite(Number(v)) ? Number(v) : v)));
}

function sweepGrid() {
  const grid = {};
  for (const n of ["1", "2"]) {
    const name = $(`#axis${n}`).value;
    const values = axisValues(name, $(`#axis${n}-values`).value);
    if (name && values.length) grid[name] = [...(grid[name] || []), ...values];
  }
  return grid;
}

function sweepCount() {
  const grid = sweepGrid();
  const axes = Object.keys(grid);
  const n = axes.length ? Object.values(grid).reduce((k, v) => k * v.length, 1) : 0;
  const cap = state.limits.sweep_jobs || 64;
  const v = $("#length").value, unit = $("#length-unit").value;
  const len = v ? `${v} ${Number(v) === 1 ? unit.replace(/s$/, "") : unit}` : "default length";
  const p = $("#preset").value || "default preset";
  $("#sweep-count").textContent = n === 0 ? "Choose a parameter and its values."
    : `${n} job${n === 1 ? "" : "s"}: ${p} · ${engineName() || "preset's engine"} · ${len}` + (n > cap ? ` (at most ${cap})` : "");
  $("#sweep-count").className = n > cap ? "hint error" : "hint";
  $("#sweep-go").disabled = n === 0 || n > cap;
  $("#sweep-go").textContent = n ? `Run ${n} job${n === 1 ? "" : "s"}` : "Run sweep";
  return n;
}

async function submitSweep(e) {
  e.preventDefault();
  $("#sweep-error").textContent = "";
  const f = formParams();
  const body = { kind: "sweep", preset: f.preset, engine: f.engine, bars: f.bars, seconds: f.seconds, grid: sweepGrid() };
  $("#sweep-go").disabled = true;
  try {
    const job = await api("/api/jobs", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    state.jobs.set(job.id, job);
    renderHistory();
    poll();
  } catch (err) {
    $("#sweep-error").textContent = err.message;
  } finally {
    sweepCount();
  }
}

function setupSweep(axes) {
  state.sweepAxes = axes;
  for (const [n, first] of [["1", "seed"], ["2", ""]]) {
    const sel = $(`#axis${n}`);
    sel.replaceChildren(...(n === "2" ? [el("option", { value: "", textContent: "(none)" })] : []),
      ...axes.map(a => el("option", { value: a, textContent: a })));
    sel.value = first;
    const hint = () => { $(`#axis${n}-values`).placeholder = sel.value ? AXIS_HINTS[sel.value] || "values" : "—"; $(`#axis${n}-values`).disabled = !sel.value; sweepCount(); };
    sel.addEventListener("change", hint);
    $(`#axis${n}-values`).addEventListener("input", sweepCount);
    hint();
  }
  for (const id of ["#preset", "#engine", "#length", "#length-unit"]) $(id).addEventListener("change", sweepCount);
  $("#length").addEventListener("input", sweepCount);
  $("#preset-search").addEventListener("input", sweepCount);
  $("#sweep-form").addEventListener("submit", submitSweep);
}

// -- A/B ---------------------------------------------------------------------------------

function pickAB(slot, ref) {
  state.ab[slot] = ref;
  const { a, b } = state.ab;
  document.querySelectorAll(".pick-a, .pick-b").forEach(btn => {
    const key = btn.closest(".take").dataset.key;
    const cur = state.ab[btn.classList.contains("pick-a") ? "a" : "b"];
    btn.classList.toggle("on", !!cur && key === `${cur.job.id}/${cur.take.stem}`);
  });
  $("#ab").hidden = !(a && b);
  if (!(a && b)) return;
  const A = $("#ab-a"), B = $("#ab-b");
  A.pause(); B.pause();
  A.src = fileUrl(a.take.wav); B.src = fileUrl(b.take.wav);
  $("#ab-names").textContent = `A: ${a.take.stem} · B: ${b.take.stem}`;
  setHear("a");
}

function setHear(which) {
  state.ab.hear = which;
  $("#ab-a").muted = which !== "a";
  $("#ab-b").muted = which !== "b";
  $("#ab-toggle").textContent = `Hearing ${which.toUpperCase()}`;
}

function setupAB() {
  const A = $("#ab-a"), B = $("#ab-b");
  $("#ab-play").addEventListener("click", () => {
    if (A.paused) { B.currentTime = A.currentTime; A.play(); B.play(); $("#ab-play").textContent = "Pause"; }
    else { A.pause(); B.pause(); $("#ab-play").textContent = "Play"; }
  });
  $("#ab-toggle").addEventListener("click", () => {
    B.currentTime = A.currentTime;  // the same moment of the other take
    setHear(state.ab.hear === "a" ? "b" : "a");
  });
  A.addEventListener("ended", () => { B.pause(); $("#ab-play").textContent = "Play"; });
}

// -- start -------------------------------------------------------------------------------

async function start() {
  setupDrop();
  setupRecording();
  setupAB();
  $("#form").addEventListener("submit", submit);
  $("#preset-search").addEventListener("input", renderPresets);
  $("#preset").addEventListener("change", () => { showPreset(); renderOptions(); });
  $("#engine").addEventListener("change", renderOptions);
  $("#length-unit").addEventListener("change", () => { $("#length").step = $("#length-unit").value === "bars" ? "1" : "0.5"; });
  try {
    const [info, presets, engines] = await Promise.all([api("/api/info"), api("/api/presets"), api("/api/engines")]);
    $("#where").textContent = `v${info.version} · folder ${info.folder}`;
    state.limits = info.limits;
    state.presets = presets.presets;
    state.engines = engines.engines;
    state.kinds = engines.kinds;
    renderPresets();
    if ([...$("#preset").options].some(o => o.value === presets.default)) $("#preset").value = presets.default;
    showPreset();
    renderEngines();
    kindChanged();
    renderStyleBases();
    setupStyle();
    setupSweep(info.sweep_axes || []);
    await loadSketches();
    state.presetsLoaded = true;
    await poll();
    document.body.dataset.ready = "1";
  } catch (e) {
    $("#form-error").textContent = "could not load the studio: " + e.message;
  }
}

start();
