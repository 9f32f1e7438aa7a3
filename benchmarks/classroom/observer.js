// Injected into every page before its scripts run. A MutationObserver (throttled to one check per 50 ms,
// plus a 0.5 s timer for changes it cannot see, e.g. a plot redrawn in place) stamps the first moment
// each thing appears, in the page's own clock: performance.now() is 0 at navigation start. In-app
// navigations (a sidebar link or st.page_link) are stamped at the click.
(() => {
  if (window.__cnf) return;
  const S = {navs: [], click: null, progress: null, loss: null, density: null, queue: {}, lastProgress: null,
             errors: [], connecting: [], everReady: false};
  const errorKeys = new Set();
  window.__cnf = S;
  const pageOf = (path) => { const p = path.replace(/\/+$/, '').split('/').pop(); return p === '' ? 'home' : p; };
  const sel = (s) => () => document.querySelector(s) !== null;
  const title = (prefix) => () => [...document.querySelectorAll('[data-testid="stMainBlockContainer"] h1')]
      .some((h) => h.textContent.startsWith(prefix));
  const PAGES = {
    home: {ready: sel('[data-testid="stMainBlockContainer"] [data-testid="stPageLink-NavLink"]'), plot: null},
    train: {ready: sel('.st-key-train_train_button button'),
            plot: sel('.st-key-train_target_preview .js-plotly-plot .main-svg')},
    learn: {ready: title('Learn'), plot: sel('.st-key-learn_chart_cov .js-plotly-plot .main-svg')},
    compare: {ready: title('Compare'), plot: sel('[data-testid="stMainBlockContainer"] .js-plotly-plot .main-svg')},
  };
  S.navs.push({page: pageOf(location.pathname), how: 'load', t0: 0, ready: null, plot: null, sidebar: null,
               title: null});
  // The first paint of a page: its sidebar (the app's page links) and its title.
  const sidebarShown = () => {
    const bar = document.querySelector('[data-testid="stSidebar"]');
    return !!bar && bar.getBoundingClientRect().width > 0 && !!bar.querySelector('[data-testid="stSidebarNavLink"]');
  };
  const titled = sel('[data-testid="stMainBlockContainer"] h1');
  S.iters = [];  // [t, iteration, server it/s] each time the progress text changes, for the run's rate
  const seen = (kind, text, t, page) => {
    text = (text || '').trim().slice(0, 500);
    const key = kind + '|' + text;
    if (errorKeys.has(key)) return;
    errorKeys.add(key);
    // What the sidebar's number inputs held at that moment: a lost widget value shows as its minimum.
    const inputs = [...document.querySelectorAll('[data-testid="stSidebar"] [data-testid="stNumberInputField"]')]
      .map((i) => (i.getAttribute('aria-label') || '?') + '=' + i.value);
    S.errors.push({kind, text, t, page, inputs});
  };
  function check() {
    const t = performance.now();
    const nav = S.navs[S.navs.length - 1];
    const spec = PAGES[nav.page];
    if (nav.sidebar === null && sidebarShown()) nav.sidebar = t;
    if (nav.title === null && nav.how === 'load' && titled()) nav.title = t;
    if (spec) {
      if (nav.ready === null && spec.ready()) { nav.ready = t; S.everReady = true; }
      if (nav.plot === null && spec.plot && spec.plot()) nav.plot = t;
    }
    if (S.click !== null) {
      const bar = document.querySelector('[data-testid="stProgress"]');
      if (bar) {
        if (S.progress === null) S.progress = t;
        if (bar.textContent !== S.lastProgress) {
          const m = bar.textContent.match(/Iteration ([\d,]+)/), r = bar.textContent.match(/([\d.]+) it\/s/);
          if (m && S.iters.length < 2000) S.iters.push([t, +m[1].replace(/,/g, ''), r ? +r[1] : null]);
        }
        S.lastProgress = bar.textContent;
      }
      if (S.loss === null) {
        const f = document.querySelector('.st-key-train_loss_chart iframe');  // a live chart's iframe
        const p = f && f.contentDocument && f.contentDocument.querySelector('.js-plotly-plot');
        if (p && p._fullData && p._fullData.length && p._fullData[0]._length > 0) S.loss = t;
      }
      const g = document.querySelector('.st-key-train_density_chart iframe');
      const density = g && g.contentDocument && g.contentDocument.querySelector('.js-plotly-plot .main-svg');
      if (S.density === null && density) S.density = t;
      for (const a of document.querySelectorAll('[data-testid="stAlertContentInfo"]')) {
        const m = a.textContent.match(/number (\d+) in the queue/);
        if (m && !(m[1] in S.queue)) S.queue[m[1]] = t;
      }
    }
    // textContent, not innerText: no forced layout on a page that is busy drawing plots.
    for (const e of document.querySelectorAll('[data-testid="stException"]')) {
      seen('exception', e.textContent, t, nav.page);
    }
    for (const e of document.querySelectorAll('[data-testid="stAlertContentError"]')) {
      if (!e.closest('[data-testid="stException"]')) seen('st.error', e.textContent, t, nav.page);  // not twice
    }
    for (const d of document.querySelectorAll('[role="dialog"]')) {
      if (/connection error/i.test(d.textContent)) seen('connection error', d.textContent, t, nav.page);
    }
    if (S.everReady) {  // "Connecting" is normal before the first load; after it, each episode [from, to]
      const w = document.querySelector('[data-testid="stStatusWidget"]');
      const on = !!w && /Connecting|Error/.test(w.textContent);
      const last = S.connecting[S.connecting.length - 1];
      if (on && !(last && last[1] === null)) {
        S.connecting.push([t, null]);
        seen('disconnected', w.textContent, t, nav.page);
      } else if (!on && last && last[1] === null) last[1] = t;
    }
  }
  let pending = false, last = -1e9;
  const schedule = () => {
    if (pending) return;
    pending = true;
    setTimeout(() => { pending = false; last = performance.now(); try { check(); } catch (e) {} },
               Math.max(0, 50 - (performance.now() - last)));
  };
  document.addEventListener('click', (e) => {
    const t = performance.now();
    const el = e.target instanceof Element ? e.target : null;
    if (!el) return;
    const link = el.closest('[data-testid="stSidebarNavLink"], [data-testid="stPageLink-NavLink"]');
    if (link) {
      const page = pageOf(new URL(link.href, location.href).pathname);
      S.navs.push({page, how: 'click', t0: t, ready: null, plot: null, sidebar: null, title: null});
      schedule();
    }
    if (S.click === null && el.closest('.st-key-train_train_button')) S.click = t;
  }, true);
  const what = {childList: true, subtree: true, attributes: true, characterData: true};
  new MutationObserver(schedule).observe(document, what);
  setInterval(schedule, 500);
})();
