// The wallet's margin under the on-chain rule (read from the wallet itself), and what the
// gateway's risk report adds: positions with their Greeks, liquidation prices, margin calls.
import { decimal, fromScaled, toScaled, units } from "../format.js";
import { html, Table } from "../ui.js";

// A table that scrolls sideways on a narrow screen, in a region the keyboard can reach (the
// shared Table's own wrapper scrolls but takes no focus: axe's scrollable-region-focusable).
export function ScrollTable({ label, testId, ...table }) {
  return html`<div class="wallet-scroll" role="region" aria-label=${label} tabindex="0" data-testid=${testId}>
    <${Table} caption=${label} ...${table} />
  </div>`;
}

// Usage thresholds of the gateway's margin alerts (README, Risk): warning, margin call.
const WARN_BPS = 5000n;
const DANGER_BPS = 8000n;

// required / available in basis points, exactly; null when nothing is required
function usageBps({ required, available }) {
  if (required === 0n) return 0n;
  if (available === 0n) return null;
  return (required * 10000n) / available;
}

function percent(bps) {
  return `${decimal(String(bps / 100n) + "." + String(bps % 100n).padStart(2, "0"))}%`;
}

export function MarginSummary({ margin, quote }) {
  const q = (amount) => units(amount, quote.decimals, quote.symbol);
  const bps = usageBps(margin);
  const shown = bps === null || bps > 10000n ? 10000n : bps;
  const level = bps === null || bps >= DANGER_BPS ? "danger" : bps >= WARN_BPS ? "warn" : "";
  const usage = bps === null ? "no collateral against the margin required" : `${percent(bps)} of the margin available is required`;
  return html`<div class="wallet-margin">
    <dl class="facts">
      <dt>Margin used</dt>
      <dd data-testid="margin-used">${q(margin.required)}</dd>
      <dt>Margin free</dt>
      <dd data-testid="margin-free">${q(margin.free)}</dd>
      <dt>Margin available</dt>
      <dd>${q(margin.available)}</dd>
    </dl>
    <div
      class=${`gauge ${level}`}
      role="meter"
      aria-label="Margin used under the on-chain rule"
      aria-valuemin="0"
      aria-valuemax="100"
      aria-valuenow=${Number(shown) / 100}
      aria-valuetext=${usage}
      data-testid="margin-gauge"
    >
      <span style=${`width: ${Number(shown) / 100}%`}></span>
    </div>
    <p class=${margin.ok ? "muted" : "error"}>
      ${margin.ok ? `On-chain rule met: ${usage}.` : `The wallet fails its on-chain margin rule: ${usage}.`}
    </p>
  </div>`;
}

const greek = (name) => ({ label: name[0].toUpperCase() + name.slice(1), numeric: true, render: (p) => decimal(p[name]) });

const POSITION_COLUMNS = [
  { label: "Instrument", render: (p) => p.instrument },
  { label: "Quantity", numeric: true, render: (p) => html`<span class=${p.quantity.startsWith("-") ? "sell" : "buy"}>${decimal(p.quantity)}</span>` },
  { label: "Entry", numeric: true, render: (p) => decimal(p.entry_price) },
  greek("value"),
  greek("delta"),
  greek("gamma"),
  greek("vega"),
  greek("theta"),
  { label: "Liquidation below", numeric: true, render: (p) => decimal(p.liquidation?.below) },
  { label: "Liquidation above", numeric: true, render: (p) => decimal(p.liquidation?.above) },
];

export function Positions({ risk }) {
  return html`<div class="wallet-risk">
    <p class="muted wallet-note">Greeks per position from the gateway's risk report; value in the quote token.</p>
    <${ScrollTable}
      label="Positions"
      testId="positions"
      columns=${POSITION_COLUMNS}
      rows=${risk ? risk.positions : []}
      rowKey=${(p) => `${p.venue}:${p.instrument}`}
      empty=${risk ? "No open positions." : "Loading…"}
    />
  </div>`;
}

const LIQUIDATION_COLUMNS = [
  { label: "Underlying", render: (l) => l.underlying },
  { label: "Now", numeric: true, render: (l) => decimal(l.current) },
  { label: "Below", numeric: true, render: (l) => decimal(l.below) },
  { label: "Above", numeric: true, render: (l) => decimal(l.above) },
  { label: "Distance", numeric: true, render: (l) => (l.distance ? `${decimal(l.distance)}` : "—") },
  { label: "State", render: (l) => (l.liquidatable ? html`<strong class="sell">liquidatable</strong>` : "ok") },
];

function marginCalls(risk, quote) {
  const calls = risk?.margin?.onchain?.margin_calls || {};
  return Object.entries(calls).map(([symbol, call]) => {
    const at = (price) => (price === null ? "—" : units(price, quote.decimals, quote.symbol));
    const words = {
      always_passes: "the on-chain rule holds at any price",
      always_fails: "the on-chain rule fails at any price",
    }[call.outcome];
    return html`<li key=${symbol}>
      ${symbol} at ${at(call.current_price)}: ${words || `the on-chain rule flips at ${at(call.threshold_price)} (${call.outcome.replaceAll("_", " ")})`}
    </li>`;
  });
}

export function RiskDetails({ risk, quote }) {
  if (!risk) return null;
  const m = risk.margin;
  return html`<div class="wallet-risk">
    <${ScrollTable}
      label="Liquidation prices"
      columns=${LIQUIDATION_COLUMNS}
      rows=${risk.liquidation}
      rowKey=${(l) => l.underlying}
      empty="No positions to liquidate."
    />
    <p class="muted wallet-note">Liquidation prices and equity are the gateway's cross-margin view.</p>
    <dl class="facts">
      <dt>Cross-margin equity</dt>
      <dd>${decimal(m.equity)} ${quote.symbol}</dd>
      <dt>Maintenance</dt>
      <dd>${decimal(m.maintenance)} ${quote.symbol}</dd>
      <dt>Usage</dt>
      <dd>${ratio(m.usage)}${m.liquidatable ? " (liquidatable)" : ""}</dd>
    </dl>
    ${m.onchain && html`<ul class="wallet-calls" aria-label="On-chain margin calls">${marginCalls(risk, quote)}</ul>`}
    ${risk.unpriced.length > 0 && html`<p class="notice">Not priced: ${risk.unpriced.join(", ")}</p>`}
  </div>`;
}

// A ratio as the API gives it ("0.09488") as a percentage, exactly.
function ratio(value) {
  return value === null || value === undefined ? "—" : `${decimal(fromScaled(toScaled(value) * 100n))}%`;
}

// The latest margin alert of the stream for this wallet, until dismissed. An alert on the
// on-chain basis carries the rule's integers (quote units); on the cross basis, decimals.
export function MarginAlert({ alert, quote, onDismiss }) {
  if (!alert) return null;
  const a = alert.alert;
  const amount = (v) => (a.basis === "onchain" ? units(v, quote.decimals, quote.symbol) : `${decimal(v)} ${quote.symbol}`);
  const danger = a.level === "margin_call" || a.level === "liquidation";
  return html`<div class=${danger ? "error" : "notice"} role="alert" data-testid="margin-alert">
    <span>
      Margin alert: ${a.level.replace("_", " ")} (was ${a.previous.replace("_", " ")}), ${ratio(a.usage)} of the margin
      available is required (${amount(a.required)} of ${amount(a.available)}, ${a.basis === "onchain" ? "on-chain rule" : "cross-margin"}).
    </span>
    <button type="button" class="link" onClick=${onDismiss} aria-label="Dismiss the margin alert">×</button>
  </div>`;
}
