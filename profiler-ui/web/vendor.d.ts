/**
 * The two libraries the page loads as scripts (index.html: /vendor/d3.js, /vendor/plotly.js) and uses as
 * globals — declared here as far as the page uses them, since the package ships neither library's types
 * (d3 v7: https://d3js.org/api; Plotly: https://plotly.com/javascript/plotlyjs-function-reference/).
 * Chart data and layouts stay loose objects: Plotly validates them at run time.
 */

type D3Primitive = string | number | boolean | null | undefined;
type D3Value<D> = D3Primitive | ((d: D, i: number) => D3Primitive);

interface D3Selection<D = unknown> {
  select(selector: string): D3Selection<D>;
  selectAll(selector: string): D3Selection<unknown>;
  append(name: string): D3Selection<D>;
  attr(name: string): string;
  attr(name: string, value: D3Value<D>): this;
  style(name: string, value: D3Value<D>): this;
  text(value: D3Value<D>): this;
  data<T>(values: readonly T[], key?: (d: T) => unknown): D3Selection<T>;
  join(enter: string | ((enter: D3Selection<D>) => D3Selection<D>)): D3Selection<D>;
  each(fn: (this: Element, d: D, i: number) => void): this;
  on(type: string, listener: (event: Event, d: D) => void): this;
  call(fn: (selection: D3Selection<D>) => void): this;
  remove(): this;
  empty(): boolean;
  node(): Element | null;
}

interface D3Axis {
  (selection: D3Selection<any>): void;
  ticks(count: number): D3Axis;
  tickValues(values: readonly unknown[]): D3Axis;
  tickFormat(format: (value: any) => string): D3Axis;
  tickSizeOuter(size: number): D3Axis;
}

interface D3ContinuousScale<Out = number> {
  (value: number): Out;
  domain(): number[];
  domain(domain: readonly number[]): this;
  range(range: readonly number[]): this;
  nice(): this;
  invert(value: number): number;
  ticks(count?: number): number[];
  tickFormat(count?: number): (value: number) => string;
}

interface D3SequentialScale {
  (value: number): string;
  domain(): number[];
  domain(domain: readonly number[]): this;
}

interface D3BandScale<K> {
  (value: K): number | undefined;
  domain(): K[];
  domain(domain: readonly K[]): this;
  range(range: readonly number[]): this;
  paddingInner(padding: number): this;
  bandwidth(): number;
}

interface D3 {
  select(target: string | Element): D3Selection<unknown>;
  format(specifier: string): (value: number) => string;
  mean(values: Iterable<number>): number | undefined;
  max<T>(values: Iterable<T>, accessor: (d: T) => number): number | undefined;
  range(stop: number): number[];
  tickStep(start: number, stop: number, count: number): number;
  rgb(colour: string): { r: number; g: number; b: number };
  interpolateInferno(t: number): string;
  scaleLinear(): D3ContinuousScale;
  scaleSqrt(): D3ContinuousScale;
  scaleBand<K>(): D3BandScale<K>;
  scaleSequentialSqrt(interpolator: (t: number) => string): D3SequentialScale;
  axisLeft(scale: D3ContinuousScale): D3Axis;
  axisBottom<K>(scale: D3BandScale<K>): D3Axis;
}

/** A div Plotly drew into: Plotly adds its data and an event emitter. */
interface PlotlyElement extends HTMLElement {
  data?: unknown[];
  on(event: 'plotly_click', handler: (ev: { points?: { x?: unknown; y?: unknown; customdata?: unknown }[] }) => void): void;
}

interface PlotlyStatic {
  react(root: HTMLElement, data: readonly object[], layout?: object, config?: object): Promise<PlotlyElement>;
  relayout(root: HTMLElement, update: object): Promise<PlotlyElement>;
  purge(root: HTMLElement): void;
  toImage(root: HTMLElement, options: { format: 'png' | 'jpeg' | 'webp' | 'svg'; width: number; height: number; scale?: number }): Promise<string>;
}

declare var d3: D3;
declare var Plotly: PlotlyStatic;

interface Window {
  /** The page's state and models, for tests and the console (app.js). */
  profiler: unknown;
}
