/**
 * Per frame: tokens kept at prefill (grey) and tokens the chosen layer retrieved (cyan), as one compact
 * bar chart — where in a video the question looks, without drawing every frame. Click a bar to jump to
 * its frame.
 */
import { COLOURS } from './retention-frame.js';

const d3 = globalThis.d3;

/** @typedef {ReturnType<typeof import('../data/run-queries.js').perImageCounts>[number]} FrameCounts */

/**
 * Bars by image index; the axis and tooltips count frames from 1, as the prompt does.
 * @param {HTMLElement} host
 * @param {FrameCounts[]} rows
 * @param {{ onPick?: (image: number) => void, width?: number, label?: (image: number) => string }} [options]
 */
export function drawFrameBars(host, rows, { onPick, width = host.clientWidth || 900, label = (i) => `frame ${i + 1}` } = {}) {
  const height = 92;
  const m = { l: 40, r: 8, t: 8, b: 22 };
  let svg = d3.select(host).select('svg.frame-bars');
  if (svg.empty()) {
    svg = d3.select(host).append('svg').attr('class', 'frame-bars');
    svg.append('g').attr('class', 'y-axis');
    svg.append('g').attr('class', 'x-axis');
    svg.append('g').attr('class', 'bars');
    svg.append('text').attr('class', 'y-label');
  }
  svg.attr('viewBox', `0 0 ${width} ${height}`).attr('width', width).attr('height', height);
  const x = d3
    .scaleBand()
    .domain(rows.map((r) => r.image))
    .range([m.l, width - m.r])
    .paddingInner(0.15);
  const y = d3
    .scaleLinear()
    .domain([0, d3.max(rows, (r) => r.kept) || 1])
    .nice()
    .range([height - m.b, m.t]);
  svg.select('g.y-axis').attr('transform', `translate(${m.l},0)`).call(d3.axisLeft(y).ticks(3).tickSizeOuter(0)).attr('font-size', 10);
  const every = Math.max(1, Math.ceil(rows.length / 16));
  svg
    .select('g.x-axis')
    .attr('transform', `translate(0,${height - m.b})`)
    .call(
      d3
        .axisBottom(x)
        .tickValues(x.domain().filter((_, i) => i % every === 0))
        .tickFormat((i) => String(i + 1))
        .tickSizeOuter(0),
    )
    .attr('font-size', 10);
  svg
    .select('text.y-label')
    .attr('x', 4)
    .attr('y', m.t + 2)
    .attr('font-size', 10)
    .attr('fill', '#475569')
    .attr('dominant-baseline', 'hanging')
    .text('');
  const g = svg
    .select('g.bars')
    .selectAll('g.bar')
    .data(rows, (r) => r.image)
    .join((enter) => {
      const b = enter.append('g').attr('class', 'bar').style('cursor', 'pointer');
      b.append('rect').attr('class', 'kept');
      b.append('rect').attr('class', 'retrieved');
      b.append('title');
      return b;
    });
  g.attr('data-image', (r) => r.image).on('click', (_, r) => onPick?.(r.image));
  g.select('rect.kept')
    .attr('x', (r) => x(r.image))
    .attr('width', x.bandwidth())
    .attr('y', (r) => y(r.kept))
    .attr('height', (r) => y(0) - y(r.kept))
    .attr('fill', '#cbd5e1');
  g.select('rect.retrieved')
    .attr('x', (r) => (x(r.image) ?? 0) + x.bandwidth() * 0.2)
    .attr('width', x.bandwidth() * 0.6)
    .attr('y', (r) => y(r.retrieved ?? 0))
    .attr('height', (r) => y(0) - y(r.retrieved ?? 0))
    .attr('fill', COLOURS.retrieved);
  g.select('title').text((r) => `${label(r.image)}: kept ${r.kept}/${r.total}` + (r.retrieved == null ? '' : `, retrieved ${r.retrieved}`));
  return svg.node();
}
