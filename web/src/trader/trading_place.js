// What the ticket and the strategy builder share: the what-if before signing, and the
// sign-then-submit step with its progress, its refusals and the API's errors.
import { useEffect, useState } from "preact/hooks";
import { decimal, fromScaled, toScaled, units } from "../format.js";
import { ErrorNote, errorText, html } from "../ui.js";
import { signBody, SigningRefused } from "./trading_signing.js";

// POST /v1/risk/what-if for `proposal` ({order} or {strategy}), again 400 ms after it changes.
export function useWhatIf(api, proposal) {
  const [state, setState] = useState({ data: null, error: null, busy: false });
  const key = proposal ? JSON.stringify(proposal) : "";
  useEffect(() => {
    if (!proposal) {
      setState({ data: null, error: null, busy: false });
      return undefined;
    }
    let live = true;
    setState((s) => ({ ...s, busy: true }));
    const timer = setTimeout(async () => {
      try {
        const data = await api.post("/v1/risk/what-if", proposal);
        if (live) setState({ data, error: null, busy: false });
      } catch (error) {
        if (live) setState({ data: null, error, busy: false });
      }
    }, 400);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [key]);
  return state;
}

// a usage ratio as a percentage, exactly (the API's decimal string times 100, no float)
function percent(usage) {
  if (usage === null || usage === undefined) return "—";
  return `${decimal(fromScaled(toScaled(usage) * 100n))} %`;
}

export function WhatIf({ state, quote, quoteDecimals, testid }) {
  const { data, error, busy } = state;
  return html`<div class="what-if" data-testid=${testid} aria-live="polite" aria-busy=${busy ? "true" : "false"}>
    <h3>Before you sign: risk if it fills completely</h3>
    ${error && html`<${ErrorNote} error=${error} />`}
    ${!data && !error && html`<p class="muted">${busy ? "Asking the gateway…" : "Fill in the order to see its risk."}</p>`}
    ${data &&
    html`${data.pre_trade.accepted
        ? html`<p class="verdict ok" data-testid=${`${testid}-verdict`}>The gateway's pre-trade check would accept it.</p>`
        : html`<p class="verdict refused" data-testid=${`${testid}-verdict`}>
            The gateway would refuse it: ${data.pre_trade.message} (${data.pre_trade.code})
          </p>`}
      <dl class="facts">
        <dt>Maintenance margin</dt>
        <dd data-testid=${`${testid}-margin`}>
          ${decimal(data.before.margin.maintenance)} → <strong>${decimal(data.after.margin.maintenance)} ${quote}</strong>
        </dd>
        <dt>Equity</dt>
        <dd>${decimal(data.after.margin.equity)} ${quote}</dd>
        <dt>Margin usage</dt>
        <dd>${percent(data.before.margin.usage)} → ${percent(data.after.margin.usage)}</dd>
        ${data.after.margin.onchain &&
        html`<dt>Wallet's on-chain margin once it settles</dt>
          <dd data-testid=${`${testid}-onchain`}>
            needs ${units(data.after.margin.onchain.required, quoteDecimals, quote)}, has
            ${units(data.after.margin.onchain.available, quoteDecimals, quote)}
            ${data.after.margin.onchain.ok ? "" : html` <span class="stale">(short)</span>`}
          </dd>`}
        <dt>Assumed fill prices</dt>
        <dd>
          ${Object.entries(data.assumed_fill_prices).map(
            ([symbol, price]) => html`<span class="chip">${symbol} at ${decimal(price)} ${quote}</span> `,
          )}
        </dd>
      </dl>`}
  </div>`;
}

// Sign (EIP-712, in the browser wallet) and submit. `placed` is the order the API answered.
export function usePlacement({ api, chain, owner, wallet, instruments }) {
  const [step, setStep] = useState(null);
  const [error, setError] = useState(null);
  const [placed, setPlaced] = useState(null);
  async function place(kind, body) {
    setError(null);
    setPlaced(null);
    try {
      const { body: signed } = await signBody({ api, chain, owner, wallet, kind, body, instruments, progress: setStep });
      setStep("Submitting the signed order…");
      const order = await api.post(kind === "order" ? "/v1/orders" : "/v1/strategies", signed);
      setPlaced(order);
      return order;
    } catch (err) {
      setError(err);
      return null;
    } finally {
      setStep(null);
    }
  }
  return { step, error, placed, place, busy: step !== null };
}

export function PlacementStatus({ placement, testid }) {
  const { step, error, placed } = placement;
  return html`<div class="placement" aria-live="polite">
    ${step && html`<p class="notice" role="status">${step}</p>`}
    <div data-testid=${`${testid}-error`}>
      ${error && html`<${ErrorNote} error=${error} />`}
      ${error instanceof SigningRefused && error.differences.length > 0 &&
      html`<ul class="differences" aria-label="Differences between the order and the gateway's typed data">
        ${error.differences.map((d) => html`<li class="mono">${d}</li>`)}
      </ul>`}
    </div>
    ${placed &&
    html`<p class="notice" role="status" data-testid=${`${testid}-placed`}>
      Order <span class="mono">${placed.id}</span>: ${placed.status}, ${decimal(placed.filled_quantity)} of
      ${decimal(placed.quantity)} filled.
    </p>`}
  </div>`;
}

// A table region that scrolls sideways on a narrow screen and takes keyboard focus (so the
// keyboard can scroll it: axe's scrollable-region-focusable).
export function ScrollRegion({ label, testid, children }) {
  return html`<div class="trading-scroll" role="region" aria-label=${label} tabindex="0" data-testid=${testid}>${children}</div>`;
}

export { errorText };
