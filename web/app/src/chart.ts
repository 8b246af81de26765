// Line charts over time (uPlot): a titled chart whose series grow as
// samples arrive.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { h } from "./dom";

const COLORS = ["#2f6fde", "#d9480f", "#2b8a3e", "#862e9c", "#e67700"];

export class TimeChart {
  readonly el: HTMLElement;
  private plot: uPlot | null = null;
  private data: number[][];

  constructor(
    readonly title: string,
    private series: string[],
    private opts: { bars?: boolean; yLabel?: string; xRange?: () => [number, number] } = {},
  ) {
    this.empty = h("p", { class: "muted empty" }, "no data yet");
    this.el = h("figure", { class: "chart", "data-chart": title }, h("figcaption", {}, title), this.empty);
    this.data = [[], ...series.map(() => [])];
  }

  private empty: HTMLElement;

  /** Adds a sample at `t` (seconds since the epoch). */
  push(t: number, values: (number | null)[]): void {
    this.data[0].push(t);
    values.forEach((v, i) => this.data[i + 1].push(v as number));
    if (this.data[0].length > 1800) for (const s of this.data) s.shift();
    this.draw();
  }

  set(ts: number[], values: number[][]): void {
    this.data = [ts, ...values];
    this.draw();
  }

  samples(): number {
    return this.data[0].length;
  }

  private draw(): void {
    if (!this.el.isConnected) return;
    this.empty.hidden = this.data[0].length > 0;
    if (!this.data[0].length && !this.plot) return;
    if (!this.plot) {
      const width = Math.max(280, (this.el.clientWidth || 420) - 8);
      this.plot = new uPlot(
        {
          width,
          height: 180,
          series: [
            {},
            ...this.series.map((label, i) => ({
              label,
              stroke: COLORS[i % COLORS.length],
              fill: this.opts.bars ? COLORS[i % COLORS.length] + "55" : undefined,
              paths: this.opts.bars ? uPlot.paths.bars!({ size: [0.6, 40] }) : undefined,
            })),
          ],
          // A single sample spans a minute, not years.
          scales: {
            x: {
              time: true,
              range: (_u, min, max) => this.opts.xRange?.() ?? [min, Math.max(max, min + 60)],
            },
            y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] },
          },
          axes: [{}, { label: this.opts.yLabel, size: 60 }],
        },
        this.data as uPlot.AlignedData,
        this.el,
      );
    } else this.plot.setData(this.data as uPlot.AlignedData);
  }
}
