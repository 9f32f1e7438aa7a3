// cnfviz live status: a run's status row (or a Compare page's progress rows) as text in the page itself, which
// follows its own Server-Sent Events stream (cnfviz.ui.stream, ?parts=status) between script runs. No iframe:
// a Streamlit v2 component mounted in the app's DOM, so screen readers read it and the page's own type sizes
// (presentation mode) apply; it depends on no chart's frame.
//
// data: {key, rev, payload, url|null, present}. payload: {rows: [{label, color, text, value, kind}], figures,
// notes} or a run's status (text, value, figures, notes). A new script run's payload replaces what the stream
// drew (the server's view wins); the stream goes on where it left off when its URL is the same.
const BAR_FILL = "#ff4b4b";

function el(doc, tag, cls, text) {
  const node = doc.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function draw(root, payload, present) {
  const doc = root.ownerDocument;
  const rows = payload.rows || [payload];
  const out = [];
  for (const row of rows) {
    const line = el(doc, "div", "cnfviz-status-row");
    if (row.label) {
      const who = el(doc, "div", "cnfviz-status-label");
      const swatch = el(doc, "span", "cnfviz-status-swatch", "■");
      swatch.style.color = row.color || "inherit";
      swatch.setAttribute("aria-hidden", "true");
      who.append(swatch, el(doc, "strong", "", " " + row.label));
      line.appendChild(who);
    }
    if (row.kind === "error") {
      const box = el(doc, "div", "cnfviz-status-error", row.text);
      box.setAttribute("role", "alert");
      line.appendChild(box);
    } else {
      // data-testid="stProgress": tests and benchmarks read a run's status line there, as in Streamlit's bar.
      const bar = el(doc, "div", "cnfviz-status-bar");
      bar.dataset.testid = "stProgress";
      const text = el(doc, "p", "cnfviz-status-text", row.text);
      const track = el(doc, "div", "cnfviz-status-track");
      const pct = Math.round(Math.max(0, Math.min(1, row.value || 0)) * 100);
      track.setAttribute("role", "progressbar");
      track.setAttribute("aria-valuemin", "0");
      track.setAttribute("aria-valuemax", "100");
      track.setAttribute("aria-valuenow", String(pct));
      track.setAttribute("aria-label", row.label ? row.label + ": progress" : "progress");
      const fill = el(doc, "div", "cnfviz-status-fill");
      fill.style.width = pct + "%";
      fill.style.background = row.color || BAR_FILL;
      track.appendChild(fill);
      bar.append(text, track);
      line.appendChild(bar);
    }
    out.push(line);
  }
  if (payload.figures && payload.figures.length) {
    // "**Loss** 2.31 · **NFE** ...": words and bold parts, as text nodes (never HTML).
    const figures = el(doc, "p", "cnfviz-status-figures");
    for (const part of payload.figures) figures.appendChild(part[1] ? el(doc, "strong", "", part[0]) : doc.createTextNode(part[0]));
    figures.title = "NFE: evaluations of the dynamics f(t, z) by the ODE solver, summed over the forward solves; " +
      "with the adjoint method the backward pass solves an ODE too, and its evaluations are shown after the +.";
    out.push(figures);
  }
  if (!payload.rows) {
    // A run's notes (the solver guard's "now finer", a time budget) arrive mid-run over the stream: they get a
    // slot of two lines from the start, the newest note in it and every note in its tooltip, so that a note
    // never pushes the charts below down while someone is zoomed into one.
    const notes = payload.notes || [];
    const slot = el(doc, "p", "cnfviz-status-note", notes.length ? notes[notes.length - 1] : "");
    if (notes.length) slot.title = notes.join("\n");
    out.push(slot);
  }
  root.classList.toggle("cnfviz-present", Boolean(present));
  root.replaceChildren(...out);
}

export default function (component) {
  const { data, parentElement } = component;
  let root = parentElement.querySelector(":scope > .cnfviz-status");
  if (!root) {
    root = parentElement.ownerDocument.createElement("div");
    root.className = "cnfviz-status";
    root.setAttribute("aria-live", "polite");
    parentElement.appendChild(root);
  }
  const state = root.__cnfviz || (root.__cnfviz = { source: null, url: null, events: 0, draws: 0, rev: null, errors: 0 });
  window.cnfvizStatus = window.cnfvizStatus || {};
  window.cnfvizStatus[data.key] = state; // for browser tests and debugging
  if (data.rev !== state.rev) {
    state.rev = data.rev;
    state.payload = data.payload;
    draw(root, data.payload, data.present);
  }
  const url = data.url ? data.url + (data.url.includes("?") ? "&" : "?") + "parts=status" : null;
  if (url !== state.url) {
    if (state.source) state.source.close();
    state.source = null;
    state.url = url;
    if (url) {
      const source = new EventSource(url);
      state.source = source;
      source.addEventListener("status", function (e) {
        state.events += 1;
        state.draws += 1;
        state.payload = JSON.parse(e.data);
        draw(root, state.payload, data.present);
      });
      // The run changed state or was discarded: the page's next script run draws the row anew (the loss
      // chart asks for it). Closed, and forgotten so that the same URL may open again.
      const closed = function () { source.close(); if (state.source === source) { state.source = null; state.url = null; } };
      source.addEventListener("rerun", closed);
      source.addEventListener("end", closed);
      source.onerror = function () { state.errors += 1; if (source.readyState === EventSource.CLOSED) closed(); };
    }
  }
  return function () { if (state.source) state.source.close(); state.source = null; state.url = null; };
}
