// cnfviz live chart: one Plotly div updated in place with Plotly.react (the layout's uirevision keeps the
// user's zoom), optionally with particles flowing along precomputed paths. Speaks Streamlit's component
// protocol (apiVersion 1) by postMessage; no build step.
"use strict";
(function () {
  const div = document.getElementById("chart");
  const playButton = document.getElementById("play");
  const state = { rev: null, height: 0, reacts: 0, renders: 0, anim: null, pending: null, playing: true,
                  start: performance.now(), frames: 0, lastDraw: 0, fieldIndex: -1 };
  window.liveChart = state; // for browser tests and debugging
  state.div = div;

  function send(type, extra) {
    window.parent.postMessage(Object.assign({ isStreamlitMessage: true, type: type }, extra || {}), "*");
  }

  function floats(b64) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  }

  function decodeAnim(a) {
    if (!a) return null;
    const out = Object.assign({}, a);
    out.xy = floats(a.xy); // (T, n, 2), row-major
    if (a.field) out.field = Object.assign({}, a.field, { x: a.field.x.map(floats), y: a.field.y.map(floats) });
    return out;
  }

  // Axis ranges the user zoomed or panned to. uirevision keeps them only while the new figure gives an axis
  // the same range as before; a figure whose ranges follow its data (the flow) would lose them, so they are
  // put back into every new layout until the user resets the axes (double click).
  const userRanges = {};
  function rememberZoom(event) {
    if (!event) return;
    for (const key of Object.keys(event)) {
      const m = /^([xy]axis\d*)\.(range|autorange)(?:\[(\d)\])?$/.exec(key);
      if (!m) continue;
      const axis = m[1];
      if (m[2] === "autorange") { delete userRanges[axis]; continue; }
      const current = (div._fullLayout[axis] && div._fullLayout[axis].range) || [null, null];
      const range = userRanges[axis] || current.slice();
      if (m[3] === undefined) { range[0] = event[key][0]; range[1] = event[key][1]; } else { range[Number(m[3])] = event[key]; }
      userRanges[axis] = range;
    }
  }

  function draw(fig, anim) {
    const layout = fig.layout || {};
    if (layout.uirevision === undefined) layout.uirevision = "keep";
    for (const axis of Object.keys(userRanges)) {
      layout[axis] = Object.assign({}, layout[axis] || {}, { range: userRanges[axis].slice(), autorange: false });
    }
    layout.height = state.height;
    layout.autosize = true;
    const config = Object.assign({ displaylogo: false, responsive: true }, fig.config || {});
    state.anim = anim;
    state.fieldIndex = -1;
    playButton.style.display = anim ? "block" : "none";
    return Plotly.react(div, fig.data || [], layout, config).then(function () {
      if (!state.listening) { div.on("plotly_relayout", rememberZoom); state.listening = true; }
      state.reacts += 1;
      document.body.dataset.reacts = String(state.reacts);
    });
  }

  function render(args) {
    state.renders += 1;
    if (args.height !== state.height) {
      state.height = args.height;
      div.style.height = args.height + "px";
      send("streamlit:setFrameHeight", { height: args.height });
      if (div.layout) Plotly.relayout(div, { height: args.height });
    }
    if (args.rev === state.rev) return; // the same figure again: nothing to do, nothing remounts
    state.rev = args.rev;
    const spec = JSON.parse(args.spec);
    const anim = decodeAnim(spec.anim);
    if (state.anim && anim && state.playing && div.data) {
      // A new model mid-loop: switch when the particles are back at t0, where every model starts from the
      // same base points, so nothing jumps.
      state.pending = { figure: spec.figure, anim: anim };
      return;
    }
    state.pending = null;
    draw(spec.figure, anim);
  }

  // The loop: t0 → t1 over `seconds`, a short rest at t1, then again from t0.
  function phase(now, anim) {
    const total = anim.seconds + anim.rest;
    const s = ((now - state.start) / 1000) % total;
    return { p: Math.min(1, s / anim.seconds), loop: Math.floor((now - state.start) / 1000 / total) };
  }

  let lastLoop = 0;
  function tick(now) {
    window.requestAnimationFrame(tick);
    const anim = state.anim;
    if (!anim || !state.playing || !div.data || now - state.lastDraw < 1000 / anim.fps) return;
    state.lastDraw = now;
    const ph = phase(now, anim);
    if (ph.loop !== lastLoop) {
      lastLoop = ph.loop;
      if (state.pending) {
        const next = state.pending;
        state.pending = null;
        draw(next.figure, next.anim);
        return;
      }
    }
    const T = anim.T, n = anim.n, pos = ph.p * (T - 1);
    const k = Math.min(T - 2, Math.floor(pos)), f = pos - k;
    const xs = new Array(n), ys = new Array(n), a = anim.xy;
    for (let i = 0; i < n; i++) {
      const i0 = (k * n + i) * 2, i1 = ((k + 1) * n + i) * 2;
      xs[i] = a[i0] + f * (a[i1] - a[i0]);
      ys[i] = a[i0 + 1] + f * (a[i1 + 1] - a[i0 + 1]);
    }
    const update = { x: [xs], y: [ys] };
    const traces = [anim.trace];
    const t = anim.t0 + ph.p * (anim.t1 - anim.t0);
    if (anim.field) {
      const fld = anim.field;
      let best = 0;
      for (let j = 1; j < fld.times.length; j++) if (Math.abs(fld.times[j] - t) < Math.abs(fld.times[best] - t)) best = j;
      if (best !== state.fieldIndex) {
        state.fieldIndex = best;
        update.x.push(Array.from(fld.x[best]));
        update.y.push(Array.from(fld.y[best]));
        traces.push(fld.trace);
      }
    }
    const relayout = anim.label === undefined ? {} : { ["annotations[" + anim.label + "].text"]: "t = " + t.toFixed(2) };
    Plotly.update(div, update, relayout, traces);
    state.frames += 1;
    state.t = t;
  }
  window.requestAnimationFrame(tick);

  playButton.addEventListener("click", function () {
    state.playing = !state.playing;
    playButton.textContent = state.playing ? "❚❚" : "▶";
    if (!state.playing && state.pending) { const next = state.pending; state.pending = null; draw(next.figure, next.anim); }
  });

  window.addEventListener("message", function (event) {
    const msg = event.data;
    if (msg && msg.type === "streamlit:render") render(msg.args);
  });
  send("streamlit:componentReady", { apiVersion: 1 });
})();
