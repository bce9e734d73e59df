// Venues (live or stale by the rule of their kind, as the consolidated book decides) and the
// consolidated book of one instrument, live from the stream, with each venue's share of the
// depth on screen.
import { useEffect, useState } from "preact/hooks";
import { decimal, time, toScaled } from "../format.js";
import { ErrorNote, html, usePolled } from "../ui.js";
import { Panel, ScrollTable } from "./parts.js";

const KIND = { cex: "exchange", amm: "pool", internal: "internal book" };
const LEVELS = 10;

function StateBadge({ state, testid }) {
  return html`<span class=${`badge ${state}`} data-testid=${testid}>${state === "live" ? "live" : "stale"}</span>`;
}

export function VenuesPanel({ api }) {
  const venues = usePolled(() => api.get("/v1/venues"), 1000);
  const data = venues.data;
  const columns = [
    { label: "Venue", render: (v) => html`<strong>${v.name}</strong> <span class="muted">${KIND[v.kind] || v.kind}</span>` },
    { label: "State", render: (v) => html`<${StateBadge} state=${v.state} testid=${`venue-state-${v.name}`} />` },
    { label: "Last update", render: (v) => html`<span title=${v.last_update || ""}>${time(v.last_update)}</span>` },
    { label: "Age (s)", numeric: true, render: (v) => (v.age_seconds === null ? "—" : decimal(v.age_seconds, { trim: false })) },
    { label: "Failures", numeric: true, render: (v) => html`<span data-testid=${`venue-failures-${v.name}`}>${v.failures}</span>` },
    { label: "Reconnects", numeric: true, render: (v) => html`<span data-testid=${`venue-reconnects-${v.name}`}>${v.reconnects}</span>` },
    { label: "Last error", render: (v) => html`<span class="wrap">${v.last_error || "—"}</span>` },
    { label: "Rule", render: (v) => html`<span class="wrap muted">${v.staleness_rule}</span>` },
  ];
  return html`<${Panel} title="Venues" id="op-venues" wide>
    <${ErrorNote} error=${venues.error} />
    ${data &&
    html`<p class="muted small">
      An exchange silent for more than ${decimal(data.stale_after_seconds)} s leaves the consolidated book.
    </p>`}
    <div data-testid="venues">
      <${ScrollTable}
        caption="Market-data feeds"
        columns=${columns}
        rows=${data ? data.venues : []}
        rowKey=${(v) => v.name}
        empty=${data ? "No venues." : "Loading…"}
      />
    </div>
  <//>`;
}

// Each venue's share of the quantity on the levels shown, per side: exact (scaled BigInts),
// as a percentage with two decimals.
export function venueShares(levels) {
  const totals = new Map();
  let all = 0n;
  for (const level of levels) {
    for (const v of level.venues) {
      const q = toScaled(v.quantity);
      totals.set(v.venue, (totals.get(v.venue) || 0n) + q);
      all += q;
    }
  }
  return [...totals.entries()]
    .sort((a, b) => (b[1] > a[1] ? 1 : b[1] < a[1] ? -1 : 0))
    .map(([venue, q]) => {
      const hundredths = all === 0n ? 0n : (q * 10000n) / all;
      const pct = `${hundredths / 100n}.${String(hundredths % 100n).padStart(2, "0")}`;
      return { venue, share: pct, hundredths: Number(hundredths) };
    });
}

function Shares({ side, levels }) {
  const shares = venueShares(levels);
  if (!shares.length) return html`<p class="muted small">No ${side} on screen.</p>`;
  return html`<ul class="shares" aria-label=${`Share of the ${side} depth shown`} data-testid=${`shares-${side}`}>
    ${shares.map(
      (s) => html`<li key=${s.venue}>
        <span class="share-name">${s.venue}</span>
        <span class="share-bar" aria-hidden="true"><span style=${`width:${s.hundredths / 100}%`}></span></span>
        <span class="num" data-testid=${`share-${side}-${s.venue}`}>${s.share}%</span>
      </li>`,
    )}
  </ul>`;
}

function Side({ label, levels, kind }) {
  const columns = [
    { label: "Price (all-in)", numeric: true, render: (l) => html`<span class=${kind}>${decimal(l.price)}</span>` },
    { label: "Quantity", numeric: true, render: (l) => decimal(l.quantity) },
    {
      label: "Venues",
      render: (l) => html`<span class="wrap">${l.venues.map((v) => `${v.venue} ${decimal(v.quantity)} @ ${decimal(v.price)}`).join(", ")}</span>`,
    },
  ];
  return html`<div class="book-side">
    <${ScrollTable} caption=${label} columns=${columns} rows=${levels} rowKey=${(l) => l.price} empty="No levels." />
  </div>`;
}

export function BookPanel({ api, stream }) {
  const [symbol, setSymbol] = useState("WETH/USDC");
  const [book, setBook] = useState(null);
  const [error, setError] = useState(null);
  const instruments = usePolled(() => api.get("/v1/instruments"), 0);

  useEffect(() => {
    let live = true;
    setBook(null);
    setError(null);
    api
      .get(`/v1/book/${symbol}?depth=${LEVELS}`)
      .then((b) => live && setBook((current) => current || b))
      .catch((err) => live && setError(err));
    if (!stream) return () => (live = false);
    stream.setInterest({ books: [symbol] });
    const off = stream.onMessage((message) => {
      if (message.type === "book" && message.book && message.book.instrument === symbol) setBook(message.book);
    });
    return () => {
      live = false;
      off();
      stream.setInterest({ books: [] });
    };
  }, [symbol, stream]);

  const bids = book ? book.bids.slice(0, LEVELS) : [];
  const asks = book ? book.asks.slice(0, LEVELS) : [];
  const symbols = instruments.data ? instruments.data.map((i) => i.symbol) : [symbol];
  return html`<${Panel}
    title="Consolidated book"
    wide
    id="op-book"
    actions=${html`<label class="inline">
      Instrument
      <select value=${symbol} onChange=${(e) => setSymbol(e.currentTarget.value)} data-testid="book-instrument">
        ${symbols.map((s) => html`<option value=${s}>${s}</option>`)}
      </select>
    </label>`}
  >
    <${ErrorNote} error=${error || instruments.error} />
    ${book &&
    html`<dl class="facts">
      <dt>Mid</dt><dd data-testid="book-mid">${decimal(book.mid)}</dd>
      <dt>Live venues</dt><dd data-testid="book-live">${book.live_venues.join(", ") || "none"}</dd>
      <dt>Stale venues</dt><dd data-testid="book-stale" class=${book.stale_venues.length ? "stale" : ""}>${book.stale_venues.join(", ") || "none"}</dd>
      <dt>As of</dt><dd>${time(book.timestamp)}</dd>
    </dl>`}
    <div class="book-grid" data-testid="book">
      <div>
        <h3>Bids</h3>
        <${Shares} side="bids" levels=${bids} />
        <${Side} label=${`${symbol} bids, best first`} levels=${bids} kind="buy" />
      </div>
      <div>
        <h3>Asks</h3>
        <${Shares} side="asks" levels=${asks} />
        <${Side} label=${`${symbol} asks, best first`} levels=${asks} kind="sell" />
      </div>
    </div>
  <//>`;
}
