// The strategy builder: presets over the listed options of one underlying and expiry, the
// legs with their books, the payoff at expiry (exact at every strike: it is piecewise linear
// between them), the net price, the what-if margin, then sign and place as one all-or-none
// strategy.
import { useEffect, useMemo, useState } from "preact/hooks";
import { decimal, fromScaled, toScaled } from "../format.js";
import { html, usePolled } from "../ui.js";
import { ChartCredit, PayoffChart } from "./trading_charts.js";
import { PlacementStatus, ScrollRegion, usePlacement, useWhatIf, WhatIf } from "./trading_place.js";
import { newClientOrderId } from "./trading_signing.js";
import { amountProblem, product } from "./trading_ticket.js";

const ONE = 10n ** 18n;

export const PRESETS = {
  straddle: { label: "Straddle", strikes: ["Strike"] },
  strangle: { label: "Strangle", strikes: ["Put strike", "Call strike"] },
  vertical: { label: "Vertical spread", strikes: ["Long strike", "Short strike"] },
  condor: { label: "Iron condor", strikes: ["Put wing", "Put body", "Call body", "Call wing"] },
};

// The legs as written for a buyer (as isthmus_client.strategies writes them).
export function presetLegs(preset, strikes, right) {
  const [a, b, c, d] = strikes;
  switch (preset) {
    case "straddle":
      return [{ strike: a, right: "call", side: "buy" }, { strike: a, right: "put", side: "buy" }];
    case "strangle":
      if (toScaled(a) >= toScaled(b)) throw new Error("a strangle's put strike is below its call strike");
      return [{ strike: a, right: "put", side: "buy" }, { strike: b, right: "call", side: "buy" }];
    case "vertical":
      if (toScaled(a) === toScaled(b)) throw new Error("a vertical spread has two different strikes");
      return [{ strike: a, right, side: "buy" }, { strike: b, right, side: "sell" }];
    case "condor": {
      const scaled = strikes.map(toScaled);
      if (!scaled.every((k, i) => i === 0 || k > scaled[i - 1])) {
        throw new Error("an iron condor's four strikes are distinct and in rising order");
      }
      return [
        { strike: a, right: "put", side: "sell" },
        { strike: b, right: "put", side: "buy" },
        { strike: c, right: "call", side: "buy" },
        { strike: d, right: "call", side: "sell" },
      ];
    }
    default:
      throw new Error(`unknown preset ${preset}`);
  }
}

function defaultStrikes(preset, listed) {
  const n = listed.length;
  const mid = Math.floor(n / 2);
  const at = (i) => listed[Math.max(0, Math.min(n - 1, i))];
  if (preset === "straddle") return [at(mid)];
  if (preset === "strangle") return [at(mid - 1), at(mid + 1)];
  if (preset === "vertical") return [at(mid), at(mid + 1)];
  return [at(0), at(mid - 1), at(mid + 1), at(n - 1)];
}

// Payoff at expiry per the whole position (scaled BigInt), at underlying price s (scaled).
// legs: [{strike, right, side (after the strategy's side), ratio}], net: paid (+) or received (-).
export function payoffAt(legs, net, quantity, s) {
  let total = -net;
  for (const leg of legs) {
    const k = toScaled(leg.strike);
    const intrinsic = leg.right === "call" ? (s > k ? s - k : 0n) : k > s ? k - s : 0n;
    total += (leg.side === "buy" ? 1n : -1n) * BigInt(leg.ratio) * intrinsic;
  }
  return (total * quantity) / ONE;
}

export function payoffProfile(legs, price, side, quantity) {
  const oriented = legs.map((l) => ({ ...l, side: side === "buy" ? l.side : l.side === "buy" ? "sell" : "buy" }));
  const net = side === "buy" ? toScaled(price) : -toScaled(price);
  const qty = toScaled(quantity);
  const strikes = [...new Set(legs.map((l) => toScaled(l.strike)))].sort((a, b) => (a < b ? -1 : 1));
  const top = strikes[strikes.length - 1];
  const end = top + (top - strikes[0] || top / 4n) + top / 10n;
  const xs = [0n, ...strikes, end];
  const points = xs.map((x) => ({ x, y: payoffAt(oriented, net, qty, x) }));
  // the slope beyond the highest strike: calls only (non-zero: unbounded that way)
  const slope = oriented
    .filter((l) => l.right === "call")
    .reduce((acc, l) => acc + (l.side === "buy" ? 1n : -1n) * BigInt(l.ratio), 0n);
  const ys = points.map((p) => p.y);
  let max = ys.reduce((a, b) => (a > b ? a : b));
  let min = ys.reduce((a, b) => (a < b ? a : b));
  const breakevens = [];
  for (let i = 0; i + 1 < points.length; i += 1) {
    const p = points[i];
    const q = points[i + 1];
    if (p.y === 0n && i > 0) breakevens.push(p.x);
    if ((p.y < 0n && q.y > 0n) || (p.y > 0n && q.y < 0n)) {
      breakevens.push(p.x + ((q.x - p.x) * -p.y) / (q.y - p.y));
    }
  }
  return {
    points,
    max: slope > 0n ? null : max,
    min: slope < 0n ? null : min,
    breakevens,
    // the collateral the legs lock at expiry: their worst case, premium aside
    worstLegs: -points.reduce((acc, p) => {
      const legsOnly = p.y + (net * qty) / ONE;
      return legsOnly < acc ? legsOnly : acc;
    }, 0n),
  };
}

// The chart spaces points evenly whatever their x: the payoff (linear between breakpoints) is
// sampled on an even grid, plus the breakpoints themselves, so the axis stays proportional.
function evenly(points, samples = 120) {
  const xs = points.map((p) => Number(fromScaled(p.x)));
  const ys = points.map((p) => Number(fromScaled(p.y)));
  const out = xs.map((x, i) => ({ x, y: ys[i] }));
  const step = (xs[xs.length - 1] - xs[0]) / samples;
  for (let i = 0; step > 0 && i + 1 < xs.length; i += 1) {
    for (let x = Math.ceil(xs[i] / step) * step; x < xs[i + 1]; x += step) {
      out.push({ x, y: ys[i] + ((ys[i + 1] - ys[i]) * (x - xs[i])) / (xs[i + 1] - xs[i]) });
    }
  }
  return out;
}

function money(scaled, quote) {
  return `${decimal(fromScaled(scaled))} ${quote}`;
}

function useLegBooks(api, legs) {
  const symbols = legs.map((l) => l.instrument.symbol);
  const books = usePolled(
    () => Promise.all(symbols.map((s) => api.get(`/v1/book/${encodeURIComponent(s)}?depth=1`))),
    3000,
    [symbols.join(",")],
  );
  return books;
}

export function StrategyBuilder({ api, chain, owner, wallet, options, instruments }) {
  const underlyings = [...new Set(options.map((o) => o.base))];
  const [underlying, setUnderlying] = useState(underlyings[0] || "");
  const expiries = [...new Set(options.filter((o) => o.base === underlying).map((o) => o.expiry))].sort();
  const [expiry, setExpiry] = useState(expiries[0] || "");
  const series = options.filter((o) => o.base === underlying && o.expiry === expiry);
  const listed = [...new Set(series.map((o) => o.strike))].sort((a, b) => (toScaled(a) < toScaled(b) ? -1 : 1));
  const [preset, setPreset] = useState("condor");
  const [strikes, setStrikes] = useState(() => defaultStrikes("condor", listed));
  const [right, setRight] = useState("call");
  const [side, setSide] = useState("buy");
  const [quantity, setQuantity] = useState("1");
  const [price, setPrice] = useState("");
  const [tried, setTried] = useState(false);
  const placement = usePlacement({ api, chain, owner, wallet, instruments });

  useEffect(() => setStrikes(defaultStrikes(preset, listed)), [preset, underlying, expiry]);
  useEffect(() => {
    if (!expiries.includes(expiry)) setExpiry(expiries[0] || "");
  }, [underlying]);

  let legs = [];
  let legsProblem = null;
  try {
    legs = presetLegs(preset, strikes, right).map((leg) => {
      const instrument = series.find((o) => toScaled(o.strike) === toScaled(leg.strike) && o.right === leg.right);
      if (!instrument) throw new Error(`no ${leg.right} listed at ${leg.strike} for this expiry`);
      return { ...leg, ratio: 1, instrument };
    });
  } catch (err) {
    legsProblem = err.message;
    legs = [];
  }
  const quote = legs[0]?.instrument.quote ?? "USDC";
  const base = legs[0]?.instrument.base ?? underlying;
  const books = useLegBooks(api, legs);
  const bookOf = (i) => (books.data && books.data[i]) || null;
  const mids = legs.map((_, i) => bookOf(i)?.mid ?? null);
  const netMid = mids.every((m) => m !== null) && legs.length
    ? legs.reduce((acc, leg, i) => acc + (leg.side === "buy" ? 1n : -1n) * toScaled(mids[i]), 0n)
    : null;

  const tick = legs[0]?.instrument.tick_size ?? "0.01";
  const priceProblem = !price
    ? "Net price is required"
    : !/^-?\d+(\.\d+)?$/.test(price)
      ? "Net price must be a decimal number (negative: you receive it)"
      : toScaled(price.replace("-", "")) % toScaled(tick) !== 0n
        ? `Net price must be a multiple of ${decimal(tick)}`
        : null;
  const lot = legs[0]?.instrument.lot_size;
  const quantityProblem = amountProblem(quantity, lot, legs[0]?.instrument.min_quantity, "Quantity");
  const problems = [legsProblem, priceProblem, quantityProblem].filter(Boolean);

  const profile = useMemo(
    () => (problems.length ? null : payoffProfile(legs, price, side, quantity)),
    [JSON.stringify(legs.map((l) => [l.strike, l.right, l.side])), price, side, quantity, problems.length],
  );
  const chartPoints = useMemo(
    () => (profile ? evenly(profile.points) : []),
    [profile],
  );

  function body() {
    return {
      account: wallet,
      client_order_id: newClientOrderId(),
      legs: legs.map((l) => ({ instrument: l.instrument.symbol, side: l.side, ratio: l.ratio })),
      side,
      quantity,
      price,
    };
  }
  const proposal = problems.length === 0 ? { strategy: { ...body(), client_order_id: "what-if" } } : null;
  const whatIf = useWhatIf(api, proposal);

  async function submit(event) {
    event.preventDefault();
    setTried(true);
    if (problems.length) return;
    await placement.place("strategy", body());
  }

  const setStrike = (i, value) => setStrikes((s) => s.map((k, j) => (j === i ? value : k)));
  const total = !priceProblem && !quantityProblem ? product(price.replace("-", ""), quantity) : null;
  const pays = price && !price.startsWith("-") ? side === "buy" : side === "sell";

  return html`<form class="strategy" onSubmit=${submit} noValidate aria-label="Strategy builder" data-testid="strategy-form">
    <div class="row">
      <label>Underlying
        <select value=${underlying} onChange=${(e) => setUnderlying(e.currentTarget.value)}>
          ${underlyings.map((u) => html`<option value=${u}>${u}</option>`)}
        </select>
      </label>
      <label>Expiry
        <select value=${expiry} onChange=${(e) => setExpiry(e.currentTarget.value)}>
          ${expiries.map((x) => html`<option value=${x}>${x.replace("T", " ").replace(":00Z", " UTC")}</option>`)}
        </select>
      </label>
      <label>Preset
        <select value=${preset} onChange=${(e) => setPreset(e.currentTarget.value)}>
          ${Object.entries(PRESETS).map(([k, p]) => html`<option value=${k}>${p.label}</option>`)}
        </select>
      </label>
      ${preset === "vertical" &&
      html`<label>Right
        <select value=${right} onChange=${(e) => setRight(e.currentTarget.value)}>
          <option value="call">Calls</option><option value="put">Puts</option>
        </select>
      </label>`}
    </div>
    <div class="row">
      ${PRESETS[preset].strikes.map(
        (name, i) => html`<label>${name} (${quote})
          <select value=${strikes[i]} onChange=${(e) => setStrike(i, e.currentTarget.value)}>
            ${listed.map((k) => html`<option value=${k}>${decimal(k)}</option>`)}
          </select>
        </label>`,
      )}
    </div>
    ${legsProblem && html`<p class="error" role="alert">${legsProblem}</p>`}
    <${ScrollRegion} label="Legs of the strategy" testid="strategy-legs">
      <table>
        <caption>Legs as bought (selling the strategy flips each); prices in ${quote}</caption>
        <thead><tr>
          <th scope="col">Leg</th><th scope="col">Side</th><th scope="col" class="num">Ratio</th>
          <th scope="col" class="num">Bid</th><th scope="col" class="num">Ask</th><th scope="col" class="num">Mid</th>
        </tr></thead>
        <tbody>
          ${legs.map((leg, i) => {
            const book = bookOf(i);
            return html`<tr>
              <td class="mono" data-label="Leg">${leg.instrument.symbol}</td>
              <td class=${leg.side} data-label="Side">${leg.side}</td>
              <td class="num" data-label="Ratio">${leg.ratio}</td>
              <td class="num" data-label="Bid">${book?.bids[0] ? decimal(book.bids[0].price) : "—"}</td>
              <td class="num" data-label="Ask">${book?.asks[0] ? decimal(book.asks[0].price) : "—"}</td>
              <td class="num" data-label="Mid">${book?.mid ? decimal(book.mid) : "—"}</td>
            </tr>`;
          })}
        </tbody>
      </table>
    <//>
    <p class="muted" data-testid="net-mid">
      Net of the legs' mids: ${netMid === null ? "— (a leg has no quotes)" : html`<strong>${money(netMid, quote)}</strong> per unit
        <button type="button" class="link" onClick=${() => setPrice(fromScaled(netMid).replace(/\.?0+$/, ""))}>use it</button>`}
    </p>
    <fieldset class="sides">
      <legend>Side</legend>
      ${["buy", "sell"].map(
        (s) => html`<label class=${`side-option ${s} ${side === s ? "chosen" : ""}`}>
          <input type="radio" name="strategy-side" value=${s} checked=${side === s} onChange=${() => setSide(s)} />
          ${s === "buy" ? "Buy" : "Sell"}
        </label>`,
      )}
    </fieldset>
    <div class="row">
      <label>Net price per unit (${quote}; negative: a credit)
        <input name="net-price" inputmode="decimal" autocomplete="off" value=${price}
          aria-invalid=${tried && priceProblem ? "true" : "false"} onInput=${(e) => setPrice(e.currentTarget.value.trim())} />
      </label>
      <label>Quantity (${base})
        <input name="strategy-quantity" inputmode="decimal" autocomplete="off" value=${quantity}
          aria-invalid=${tried && quantityProblem ? "true" : "false"} onInput=${(e) => setQuantity(e.currentTarget.value.trim())} />
      </label>
    </div>
    <p class="summary" data-testid="strategy-net">
      ${total === null
        ? "Net: —"
        : html`You ${pays ? "pay" : "receive"} <strong>${decimal(total)} ${quote}</strong> in all
            (${decimal(price)} ${quote} × ${decimal(quantity)}).`}
    </p>
    <div class="payoff">
      <h3>Payoff at expiry (${quote}, premium included)</h3>
      <${PayoffChart} points=${chartPoints}
        label=${profile ? `Payoff at expiry from ${money(profile.min ?? 0n, quote)} to ${money(profile.max ?? 0n, quote)}; the values at each strike are in the table below` : "No payoff yet"} />
      ${profile &&
      html`<dl class="facts" data-testid="payoff-facts">
          <dt>Max profit</dt><dd data-testid="max-profit">${profile.max === null ? "unlimited" : money(profile.max, quote)}</dd>
          <dt>Max loss</dt><dd data-testid="max-loss">${profile.min === null ? "unlimited" : money(profile.min < 0n ? -profile.min : 0n, quote)}</dd>
          <dt>Breakevens (${base} at expiry)</dt><dd>${profile.breakevens.map((b) => money(b, quote)).join(", ") || "none"}</dd>
          <dt>Collateral the legs lock</dt><dd data-testid="legs-collateral">${profile.min === null ? "unlimited" : html`${money(profile.worstLegs, quote)} (their worst case at expiry)`}</dd>
        </dl>
        <${ScrollRegion} label="Payoff at expiry at each strike" testid="payoff-table">
          <table>
            <caption>Payoff at expiry at each strike</caption>
            <thead><tr><th scope="col" class="num">${base} at expiry</th><th scope="col" class="num">Payoff (${quote})</th></tr></thead>
            <tbody>
              ${profile.points.map((p) => html`<tr><td class="num">${decimal(fromScaled(p.x))}</td>
                <td class=${`num ${p.y > 0n ? "buy" : p.y < 0n ? "sell" : ""}`}>${decimal(fromScaled(p.y))}</td></tr>`)}
            </tbody>
          </table>
        <//>`}
      <${ChartCredit} />
    </div>
    <${WhatIf} state=${whatIf} quote=${quote} quoteDecimals=${legs[0]?.instrument.quote_decimals ?? 6} testid="strategy-what-if" />
    <button type="submit" class=${`primary ${side}`} disabled=${placement.busy}>
      ${placement.busy ? "Signing…" : `Sign and place the ${PRESETS[preset].label.toLowerCase()}`}
    </button>
    ${tried && problems.length > 0 && html`<p class="error" role="alert">${problems.join("; ")}</p>`}
    <${PlacementStatus} placement=${placement} testid="strategy" />
  </form>`;
}
