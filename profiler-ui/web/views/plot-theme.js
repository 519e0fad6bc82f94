/**
 * One look for every Plotly chart: fonts, margins, the stage palette, and the config (no logo, PNG via our
 * button) — in the light or the dark theme, as the system asks (prefers-color-scheme, the same switch as
 * style.css). D3 views and exports take their ink and paper from `themeColours()` too.
 */

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

/** The two themes' colours for charts (the page's own are style.css's custom properties, which match). */
const THEMES = {
  light: { paper: '#ffffff', ink: '#0f172a', ink2: '#334155', muted: '#64748b', text: '#1e293b', grid: '#eef2f7', zero: '#cbd5e1', axis: '#94a3b8' },
  dark: { paper: '#111827', ink: '#f1f5f9', ink2: '#cbd5e1', muted: '#94a3b8', text: '#e2e8f0', grid: '#1f2937', zero: '#374151', axis: '#64748b' },
};

/** Whether the system asks for dark colours. */
export function isDark() {
  return typeof matchMedia === 'function' && matchMedia('(prefers-color-scheme: dark)').matches;
}

/** The current theme's chart colours. */
export function themeColours() {
  return isDark() ? THEMES.dark : THEMES.light;
}

const FONT_FAMILY = 'Inter, "Segoe UI", system-ui, -apple-system, sans-serif';

/**
 * @param {{ xaxis?: object, yaxis?: object } & Record<string, unknown>} [extra]
 */
export function baseLayout(extra = {}) {
  const c = themeColours();
  const axis = { gridcolor: c.grid, zerolinecolor: c.zero, linecolor: c.axis, ticks: 'outside', ticklen: 3 };
  return {
    font: { family: FONT_FAMILY, size: 11, color: c.text },
    paper_bgcolor: c.paper,
    plot_bgcolor: c.paper,
    margin: { l: 52, r: 14, t: 10, b: 40 },
    hoverlabel: { font: { family: FONT_FAMILY, size: 11 } },
    legend: { orientation: 'h', x: 0, y: 1.02, yanchor: 'bottom', font: { size: 10.5 } },
    ...extra,
    xaxis: { ...axis, ...(extra.xaxis ?? {}) },
    yaxis: { ...axis, ...(extra.yaxis ?? {}) },
  };
}
