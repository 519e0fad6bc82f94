/**
 * The retention map's legend as one SVG: the salience colour ramp with ticks, and swatches for kept,
 * pruned and retrieved patches. Drawn from the scale alone, so it redraws only when the scale's domain moves.
 */
import { themeColours } from './plot-theme.js';
import { COLOURS } from './retention-frame.js';
import { sourceLabel } from '../data/labels.js';

const d3 = globalThis.d3;

/**
 * @param {Element} host
 * @param {{ scale: D3SequentialScale, source: string | undefined }} what  the salience scale and source
 */
export function drawLegend(host, { scale, source }) {
  const width = 520;
  const height = 46;
  const ramp = { x: 8, y: 18, w: 200, h: 10 };
  let svg = d3.select(host).select('svg.legend');
  if (svg.empty()) svg = d3.select(host).append('svg').attr('class', 'legend');
  svg.attr('viewBox', `0 0 ${width} ${height}`).attr('width', width).attr('height', height).attr('data-max', scale.domain()[1]);
  svg.selectAll('*').remove();
  const id = `legend-grad-${Math.random().toString(36).slice(2, 8)}`;
  const grad = svg.append('defs').append('linearGradient').attr('id', id);
  const [lo, hi] = scale.domain();
  const axis = d3
    .scaleSqrt()
    .domain([lo, hi])
    .range([ramp.x, ramp.x + ramp.w]);
  for (let i = 0; i <= 16; i++) {
    const v = axis.invert(ramp.x + (ramp.w * i) / 16); // even steps along the ramp, as the √ scale spaces them
    grad
      .append('stop')
      .attr('offset', `${(i / 16) * 100}%`)
      .attr('stop-color', scale(v));
  }
  const text = (/** @type {number} */ x, /** @type {number} */ y, /** @type {string} */ s, anchor = 'start', weight = 400) =>
    svg
      .append('text')
      .attr('x', x)
      .attr('y', y)
      .attr('font-size', 10.5)
      .attr('font-family', 'Inter, system-ui, sans-serif')
      .attr('fill', themeColours().ink2)
      .attr('text-anchor', anchor)
      .attr('font-weight', weight)
      .text(s);
  text(ramp.x, 12, `salience (${sourceLabel(source)}, √ scale)`, 'start', 600);
  svg
    .append('rect')
    .attr('x', ramp.x)
    .attr('y', ramp.y)
    .attr('width', ramp.w)
    .attr('height', ramp.h)
    .attr('fill', `url(#${id})`)
    .attr('stroke', '#94a3b8')
    .attr('stroke-width', 0.5);
  const tickFormat = axis.tickFormat(4);
  for (const { v, x } of spacedTicks(axis, lo, hi)) {
    svg
      .append('line')
      .attr('x1', x)
      .attr('x2', x)
      .attr('y1', ramp.y + ramp.h)
      .attr('y2', ramp.y + ramp.h + 3)
      .attr('stroke', '#64748b');
    text(x, ramp.y + ramp.h + 13, tickFormat(v), 'middle');
  }
  /**
   * The ramp's ticks, thinned so that their labels do not touch: a √ scale crowds its small values together
   * ("0.150.20"), so a tick is kept only where its label clears the last kept one by a gap.
   * @param {D3ContinuousScale} scale
   * @param {number} from
   * @param {number} to
   */
  function spacedTicks(scale, from, to) {
    const charWidth = 6; // 10.5 px Inter digits are ~5.8 px wide
    /** @type {{ v: number, x: number }[]} */
    const kept = [];
    let lastRight = -Infinity;
    for (const v of scale.ticks(4).filter((t) => t >= from && t <= to)) {
      const x = scale(v);
      const half = (tickFormat(v).length * charWidth) / 2;
      if (x - half < lastRight + 4) continue;
      kept.push({ v, x });
      lastRight = x + half;
    }
    return kept;
  }
  // Swatches.
  let x = 236;
  /**
   * @param {string} label
   * @param {(g: D3Selection) => void} draw
   */
  const swatch = (label, draw) => {
    const g = svg.append('g').attr('transform', `translate(${x},16)`);
    draw(g);
    text(x + 20, 27, label);
    x += 20 + label.length * 6.2 + 14;
  };
  swatch('kept', (g) => g.append('rect').attr('width', 14).attr('height', 14).attr('fill', '#f8fafc').attr('stroke', '#64748b').attr('stroke-width', 0.8));
  swatch('pruned', (g) => {
    const pid = `${id}-h`;
    const p = svg
      .select('defs')
      .append('pattern')
      .attr('id', pid)
      .attr('patternUnits', 'userSpaceOnUse')
      .attr('width', 4)
      .attr('height', 4)
      .attr('patternTransform', 'rotate(45)');
    p.append('rect').attr('width', 4).attr('height', 4).attr('fill', COLOURS.prunedFill).attr('fill-opacity', 0.75);
    p.append('line')
      .attr('x1', 0)
      .attr('y1', 0)
      .attr('x2', 0)
      .attr('y2', 4)
      .attr('stroke', COLOURS.hatch)
      .attr('stroke-opacity', 0.6)
      .attr('stroke-width', 1.2);
    g.append('rect').attr('width', 14).attr('height', 14).attr('fill', `url(#${pid})`);
  });
  swatch('retrieved at the layer', (g) =>
    g
      .append('rect')
      .attr('x', 1)
      .attr('y', 1)
      .attr('width', 12)
      .attr('height', 12)
      .attr('fill', COLOURS.retrieved)
      .attr('fill-opacity', 0.14)
      .attr('stroke', COLOURS.retrieved)
      .attr('stroke-width', 2),
  );
  return svg.node();
}
