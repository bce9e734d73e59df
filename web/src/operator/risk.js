// The operator's risk book (GET /v1/risk/book): VaR and expected shortfall, margin and its
// alert level, positions on the gateway and the venues, and the inventory against its hedges.
import { decimal, time, toScaled } from "../format.js";
import { ErrorNote, html, usePolled } from "../ui.js";
import { Panel, ScrollTable } from "./parts.js";

// the risk monitor's alert thresholds on margin usage (required over available)
const LEVELS = [
  { at: "1", label: "breach", css: "bad" },
  { at: "0.8", label: "critical", css: "bad" },
  { at: "0.5", label: "warning", css: "warn" },
];

export function alertLevel(usage) {
  if (usage === null || usage === undefined) return { label: "no margin used", css: "ok" };
  const scaled = toScaled(usage);
  for (const level of LEVELS) if (scaled >= toScaled(level.at)) return level;
  return { label: "normal", css: "ok" };
}

function percent(ratio) {
  if (ratio === null || ratio === undefined) return "—";
  // exact: a decimal ratio times 100 is a shift of the point
  const scaled = toScaled(ratio) * 100n;
  const whole = scaled / 10n ** 18n;
  const hundredths = ((scaled % 10n ** 18n) * 100n) / 10n ** 18n;
  return `${whole}.${String(hundredths).padStart(2, "0")}%`;
}

function Margin({ margin }) {
  const level = alertLevel(margin.usage);
  return html`<dl class="facts" data-testid="risk-margin">
    <dt>Equity</dt><dd>${decimal(margin.equity)}</dd>
    <dt>Maintenance</dt><dd>${decimal(margin.maintenance)}</dd>
    <dt>Usage</dt><dd>${percent(margin.usage)}</dd>
    <dt>Alert</dt><dd><span class=${`badge ${level.css}`} data-testid="margin-alert">${level.label}</span>
      ${margin.liquidatable ? html` <span class="badge bad">liquidatable</span>` : null}</dd>
  </dl>`;
}

function VaR({ measures }) {
  const columns = [
    { label: "Method", render: (m) => m.technique || m.method },
    { label: "Confidence", numeric: true, render: (m) => (m.available ? percent(m.confidence) : "—") },
    { label: "Horizon (d)", numeric: true, render: (m) => (m.available ? m.horizon_days : "—") },
    { label: "VaR", numeric: true, render: (m) => (m.available ? decimal(m.var) : html`<span class="muted">${m.reason}</span>`) },
    { label: "Expected shortfall", numeric: true, render: (m) => (m.available ? decimal(m.expected_shortfall) : "—") },
  ];
  return html`<div data-testid="risk-var">
    <${ScrollTable} caption="Value at risk and expected shortfall (quote)" columns=${columns} rows=${measures} empty="No positions to measure." />
  </div>`;
}

function Positions({ positions }) {
  const columns = [
    { label: "Instrument", render: (p) => p.instrument },
    { label: "Venue", render: (p) => p.venue || "gateway" },
    { label: "Quantity", numeric: true, render: (p) => decimal(p.quantity) },
    { label: "Entry", numeric: true, render: (p) => decimal(p.entry_price) },
    { label: "Delta", numeric: true, render: (p) => decimal(p.delta) },
    { label: "Value", numeric: true, render: (p) => decimal(p.value) },
  ];
  return html`<${ScrollTable} caption="Positions" columns=${columns} rows=${positions} empty="No positions." />`;
}

function Inventory({ inventory }) {
  if (!inventory) return html`<p class="muted small">No inventory wallet configured.</p>`;
  const columns = [
    { label: "Instrument", render: (l) => l.instrument },
    { label: "Wallet", numeric: true, render: (l) => decimal(l.wallet_position) },
    { label: "Pending", numeric: true, render: (l) => decimal(l.pending_position) },
    { label: "Hedge", numeric: true, render: (l) => decimal(l.hedge_position) },
    { label: "Net", numeric: true, render: (l) => decimal(l.net_position) },
    { label: "Fees", numeric: true, render: (l) => decimal(l.fees) },
    { label: "Mark", numeric: true, render: (l) => decimal(l.mark) },
    { label: "P&L", numeric: true, render: (l) => decimal(l.pnl) },
  ];
  return html`<div data-testid="risk-inventory">
    <p class="muted small">Inventory wallet <span class="mono">${inventory.wallet}</span>, spread ${decimal(inventory.spread_bps)} bps</p>
    <${ScrollTable} caption="Inventory against its exchange hedges" columns=${columns} rows=${inventory.lines} empty="No inventory positions." />
  </div>`;
}

export function RiskPanel({ api }) {
  const book = usePolled(() => api.get("/v1/risk/book"), 5000);
  const data = book.data;
  return html`<${Panel} title="Risk book" id="op-risk">
    <${ErrorNote} error=${book.error} />
    ${!data && !book.error ? html`<p class="muted">Loading…</p>` : null}
    ${data &&
    html`<p class="muted small">As of ${time(data.as_of)}; spots ${Object.entries(data.market.spots)
      .map(([u, s]) => `${u} ${decimal(s)}`)
      .join(", ") || "none"}</p>
      <${Margin} margin=${data.margin} />
      <${VaR} measures=${data.var} />
      <${Positions} positions=${data.positions} />
      <${Inventory} inventory=${data.inventory} />`}
  <//>`;
}
