// labd's web view: plain JavaScript, no build step. Views are routed on the URL path, so every page is a link.
// Data comes from labd's own API (/api/v1); charts are uPlot. When labd needs a token, the page asks for it
// once and keeps it for the tab (sessionStorage).
'use strict';

// ---------- small helpers ----------
const $ = (sel, el = document) => el.querySelector(sel);
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'html') el.innerHTML = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}
const fmt = (v) => {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') {
    if (!isFinite(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : String(+v.toPrecision(5));
  }
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
};
// Axis labels: short, with k/M/G for large numbers.
const short = (v) => {
  if (v === null || v === undefined || !isFinite(v)) return '';
  const a = Math.abs(v);
  if (a >= 1e9) return +(v / 1e9).toPrecision(3) + 'G';
  if (a >= 1e6) return +(v / 1e6).toPrecision(3) + 'M';
  if (a >= 1e4) return +(v / 1e3).toPrecision(3) + 'k';
  return a !== 0 && a < 1e-3 ? v.toExponential(1) : String(+v.toPrecision(4));
};
const time = (us) => (us ? new Date(us / 1000).toISOString().replace('T', ' ').slice(0, 19) : '');
const pill = (s) => h('span', { class: 'pill ' + s }, s);
const link = (href, text) => h('a', { href, 'data-link': true }, text);
const qs = (params) => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  const s = p.toString();
  return s ? '?' + s : '';
};
function flatten(obj, prefix = '', out = {}) {
  if (obj && typeof obj === 'object' && !Array.isArray(obj)) {
    const keys = Object.keys(obj);
    if (!keys.length && prefix) out[prefix] = {};
    for (const k of keys) flatten(obj[k], prefix ? prefix + '.' + k : k, out);
  } else if (Array.isArray(obj) && obj.length && obj.some((x) => x && typeof x === 'object')) {
    obj.forEach((x, i) => flatten(x, prefix + '.' + i, out));
  } else if (prefix) out[prefix] = obj;
  return out;
}

// ---------- the API ----------
const api = {
  token: sessionStorage.getItem('labd-token'),
  headers() {
    return this.token ? { Authorization: 'Bearer ' + this.token } : {};
  },
  async fetch(path, params, init) {
    for (let attempt = 0; attempt < 3; attempt++) {
      const res = await fetch('/api/v1' + path + qs(params), { ...(init || {}), headers: { ...this.headers(), ...((init || {}).headers || {}) } });
      if (res.status === 401) {
        const t = prompt('labd needs its token (LABD_TOKEN):');
        if (!t) throw new Error('labd needs a token');
        this.token = t;
        sessionStorage.setItem('labd-token', t);
        continue;
      }
      if (res.status === 503 && attempt < 2) {
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      if (!res.ok) {
        let msg = res.statusText;
        try { msg = (await res.json()).error || msg; } catch (_) { /* not JSON */ }
        throw new Error(`${path}: ${res.status} ${msg}`);
      }
      return res;
    }
    throw new Error(path + ': no answer');
  },
  async get(path, params) {
    return (await this.fetch(path, params)).json();
  },
  // Server-sent events of the log's tail, read with fetch so that the token header can be sent.
  async tail(onEvent, signal, params) {
    const res = await this.fetch('/events/tail', params || {}, { signal });
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const chunk = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = chunk.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
        if (data) {
          try { onEvent(JSON.parse(data)); } catch (_) { /* keep-alive or partial */ }
        }
      }
    }
  },
};

// ---------- page lifecycle ----------
let cleanups = [];
const onLeave = (f) => cleanups.push(f);
function live(onEvent) {
  const ctl = new AbortController();
  onLeave(() => ctl.abort());
  api.tail(onEvent, ctl.signal).catch(() => { /* aborted or daemon stopped */ });
}
function throttle(f, ms) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => { timer = null; f(); }, ms);
  };
}
function ready(name) {
  document.body.dataset.ready = name;
  performance.mark('ready:' + name);
}

const routes = [
  [/^\/(runs)?$/, viewRuns],
  [/^\/runs\/([^/]+)$/, viewRun],
  [/^\/compare$/, viewCompare],
  [/^\/groups$/, viewGroups],
  [/^\/sweeps$/, viewSweeps],
  [/^\/sweeps\/([^/]+)$/, viewSweep],
  [/^\/benchmarks$/, viewBenchmarks],
  [/^\/benchmarks\/([^/]+)$/, viewBenchmark],
  [/^\/live$/, viewLive],
  [/^\/alerts$/, viewAlerts],
];

function navigate(url) {
  history.pushState(null, '', url);
  render();
}
document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-link]');
  if (a && !e.ctrlKey && !e.metaKey && !e.shiftKey && e.button === 0) {
    e.preventDefault();
    navigate(a.getAttribute('href'));
  }
});
window.addEventListener('popstate', render);

async function render() {
  for (const f of cleanups) { try { f(); } catch (_) { /* already gone */ } }
  cleanups = [];
  delete document.body.dataset.ready;
  const path = location.pathname;
  const app = $('#app');
  app.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  for (const a of document.querySelectorAll('header nav a')) {
    const p = a.getAttribute('href');
    a.classList.toggle('active', path === p || path.startsWith(p + '/') || (p === '/runs' && (path === '/' || path === '/compare')));
  }
  for (const [re, view] of routes) {
    const m = path.match(re);
    if (m) {
      try {
        await view(app, ...m.slice(1).map((x) => (x === undefined ? x : decodeURIComponent(x))));
      } catch (e) {
        app.replaceChildren(h('p', { class: 'error' }, String(e.message || e)));
        ready('error');
      }
      return;
    }
  }
  app.replaceChildren(h('p', { class: 'error' }, 'No such page: ' + path));
}

// ---------- charts ----------
const COLORS = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#65a30d', '#475569', '#ea580c'];

// Exponential moving average with TensorBoard's debiasing; nulls (NaN) stay gaps.
function smooth(ys, w) {
  if (!w) return ys;
  let last = 0, n = 0;
  return ys.map((y) => {
    if (y === null || y === undefined) return y;
    last = last * w + (1 - w) * y;
    n++;
    return last / (1 - Math.pow(w, n));
  });
}

// Options every metric chart shares: the x-axis, log scale and smoothing.
const chartState = { x: 'step', log: false, smoothing: 0 };
function chartControls(onChange, axes) {
  const xs = h('select', { onchange: (e) => { chartState.x = e.target.value; onChange(); } },
    (axes || ['step', 'epoch', 'wall_time', 'index']).map((a) => h('option', { value: a, selected: a === chartState.x }, 'x: ' + a)));
  const log = h('label', {}, h('input', { type: 'checkbox', checked: chartState.log, onchange: (e) => { chartState.log = e.target.checked; onChange(); } }), ' log y');
  const sm = h('input', { type: 'range', min: 0, max: 0.99, step: 0.01, value: chartState.smoothing,
    oninput: (e) => { chartState.smoothing = +e.target.value; label.textContent = 'smoothing ' + chartState.smoothing.toFixed(2); onChange(true); } });
  const label = h('span', { class: 'muted' }, 'smoothing ' + chartState.smoothing.toFixed(2));
  return h('div', { class: 'toolbar' }, xs, log, sm, label, h('span', { class: 'muted' }, 'drag to zoom (full resolution), double-click to reset'));
}

// A line chart of several series [{label, points: [[x, y|null], ...], color?, band?}] in `card`.
// `refetch(from, to, width)` answers the same series for a zoomed range at full resolution.
function lineChart(card, title, series, opts = {}) {
  const width = Math.max(320, card.clientWidth - 16 || 520);
  const build = (ser) => {
    const tables = ser.map((s) => {
      const xs = s.points.map((p) => p[0]);
      const ys = smooth(s.points.map((p) => (p[1] === null || p[1] === undefined || !isFinite(p[1]) ? null : p[1])), opts.noSmooth ? 0 : chartState.smoothing);
      return s.band ? [xs, ys, s.band.lo, s.band.hi] : [xs, ys];
    });
    const data = tables.length ? uPlot.join(tables, tables.map((t) => t.slice(1).map(() => 1))) : [[]];
    return data;
  };
  const logOk = series.every((s) => s.points.every((p) => p[1] === null || p[1] > 0));
  const useLog = chartState.log && logOk && !opts.noLog;
  const uSeries = [{ label: opts.xLabel || chartState.x }];
  const bands = [];
  series.forEach((s, i) => {
    const color = s.color || COLORS[i % COLORS.length];
    uSeries.push({ label: s.label, stroke: color, width: 1.5, spanGaps: false, points: { show: s.points.length < 60 } });
    if (s.band) {
      const lo = uSeries.length, hi = lo + 1;
      uSeries.push({ label: s.label + ' lo', stroke: 'transparent', points: { show: false } });
      uSeries.push({ label: s.label + ' hi', stroke: 'transparent', points: { show: false } });
      bands.push({ series: [hi, lo], fill: color + '22' });
    }
  });
  let full = null;
  const plot = new uPlot({
    title,
    width,
    height: opts.height || 240,
    series: uSeries,
    bands,
    legend: { show: series.length <= 12 && !bands.length },
    scales: { x: { time: false }, y: useLog ? { distr: 3 } : {} },
    axes: [{ values: (u, vals) => vals.map(short) }, { values: (u, vals) => vals.map(short), size: 56 }],
    cursor: { drag: { x: true, y: false } },
    hooks: {
      setSelect: [(u) => {
        if (!opts.refetch || u.select.width < 2) return;
        const from = u.posToVal(u.select.left, 'x'), to = u.posToVal(u.select.left + u.select.width, 'x');
        opts.refetch(from, to, width).then((ser) => {
          u.setData(build(ser), false);
          u.setScale('x', { min: from, max: to });
          card.dataset.zoomed = String(ser.reduce((n, s) => n + s.points.length, 0));
        }).catch(() => {});
      }],
    },
  }, build(series), card);
  if (bands.length) {
    card.prepend(h('div', { class: 'toolbar' }, series.map((s, i) => h('span', {}, h('span', { style: `color:${s.color || COLORS[i % COLORS.length]}` }, '■ '), s.label))));
  }
  full = series;
  card.dataset.points = String(series.reduce((n, s) => n + s.points.length, 0));
  card.dataset.series = String(series.length);
  card.addEventListener('dblclick', () => { plot.setData(build(full)); delete card.dataset.zoomed; });
  if (!logOk && chartState.log) card.append(h('div', { class: 'muted' }, 'log scale off: values ≤ 0'));
  onLeave(() => plot.destroy());
  return plot;
}

// The curve of `metric` for runs `ids`: [{label, points}].
async function runCurves(ids, metric, width, range) {
  const ans = await api.get('/analytics/curves', { metric, ids: ids.join(','), x: chartState.x, points: Math.round(width), from: range && range[0], to: range && range[1] });
  const names = ans.names || {};
  return ans.runs.map((r) => ({ label: r.name + ' (' + r.id.slice(-8) + ')' + (r.metric ? ' ' + (names[r.metric] || r.metric) : ''), points: r.points, total: r.total }));
}

// ---------- experiments ----------
async function viewRuns(app) {
  const params = new URLSearchParams(location.search);
  const state = { where: params.get('where') || '', sort: params.get('sort') || '', desc: params.get('desc') === '1',
    offset: +(params.get('offset') || 0), metrics: params.get('metrics') || '' };
  const selected = new Set();
  const where = h('input', { type: 'text', placeholder: 'filter, e.g. optim.lr < 0.01 and status == "completed"', value: state.where, id: 'filter' });
  const metricsIn = h('input', { type: 'text', placeholder: 'metric columns (comma-separated)', value: state.metrics, id: 'metric-columns' });
  const compareBtn = h('a', { class: 'muted', id: 'compare-selected' }, 'select runs to compare');
  const table = h('div', { id: 'runs-table' });
  const err = h('p', { class: 'error' });
  const total = h('span', { class: 'muted', id: 'runs-total' });
  const apply = () => {
    state.where = where.value.trim();
    state.metrics = metricsIn.value.trim();
    state.offset = 0;
    history.replaceState(null, '', '/runs' + qs({ where: state.where, sort: state.sort, desc: state.desc ? '1' : '', metrics: state.metrics }));
    load();
  };
  where.addEventListener('keydown', (e) => e.key === 'Enter' && apply());
  metricsIn.addEventListener('keydown', (e) => e.key === 'Enter' && apply());
  const updateCompare = () => {
    if (selected.size >= 2) {
      compareBtn.replaceWith(Object.assign(compareBtn, {}));
      compareBtn.className = '';
      compareBtn.textContent = `compare ${selected.size} runs`;
      compareBtn.setAttribute('href', '/compare?ids=' + [...selected].join(','));
      compareBtn.setAttribute('data-link', '');
    } else {
      compareBtn.className = 'muted';
      compareBtn.textContent = 'select runs to compare';
      compareBtn.removeAttribute('href');
    }
  };
  app.replaceChildren(h('h1', {}, 'Experiments ', total),
    h('div', { class: 'toolbar' }, where, h('button', { onclick: apply }, 'Filter'), metricsIn, compareBtn), err, table);

  async function load() {
    let ans;
    try {
      ans = await api.get('/table', { where: state.where, sort: state.sort, desc: state.desc ? 'true' : undefined, offset: state.offset, limit: 100, metrics: state.metrics });
      err.textContent = '';
    } catch (e) {
      err.textContent = e.message;
      ready('runs');
      return;
    }
    total.textContent = `${ans.total} runs`;
    const head = (label, key, cls) => h('th', { class: (state.sort === key ? 'sorted' + (state.desc ? '' : ' asc') : '') + (cls ? ' ' + cls : ''),
      onclick: () => { state.desc = state.sort === key ? !state.desc : key === 'started'; state.sort = key; state.offset = 0; load(); } }, label);
    const rows = ans.rows.map((r) => h('tr', { 'data-id': r.id },
      h('td', {}, h('input', { type: 'checkbox', checked: selected.has(r.id), onchange: (e) => { e.target.checked ? selected.add(r.id) : selected.delete(r.id); updateCompare(); } })),
      h('td', {}, link('/runs/' + encodeURIComponent(r.id), r.name)),
      h('td', {}, pill(r.status)),
      h('td', {}, r.tags.join(', ')),
      h('td', {}, time(r.started)),
      h('td', {}, time(r.ended)),
      ans.params.map((k) => h('td', { class: typeof r.params[k] === 'number' ? 'num' : '' }, (r.shown && k in r.shown) ? r.shown[k] : fmt(r.params[k]))),
      ans.metrics.map((k) => h('td', { class: 'num' }, fmt(r.metrics[k]))),
    ));
    table.replaceChildren(h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}), head('name', 'name'), head('status', 'status'), h('th', {}, 'tags'), head('started', 'started'), head('ended', 'ended'),
        ans.params.map((k) => head((ans.names || {})[k] || k, 'param:' + k)), ans.metrics.map((k) => head((ans.names || {})[k] || k, 'metric:' + k, 'num')))),
      h('tbody', {}, rows)),
      h('div', { class: 'pager' },
        h('button', { disabled: state.offset === 0, onclick: () => { state.offset = Math.max(0, state.offset - 100); load(); } }, '‹ previous'),
        h('span', { class: 'muted' }, `${ans.total ? state.offset + 1 : 0}–${state.offset + ans.rows.length} of ${ans.total}`),
        h('button', { disabled: state.offset + ans.rows.length >= ans.total, onclick: () => { state.offset += 100; load(); } }, 'next ›')));
    ready('runs');
  }
  await load();
  const refresh = throttle(load, 1000);
  live((rec) => {
    const k = Object.keys(rec.event.kind)[0];
    if (k === 'experiment_created' || k === 'status_changed' || k === 'metrics_logged') refresh();
  });
}

// ---------- one run ----------
function configTree(obj) {
  const node = (v) => {
    if (v && typeof v === 'object') {
      return h('ul', {}, Object.entries(v).map(([k, x]) => h('li', {}, h('span', { class: 'key' }, k + ': '), x && typeof x === 'object' ? node(x) : fmt(x))));
    }
    return fmt(v);
  };
  return h('div', { class: 'tree' }, node(obj));
}

async function metricCharts(container, ids, metrics) {
  const cards = metrics.map((m) => h('div', { class: 'card', 'data-metric': m }));
  container.replaceChildren(...cards);
  await Promise.all(metrics.map(async (m, i) => {
    const card = cards[i];
    const width = Math.max(320, card.clientWidth - 16);
    try {
      const series = await runCurves(ids, m, width);
      lineChart(card, m, series, { refetch: (from, to, w) => runCurves(ids, m, w, [from, to]) });
    } catch (e) {
      card.append(h('p', { class: 'error' }, e.message));
    }
  }));
}

async function viewRun(app, id) {
  const r = await api.get('/experiments/' + encodeURIComponent(id));
  const metrics = Object.keys(r.metrics || {});
  const charts = h('div', { class: 'grid', id: 'charts' });
  const draw = () => metricCharts(charts, [id], metrics).then(() => ready('run'));
  const flat = flatten(r.config || {});
  const messages = h('div', {});
  const errors = h('div', {});
  app.replaceChildren(
    h('h1', {}, r.name, ' ', pill(r.status)),
    h('div', { class: 'kv' },
      h('span', { class: 'muted' }, 'id'), h('span', {}, r.id),
      h('span', { class: 'muted' }, 'started'), h('span', {}, r.started || ''),
      h('span', { class: 'muted' }, 'ended'), h('span', {}, r.ended || ''),
      h('span', { class: 'muted' }, 'host'), h('span', {}, r.host || ''),
      h('span', { class: 'muted' }, 'tags'), h('span', {}, (r.tags || []).join(', ')),
      h('span', { class: 'muted' }, 'notes'), h('span', {}, r.status_notes || ''),
      h('span', { class: 'muted' }, 'compare'), h('span', {}, link('/compare?ids=' + encodeURIComponent(id), 'add runs to compare with this one'))),
    h('h2', {}, 'Metrics'), chartControls(draw), charts,
    h('div', { class: 'cols' },
      h('div', {}, h('h2', {}, 'Config'), configTree(r.config || {})),
      h('div', {}, h('h2', {}, 'Flattened keys'), h('table', {}, h('tbody', {}, Object.entries(flat).map(([k, v]) => h('tr', {}, h('td', {}, k), h('td', {}, fmt(v)))))))),
    h('h2', {}, 'Summaries'), h('pre', {}, JSON.stringify(r.summaries || {}, null, 2)),
    h('h2', {}, 'Artifacts'), h('table', {}, h('tbody', {}, (r.artifacts || []).map((a) => h('tr', {}, h('td', {}, a.role), h('td', {}, a.path), h('td', { class: 'num' }, a.size ?? ''), h('td', {}, (a.sha256 || '').slice(0, 12)))))),
    h('h2', {}, 'Messages'), messages,
    h('h2', {}, 'Sources and ingest problems'), h('ul', {}, (r.sources || []).map((s) => h('li', {}, s))), errors,
  );
  await draw();
  api.get('/experiments/' + encodeURIComponent(id) + '/messages', { limit: 200 }).then((m) => {
    messages.replaceChildren(m.messages.length ? h('div', { class: 'feed' }, m.messages.map((x) => h('div', {}, `${x.time} [${x.level}] ${x.text}`))) : h('p', { class: 'muted' }, 'none'));
  }).catch((e) => messages.replaceChildren(h('p', { class: 'error' }, e.message)));
  Promise.all((r.sources || []).filter((s) => s.startsWith('/')).map((p) => api.get('/ingest/errors', { path: p, limit: 50 }).catch(() => null))).then((all) => {
    const list = all.filter(Boolean).flatMap((a) => a.errors || a.problems || (Array.isArray(a) ? a : []));
    errors.replaceChildren(list.length ? h('div', { class: 'feed' }, list.map((e) => h('div', {}, `${e.path}${e.line ? ':' + e.line : ''}: ${e.reason}`))) : h('p', { class: 'muted' }, 'no ingest problems'));
  });
  const again = throttle(draw, 1500);
  live((rec) => {
    const kind = rec.event.kind;
    const body = kind.metrics_logged || kind.status_changed;
    if (body && body.exp === id) again();
  });
}

// ---------- compare ----------
async function viewCompare(app) {
  const ids = (new URLSearchParams(location.search).get('ids') || '').split(',').filter(Boolean);
  if (ids.length < 1) {
    app.replaceChildren(h('p', {}, 'Choose runs on the ', link('/runs', 'experiments'), ' page.'));
    return;
  }
  const cmp = await api.get('/compare', { ids: ids.join(',') });
  const runs = cmp.runs;
  const flats = cmp.configs;
  const keys = cmp.keys;
  let onlyDiff = false;
  const tbody = h('tbody', {});
  const fill = () => tbody.replaceChildren(...keys.map((k) => {
    const vals = flats.map((f) => JSON.stringify(f[k]));
    const differs = new Set(vals).size > 1;
    if (onlyDiff && !differs) return null;
    return h('tr', { class: differs ? 'diff' : '' }, h('td', {}, (differs ? '* ' : '') + k), flats.map((f) => h('td', {}, fmt(f[k]))));
  }).filter(Boolean));
  fill();
  const metrics = [...new Set(runs.flatMap((r) => Object.keys(r.metrics || {})))].sort();
  const charts = h('div', { class: 'grid', id: 'charts' });
  const draw = () => metricCharts(charts, ids, metrics).then(() => ready('compare'));
  const add = h('input', { type: 'text', placeholder: 'add a run id' });
  add.addEventListener('keydown', (e) => { if (e.key === 'Enter' && add.value.trim()) navigate('/compare?ids=' + [...ids, add.value.trim()].join(',')); });
  app.replaceChildren(
    h('h1', {}, 'Compare ', runs.length, ' runs'),
    h('div', { class: 'toolbar' }, runs.map((r, i) => h('span', {}, h('span', { style: `color:${COLORS[i % COLORS.length]}` }, '■ '), link('/runs/' + encodeURIComponent(r.id), r.name), ' ', pill(r.status))), add),
    h('h2', {}, 'Curves'), chartControls(draw), charts,
    h('h2', {}, 'Configs ', h('label', { class: 'muted' }, h('input', { type: 'checkbox', onchange: (e) => { onlyDiff = e.target.checked; fill(); } }), ' differences only')),
    h('table', { id: 'config-diff' }, h('thead', {}, h('tr', {}, h('th', {}, 'key'), runs.map((r) => h('th', {}, r.name)))), tbody),
  );
  await draw();
}

// ---------- groups ----------
async function viewGroups(app) {
  const params = new URLSearchParams(location.search);
  const table0 = await api.get('/table', { where: params.get('where') || '', limit: 1 });
  const state = { where: params.get('where') || '', metric: params.get('metric') || table0.all_metrics[0] || '', reduce: params.get('reduce') || '', by: params.get('by') || 'varying' };
  const where = h('input', { type: 'text', value: state.where, placeholder: 'filter' });
  const metric = h('select', {}, table0.all_metrics.map((m) => h('option', { value: m, selected: m === state.metric }, m)));
  const reduce = h('input', { type: 'text', value: state.reduce, placeholder: 'reduce (default per metric)', size: 14 });
  const by = h('input', { type: 'text', value: state.by, placeholder: 'varying or keys', size: 16 });
  const out = h('div', {});
  const chartBox = h('div', { class: 'card', id: 'group-chart' });
  const go = () => {
    Object.assign(state, { where: where.value.trim(), metric: metric.value, reduce: reduce.value.trim(), by: by.value.trim() || 'varying' });
    history.replaceState(null, '', '/groups' + qs(state));
    load();
  };
  app.replaceChildren(h('h1', {}, 'Groups'),
    h('div', { class: 'toolbar' }, where, metric, reduce, by, h('button', { onclick: go }, 'Group')),
    chartControls(() => load()), chartBox, out);
  async function load() {
    if (!state.metric) { out.replaceChildren(h('p', { class: 'muted' }, 'no metrics yet')); ready('groups'); return; }
    const [sum, curves] = await Promise.all([
      api.get('/analytics/summary', { metric: state.metric, reduce: state.reduce, by: state.by, where: state.where, format: 'json' }),
      api.get('/analytics/curves', { metric: state.metric, group: state.by, where: state.where, x: chartState.x, points: 400 }),
    ]);
    const keys = sum.by || [];
    out.replaceChildren(h('table', { id: 'group-table' },
      h('thead', {}, h('tr', {}, keys.map((k) => h('th', {}, k)), ['runs', 'mean ± 95%', 'std', 'median', 'min', 'max'].map((c) => h('th', {}, c)))),
      h('tbody', {}, (sum.groups || []).map((g) => h('tr', {}, keys.map((k) => h('td', {}, fmt(g[k]))),
        h('td', { class: 'num' }, g.count),
        h('td', { class: 'num' }, g.mean === null ? '' : `${fmt(g.mean)} ± ${fmt(g.ci95_high !== null && g.mean !== null ? g.ci95_high - g.mean : null)}`),
        h('td', { class: 'num' }, fmt(g.std)), h('td', { class: 'num' }, fmt(g.median)), h('td', { class: 'num' }, fmt(g.min)), h('td', { class: 'num' }, fmt(g.max)))))));
    chartBox.replaceChildren();
    const series = curves.groups.map((g) => {
      const names = curves.names || {}, shown = g.shown || {};
      const label = (curves.by || []).map((k) => `${names[k] || k.split('.').pop()}=${k in shown ? shown[k] : fmt(g[k])}`).join(' ') || 'all runs';
      const pts = g.points;
      return { label: `${label} (${g.runs.length})`, points: pts.map((p) => [p.x, p.mean]),
        band: { lo: pts.map((p) => (p.std === null || p.std === undefined ? p.mean : p.mean - p.std)), hi: pts.map((p) => (p.std === null || p.std === undefined ? p.mean : p.mean + p.std)) } };
    });
    lineChart(chartBox, `${(curves.names || {})[state.metric] || state.metric}: mean ± std across runs`, series);
    ready('groups');
  }
  await load();
}

// ---------- sweeps ----------
function bar(done, total) {
  return h('div', { class: 'bar', title: `${done}/${total}` }, h('span', { style: `width:${total ? (100 * done) / total : 0}%` }));
}

async function viewSweeps(app) {
  const list = await api.get('/sweeps');
  app.replaceChildren(h('h1', {}, 'Sweeps'), list.length ? h('table', {},
    h('thead', {}, h('tr', {}, ['sweep', 'state', 'progress', 'done', 'running', 'failed', 'waiting', 'ETA'].map((c) => h('th', {}, c)))),
    h('tbody', {}, list.map((s) => h('tr', {},
      h('td', {}, link('/sweeps/' + encodeURIComponent(s.id), s.id)), h('td', {}, pill(s.state)),
      h('td', {}, bar(s.progress.completed, s.progress.total)), h('td', { class: 'num' }, `${s.progress.completed}/${s.progress.total}`),
      h('td', { class: 'num' }, s.progress.running), h('td', { class: 'num' }, s.progress.failed), h('td', { class: 'num' }, s.progress.waiting),
      h('td', { class: 'num' }, s.progress.eta_secs ? Math.round(s.progress.eta_secs) + ' s' : ''))))) : h('p', { class: 'muted' }, 'no sweeps yet'));
  ready('sweeps');
}

async function viewSweep(app, id) {
  const s = await api.get('/sweeps/' + encodeURIComponent(id));
  const p = s.progress;
  const metricSel = h('select', {});
  const analysis = h('div', {});
  // Slurm sweeps: every attempt's array job and task, and the node it ran on.
  const slurm = (s.trials || []).some((t) => (t.jobs || []).length);
  const jobs = (t) => (t.jobs || []).map((j) => `${j.job}_${j.task}${j.node ? '@' + j.node : ''}`).join(', ');
  const trialRows = (s.trials || []).map((t) => h('tr', {},
    h('td', {}, t.id), h('td', {}, Object.entries(t.params || {}).map(([k, v]) => `${k}=${fmt(v)}`).join(' ')), h('td', {}, pill(t.status)),
    h('td', { class: 'num' }, t.attempts), h('td', { class: 'num' }, t.exit_code ?? ''), h('td', { class: 'num' }, t.secs ? t.secs.toFixed(1) : ''),
    ...(slurm ? [h('td', { class: 'slurm-jobs' }, jobs(t))] : []),
    h('td', {}, t.experiment_id ? link('/runs/' + encodeURIComponent(t.experiment_id), 'run') : '')));
  const columns = ['trial', 'params', 'status', 'attempts', 'exit', 'secs', ...(slurm ? ['slurm jobs'] : []), ''];
  const runIds = (s.trials || []).map((t) => t.experiment_id).filter(Boolean);
  app.replaceChildren(h('h1', {}, 'Sweep ', s.id, ' ', pill(s.state)),
    h('div', { class: 'toolbar' }, bar(p.completed, p.total), `${p.completed}/${p.total} done, ${p.running} running, ${p.failed} failed, ${p.waiting} waiting`,
      p.eta_secs ? `, about ${Math.round(p.eta_secs)} s left` : ''),
    h('h2', {}, 'Analysis'), h('div', { class: 'toolbar' }, metricSel), analysis,
    h('h2', {}, 'Trials'), h('table', {}, h('thead', {}, h('tr', {}, columns.map((c) => h('th', {}, c)))), h('tbody', {}, trialRows)));
  let metrics = [];
  if (runIds.length) {
    const first = await api.get('/experiments/' + encodeURIComponent(runIds[0])).catch(() => null);
    metrics = first ? Object.keys(first.metrics || {}) : [];
  }
  metricSel.replaceChildren(...metrics.map((m) => h('option', { value: m }, m)));
  const load = async () => {
    if (!metricSel.value) { analysis.replaceChildren(h('p', { class: 'muted' }, 'no completed trials with metrics yet')); return; }
    const a = await api.get(`/sweeps/${encodeURIComponent(id)}/analysis`, { metric: metricSel.value });
    const best = a.best;
    const charts = h('div', { class: 'grid' });
    analysis.replaceChildren(
      best ? h('p', {}, h('b', {}, 'Best: '), Object.entries(best.params).map(([k, v]) => `${k}=${fmt(v)}`).join(', '), ` — ${a.metric} ${fmt(best.mean)} (n=${best.count})`,
        a.overlapping ? h('span', { class: 'muted' }, ' — the runner-up\'s interval overlaps: not a sure ranking') : '') : h('p', { class: 'muted' }, 'no result yet'),
      charts,
      ...(a.params || []).map((pa) => pa.thresholds.length ? h('p', {}, h('b', {}, pa.param + ' thresholds: '), pa.thresholds.map((t) => `${fmt(t.from)}→${fmt(t.to)}: ${fmt(t.change)}`).join('; ')) : null).filter(Boolean),
      ...(a.pareto ? paretoView(a.pareto) : []));
    for (const series of a.plot || []) {
      const card = h('div', { class: 'card' });
      charts.append(card);
      const numeric = series.x.every((x) => typeof x === 'number');
      const xs = numeric ? series.x : series.x.map((_, i) => i);
      lineChart(card, `${a.metric} against ${series.param}${numeric ? '' : ' (' + series.x.map(fmt).join(', ') + ')'}`,
        [{ label: 'mean', points: xs.map((x, i) => [x, series.mean[i]]), band: { lo: series.ci95_low, hi: series.ci95_high } }], { noSmooth: true, xLabel: series.param });
    }
  };
  metricSel.addEventListener('change', load);
  await load().catch((e) => analysis.replaceChildren(h('p', { class: 'error' }, e.message)));
  ready('sweep');
  const again = throttle(() => viewSweep(app, id), 3000);
  live((rec) => { const k = rec.event.kind; if ((k.trial_changed && k.trial_changed.sweep === id) || (k.sweep_changed && k.sweep_changed.sweep === id)) again(); });
}

// The Pareto front of a multi-objective sweep: the first two objectives as a scatter (the front in red, joined
// in order), and every configuration in a table.
function paretoView(f) {
  const [ox, oy] = f.objectives;
  const pts = f.points.filter((p) => p.values[0] !== null && p.values[1] !== null);
  const W = 520, H = 340, L = 64, B = 40, T = 12, R = 16;
  const xs = pts.map((p) => p.values[0]), ys = pts.map((p) => p.values[1]);
  // The data's range with a margin of 6 % each side (a point at the edge stays whole).
  const span = (v) => { const lo = Math.min(...v), hi = Math.max(...v), m = hi > lo ? (hi - lo) * 0.06 : 1; return [lo - m, hi + m, lo, hi]; };
  const [x0, x1, xlo, xhi] = span(xs), [y0, y1, ylo, yhi] = span(ys);
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R), sy = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - B - T);
  const NS = 'http://www.w3.org/2000/svg';
  const el = (tag, attrs, text) => { const e = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (text !== undefined) e.textContent = text; return e; };
  const svg = el('svg', { width: W, height: H, class: 'pareto', id: 'pareto-plot' });
  svg.append(el('line', { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: '#94a3b8' }), el('line', { x1: L, y1: T, x2: L, y2: H - B, stroke: '#94a3b8' }));
  svg.append(el('text', { x: (L + W - R) / 2, y: H - 8, 'text-anchor': 'middle', 'font-size': 12 }, `${ox.metric} (${ox.direction === 'minimize' ? 'lower' : 'higher'} is better)`));
  svg.append(el('text', { x: 14, y: (T + H - B) / 2, 'text-anchor': 'middle', 'font-size': 12, transform: `rotate(-90 14 ${(T + H - B) / 2})` }, `${oy.metric} (${oy.direction === 'minimize' ? 'lower' : 'higher'} is better)`));
  for (const v of [xlo, xhi]) svg.append(el('text', { x: sx(v), y: H - B + 16, 'text-anchor': 'middle', 'font-size': 11, fill: '#64748b' }, fmt(v)));
  for (const v of [ylo, yhi]) svg.append(el('text', { x: L - 4, y: sy(v) + 4, 'text-anchor': 'end', 'font-size': 11, fill: '#64748b' }, fmt(v)));
  const front = pts.filter((p) => p.front).sort((a, b) => a.values[0] - b.values[0]);
  if (front.length > 1) svg.append(el('polyline', { points: front.map((p) => `${sx(p.values[0])},${sy(p.values[1])}`).join(' '), fill: 'none', stroke: '#dc2626', 'stroke-width': 1.5 }));
  for (const p of pts) {
    const c = el('circle', { cx: sx(p.values[0]), cy: sy(p.values[1]), r: p.front ? 5 : 4, fill: p.front ? '#dc2626' : '#94a3b8', class: p.front ? 'front' : 'dominated' });
    c.append(el('title', {}, Object.entries(p.params).map(([k, v]) => `${k}=${fmt(v)}`).join(', ')));
    svg.append(c);
  }
  const rows = f.points.map((p) => h('tr', { class: p.front ? 'open' : '' }, h('td', {}, Object.entries(p.params).map(([k, v]) => `${k}=${fmt(v)}`).join(', ')),
    ...p.values.map((v) => h('td', { class: 'num' }, v === null ? '' : fmt(v))), h('td', {}, p.front ? 'front' : '')));
  return [h('h2', {}, 'Pareto front'),
    h('p', { class: 'muted' }, `${f.on_front} of ${f.points.length} configurations are on the front: no other is as good in every objective and better in one.`),
    svg,
    h('table', { id: 'pareto-table' }, h('thead', {}, h('tr', {}, h('th', {}, 'configuration'), ...f.objectives.map((o) => h('th', {}, `${o.metric} (${o.reduce}, ${o.direction === 'minimize' ? 'min' : 'max'})`)), h('th', {}, ''))), h('tbody', {}, ...rows))];
}

// ---------- benchmarks ----------
async function viewBenchmarks(app) {
  const list = (await api.get('/benchmarks')).benchmarks;
  app.replaceChildren(h('h1', {}, 'CMR benchmarks'), list.length ? h('table', {},
    h('thead', {}, h('tr', {}, ['benchmark', 'name', 'status', 'progress', 'device', 'runner', 'started'].map((c) => h('th', {}, c)))),
    h('tbody', {}, list.map((b) => h('tr', {}, h('td', {}, link('/benchmarks/' + encodeURIComponent(b.id), b.id)), h('td', {}, b.name), h('td', {}, pill(b.status)),
      h('td', {}, bar(b.measured, b.planned || b.measured), ` ${b.measured}/${b.planned ?? '?'}`), h('td', {}, b.device || ''), h('td', {}, b.runner || 'external'), h('td', {}, time(b.started)))))) : h('p', { class: 'muted' }, 'no benchmarks yet'));
  ready('benchmarks');
}

async function viewBenchmark(app, id) {
  const r = await api.get(`/benchmarks/${encodeURIComponent(id)}/report`);
  const d = r.detailed_results;
  const batches = [...new Set(d.overhead.map((m) => m.batch_size))];
  const charts = h('div', { class: 'grid' });
  const tableOf = (rows, cols) => h('table', {}, h('thead', {}, h('tr', {}, cols.map((c) => h('th', {}, c)))), h('tbody', {}, rows.map((m) => h('tr', {}, cols.map((c) => h('td', { class: typeof m[c] === 'number' ? 'num' : '' }, fmt(m[c])))))));
  app.replaceChildren(h('h1', {}, 'Benchmark ', r.benchmark.id, ' ', pill(r.benchmark.status)),
    h('p', { class: 'muted' }, `${r.benchmark.name} on ${r.benchmark.host} — ${JSON.stringify(r.benchmark.build)}`),
    h('h2', {}, 'Recommendations'), h('ul', {}, r.recommendations.map((x) => h('li', {}, x))),
    charts,
    h('h2', {}, 'Retrieval strategies'), tableOf(d.retrieval_strategies, ['strategy', 'retrieval_accuracy', 'chance', 'hit_rate', 'retrieval_time', 'full_cmr_time']),
    h('h2', {}, 'Reconstruction methods'), tableOf(d.reconstruction_methods, ['method', 'reconstruction_fidelity', 'reconstruction_time', 'full_cmr_time']),
    h('h2', {}, 'Datasets'), tableOf(d.datasets, ['dataset', 'retrieval_accuracy', 'chance', 'facts_stored', 'reconstruction_fidelity', 'memory_utilization', 'hit_rate', 'time_per_segment']),
    h('h2', {}, 'Layers'), tableOf(d.layer_wise, ['layer', 'baseline_time', 'full_cmr_time', 'overhead_percentage']),
    h('h2', {}, 'Components'), tableOf(d.components, ['sequence_length', 'scoring_time', 'buffer_time', 'retrieval_time', 'reconstruction_time', 'model_time', 'full_cmr_time']));
  const card = (title, series, opts) => { const c = h('div', { class: 'card' }); charts.append(c); lineChart(c, title, series, { noSmooth: true, noLog: true, xLabel: 'sequence length', ...opts }); };
  const by = (rows, b, key) => rows.filter((m) => m.batch_size === b).sort((x, y) => x.sequence_length - y.sequence_length).map((m) => [m.sequence_length, m[key]]);
  card('time per pass (s) against sequence length', batches.flatMap((b) => [{ label: `baseline, batch ${b}`, points: by(d.overhead, b, 'baseline_time') }, { label: `CMR, batch ${b}`, points: by(d.overhead, b, 'full_cmr_time') }]));
  card('overhead (%) against sequence length', batches.map((b) => ({ label: `batch ${b}`, points: by(d.overhead, b, 'overhead_percentage') })));
  if (d.memory.length) card('peak memory (bytes) against sequence length', batches.flatMap((b) => [{ label: `baseline, batch ${b}`, points: by(d.memory, b, 'peak_memory_baseline') }, { label: `CMR, batch ${b}`, points: by(d.memory, b, 'peak_memory_cmr') }]));
  if (d.buffer.steps.length) card('buffer over passes', [{ label: 'utilization', points: d.buffer.steps.map((m) => [m.step, m.utilization]) }, { label: 'hit rate', points: d.buffer.steps.map((m) => [m.step, m.hit_rate]) }], { xLabel: 'pass' });
  ready('benchmark');
}

// ---------- live ----------
async function viewLive(app) {
  const feed = h('div', { class: 'feed', id: 'live-feed' });
  const errs = h('div', { class: 'feed', id: 'live-errors' });
  const loadErrors = async () => {
    const e = await api.get('/ingest/errors', { limit: 50 });
    const list = e.errors || e.problems || (Array.isArray(e) ? e : []);
    errs.replaceChildren(...(list.length ? list.map((x) => h('div', {}, `${x.path}${x.line ? ':' + x.line : ''}: ${x.reason}`)) : [h('span', { class: 'muted' }, 'no ingest problems')]));
  };
  app.replaceChildren(h('h1', {}, 'Live'), h('div', { class: 'cols' }, h('div', {}, h('h2', {}, 'Events as they are committed'), feed), h('div', {}, h('h2', {}, 'Ingest problems'), errs)));
  await loadErrors();
  const again = throttle(loadErrors, 1000);
  live((rec) => {
    const k = Object.keys(rec.event.kind)[0];
    const body = rec.event.kind[k];
    const what = body.exp ? `${body.exp}` : body.path || body.sweep || body.bench || '';
    const extra = k === 'metrics_logged' ? ' ' + Object.entries(body.values).map(([n, v]) => `${n}=${fmt(v)}`).join(' ') : '';
    feed.prepend(h('div', {}, `${rec.seq} ${k} ${what}${extra}`));
    while (feed.childNodes.length > 300) feed.lastChild.remove();
    if (k === 'ingest_error') again();
  });
  ready('live');
}

// ---------- alerts ----------
async function viewAlerts(app) {
  const firings = h('div', { id: 'alerts-firings' });
  const rulesBox = h('div', { id: 'alerts-rules' });
  const load = async () => {
    const [a, r] = await Promise.all([api.get('/alerts', { limit: 200 }), api.get('/alerts/rules')]);
    const rows = a.alerts.map((x) => h('tr', { class: x.open ? 'open' : '' },
      h('td', {}, String(x.seq)), h('td', {}, x.time.replace('T', ' ').slice(0, 19)), h('td', {}, x.rule), h('td', {}, x.kind),
      h('td', {}, x.open ? 'open' : ''),
      h('td', {}, x.subject.run ? h('a', { href: '/runs/' + encodeURIComponent(x.subject.run), 'data-link': '' }, x.message) : x.message),
      h('td', {}, (x.deliveries || []).map((d) => `${d.sink}: ${d.outcome}`).join(', '))));
    firings.replaceChildren(h('p', { class: 'muted' }, `${a.fired} fired in all, ${a.open} open`),
      rows.length ? h('table', {}, h('thead', {}, h('tr', {}, ...['seq', 'time', 'rule', 'kind', 'episode', 'what', 'sent'].map((c) => h('th', {}, c)))), h('tbody', {}, ...rows))
        : h('p', { class: 'muted' }, 'no alerts have fired'));
    const rrows = r.rules.map((x) => h('tr', {}, h('td', {}, x.name), h('td', {}, x.kind), h('td', {}, x.metric || ''),
      h('td', {}, { nan: 'NaN or ±inf', failed: 'a run or trial fails', sweep_finished: 'a sweep ends' }[x.kind]
        || [x.above !== undefined ? '> ' + x.above : '', x.below !== undefined ? '< ' + x.below : '', x.factor ? `${x.factor}× min, ${x.points || 1} pts` : '', x.after ? `${x.after} s silent` : ''].filter(Boolean).join(' ')),
      h('td', {}, x.from), h('td', {}, String(x.fired))));
    rulesBox.replaceChildren(rrows.length ? h('table', {}, h('thead', {}, h('tr', {}, ...['rule', 'kind', 'metric', 'condition', 'from', 'fired'].map((c) => h('th', {}, c)))), h('tbody', {}, ...rrows))
      : h('p', { class: 'muted' }, 'no rules (labctl alerts add, or [[alerts.rules]] in the configuration)'),
    h('p', { class: 'muted' }, 'sinks: ' + (r.sinks.join(', ') || 'none')));
  };
  app.replaceChildren(h('h1', {}, 'Alerts'), firings, h('h2', {}, 'Rules'), rulesBox);
  await load();
  const again = throttle(load, 500);
  live((rec) => { const k = Object.keys(rec.event.kind)[0]; if (k.startsWith('alert_') || k === 'metrics_logged') again(); });
  ready('alerts');
}

// The badge in the header: open alerts, kept fresh by the firings' stream and a slow poll (episodes end too).
async function alertBadge() {
  const badge = $('#alerts-badge');
  const refresh = async () => {
    try {
      const a = await api.get('/alerts', { open: true, limit: 1 });
      badge.textContent = a.open === 1 ? '1 alert' : `${a.open} alerts`;
      badge.hidden = a.open === 0;
      badge.title = a.alerts.length ? a.alerts[0].message : '';
    } catch (_) { /* daemon away: keep what is shown */ }
  };
  await refresh();
  setInterval(refresh, 10000);
  const again = throttle(refresh, 200);
  for (;;) {
    try { await api.tail(() => again(), undefined, { kind: 'alert_fired' }); } catch (_) { /* reconnect below */ }
    await new Promise((r) => setTimeout(r, 3000));
  }
}
alertBadge();

// Health in the header.
api.get('/health').then((hh) => { $('#status').textContent = `labd ${hh.version || ''} — ${hh.experiments ?? ''} runs, seq ${hh.last_seq ?? ''}`; }).catch(() => {});
render();
