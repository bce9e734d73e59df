// The trading panel: pick an instrument, see its consolidated book and depth live, place a
// signed single order; build an option strategy from a preset, see its payoff and margin, sign
// and place it; follow open orders, fills and their settlement on chain.
//
// Every order is signed in the browser wallet (EIP-712) over a payload the page builds itself
// from the ticket's fields (trading_signing.js, a port of isthmus_client.signing), after
// checking that the gateway would have asked for exactly the same.
import "./trading.css";
import { useEffect, useRef, useState } from "preact/hooks";
import { decimal } from "../format.js";
import { ErrorNote, html, Section } from "../ui.js";
import { Fills, OpenOrders, useActivity } from "./trading_activity.js";
import { StrategyBuilder } from "./trading_strategy.js";
import { BookLadder, DepthPanel, OrderTicket } from "./trading_ticket.js";

const KIND_LABEL = { spot: "Spot", perpetual: "Perpetuals", option: "Options" };

function describe(instrument) {
  if (instrument.kind === "option") {
    const day = instrument.expiry ? instrument.expiry.slice(0, 10) : "";
    return `${instrument.base} ${decimal(instrument.strike)} ${instrument.right} · ${day} (${instrument.symbol})`;
  }
  return instrument.symbol;
}

function InstrumentPicker({ catalogue, symbol, onChange }) {
  const groups = ["spot", "perpetual", "option"].map((kind) => [kind, catalogue.filter((i) => i.kind === kind)]);
  return html`<label class="picker">Instrument
    <select value=${symbol} onChange=${(e) => onChange(e.currentTarget.value)} data-testid="instrument-picker">
      ${groups.map(
        ([kind, list]) =>
          list.length > 0 &&
          html`<optgroup label=${KIND_LABEL[kind]}>
            ${list.map((i) => html`<option value=${i.symbol}>${describe(i)}</option>`)}
          </optgroup>`,
      )}
    </select>
  </label>`;
}

function InstrumentFacts({ instrument }) {
  return html`<dl class="facts inline">
    <dt>Kind</dt><dd>${instrument.kind}</dd>
    <dt>Tick</dt><dd>${decimal(instrument.tick_size)} ${instrument.quote}</dd>
    <dt>Lot</dt><dd>${decimal(instrument.lot_size)} ${instrument.base}</dd>
    <dt>Minimum</dt><dd>${decimal(instrument.min_quantity)} ${instrument.base}</dd>
    ${instrument.kind === "option" &&
    html`<dt>Strike</dt><dd>${decimal(instrument.strike)} ${instrument.quote}</dd>
      <dt>Expiry</dt><dd>${instrument.expiry}</dd>
      <dt>Right</dt><dd>${instrument.right} (European, cash-settled)</dd>`}
  </dl>`;
}

// The book of `symbol`: read once over REST, then every {"type":"book"} message of the stream.
function useBook(api, stream, symbol, wallet) {
  const [book, setBook] = useState(null);
  const [error, setError] = useState(null);
  const pending = useRef(null);
  useEffect(() => {
    if (!symbol) return undefined;
    let live = true;
    setBook(null);
    setError(null);
    api
      .get(`/v1/book/${encodeURIComponent(symbol)}?depth=20`)
      .then((b) => live && setBook((current) => current ?? b))
      .catch((err) => live && setError(err));
    if (!stream) return () => (live = false);
    stream.setInterest({ books: [symbol], accounts: [wallet] });
    // conflate to one render per animation frame: books arrive many times a second
    const off = stream.onMessage((message) => {
      if (message.type !== "book" || !message.book || message.book.instrument !== symbol) return;
      const first = pending.current === null;
      pending.current = message.book;
      if (first) {
        requestAnimationFrame(() => {
          if (live && pending.current) setBook(pending.current);
          pending.current = null;
        });
      }
    });
    return () => {
      live = false;
      pending.current = null;
      off();
    };
  }, [symbol, stream, wallet]);
  return { book, error };
}

function useCatalogue(api) {
  const [catalogue, setCatalogue] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    api.get("/v1/instruments").then(setCatalogue).catch(setError);
  }, []);
  return { catalogue, error };
}

export function TradingPanel({ api, chain, stream, owner, wallet }) {
  const { catalogue, error: catalogueError } = useCatalogue(api);
  const [symbol, setSymbol] = useState(null);
  const [picked, setPicked] = useState(null);
  const activity = useActivity(api, stream, wallet);
  useEffect(() => {
    if (catalogue && !symbol && catalogue.length) setSymbol(catalogue[0].symbol);
  }, [catalogue]);
  const { book, error: bookError } = useBook(api, stream, symbol, wallet);

  if (!catalogue || !chain) {
    return html`<${Section} title="Trade" id="trade">
      <${ErrorNote} error=${catalogueError} />
      ${!catalogueError && html`<p class="muted">Loading the instruments…</p>`}
    <//>`;
  }
  const instruments = Object.fromEntries(catalogue.map((i) => [i.symbol, i]));
  const instrument = instruments[symbol] || catalogue[0];
  const options = catalogue.filter((i) => i.kind === "option");
  const props = { api, chain, owner, wallet, instruments };

  return html`<div class="trading" data-testid="trading">
    <${Section} title="Trade" id="trade">
      <div class="trade-head">
        <${InstrumentPicker} catalogue=${catalogue} symbol=${instrument.symbol} onChange=${setSymbol} />
        <${InstrumentFacts} instrument=${instrument} />
      </div>
      <div class="trade-grid">
        <${OrderTicket} ...${props} instrument=${instrument} book=${book} picked=${picked} />
        <div class="market">
          <${ErrorNote} error=${bookError} />
          <${BookLadder} book=${book} instrument=${instrument} onPick=${(price) => setPicked({ price, at: Date.now() })} />
          <${DepthPanel} book=${book} instrument=${instrument} />
        </div>
      </div>
    <//>
    <${Section} title="Strategy builder" id="strategy">
      <div data-testid="strategy-builder">
        ${options.length
          ? html`<${StrategyBuilder} ...${props} options=${options} />`
          : html`<p class="muted">No options are listed.</p>`}
      </div>
    <//>
    <${Section} title="Orders and fills" id="activity">
      <${ErrorNote} error=${activity.error} onDismiss=${() => activity.setError(null)} />
      <${OpenOrders} api=${api} activity=${activity} instruments=${instruments} />
      <${Fills} activity=${activity} instruments=${instruments} explorer=${chain.explorer_url} />
    <//>
  </div>`;
}
