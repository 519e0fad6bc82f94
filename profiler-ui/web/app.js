/**
 * The profiler page: state (which run, turn, layer, view), routing (the URL hash), data (runs listed by the
 * server, loaded on demand, folded live from the WebSocket, or opened from a file) and the render loop.
 *
 * Events only fold into run models and mark the page dirty; drawing happens once per animation frame, and
 * each view redraws only what changed since it last drew — a streaming run never re-renders everything.
 */
import { parseTraceText } from './data/jsonl.js';
import { applyEvent, createRunModel, foldEvents } from './data/run-model.js';
import { layerCount, turnList } from './data/run-queries.js';
import { emptyFacts, factsOfModel, runIdentity } from './data/run-identity.js';
import { isDense } from './data/summary.js';
import { downloadText, setExportCaption } from './export.js';
import { ApiError, createApi, pageToken } from './net/api.js';
import { connectLive } from './net/live.js';
import { hashToPatch, isNavigation, stateToHash } from './router.js';
import { createCompareView } from './views/compare.js';
import { child } from './views/dom.js';
import { createTooltip, createToast } from './views/overlays.js';
import { createRunPicker } from './views/run-picker.js';
import { createRunView } from './views/run-view.js';
import { createSweepView } from './views/sweep.js';

/**
 * @typedef {import('../../src/trace/schema.js').TraceEvent} TraceEvent
 * @typedef {import('./data/run-model.js').RunModel} RunModel
 * @typedef {import('../server/protocol.js').RunSummary} RunSummary
 * @typedef {import('./router.js').PageState} PageState
 */

/**
 * A run the page knows of: from the server's list, loaded on demand, folded live, or opened from a file.
 * @typedef {object} RunEntry
 * @property {string} run
 * @property {RunSummary | null} summary  the server's summary (null for a file opened without the server)
 * @property {RunModel | null} model  null until loaded
 * @property {'unloaded' | 'loading' | 'loaded'} status
 * @property {boolean} local  opened from a file without the server
 * @property {number} seen  order the page learnt of it
 * @property {TraceEvent[] | null} pending  live events that arrived while loading
 * @property {TraceEvent[]} [events]  a local run's events (for its download)
 * @property {string} [fileName]  a local run's file
 * @property {string | null} [name]  a local run's name (the server keeps the others', in their summary)
 * @property {{ key: string, facts: import('./data/run-identity.js').MediaFacts }} [facts]  its model's media facts, by model version
 */

const token = pageToken();
const api = createApi(token);
/**
 * @template {Element} E
 * @param {string} sel
 * @param {{ new (...args: any[]): E }} type
 */
const $ = (sel, type) => child(document, sel, type);
const main = $('#main', HTMLElement);

/** @type {Map<string, RunEntry>} */
const runs = new Map();
/** @type {PageState} */
const state = {
  route: 'run',
  run: null,
  turn: null,
  turnPinned: false,
  layer: 0,
  heat: true,
  size: 'auto',
  hmMode: 'auto',
  a: null,
  b: null,
  cmpLayer: 0,
  sweepX: 'decode',
  sweepY: 'kl',
};
/** @type {'unknown' | 'online' | 'offline' | 'unauthorized'} */
let serverState = 'unknown';
let liveState = 'offline';
let droppedTotal = 0;
/** @type {ReturnType<typeof connectLive> | null} */
let live = null;
let seenCounter = 0;

// ---------------------------------------------------------------------------------------------------------
// Runs: listing, loading, live folding.

/** @param {string} run */
function entry(run) {
  let e = runs.get(run);
  if (!e) {
    e = { run, summary: null, model: null, status: 'unloaded', local: false, seen: ++seenCounter, pending: null };
    runs.set(run, e);
  }
  return e;
}

/** @param {RunEntry} e */
function startedOf(e) {
  return e.summary?.started ?? e.seen;
}

/** Runs, newest first. */
function runList() {
  return [...runs.values()].sort((a, b) => startedOf(b) - startedOf(a) || b.seen - a.seen);
}

/** The run's start: from its model when loaded, else from the server's summary (the same policy and label). */
function startOf(/** @type {RunEntry} */ e) {
  return e.model?.start ?? e.summary;
}

/**
 * What tells a run apart (data/run-identity.js): from its model once loaded, else from the server's summary.
 * @param {RunEntry} e
 */
function identityOf(e) {
  let facts = e.summary?.media ?? emptyFacts();
  if (e.model) {
    const key = `${e.model.id}:${e.model.versions.images}:${e.model.versions.conversation}`;
    if (e.facts?.key !== key) e.facts = { key, facts: factsOfModel(e.model) };
    facts = e.facts.facts;
  }
  return runIdentity(e.run, startOf(e), e.model?.start?.model?.dir ?? e.summary?.model, facts, e.summary?.name ?? e.name ?? null);
}

/** @param {string} run */
export function identity(run) {
  const e = runs.get(run);
  return e ? identityOf(e) : null;
}

/** @param {string} run */
export function runLabel(run) {
  const e = runs.get(run);
  if (!e) return run;
  return `${identityOf(e).label}${e.summary?.live ? ' ● live' : ''}`;
}

/** @param {{ run: string, start?: RunModel['start'] } | null | undefined} m */
function fileName(m) {
  if (!m) return 'sparsevila';
  return `sparsevila-${m.start?.policy?.method ?? 'run'}-${m.run.slice(0, 8)}`;
}

/** @param {RunSummary} summary */
function setSummary(summary) {
  const e = entry(summary.run);
  const isNew = !e.summary && !e.model;
  e.summary = summary;
  return isNew;
}

/** @param {string} run */
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
    for (const ev of e.pending ?? []) if (ev.t > maxT) applyEvent(m, ev);
    e.model = m;
    e.status = 'loaded';
  } catch (err) {
    e.status = 'unloaded';
    if (!(err instanceof ApiError && err.status === 404)) toast(`could not load run ${run.slice(0, 8)}: ${/** @type {Error} */ (err).message}`);
  } finally {
    e.pending = null;
    invalidate();
  }
}

/** @param {string} run */
function reload(run) {
  const e = runs.get(run);
  if (!e || e.local) return;
  e.model = null;
  e.status = 'unloaded';
  if (needed().includes(run)) ensureLoaded(run);
}

/**
 * @param {string} run
 * @param {TraceEvent[]} events
 */
function liveEvents(run, events) {
  const e = entry(run);
  if (e.status === 'loading') {
    e.pending?.push(...events);
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

/**
 * With "follow live" on, the run view switches to each new run as it starts (other views stay put).
 * @param {string} run
 */
function maybeFollow(run) {
  if (!$('#follow', HTMLInputElement).checked || state.run === run || state.route !== 'run') return;
  setState({ run, turn: null, turnPinned: false });
}

/**
 * Runs the current view needs in memory.
 * @returns {string[]}
 */
function needed() {
  if (state.route === 'run') return state.run ? [state.run] : [];
  if (state.route === 'compare') return [state.a, state.b].flatMap((r) => (r ? [r] : []));
  return [...runs.keys()];
}

/**
 * @param {TraceEvent[]} events
 * @param {string} name
 */
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

/** @param {File[]} files */
async function openFiles(files) {
  /** @type {string | null} */
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
      toast(`${file.name}: ${/** @type {Error} */ (err).message}`, true);
    }
  }
  if (first) setState({ route: state.route === 'sweep' ? 'sweep' : 'run', run: first, turn: null, turnPinned: false });
}

// ---------------------------------------------------------------------------------------------------------
// State and routing: #/run/<id>?turn=&layer=, #/compare/<a>/<b>, #/sweep

/** @param {Partial<PageState>} patch */
export function setState(patch) {
  if ('turn' in patch && patch.turn != null && !('turnPinned' in patch)) patch.turnPinned = true;
  if ('run' in patch && patch.run !== state.run && !('turn' in patch)) {
    patch.turn = null;
    patch.turnPinned = false;
  }
  const push = isNavigation(state, patch);
  Object.assign(state, patch);
  writeHash(push);
  for (const run of needed()) ensureLoaded(run);
  invalidate();
}

/** The state into the URL: a new history entry for another view, run or turn (so back returns), else in place. */
function writeHash(push = false) {
  const h = stateToHash(state);
  if (location.hash === h) return;
  const url = `${location.pathname}${location.search}${h}`;
  if (push) history.pushState(null, '', url);
  else history.replaceState(null, '', url);
}

/** @param {string} [hash] */
function readHash(hash = location.hash) {
  Object.assign(state, hashToPatch(hash));
}

// Back and forward between entries the page pushed (another run, turn or view).
window.addEventListener('popstate', () => {
  readHash();
  for (const run of needed()) ensureLoaded(run);
  invalidate();
});

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
/** @type {{ route: string | null, view: object | null, empty: boolean }} */
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
    const turn = state.turnPinned && state.turn != null && turns.includes(state.turn) ? state.turn : turns.length ? turns[turns.length - 1] : 0;
    state.turn = turn;
    state.layer = Math.max(0, Math.min(state.layer, Math.max(0, layerCount(m) - 1)));
    mount('run', () => createRunView(main, { setState, tooltip, fileName })).update(m, { ...state, turn });
  } else if (state.route === 'compare') {
    const loaded = list.filter((e) => e.model || e.summary);
    if (!state.a || !runs.has(state.a)) state.a = (loaded.find((e) => isDense(startOf(e))) ?? loaded[1] ?? loaded[0])?.run ?? null;
    if (!state.b || !runs.has(state.b))
      state.b = (loaded.find((e) => e.run !== state.a && !isDense(startOf(e))) ?? loaded.find((e) => e.run !== state.a))?.run ?? null;
    for (const run of needed()) ensureLoaded(run);
    const model = (/** @type {string | null} */ run) => (run ? (runs.get(run)?.model ?? null) : null);
    mount('compare', () => createCompareView(main, { setState, runLabel, fileName, tooltip })).update(model(state.a), model(state.b), state, list);
  } else {
    for (const run of needed()) ensureLoaded(run);
    mount('sweep', () => createSweepView(main, { setState, fileName, identity })).update(
      list.flatMap((e) => (e.model ? [e.model] : [])),
      state,
    );
  }
}

/**
 * The view of a route, made when the route changes.
 * @template {object} V
 * @param {string} route
 * @param {() => V} make
 * @returns {V}
 */
function mount(route, make) {
  if (mounted.route !== route || mounted.empty) {
    main.innerHTML = '';
    mounted = { route, view: make(), empty: false };
    main.dataset.route = route;
  }
  return /** @type {V} */ (mounted.view);
}

/** @param {RunEntry | null | undefined} e */
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
  for (const a of document.querySelectorAll('.tabs a')) a.classList.toggle('active', a instanceof HTMLElement && a.dataset.route === state.route);
  picker.update(
    runList().map((e) => ({ identity: identityOf(e), live: Boolean(e.summary?.live) })),
    state.run,
  );
  const dl = $('#download', HTMLAnchorElement);
  const e = state.run ? runs.get(state.run) : null;
  dl.classList.toggle('disabled', !e);
  if (e && !e.local) {
    dl.href = api.traceUrl(e.run);
    dl.download = `${fileName(e.model ?? { run: e.run })}.jsonl`;
  } else dl.removeAttribute('href');
  const status = $('#status', HTMLElement);
  status.dataset.state = serverState === 'online' ? liveState : serverState;
  $('#status-text', HTMLElement).textContent =
    serverState === 'unauthorized' ? 'no access (token?)' : serverState === 'offline' ? 'offline (files only)' : liveState === 'live' ? 'live' : liveState;
  const dropped = $('#dropped', HTMLElement);
  dropped.hidden = droppedTotal === 0;
  dropped.textContent = `dropped ${droppedTotal.toLocaleString()}`;
  dropped.dataset.count = String(droppedTotal);
}

const tooltip = createTooltip($('#tooltip', HTMLElement));
const toast = createToast($('#toast', HTMLElement));

// ---------------------------------------------------------------------------------------------------------
// Wiring.

const picker = createRunPicker($('#run-pick', HTMLElement), {
  pick: (run) => setState({ route: 'run', run }),
  changed: invalidate,
  async rename(run) {
    const e = runs.get(run);
    if (!e) return;
    const name = prompt(`Name for run ${run.slice(0, 8)} (empty: no name)`, e.summary?.name ?? e.name ?? '');
    if (name == null) return;
    try {
      if (e.local || serverState !== 'online') e.name = name.trim() || null;
      else setSummary(await api.rename(run, name));
    } catch (err) {
      toast(`could not rename: ${/** @type {Error} */ (err).message}`, true);
    }
    invalidate();
  },
});
// Every PNG export is titled with what it shows (export.js stamps it): the run, its policy, question and turn.
function exportCaption() {
  if (state.route === 'sweep') return [`Budget sweep · ${runs.size} runs`];
  const id = state.route === 'compare' ? null : state.run ? identity(state.run) : null;
  if (!id) return state.route === 'compare' ? [`${runLabel(state.a ?? '')}`, `vs ${runLabel(state.b ?? '')}`] : [];
  const turn = state.turn == null ? '' : ` · turn ${state.turn + 1}`;
  const text = state.turn == null ? id.question : (runs.get(id.run)?.model?.turns.get(state.turn)?.text ?? id.question);
  return [`${id.name ? `${id.name} · ` : ''}${id.policy} · ${id.workloadLabel} · run ${id.run.slice(0, 8)}${turn}`, text ? `“${text}”` : ''].filter(Boolean);
}
setExportCaption(exportCaption);
const fileInput = $('#file', HTMLInputElement);
fileInput.addEventListener('change', () => {
  openFiles([...(fileInput.files ?? [])]);
  fileInput.value = '';
});
$('#download', HTMLAnchorElement).addEventListener('click', (ev) => {
  const e = state.run ? runs.get(state.run) : null;
  if (e?.local) {
    ev.preventDefault();
    downloadText((e.events ?? []).map((x) => JSON.stringify(x)).join('\n') + '\n', `${fileName(e.model)}.jsonl`);
  }
});
let dragDepth = 0;
addEventListener('dragenter', (ev) => {
  if (![...(ev.dataTransfer?.types ?? [])].includes('Files')) return;
  dragDepth++;
  $('#drop-hint', HTMLElement).hidden = false;
});
addEventListener('dragleave', () => {
  if (--dragDepth <= 0) $('#drop-hint', HTMLElement).hidden = true;
});
addEventListener('dragover', (ev) => ev.preventDefault());
addEventListener('drop', (ev) => {
  ev.preventDefault();
  dragDepth = 0;
  $('#drop-hint', HTMLElement).hidden = true;
  if (ev.dataTransfer?.files?.length) openFiles([...ev.dataTransfer.files]);
});
addEventListener('resize', () => invalidate());
// The system's theme changed: the views are made again, so charts and SVGs take the new colours.
matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
  mounted = { route: null, view: null, empty: false };
  invalidate();
});

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
            if (!live?.replay(run)) reload(run);
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
window.profiler = { state, runs, setState, invalidate, exportCaption };
