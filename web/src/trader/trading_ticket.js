// The order ticket for one instrument, and the consolidated book beside it (a ladder with
// each level's venues, and the cumulative depth chart).
import { useEffect, useState } from "preact/hooks";
import { decimal, fromScaled, toScaled } from "../format.js";
import { html } from "../ui.js";
import { ChartCredit, DepthChart } from "./trading_charts.js";
import { PlacementStatus, ScrollRegion, usePlacement, useWhatIf, WhatIf } from "./trading_place.js";
import { newClientOrderId } from "./trading_signing.js";

const DECIMAL = /^\d+(\.\d+)?$/;

// Why `text` is not a valid amount for this step, or null.
export function amountProblem(text, step, minimum, what) {
  if (!text) return `${what} is required`;
  if (!DECIMAL.test(text)) return `${what} must be a positive decimal number, like 1.25`;
  const value = toScaled(text);
  if (value <= 0n) return `${what} must be above zero`;
  if (step && value % toScaled(step) !== 0n) return `${what} must be a multiple of ${decimal(step)}`;
  if (minimum && value < toScaled(minimum)) return `${what} must be at least ${decimal(minimum)}`;
  return null;
}

export function product(a, b) {
  return fromScaled((toScaled(a) * toScaled(b)) / 10n ** 18n);
}

function venues(level, quote) {
  return level.venues
    .map((v) => `${v.venue} ${decimal(v.price)} × ${decimal(v.quantity)}`)
    .join("; ") + (quote ? "" : "");
}

export function BookLadder({ book, instrument, onPick, rows = 8 }) {
  const quote = instrument.quote;
  const base = instrument.base;
  if (!book) return html`<p class="muted">Loading the book…</p>`;
  const asks = book.asks.slice(0, rows).reverse();
  const bids = book.bids.slice(0, rows);
  const line = (level, side) => html`<tr class=${side}>
    <td class="num">
      <button type="button" class="link price-pick" onClick=${() => onPick(level.price)}
        aria-label=${`Use ${side === "ask" ? "ask" : "bid"} price ${decimal(level.price)} ${quote}`}>${decimal(level.price)}</button>
    </td>
    <td class="num">${decimal(level.quantity)}</td>
    <td class="venues">${venues(level)}</td>
  </tr>`;
  return html`<${ScrollRegion} label=${`Book of ${instrument.symbol}`} testid="book"><div class="book">
    <table>
      <caption>
        Consolidated book, all-in taker prices in ${quote} (quantity in ${base}).
        Mid ${book.mid ? `${decimal(book.mid)} ${quote}` : "—"}.
        Live: ${book.live_venues.join(", ") || "none"}${book.stale_venues.length ? html`; <span class="stale">stale: ${book.stale_venues.join(", ")}</span>` : ""}.
      </caption>
      <thead><tr><th scope="col" class="num">Price</th><th scope="col" class="num">Quantity</th><th scope="col">Venues (own price × quantity)</th></tr></thead>
      <tbody>
        ${asks.length === 0 && html`<tr class="ask"><td colspan="3" class="empty">No asks.</td></tr>`}
        ${asks.map((l) => line(l, "ask"))}
        <tr class="spread"><th scope="row" colspan="3">${book.mid ? `mid ${decimal(book.mid)} ${quote}` : "no mid"}</th></tr>
        ${bids.map((l) => line(l, "bid"))}
        ${bids.length === 0 && html`<tr class="bid"><td colspan="3" class="empty">No bids.</td></tr>`}
      </tbody>
    </table>
  </div><//>`;
}

export function OrderTicket({ api, chain, owner, wallet, instrument, instruments, book, picked }) {
  const [side, setSide] = useState("buy");
  const [price, setPrice] = useState("");
  const [quantity, setQuantity] = useState("");
  const [tif, setTif] = useState("gtc");
  const [expires, setExpires] = useState("");
  const [postOnly, setPostOnly] = useState(false);
  const [smart, setSmart] = useState(false);
  const [tried, setTried] = useState(false);
  const placement = usePlacement({ api, chain, owner, wallet, instruments });

  useEffect(() => {
    if (picked) setPrice(picked.price);
  }, [picked]);
  useEffect(() => {
    setPrice("");
    setTried(false);
  }, [instrument.symbol]);

  const signable = instrument.kind !== "perpetual";
  const priceProblem = amountProblem(price, instrument.tick_size, null, "Price");
  const quantityProblem = amountProblem(quantity, instrument.lot_size, instrument.min_quantity, "Quantity");
  const expiresProblem = tif === "gtd" && !expires ? "Good-till-date needs its expiry" : null;
  const problems = [priceProblem, quantityProblem, expiresProblem].filter(Boolean);
  const effectiveTif = smart ? "ioc" : tif;

  function body() {
    const out = {
      account: wallet,
      client_order_id: newClientOrderId(),
      instrument: instrument.symbol,
      side,
      type: "limit",
      quantity,
      price,
      time_in_force: effectiveTif,
    };
    if (postOnly && !smart && (tif === "gtc" || tif === "gtd")) out.post_only = true;
    if (smart) out.route = "smart";
    if (tif === "gtd" && !smart) out.expires_at = new Date(expires).toISOString();
    return out;
  }
  const proposal = problems.length === 0 && signable ? { order: { ...body(), client_order_id: "what-if" } } : null;
  const whatIf = useWhatIf(api, proposal);

  async function submit(event) {
    event.preventDefault();
    setTried(true);
    if (problems.length || !signable) return;
    await placement.place("order", body());
  }

  const id = (name) => `ticket-${name}`;
  const fieldError = (name, problem) =>
    tried && problem ? html`<span class="field-error" id=${id(`${name}-error`)}>${problem}</span>` : null;
  const notional = !priceProblem && !quantityProblem ? product(price, quantity) : null;

  return html`<form class="ticket" onSubmit=${submit} aria-label=${`Order ticket for ${instrument.symbol}`} data-testid="order-ticket" noValidate>
    <fieldset class="sides">
      <legend>Side</legend>
      ${["buy", "sell"].map(
        (s) => html`<label class=${`side-option ${s} ${side === s ? "chosen" : ""}`}>
          <input type="radio" name="ticket-side" value=${s} checked=${side === s} onChange=${() => setSide(s)} />
          ${s === "buy" ? "Buy" : "Sell"}
        </label>`,
      )}
    </fieldset>
    <div class="row">
      <label>Type
        <select value="limit" aria-describedby=${id("type-note")}>
          <option value="limit">Limit</option>
          <option value="market" disabled>Market (cannot be signed)</option>
        </select>
      </label>
      <label>Time in force
        <select value=${effectiveTif} disabled=${smart} onChange=${(e) => setTif(e.currentTarget.value)}>
          <option value="gtc">Good till cancelled</option>
          <option value="gtd">Good till date</option>
          <option value="ioc">Immediate or cancel</option>
          <option value="fok">Fill or kill</option>
        </select>
      </label>
    </div>
    <p class="hint muted" id=${id("type-note")}>
      Every order is signed with a limit price the wallet enforces on chain, so there are no market
      orders: to take liquidity, set a limit through the book with immediate-or-cancel, or route it smart.
    </p>
    <div class="row">
      <label>Price (${instrument.quote}, tick ${decimal(instrument.tick_size)})
        <input name="price" inputmode="decimal" autocomplete="off" value=${price}
          aria-invalid=${tried && priceProblem ? "true" : "false"} aria-describedby=${id("price-error")}
          onInput=${(e) => setPrice(e.currentTarget.value.trim())} />
        ${fieldError("price", priceProblem)}
      </label>
      <label>Quantity (${instrument.base}, lot ${decimal(instrument.lot_size)})
        <input name="quantity" inputmode="decimal" autocomplete="off" value=${quantity}
          aria-invalid=${tried && quantityProblem ? "true" : "false"} aria-describedby=${id("quantity-error")}
          onInput=${(e) => setQuantity(e.currentTarget.value.trim())} />
        ${fieldError("quantity", quantityProblem)}
      </label>
    </div>
    ${tif === "gtd" && !smart &&
    html`<label>Expires at (your local time)
      <input type="datetime-local" value=${expires} onInput=${(e) => setExpires(e.currentTarget.value)} aria-describedby=${id("expires-error")} />
      ${fieldError("expires", expiresProblem)}
    </label>`}
    <div class="row checks">
      <label class="check"><input type="checkbox" checked=${postOnly && !smart} disabled=${smart || tif === "ioc" || tif === "fok"}
        onChange=${(e) => setPostOnly(e.currentTarget.checked)} /> Post-only (rest, never take)</label>
      <label class="check"><input type="checkbox" checked=${smart} onChange=${(e) => setSmart(e.currentTarget.checked)} />
        Smart-route across venues now (IOC)</label>
    </div>
    ${!signable && html`<p class="error" role="alert">${instrument.symbol} does not settle on chain: it cannot be signed from this wallet.</p>`}
    <p class="summary" data-testid="ticket-summary">
      ${side === "buy" ? "Buy" : "Sell"} ${quantity ? decimal(quantity) : "—"} ${instrument.base} at ${price ? decimal(price) : "—"} ${instrument.quote}
      ${notional !== null ? html` = <strong>${decimal(notional)} ${instrument.quote}</strong>` : ""}
    </p>
    <${WhatIf} state=${whatIf} quote=${instrument.quote} quoteDecimals=${instrument.quote_decimals} testid="ticket-what-if" />
    <button type="submit" class=${`primary ${side}`} disabled=${placement.busy || !signable}>
      ${placement.busy ? "Signing…" : `Sign and place ${side}`}
    </button>
    ${tried && problems.length > 0 && html`<p class="error" role="alert">${problems.join("; ")}</p>`}
    <${PlacementStatus} placement=${placement} testid="ticket" />
  </form>`;
}

export function DepthPanel({ book, instrument }) {
  const best = (side) => (book && book[side][0] ? `${decimal(book[side][0].price)} ${instrument.quote}` : "none");
  return html`<div class="depth">
    <h3>Depth</h3>
    <${DepthChart} book=${book}
      label=${`Cumulative depth of ${instrument.symbol}: best bid ${best("bids")}, best ask ${best("asks")}; the levels are in the book table`} />
    <p class="legend muted"><span class="buy">■</span> bids (cumulative ${instrument.base}) <span class="sell">■</span> asks</p>
    <${ChartCredit} />
  </div>`;
}
