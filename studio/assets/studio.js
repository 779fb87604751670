// amt studio: the Write and Pipeline pages. Plain browser JavaScript, no
// dependencies; everything comes from the studio's JSON API.
"use strict";

const studio = (() => {
  // A token given as ?token=… is kept for this tab and sent with every request.
  const params = new URLSearchParams(location.search);
  if (params.get("token")) sessionStorage.setItem("amt-token", params.get("token"));
  const token = sessionStorage.getItem("amt-token");

  /** A URL of this studio's API the browser fetches itself (audio, download,
   *  images): the token rides along. Only ever given paths starting /api/. */
  function link(path) {
    return token ? `${path}?token=${encodeURIComponent(token)}` : path;
  }

  /** Calls the API; throws an Error with the server's message on 4xx/5xx. */
  async function api(path, options = {}) {
    const headers = Object.assign({}, options.headers || {});
    if (token) headers["Authorization"] = `Bearer ${token}`;
    const response = await fetch(path, Object.assign({}, options, { headers }));
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const field = body.field ? ` (${body.field})` : "";
      throw new Error(`${body.error || response.statusText}${field}`);
    }
    return body;
  }

  function showError(message) {
    const p = document.getElementById("error");
    p.textContent = message || "";
    p.hidden = !message;
  }

  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  }

  // One colour per General MIDI family, stable across pieces.
  const FAMILIES = ["piano", "chromatic percussion", "organ", "guitar", "bass", "strings", "ensemble",
    "brass", "reed", "pipe", "synth lead", "synth pad", "synth effects", "ethnic", "percussive",
    "sound effects", "drums"];
  function colour(family) {
    const i = Math.max(0, FAMILIES.indexOf(family));
    return `hsl(${(i * 137.5) % 360}, 70%, 60%)`;
  }

  /** Draws the notes on a canvas: time across, pitch up, colour by family. */
  function drawRoll(canvas, legend, piece) {
    const g = canvas.getContext("2d");
    const { width, height } = canvas;
    g.fillStyle = "#111722";
    g.fillRect(0, 0, width, height);
    const notes = piece.notes;
    if (!notes.length) return;
    let lo = Math.min(...notes.map(n => n.pitch)), hi = Math.max(...notes.map(n => n.pitch));
    lo = Math.max(0, lo - 2); hi = Math.min(127, hi + 2);
    const seconds = Math.max(piece.seconds, 1e-3);
    const row = height / (hi - lo + 1);
    const used = new Set();
    for (const n of notes) {
      used.add(n.family);
      g.fillStyle = colour(n.family);
      const x = (n.start / seconds) * width;
      const w = Math.max(2, ((n.end - n.start) / seconds) * width);
      const y = height - (n.pitch - lo + 1) * row;
      g.fillRect(x, y, w, Math.max(2, row - 1));
    }
    legend.replaceChildren(...[...used].sort().map(f => {
      // Set through the CSSOM: the page's CSP allows no inline style attributes.
      const swatch = el("i");
      swatch.style.background = colour(f);
      return el("span", {}, swatch, f);
    }));
    canvas.dataset.notes = String(notes.length);
  }

  function addResult(piece, first) {
    const card = document.getElementById("result").content.firstElementChild.cloneNode(true);
    card.dataset.id = piece.id;
    card.querySelector(".prompt").textContent = piece.text;
    const u = piece.understood;
    card.querySelector(".understood").textContent =
      `understood: ${u.summary} (${u.semantic_distance.toFixed(2)} from its centroid)` +
      (u.unread.length ? `; not read as attributes: ${u.unread.join(", ")}` : "");
    drawRoll(card.querySelector(".roll"), card.querySelector(".legend"), piece);
    const audio = card.querySelector(".audio");
    audio.src = link(piece.audio);
    const midi = card.querySelector(".midi");
    midi.href = link(piece.midi);
    midi.setAttribute("download", `amt-${piece.id}.mid`);
    const o = piece.options;
    card.querySelector(".meta").textContent =
      `${piece.notes.length} notes, ${piece.seconds.toFixed(1)} s · seed ${o.seed}, temperature ${o.temperature}, ` +
      `top-p ${o.top_p}, top-k ${o.top_k}, guidance ${o.guidance}${o.strict ? ", strict" : ""}, ` +
      `${piece.tokens} tokens${piece.ended ? "" : " (cut at the length)"} · ` +
      `${(piece.generation_ms / 1000).toFixed(1)} s to write`;
    const list = document.getElementById("results");
    if (first) list.prepend(card); else list.append(card);
  }

  /** An option's value, or undefined when left blank (the server's default applies). */
  function number(id) {
    const v = document.getElementById(id).valueAsNumber;
    return Number.isNaN(v) ? undefined : v;
  }

  async function write() {
    const form = document.getElementById("write");
    const button = document.getElementById("generate");
    const busy = document.getElementById("busy");
    // Listening before anything else: a submit must never fall through to
    // the browser's own form submission.
    form.addEventListener("submit", async event => {
      event.preventDefault();
      showError("");
      button.disabled = true;
      busy.hidden = false;
      try {
        const piece = await api("/api/generate", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({
            text: document.getElementById("text").value,
            seed: number("seed"), temperature: number("temperature"), top_p: number("top_p"),
            top_k: number("top_k"), max_tokens: number("max_tokens"),
            guidance: number("guidance"), strict: document.getElementById("strict").checked,
          }),
        });
        addResult(piece, true);
      } catch (e) {
        showError(e.message);
      } finally {
        button.disabled = false;
        busy.hidden = true;
      }
    });
    try {
      const kept = await api("/api/results");
      for (const piece of kept.results) addResult(piece, false);
    } catch (e) {
      showError(e.message);
    }
  }

  /** Stages in columns by depth: a stage sits one column after its deepest input. */
  function drawDag(status) {
    const stages = status.stages;
    const depth = {};
    const byName = Object.fromEntries(stages.map(s => [s.stage, s]));
    const level = s => {
      if (depth[s.stage] === undefined) {
        depth[s.stage] = 0;
        depth[s.stage] = 1 + Math.max(-1, ...s.after.filter(a => byName[a]).map(a => level(byName[a])));
      }
      return depth[s.stage];
    };
    const columns = [];
    for (const s of stages) (columns[level(s)] ||= []).push(s);
    const locked = status.locked_by;
    document.getElementById("running").textContent = locked ? `· another amt (${locked}) is working` : "";
    const dag = document.getElementById("dag");
    dag.replaceChildren(...columns.map(col => el("div", { class: "level" }, ...col.map(s => {
      const state = s.state;
      const box = el("div", { class: `stage ${state}`, "data-stage": s.stage, title: s.reasons.join("\n") },
        el("b", {}, s.stage), el("span", { class: "state" }, state + (s.builtin ? ` · ${s.builtin}` : "")));
      if (s.reasons.length) box.append(el("div", { class: "why" }, s.reasons[0]));
      if (s.after.length) box.append(el("div", { class: "after" }, `after ${s.after.join(", ")}`));
      return box;
    }))));
  }

  /** The ledger's runs, newest first, with the params that differ between them and their metrics. */
  function drawRuns(runs) {
    const box = document.getElementById("runs");
    if (!runs.length) { box.textContent = "No runs recorded yet."; return; }
    const text = v => typeof v === "string" ? v : JSON.stringify(v);
    const keys = [...new Set(runs.flatMap(r => Object.keys(r.params)))].sort();
    const varying = keys.filter(k => new Set(runs.map(r => text(r.params[k]))).size > 1);
    const rows = runs.slice().reverse().map(r => {
      const metrics = Object.entries(r.metrics).flatMap(([file, doc]) =>
        Object.entries(doc || {}).filter(([, v]) => typeof v === "number")
          .map(([k, v]) => `${file.split("/").pop().replace(/\.json$/, "")}.${k} ${Number(v.toPrecision(4))}`));
      const params = varying.map(k => `${k} = ${k in r.params ? text(r.params[k]) : "-"}`).join(", ");
      return el("tr", {}, el("td", {}, r.run), el("td", {}, new Date(r.started_at_ms).toLocaleString()),
        el("td", {}, `${(r.duration_ms / 1000).toFixed(1)} s`), el("td", {}, r.status),
        el("td", {}, r.sweep || ""), el("td", {}, params), el("td", {}, metrics.slice(0, 6).join(", ")));
    });
    const head = ["run", "started", "took", "status", "sweep", "params that differ", "metrics"];
    box.replaceChildren(el("table", {}, el("tr", {}, ...head.map(h => el("th", {}, h))), ...rows));
  }

  /** The loss curve as an SVG polyline: training loss, and validation where it ran. */
  function drawLoss(rows) {
    const box = document.getElementById("loss");
    if (!rows.length) { box.textContent = "The model has not been trained yet."; return; }
    const W = 900, H = 260, P = 40;
    const steps = rows.map(r => r.step);
    const values = rows.flatMap(r => r.val_loss == null ? [r.train_loss] : [r.train_loss, r.val_loss]);
    const [x0, x1] = [Math.min(...steps), Math.max(...steps, Math.min(...steps) + 1)];
    const [y0, y1] = [Math.min(...values), Math.max(...values, Math.min(...values) + 1e-6)];
    const x = s => P + ((s - x0) / (x1 - x0)) * (W - 2 * P);
    const y = v => H - P - ((v - y0) / (y1 - y0)) * (H - 2 * P);
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("id", "loss-curve");
    const line = (pts, colour) => {
      const p = document.createElementNS(ns, "polyline");
      p.setAttribute("points", pts.map(([s, v]) => `${x(s).toFixed(1)},${y(v).toFixed(1)}`).join(" "));
      p.setAttribute("fill", "none"); p.setAttribute("stroke", colour); p.setAttribute("stroke-width", "2");
      svg.append(p);
    };
    const text = (tx, ty, s) => { const t = document.createElementNS(ns, "text"); t.setAttribute("x", tx); t.setAttribute("y", ty); t.textContent = s; svg.append(t); };
    line(rows.map(r => [r.step, r.train_loss]), "#3853c7");
    const val = rows.filter(r => r.val_loss != null).map(r => [r.step, r.val_loss]);
    if (val.length) line(val, "#b7791f");
    text(P, H - 10, `step ${x0}`); text(W - P - 60, H - 10, `step ${x1}`);
    text(4, P, y1.toFixed(2)); text(4, H - P, y0.toFixed(2));
    text(W - P - 200, P - 10, "train (blue) · validation (amber), nats/token");
    box.replaceChildren(svg);
  }

  async function pipeline() {
    let shownReport = null;
    const refresh = async () => {
      try {
        const [status, runs, loss, report] = await Promise.all([
          api("/api/status"), api("/api/runs?last=20"), api("/api/loss"), api("/api/report")]);
        drawDag(status);
        drawRuns(runs);
        drawLoss(loss.rows);
        // Replaced only when it changed, so its images are not fetched again.
        if (report.html !== shownReport) {
          shownReport = report.html;
          const box = document.getElementById("report");
          // The server renders the report with raw HTML and foreign links dropped.
          if (report.html) box.innerHTML = report.html;
          else box.textContent = "The pipeline has not been evaluated yet.";
          for (const img of box.querySelectorAll("img")) {
            const src = img.getAttribute("src");
            if (src.startsWith("/api/")) img.src = link(src);
          }
          for (const a of box.querySelectorAll("a")) {
            const href = a.getAttribute("href");
            if (href.startsWith("/api/")) a.href = link(href);
          }
        }
        showError("");
      } catch (e) {
        showError(e.message);
      }
      // The next look starts after this one ends, however long it took.
      setTimeout(refresh, 5000);
    };
    await refresh();
  }

  return { write, pipeline };
})();

// Each page names its part: <body data-page="write">.
studio[document.body.dataset.page]();
