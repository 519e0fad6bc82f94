/** One look for every Plotly chart: fonts, margins, the stage palette, and the config (no logo, PNG via our button). */

/**
 * A colour per stage of a turn: a stage the schema adds fails the page's type-check here until it has one.
 * @satisfies {Record<import('../data/run-model.js').TurnStage, string>}
 */
export const STAGE_COLOURS = {
  images: '#94a3b8',
  encode: '#8b5cf6',
  prune: '#ec4899',
  prefill: '#f59e0b',
  retrieve: '#06b6d4',
  decode: '#10b981',
};

/** Run A / run B in the comparison, and a categorical palette for several runs. */
export const RUN_COLOURS = ['#2563eb', '#ea580c', '#16a34a', '#9333ea', '#dc2626', '#0891b2', '#ca8a04', '#db2777'];

export const PLOT_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ['toImage', 'lasso2d', 'select2d', 'autoScale2d'] };

const FONT = { family: 'Inter, "Segoe UI", system-ui, -apple-system, sans-serif', size: 11, color: '#1e293b' };

/**
 * @param {{ xaxis?: object, yaxis?: object } & Record<string, unknown>} [extra]
 */
export function baseLayout(extra = {}) {
  return {
    font: FONT,
    paper_bgcolor: '#ffffff',
    plot_bgcolor: '#ffffff',
    margin: { l: 52, r: 14, t: 10, b: 40 },
    hoverlabel: { font: { family: FONT.family, size: 11 } },
    legend: { orientation: 'h', x: 0, y: 1.02, yanchor: 'bottom', font: { size: 10.5 } },
    ...extra,
    xaxis: { gridcolor: '#eef2f7', zerolinecolor: '#cbd5e1', linecolor: '#94a3b8', ticks: 'outside', ticklen: 3, ...(extra.xaxis ?? {}) },
    yaxis: { gridcolor: '#eef2f7', zerolinecolor: '#cbd5e1', linecolor: '#94a3b8', ticks: 'outside', ticklen: 3, ...(extra.yaxis ?? {}) },
  };
}
