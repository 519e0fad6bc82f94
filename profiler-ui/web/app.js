/**
 * The profiler page: state (which run, turn, layer, view), routing (the URL hash), data (runs listed by the
 * server, loaded on demand, folded live from the WebSocket, or opened from a file) and the render loop.
 *
 * Events only fold into run models and mark the page dirty; drawing happens once per animation frame, and
 * each view redraws only what changed since it last drew — a streaming run never re-renders everything.
 */
import { parseTraceText } from './data/jsonl.js';
import { applyEvent, createRunModel, foldEvents, layerCount, turnList } from './data/run-model.js';
import { policyLabel } from './data/summary.js';
import { downloadText } from './export.js';
import { ApiError, createApi, pageToken } from './net/api.js';
import { connectLive } from './net/live.js';
import { hashToPatch, stateToHash } from './router.js';
import { createCompareView } from './views/compare.js';
import { createTooltip, createToast } from './views/overlays.js';
import { createRunView } from './views/run-view.js';
import { createSweepView } from './views/sweep.js';

const token = pageToken();
const api = createApi(token);
const $ = (sel) => document.querySelector(sel);
const main = $('#main');

/** run id → { run, summary (server RunSummary | null), model (RunModel | null), status, local, seen, pending } */
const runs = new Map();
const state = { route: 'run', run: null, turn: null, turnPinned: false, layer: 0, heat: true, size: 'auto', hmMode: 'auto', a: null, b: null, cmpLayer: 0, sweepX: 'decode', sweepY: 'kl' };
let serverState = 'unknown'; // 'online' | 'offline' | 'unauthorized'
let liveState = 'offline';
let droppedTotal = 0;
let live = null;
let seenCounter = 0;

// ---------------------------------------------------------------------------------------------------------
// Runs: listing, loading, live folding.

function entry(run) {
  let e = runs.get(run);
  if (!e) {
    e = { run, summary: null, model: null, status: 'unloaded', local: false, seen: ++seenCounter, pending: null };
    runs.set(run, e);
  }
  return e;
}

function startedOf(e) {
  return e.summary?.started ?? e.seen;
}

/** Runs, newest first. */
function runList() {
  return [...runs.values()].sort((a, b) => startedOf(b) - startedOf(a) || b.seen - a.seen);
}

export function runLabel(run) {
  const e = runs.get(run);
  if (!e) return run;
  const policy = e.model?.start?.policy ?? e.summary?.policy;
  const dir = e.model?.start?.model?.dir ?? e.summary?.model ?? '';
  const base = dir.split(/[\\/]/).filter(Boolean).pop() ?? '';
  const live = e.summary?.live ? ' ● live' : '';
  return `${policyLabel(policy)} · ${base || 'model?'} · ${run.slice(0, 6)}${live}`;
}

function fileName(m) {
  if (!m) return 'sparsevila';
  return `sparsevila-${(m.start?.policy?.method ?? 'run')}-${m.run.slice(0, 8)}`;
}

function setSummary(summary) {
  const e = entry(summary.run);
  const isNew = !e.summary && !e.model;
  e.summary = summary;
  return isNew;
}

async function ensureLoaded(run) {
  const e = runs.get(run);
  if (!e || e.model || e.status === 'loading' || e.local || serverState !== 'online') return;
  e.status = 'loading';
  e.pending = [];
  try {
    const events = await api.events(run);
    const m = createRunModel(run);
    events.sort((x, y) => x.t - y.t);
    let maxT = -Infinity;
    for (const ev of events) {
      applyEvent(m, ev);
      if (ev.t > maxT) maxT = ev.t;
    }
    // Live events that arrived while loading, not already in the stored list.
    for (const ev of e.pending) if (ev.t > maxT) applyEvent(m, ev);
    e.model = m;
    e.status = 'loaded';
  } catch (err) {
    e.status = 'unloaded';
    if (!(err instanceof ApiError && err.status === 404)) toast(`could not load run ${run.slice(0, 8)}: ${err.message}`);
  } finally {
    e.pending = null;
    invalidate();
  }
}

function reload(run) {
  const e = runs.get(run);
  if (!e || e.local) return;
  e.model = null;
  e.status = 'unloaded';
  if (needed().includes(run)) ensureLoaded(run);
}

function liveEvents(run, events) {
  const e = entry(run);
  if (e.status === 'loading') {
    e.pending.push(...events);
    return;
  }
  if (!e.model) {
    if (events.some((ev) => ev.type === 'run.start')) {
      // A run we see from its beginning: fold it live, no need to fetch.
      e.model = createRunModel(run);
      e.status = 'loaded';
    } else {
      if (needed().includes(run)) ensureLoaded(run);
      return;
    }
  }
  for (const ev of events) applyEvent(e.model, ev);
  if (events.some((ev) => ev.type === 'run.start')) maybeFollow(run);
  invalidate();
}

/** With "follow live" on, the run view switches to each new run as it starts (other views stay put). */
function maybeFollow(run) {
  if (!$('#follow').checked || state.run === run || state.route !== 'run') return;
  setState({ run, turn: null, turnPinned: false });
}

/** Runs the current view needs in memory. */
function needed() {
  if (state.route === 'run') return state.run ? [state.run] : [];
  if (state.route === 'compare') return [state.a, state.b].filter(Boolean);
  return [...runs.keys()];
}

function loadLocal(events, name) {
  const models = foldEvents(events);
  for (const [run, m] of models) {
    const e = entry(run);
    e.model = m;
    e.status = 'loaded';
    e.local = true;
    e.events = events.filter((ev) => ev.run === run);
    e.seen = ++seenCounter;
    e.fileName = name;
  }
  return [...models.keys()];
}

async function openFiles(files) {
  let first = null;
  for (const file of files) {
    try {
      const text = await file.text();
      let ids;
      if (serverState === 'online') {
        ids = await api.upload(text);
        for (const id of ids) {
          const e = entry(id);
          e.model = null;
          e.status = 'unloaded';
          e.seen = ++seenCounter;
        }
        await Promise.all(ids.map(ensureLoaded));
      } else {
        ids = loadLocal(parseTraceText(text, file.name), file.name);
      }
      first ??= ids[0];
      toast(`opened ${file.name}: ${ids.length} run${ids.length === 1 ? '' : 's'}`);
    } catch (err) {
      toast(`${file.name}: ${err.message}`, true);
    }
  }
  if (first) setState({ route: state.route === 'sweep' ? 'sweep' : 'run', run: first, turn: null, turnPinned: false });
}

// ---------------------------------------------------------------------------------------------------------
// State and routing: #/run/<id>?turn=&layer=, #/compare/<a>/<b>, #/sweep

export function setState(patch) {
  if ('turn' in patch && patch.turn != null && !('turnPinned' in patch)) patch.turnPinned = true;
  if ('run' in patch && patch.run !== state.run && !('turn' in patch)) {
    patch.turn = null;
    patch.turnPinned = false;
  }
  Object.assign(state, patch);
  writeHash();
  for (const run of needed()) ensureLoaded(run);
  invalidate();
}

function writeHash() {
  const h = stateToHash(state);
  if (location.hash !== h) history.replaceState(null, '', `${location.pathname}${location.search}${h}`);
}

function readHash(hash = location.hash) {
  Object.assign(state, hashToPatch(hash));
}

window.addEventListener('hashchange', (ev) => {
  // The URL navigated to, from the event: a state change in between may already have replaced location.hash.
  readHash(new URL(ev.newURL).hash);
  writeHash();
  for (const run of needed()) ensureLoaded(run);
  invalidate();
});

// ---------------------------------------------------------------------------------------------------------
// Rendering, once per animation frame.

let frame = 0;
let mounted = { route: null, view: null, empty: false };

export function invalidate() {
  if (!frame) frame = requestAnimationFrame(render);
}

function render() {
  frame = 0;
  try {
    renderView();
  } finally {
    renderHeader();
  }
}

function renderView() {
  const list = runList();
  if (!state.run && list.length) state.run = list[0].run;
  if (state.route === 'run') {
    if (state.run) ensureLoaded(state.run);
    const e = state.run ? runs.get(state.run) : null;
    if (!e?.model) return renderEmpty(e);
    const m = e.model;
    const turns = turnList(m);
    if (!state.turnPinned || !turns.includes(state.turn)) state.turn = turns.length ? turns[turns.length - 1] : 0;
    state.layer = Math.max(0, Math.min(state.layer, Math.max(0, layerCount(m) - 1)));
    mount('run', () => createRunView(main, { setState, tooltip, fileName })).update(m, state);
  } else if (state.route === 'compare') {
    const loaded = list.filter((e) => e.model || e.summary);
    if (!state.a || !runs.has(state.a)) state.a = (loaded.find((e) => (e.model?.start?.policy ?? e.summary?.policy)?.method === 'dense') ?? loaded[1] ?? loaded[0])?.run ?? null;
    if (!state.b || !runs.has(state.b)) state.b = (loaded.find((e) => e.run !== state.a && (e.model?.start?.policy ?? e.summary?.policy)?.method !== 'dense') ?? loaded.find((e) => e.run !== state.a))?.run ?? null;
    for (const run of needed()) ensureLoaded(run);
    mount('compare', () => createCompareView(main, { setState, runLabel, fileName })).update(runs.get(state.a)?.model ?? null, runs.get(state.b)?.model ?? null, state, list);
  } else {
    for (const run of needed()) ensureLoaded(run);
    mount('sweep', () => createSweepView(main, { setState, fileName })).update(
      list.filter((e) => e.model).map((e) => e.model),
      state,
    );
  }
}

function mount(route, make) {
  if (mounted.route !== route || mounted.empty) {
    main.innerHTML = '';
    mounted = { route, view: make(), empty: false };
    main.dataset.route = route;
  }
  return mounted.view;
}

function renderEmpty(e) {
  mounted = { route: null, view: null, empty: true };
  main.dataset.route = 'empty';
  const why =
    serverState === 'unauthorized'
      ? 'The server refused this page: open the URL the profiler printed, with its <code>?token=…</code>.'
      : e && (e.status === 'loading' || e.status === 'unloaded')
        ? `Loading run ${e.run.slice(0, 8)}…`
        : 'No runs yet. Record one with the profiler attached, or drop a trace (<code>--trace run.jsonl</code>) anywhere on this page.';
  main.innerHTML = `<div class="empty-state"><h1>SparseVILA profiler</h1><p>${why}</p></div>`;
}

function renderHeader() {
  for (const a of document.querySelectorAll('.tabs a')) a.classList.toggle('active', a.dataset.route === state.route);
  const sel = $('#run-select');
  const list = runList();
  const key = list.map((e) => `${e.run}:${runLabel(e.run)}`).join('|');
  if (sel.dataset.key !== key) {
    sel.innerHTML = list.length ? list.map((e) => `<option value="${e.run}">${escapeHtml(runLabel(e.run))}</option>`).join('') : '<option value="">no runs</option>';
    sel.dataset.key = key;
  }
  sel.value = state.run ?? '';
  const dl = $('#download');
  const e = state.run ? runs.get(state.run) : null;
  dl.classList.toggle('disabled', !e);
  if (e && !e.local) {
    dl.href = api.traceUrl(e.run);
    dl.download = `${fileName(e.model ?? { run: e.run })}.jsonl`;
  } else dl.removeAttribute('href');
  const status = $('#status');
  status.dataset.state = serverState === 'online' ? liveState : serverState;
  $('#status-text').textContent =
    serverState === 'unauthorized' ? 'no access (token?)' : serverState === 'offline' ? 'offline (files only)' : liveState === 'live' ? 'live' : liveState;
  const dropped = $('#dropped');
  dropped.hidden = droppedTotal === 0;
  dropped.textContent = `dropped ${droppedTotal.toLocaleString()}`;
  dropped.dataset.count = droppedTotal;
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
}

const tooltip = createTooltip($('#tooltip'));
const toast = createToast($('#toast'));

// ---------------------------------------------------------------------------------------------------------
// Wiring.

$('#run-select').addEventListener('change', (ev) => setState({ route: state.route === 'compare' || state.route === 'sweep' ? 'run' : state.route, run: ev.target.value }));
$('#file').addEventListener('change', (ev) => {
  openFiles([...ev.target.files]);
  ev.target.value = '';
});
$('#download').addEventListener('click', (ev) => {
  const e = state.run ? runs.get(state.run) : null;
  if (e?.local) {
    ev.preventDefault();
    downloadText(e.events.map((x) => JSON.stringify(x)).join('\n') + '\n', `${fileName(e.model)}.jsonl`);
  }
});
let dragDepth = 0;
addEventListener('dragenter', (ev) => {
  if (![...(ev.dataTransfer?.types ?? [])].includes('Files')) return;
  dragDepth++;
  $('#drop-hint').hidden = false;
});
addEventListener('dragleave', () => {
  if (--dragDepth <= 0) $('#drop-hint').hidden = true;
});
addEventListener('dragover', (ev) => ev.preventDefault());
addEventListener('drop', (ev) => {
  ev.preventDefault();
  dragDepth = 0;
  $('#drop-hint').hidden = true;
  if (ev.dataTransfer?.files?.length) openFiles([...ev.dataTransfer.files]);
});
addEventListener('resize', () => invalidate());

async function start() {
  readHash();
  try {
    const list = await api.runs();
    serverState = 'online';
    for (const s of list) setSummary(s);
  } catch (err) {
    serverState = err instanceof ApiError && err.status === 401 ? 'unauthorized' : 'offline';
  }
  if (serverState === 'online') {
    live = connectLive(api.liveUrl(), {
      status(s) {
        liveState = s;
        invalidate();
      },
      hello(list) {
        for (const s of list) setSummary(s);
        for (const e of runs.values()) if (e.model && !e.local && e.status === 'loaded' && e.summary?.live) reload(e.run); // resync after a reconnect
        invalidate();
      },
      run(summary) {
        const isNew = setSummary(summary);
        if (isNew && summary.live && summary.policy) maybeFollow(summary.run);
        invalidate();
      },
      evicted(run) {
        const e = runs.get(run);
        if (e && !e.local) runs.delete(run);
        invalidate();
      },
      events: liveEvents,
      replay(run, events) {
        const e = entry(run);
        e.model = foldEvents(events.sort((x, y) => x.t - y.t)).get(run) ?? createRunModel(run);
        e.status = 'loaded';
        invalidate();
      },
      async dropped(count, list) {
        // The server skipped messages for this page: count them, resync the runs they were about (replay),
        // and refetch the run list, since announcements of new runs may have been skipped too.
        droppedTotal += count;
        for (const run of list) {
          const e = runs.get(run);
          if (e?.model && !e.local) {
            if (!live.replay(run)) reload(run);
          } else if (e && !e.local) reload(run);
        }
        invalidate();
        try {
          for (const s of await api.runs()) setSummary(s);
          for (const run of needed()) ensureLoaded(run);
        } catch {
          // the socket's reconnect will bring a fresh hello
        }
        invalidate();
      },
      error(message) {
        toast(message, true);
      },
    });
  }
  for (const run of needed()) ensureLoaded(run);
  invalidate();
}

start();

// For tests and the console: the page's state and models.
window.profiler = { state, runs, setState, invalidate };
