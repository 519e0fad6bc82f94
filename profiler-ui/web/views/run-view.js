/**
 * One run: the toolbar (turn, layer, display options), the run summary, the retention map, the token
 * panel, the conversation, the retrieval heatmap and the timeline. Composes the views; each one redraws
 * itself only when what it reads changed. For a long video the heatmap comes before the frames, whose
 * strip scrolls on its own. The page's keys (token-panel.js `KEYS`) are answered here.
 */
import { framesNamed, layerCount, turnList } from '../data/run-queries.js';
import { download, plotToDataUrl, plotsToDataUrl, retentionToDataUrl } from '../export.js';
import { createConversation } from './conversation.js';
import { createPanel } from './panel.js';
import { createRetentionMap } from './retention-map.js';
import { createRetrievalHeatmap } from './retrieval-heatmap.js';
import { createRunSummary } from './run-summary.js';
import { child } from './dom.js';
import { createDecodeSteps, createStageTimeline } from './timeline.js';
import { createTokenPanel } from './token-panel.js';

/**
 * @typedef {import('../data/run-model.js').RunModel} RunModel
 * @typedef {import('../router.js').PageState} PageState
 * @typedef {import('../router.js').ViewContext} ViewContext
 * @typedef {import('./overlays.js').Tooltip} Tooltip
 */

/**
 * @param {HTMLElement} root
 * @param {ViewContext & { tooltip: Tooltip }} context
 */
export function createRunView(root, { setState, tooltip, fileName }) {
  root.innerHTML = '';
  const view = document.createElement('div');
  view.className = 'run-view';
  root.appendChild(view);

  const toolbar = document.createElement('div');
  toolbar.className = 'toolbar';
  toolbar.innerHTML = `
    <label>turn <select id="turn" aria-label="turn"></select></label>
    <label class="layer">layer <input id="layer" type="range" min="0" max="0" step="1" value="0" aria-label="layer"><output id="layer-out">0</output></label>
    <span class="sep"></span>
    <label><input id="heat" type="checkbox" checked> salience heat</label>
    <label>frames <select id="size"><option value="auto">auto</option><option value="s">small</option><option value="m">medium</option><option value="l">large</option></select></label>
    <label>heatmap <select id="hm-mode"><option value="auto">auto</option><option value="hits">hits</option><option value="scores">scores</option><option value="frames">hits per frame</option></select></label>`;
  view.appendChild(toolbar);
  const turnSel = child(toolbar, '#turn', HTMLSelectElement);
  const layerIn = child(toolbar, '#layer', HTMLInputElement);
  const layerOut = child(toolbar, '#layer-out', HTMLOutputElement);
  const heatIn = child(toolbar, '#heat', HTMLInputElement);
  const sizeSel = child(toolbar, '#size', HTMLSelectElement);
  const modeSel = child(toolbar, '#hm-mode', HTMLSelectElement);
  turnSel.addEventListener('change', () => setState({ turn: Number(turnSel.value) }));
  layerIn.addEventListener('input', () => setState({ layer: Number(layerIn.value) }));
  heatIn.addEventListener('change', () => setState({ heat: heatIn.checked }));
  sizeSel.addEventListener('change', () => setState({ size: sizeSel.value }));
  modeSel.addEventListener('change', () => setState({ hmMode: modeSel.value }));

  const summaryHost = document.createElement('div');
  view.appendChild(summaryHost);
  const summary = createRunSummary(summaryHost);

  // Two columns that stack independently (no row alignment, so no gaps), then full-width panels.
  const grid = document.createElement('div');
  grid.className = 'run-columns';
  grid.innerHTML = '<div class="col-main"></div><div class="col-side"></div>';
  view.appendChild(grid);
  const left = child(grid, '.col-main', HTMLElement);
  const right = child(grid, '.col-side', HTMLElement);
  const below = document.createElement('div');
  below.className = 'run-below';
  view.appendChild(below);

  /** @type {{ m: RunModel, turn: number, layer: number } | null} */
  let current = null;
  const name = (/** @type {string} */ what) => `${fileName(current?.m)}-${what}.png`;

  const retentionPanel = createPanel(left, {
    id: 'p-retention',
    title: 'Retention map',
    subtitle: 'tokens kept at prefill by salience · the layer’s retrieval set for the turn',
    exportPng: async () => {
      const parts = retention.exportNodes();
      if (parts) download(await retentionToDataUrl(parts), name(`retention-turn${(current?.turn ?? 0) + 1}-l${current?.layer}`));
    },
  });
  const retention = createRetentionMap(retentionPanel.body, { tooltip, onPick: (image, token) => pick({ image, token }) });

  const tokenPanelHost = createPanel(right, {
    id: 'p-token',
    title: 'Token',
    subtitle: 'a patch’s layers, turns and ranks · search frames and questions · ? for keys',
  });
  const tokenPanel = createTokenPanel(tokenPanelHost.body, {
    onFrame: (image) => retention.focusFrame(image),
    onTurn: (turn) => setState({ turn }),
    onCell: (turn, layer) => setState({ turn, layer }),
  });

  /** @param {{ image: number, token: number } | null} p */
  function pick(p) {
    tokenPanel.show(p);
    retention.select(p);
    setState({});
  }

  const convPanel = createPanel(right, { id: 'p-conversation', title: 'Conversation', subtitle: 'answers, timings, fidelity vs a dense twin' });
  const conversation = createConversation(convPanel.body, { onFrame: (image) => retention.focusFrame(image) });

  const stepsPanel = createPanel(right, {
    id: 'p-steps',
    title: 'Decode steps',
    subtitle: 'latency per step · visual tokens attended (dotted)',
    exportPng: async () => download(await plotToDataUrl(steps.plots()[0]), name('decode-steps')),
  });
  const steps = createDecodeSteps(stepsPanel.body);

  const hmPanel = createPanel(left, {
    id: 'p-heatmap',
    title: 'Retrieval hits',
    subtitle: 'layers × retained visual tokens, for the chosen turn · click a row to pick its layer',
    exportPng: async () => download(await plotToDataUrl(heatmap.plot), name(`retrieval-turn${(current?.turn ?? 0) + 1}`)),
  });
  const heatmap = createRetrievalHeatmap(hmPanel.body, { onPickLayer: (layer) => setState({ layer }) });

  const tlPanel = createPanel(below, {
    id: 'p-timeline',
    title: 'Stage timeline',
    subtitle: 'spans per turn on the run’s clock · time per stage',
    exportPng: async () => download(await plotsToDataUrl(timeline.plots()), name('timeline')),
  });
  const timeline = createStageTimeline(tlPanel.body);

  document.addEventListener('keydown', onKey);

  /**
   * The run view's keys: layer, turn and frame steps, search, help. Not while typing in a field, and not once
   * the view has left the page (another route mounted).
   * @param {KeyboardEvent} ev
   */
  function onKey(ev) {
    if (!view.isConnected) return document.removeEventListener('keydown', onKey);
    const target = ev.target;
    if (!current || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (target instanceof HTMLInputElement || target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement) return;
    const { m, turn, layer } = current;
    const step = (/** @type {number[]} */ list, /** @type {number} */ at, /** @type {number} */ by) => {
      const i = list.indexOf(at);
      return list[Math.max(0, Math.min(list.length - 1, (i < 0 ? 0 : i) + by))];
    };
    /** @type {Record<string, () => void>} */
    const keys = {
      l: () => setState({ layer: Math.min(layer + 1, Math.max(0, layerCount(m) - 1)) }),
      L: () => setState({ layer: Math.max(0, layer - 1) }),
      t: () => setState({ turn: step(turnList(m), turn, 1) }),
      T: () => setState({ turn: step(turnList(m), turn, -1) }),
      f: () => frameStep(1),
      F: () => frameStep(-1),
      '/': () => tokenPanel.focusSearch(),
      '?': () => tokenPanel.toggleHelp(),
      Escape: () => tokenPanel.toggleHelp(false),
    };
    const act = keys[ev.key];
    if (!act) return;
    ev.preventDefault();
    act();
  }

  /**
   * The next or previous frame: the inspected token's twin there (the same patch, another moment), or the
   * frame's first patch.
   * @param {number} by
   */
  function frameStep(by) {
    const images = retention.images();
    if (!images.length) return;
    const picked = tokenPanel.picked();
    const focused = document.activeElement?.closest('.frame');
    const from = picked?.image ?? (focused instanceof HTMLElement ? Number(focused.dataset.image) : -1);
    const i = images.indexOf(from);
    const next = images[i < 0 ? (by > 0 ? 0 : images.length - 1) : Math.max(0, Math.min(images.length - 1, i + by))];
    if (picked) pick({ image: next, token: picked.token });
    retention.focusFrame(next, picked?.token);
  }

  /**
   * @param {RunModel} m
   * @param {PageState & { turn: number }} state
   */
  function update(m, state) {
    if (current && current.m !== m) retention.select(null); // another run: the token panel forgets its pick too
    current = { m, turn: state.turn, layer: state.layer };
    const turns = turnList(m);
    const tk = turns.join(',');
    if (turnSel.dataset.key !== tk) {
      turnSel.innerHTML = (turns.length ? turns : [0]).map((t) => `<option value="${t}">${t + 1}</option>`).join('');
      turnSel.dataset.key = tk;
    }
    turnSel.value = String(state.turn);
    const layers = Math.max(1, layerCount(m));
    layerIn.max = String(layers - 1);
    layerIn.value = String(state.layer);
    layerOut.textContent = `${state.layer} / ${layers - 1}`;
    heatIn.checked = state.heat;
    sizeSel.value = state.size;
    modeSel.value = state.hmMode;

    summary.update(m);
    // A long video: the heatmap first, the frames (in their own scroll area) after it.
    const long = m.images.size > 6;
    if (long !== (hmPanel.el.nextElementSibling === retentionPanel.el)) {
      if (long) left.insertBefore(hmPanel.el, retentionPanel.el);
      else left.insertBefore(retentionPanel.el, hmPanel.el);
    }
    retention.update(m, state);
    retention.setNamed(framesNamed(m, m.turns.get(state.turn)?.text));
    tokenPanel.update(m, state);
    conversation.update(m);
    heatmap.update(m, { turn: state.turn, layer: state.layer, mode: state.hmMode });
    timeline.update(m);
    steps.update(m);
    view.dataset.run = m.run;
    view.dataset.turn = String(state.turn);
    view.dataset.layer = String(state.layer);
  }

  return { update, retention, heatmap, tokenPanel };
}
