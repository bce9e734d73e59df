// The two charts of the trading panel, both TradingView lightweight-charts (v5) with price on
// the horizontal axis (createOptionsChart): the book's cumulative depth (two AreaSeries) and
// a strategy's payoff at expiry (a BaselineSeries around zero). Charts are pictures only: the
// exact numbers are in the tables beside them, which is what a keyboard or a screen reader
// reads (the chart is role="img" with a description).
import { useEffect, useRef } from "preact/hooks";
import { AreaSeries, BaselineSeries, createOptionsChart, LineType } from "lightweight-charts";
import { html } from "../ui.js";

const THEME = {
  layout: { background: { color: "#171d24" }, textColor: "#c9d4de", attributionLogo: false },
  grid: { vertLines: { color: "#232c36" }, horzLines: { color: "#232c36" } },
  rightPriceScale: { borderColor: "#2a333d" },
  timeScale: { borderColor: "#2a333d" },
  handleScroll: false,
  handleScale: false,
  autoSize: true,
};

function useChart(setup) {
  const box = useRef(null);
  const state = useRef(null);
  useEffect(() => {
    const chart = createOptionsChart(box.current, THEME);
    state.current = { chart, series: setup(chart) };
    return () => {
      chart.remove();
      state.current = null;
    };
  }, []);
  return [box, state];
}

// Points strictly rising in x (the chart's rule); a later duplicate replaces an earlier one.
function rising(points) {
  const byX = new Map();
  for (const p of points) if (Number.isFinite(p.time) && Number.isFinite(p.value)) byX.set(p.time, p);
  return [...byX.values()].sort((a, b) => a.time - b.time);
}

// Cumulative depth from the consolidated levels (exact strings, summed as numbers only for the
// picture): bids from the best bid down, asks from the best ask up. The chart spaces its points
// evenly whatever their x, so the depth is sampled on an even price grid (plus every level's
// own price) to keep the horizontal axis proportional to price.
export function depthPoints(book, samples = 160) {
  const bids = (book?.bids ?? []).map((l) => [Number(l.price), Number(l.quantity)]);
  const asks = (book?.asks ?? []).map((l) => [Number(l.price), Number(l.quantity)]);
  const prices = [...bids, ...asks].map(([p]) => p);
  if (!prices.length) return { bids: [], asks: [] };
  const low = Math.min(...prices);
  const high = Math.max(...prices);
  const step = (high - low) / samples || 1;
  const grid = new Set(prices);
  for (let x = low; x <= high; x += step) grid.add(Number(x.toFixed(8)));
  const xs = [...grid].sort((a, b) => a - b);
  const bestBid = bids.length ? Math.max(...bids.map(([p]) => p)) : -Infinity;
  const bestAsk = asks.length ? Math.min(...asks.map(([p]) => p)) : Infinity;
  const sum = (levels, keep) => levels.reduce((acc, [p, q]) => (keep(p) ? acc + q : acc), 0);
  return {
    bids: rising(xs.filter((x) => x <= bestBid).map((x) => ({ time: x, value: sum(bids, (p) => p >= x) }))),
    asks: rising(xs.filter((x) => x >= bestAsk).map((x) => ({ time: x, value: sum(asks, (p) => p <= x) }))),
  };
}

export function DepthChart({ book, label }) {
  const [box, state] = useChart((chart) => ({
    bids: chart.addSeries(AreaSeries, {
      lineColor: "#3fb97f",
      topColor: "rgba(63,185,127,0.45)",
      bottomColor: "rgba(63,185,127,0.05)",
      lineType: LineType.WithSteps,
      lineWidth: 2,
      priceLineVisible: false,
      lastValueVisible: false,
    }),
    asks: chart.addSeries(AreaSeries, {
      lineColor: "#f0616d",
      topColor: "rgba(240,97,109,0.45)",
      bottomColor: "rgba(240,97,109,0.05)",
      lineType: LineType.WithSteps,
      lineWidth: 2,
      priceLineVisible: false,
      lastValueVisible: false,
    }),
  }));
  useEffect(() => {
    if (!state.current) return;
    const { bids, asks } = depthPoints(book);
    state.current.series.bids.setData(bids);
    state.current.series.asks.setData(asks);
    if (bids.length || asks.length) state.current.chart.timeScale().fitContent();
  }, [book]);
  return html`<div class="chart depth-chart" ref=${box} role="img" aria-label=${label} data-testid="depth-chart"></div>`;
}

// points: [{x: number, y: number}] (the payoff's breakpoints: exact in between, it is linear)
export function PayoffChart({ points, label }) {
  const [box, state] = useChart((chart) => ({
    payoff: chart.addSeries(BaselineSeries, {
      baseValue: { type: "price", price: 0 },
      topLineColor: "#3fb97f",
      topFillColor1: "rgba(63,185,127,0.4)",
      topFillColor2: "rgba(63,185,127,0.05)",
      bottomLineColor: "#f0616d",
      bottomFillColor1: "rgba(240,97,109,0.05)",
      bottomFillColor2: "rgba(240,97,109,0.4)",
      lineWidth: 2,
      priceLineVisible: false,
    }),
  }));
  useEffect(() => {
    if (!state.current) return;
    state.current.series.payoff.setData(rising(points.map((p) => ({ time: p.x, value: p.y }))));
    if (points.length) state.current.chart.timeScale().fitContent();
  }, [points]);
  return html`<div class="chart payoff-chart" ref=${box} role="img" aria-label=${label} data-testid="payoff-chart"></div>`;
}

export function ChartCredit() {
  return html`<p class="credit muted">
    Charts by <a href="https://www.tradingview.com/" rel="noopener" target="_blank">TradingView Lightweight Charts™</a>
  </p>`;
}
