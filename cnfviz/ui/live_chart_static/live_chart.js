// cnfviz live chart: one Plotly div updated in place with Plotly.react (the layout's uirevision keeps the
// user's zoom), optionally with particles flowing along precomputed paths. Speaks Streamlit's component
// protocol (apiVersion 1) by postMessage; no build step.
//
// Live channel (cnfviz.ui.stream): with a `stream` argument the chart follows its run between script runs.
// The "loss" chart opens the page's stream of loss points and pictures (the status row follows a stream of its
// own: cnfviz.ui.status), extends its curves in place, and hands new pictures to the "density" and "flow"
// charts of the same page over a BroadcastChannel named after the stream's token (a Compare page: each run's
// density to the chart of its `index`). When a run changes state it sets the component's value once, which
// reruns the page.
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

  // Layout of the page around the frame (same origin as Streamlit's page; a foreign host keeps the defaults).
  const NARROW_PX = 640, NARROW_CHART_PX = 720, FILL_GAP_PX = 36;
  function screenWidth() {
    try { return window.parent.innerWidth; } catch (e) { return window.innerWidth; }
  }
  // Presentation mode (layout.meta.fill, from cnfviz.ui.layout.back_row): the chart grows to the bottom of the
  // screen, never below its given height.
  function fitHeight(layout) {
    let height = state.height;
    if (layout.meta && layout.meta.fill) {
      try {
        const top = window.frameElement.getBoundingClientRect().top + window.parent.scrollY;
        height = Math.max(height, Math.floor(window.parent.innerHeight - top - FILL_GAP_PX));
      } catch (e) { /* keep the given height */ }
    }
    if (height !== state.drawnHeight) {
      state.drawnHeight = height;
      div.style.height = height + "px";
      send("streamlit:setFrameHeight", { height: height });
    }
    return height;
  }

  function draw(fig, anim) {
    const layout = fig.layout || {};
    if (layout.uirevision === undefined) layout.uirevision = "keep";
    for (const axis of Object.keys(userRanges)) {
      layout[axis] = Object.assign({}, layout[axis] || {}, { range: userRanges[axis].slice(), autorange: false });
    }
    layout.height = fitHeight(layout);
    layout.autosize = true;
    const config = Object.assign({ displaylogo: false, responsive: true }, fig.config || {});
    // Plotly's toolbar, over the title of a chart too narrow for both side by side, stands at the right edge
    // instead; a phone gets none (a tap would show it; drag to zoom and double-click to reset still work).
    if (window.innerWidth < NARROW_CHART_PX) layout.modebar = Object.assign({}, layout.modebar, { orientation: "v" });
    if (screenWidth() < NARROW_PX) config.displayModeBar = false;
    state.anim = anim;
    state.fieldIndex = -1;
    playButton.style.display = anim ? "block" : "none";
    return Plotly.react(div, fig.data || [], layout, config).then(function () {
      if (!state.listening) { div.on("plotly_relayout", rememberZoom); state.listening = true; }
      state.reacts += 1;
      document.body.dataset.reacts = String(state.reacts);
    });
  }

  // Plotly's typed-array JSON ({dtype, bdata}) as a plain array, so that extendTraces can grow it.
  const DTYPES = { f8: Float64Array, f4: Float32Array, i4: Int32Array, u4: Uint32Array, i2: Int16Array,
                   u2: Uint16Array, i1: Int8Array, u1: Uint8Array };
  function plainArray(v) {
    if (!v || typeof v !== "object" || !v.bdata || !DTYPES[v.dtype]) return v;
    const bin = atob(v.bdata);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return Array.from(new DTYPES[v.dtype](bytes.buffer));
  }

  // ------------------------------------------------------------------ the live channel
  const live = { source: null, key: null, channel: null, bus: null, events: 0, points: 0, pictures: 0, updates: 0,
                 lastVisuals: null, byIndex: {}, asked: false, errors: 0 };
  state.live = live;

  function busFor(channel) {
    if (live.channel === channel && live.bus) return live.bus;
    if (live.bus) live.bus.close();
    live.channel = channel;
    live.bus = typeof BroadcastChannel === "function" ? new BroadcastChannel("cnfviz-" + channel) : null;
    if (live.bus) live.bus.onmessage = function (e) { onBus(e.data); };
    return live.bus;
  }

  function onBus(msg) {
    if (!msg) return;
    if (msg.kind === "hello" && state.role === "loss") {
      if (live.lastVisuals) live.bus.postMessage(live.lastVisuals);
      for (const i of Object.keys(live.byIndex)) live.bus.postMessage(live.byIndex[i]);
    }
    if (msg.kind === "visuals" && (state.role === "density" || state.role === "flow")) applyPicture(msg);
  }

  function applyPicture(msg) {
    // A Compare page's pictures name their run; each density chart takes its own run's.
    if ((msg.index ?? null) !== (state.index ?? null)) return;
    const spec = msg[state.role];
    if (!spec || msg.version === state.version) return;
    state.version = msg.version;
    live.pictures += 1;
    const anim = decodeAnim(spec.anim);
    if (state.anim && anim && state.playing && div.data && !msg.immediate) {
      state.pending = { figure: spec.figure, anim: anim };
      return;
    }
    // Paused, stopped or done: the new model goes in at once, so the flow agrees with the density.
    state.pending = null;
    draw(spec.figure, anim);
  }

  function applyLoss(data) {
    const grow = { x: [], y: [] }, growIdx = [];
    data.curves.forEach(function (c, i) {
      if (!c || i >= (div.data || []).length) return;
      if (c[0] === "+") { grow.x.push(c[1]); grow.y.push(c[2]); growIdx.push(i); live.points += c[1].length; }
      else Plotly.restyle(div, { x: [c[1]], y: [c[2]] }, [i]);
    });
    if (growIdx.length) {
      // A figure drawn without a stream (a stopped run's page, before Continue) still holds its arrays in
      // Plotly's packed form ({dtype, bdata}), which extendTraces cannot grow: unpack them first.
      growIdx.forEach(function (i) {
        const t = div.data[i];
        t.x = ArrayBuffer.isView(t.x) ? Array.from(t.x) : plainArray(t.x);
        t.y = ArrayBuffer.isView(t.y) ? Array.from(t.y) : plainArray(t.y);
      });
      Plotly.extendTraces(div, grow, growIdx);
      // An empty chart says "no iterations yet" until its first points: they are here now.
      const notes = (div.layout && div.layout.annotations) || [];
      if (notes.some(function (a) { return /no iterations/.test(a.text || ""); })) {
        Plotly.relayout(div, { annotations: notes.filter(function (a) { return !/no iterations/.test(a.text || ""); }) });
      }
    }
    live.iteration = data.iteration ?? data.iterations;
    live.updates += 1;  // an in-place update of the drawn figure (extendTraces/restyle, no Plotly.react)
    document.body.dataset.points = String(live.points);
  }

  // How long a chart that asked for a rerun waits for new arguments before it follows its stream again: a
  // script run that draws the very arguments it drew before sends the frame nothing.
  const REFOLLOW_MS = 4000;

  function askRerun(reason) {
    if (live.asked) return;
    live.asked = true;
    send("streamlit:setComponentValue", { value: Date.now() + ":" + reason, dataType: "json" });
    const asked = state.renders;
    setTimeout(function () {
      if (live.source || state.renders !== asked || !state.lastStream) return;
      live.refollows = (live.refollows || 0) + 1;
      follow(state.lastStream);
    }, REFOLLOW_MS);
  }

  function follow(stream) {
    state.role = stream.role;
    state.index = stream.index;
    const bus = busFor(stream.channel);
    if (stream.role !== "loss") {
      if (bus) bus.postMessage({ kind: "hello" });
      return;
    }
    const v = Array.isArray(stream.v) ? stream.v.join(",") : stream.v;
    const url = stream.url + "?n=" + (stream.n || []).join(",") + "&v=" + v + "&parts=loss,visuals";
    if (live.source && live.key === url) return;
    if (live.source) live.source.close();
    live.key = url;
    live.asked = false;
    const source = new EventSource(url);
    live.source = source;
    source.addEventListener("loss", function (e) { live.events += 1; applyLoss(JSON.parse(e.data)); });
    source.addEventListener("lossfigure", function (e) {
      live.events += 1;
      const spec = JSON.parse(e.data);
      for (const trace of spec.figure.data || []) { trace.x = plainArray(trace.x); trace.y = plainArray(trace.y); }
      draw(spec.figure, null);
    });
    source.addEventListener("visuals", function (e) {
      live.events += 1;
      const msg = Object.assign({ kind: "visuals" }, JSON.parse(e.data));
      if (msg.index === undefined) live.lastVisuals = msg; else live.byIndex[msg.index] = msg;
      if (bus) bus.postMessage(msg);
    });
    // A stream that ended is forgotten, so that the next script run's arguments open a new one even when they
    // name the same URL (a run that left the queue before any point was drawn).
    function closed() { source.close(); if (live.source === source) { live.source = null; live.key = null; } }
    source.addEventListener("rerun", function (e) {
      closed();
      askRerun(JSON.parse(e.data).reason);
    });
    source.addEventListener("end", closed);
    source.onerror = function () {
      live.errors += 1;
      // 404: the run is gone (discarded, or the server restarted); the page's next script run knows why.
      if (source.readyState === EventSource.CLOSED) { closed(); askRerun("lost"); }
    };
  }

  function render(args) {
    state.renders += 1;
    state.lastStream = args.stream && args.stream.role === "loss" ? args.stream : null;
    if (args.height !== state.height) {
      state.height = args.height;
      div.style.height = args.height + "px";
      send("streamlit:setFrameHeight", { height: args.height });
      state.drawnHeight = args.height;
      if (div.layout) Plotly.relayout(div, { height: args.height });
    }
    if (args.rev === state.rev) { if (args.stream) follow(args.stream); return; } // nothing remounts
    state.rev = args.rev;
    if (live.source && args.stream && args.stream.role === "loss") {
      // A new figure from a script run: the old stream's points are in it already.
      live.source.close(); live.source = null; live.key = null;
    }
    const spec = JSON.parse(args.spec);
    const anim = decodeAnim(spec.anim);
    if (args.stream && args.stream.role === "loss") {
      for (const trace of spec.figure.data || []) { trace.x = plainArray(trace.x); trace.y = plainArray(trace.y); }
    }
    // Paused, stopped or done: the new model goes in at once, so the flow agrees with the density.
    const immediate = Boolean(args.immediate);
    if (state.anim && anim && state.playing && div.data && !immediate) {
      // A new model mid-loop: switch when the particles are back at t0, where every model starts from the
      // same base points, so nothing jumps.
      state.pending = { figure: spec.figure, anim: anim };
      return;
    }
    state.pending = null;
    const drawn = draw(spec.figure, anim);
    if (args.stream) {
      if (args.stream.role === "loss") drawn.then(function () { follow(args.stream); });
      else follow(args.stream);
    }
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
