// The trader's MarginWallet: create it, see what it holds and owes (balances from the chain,
// margin under the on-chain rule, positions with Greeks and liquidation prices from the
// gateway's risk report, margin alerts from the stream), deposit, withdraw, trading keys.
import "./wallet.css";
import { useEffect, useState } from "preact/hooks";
import { units } from "../format.js";
import { ErrorNote, html, Section, useAction, usePolled } from "../ui.js";
import { createWallet, readWallet } from "./wallet_chain.js";
import { Funds } from "./wallet_funds.js";
import { TradingKeys } from "./wallet_keys.js";
import { MarginAlert, MarginSummary, Positions, RiskDetails, ScrollTable } from "./wallet_risk.js";

const POLL_MS = 10_000;

function CreateWallet({ chain, owner, onWalletChanged }) {
  const action = useAction();
  async function create() {
    await action.run(async () => {
      await createWallet(chain, owner);
      await onWalletChanged();
    });
  }
  return html`<${Section} title="Wallet" id="wallet">
    <p>
      ${owner} has no MarginWallet yet. The factory makes one, owned by this address: only it can withdraw, and
      trades settle only as it signs.
    </p>
    <button type="button" class="primary" onClick=${create} disabled=${action.busy}>
      ${action.busy ? "Waiting for the wallet…" : "Create wallet"}
    </button>
    <${ErrorNote} error=${action.error} />
  <//>`;
}

// Refreshes on every order or fill event of the wallet, and keeps its latest margin alert.
function useWalletEvents(stream, wallet, reload) {
  const [alert, setAlert] = useState(null);
  useEffect(() => {
    if (!stream) return undefined;
    stream.setInterest({ accounts: [wallet] });
    return stream.onMessage((message) => {
      if (!message.account || message.account.toLowerCase() !== wallet.toLowerCase()) return;
      if (message.type === "risk.margin_alert") setAlert(message);
      if (/^(order|fill)\./.test(message.type) || message.type === "risk.margin_alert") reload();
    });
  }, [stream, wallet]);
  return [alert, () => setAlert(null)];
}

function Balances({ state }) {
  const columns = [
    { label: "Token", render: (t) => t.symbol },
    {
      label: "In the wallet",
      numeric: true,
      render: (t) => html`<span data-testid=${`balance-${t.symbol}`}>${units(t.balance, t.decimals, t.symbol)}</span>`,
    },
  ];
  return html`<${ScrollTable} label="Balances" columns=${columns} rows=${state.tokens} rowKey=${(t) => t.symbol} />`;
}

function Overview({ wallet, owner, state, alert, dismissAlert, onRefresh, updated }) {
  const quote = state.quote;
  return html`<div class="wallet-overview">
    <dl class="facts">
      <dt>Wallet</dt>
      <dd class="mono" data-testid="wallet-address">${wallet}</dd>
      <dt>Owner</dt>
      <dd class="mono">${owner}</dd>
      <dt>Trading</dt>
      <dd>${state.paused ? html`<strong class="stale">paused by the owner</strong>` : "open"}</dd>
      <dt>Max notional per order</dt>
      <dd>${state.maxNotional === null ? "no limit" : units(state.maxNotional, quote.decimals, quote.symbol)}</dd>
    </dl>
    <${MarginAlert} alert=${alert} quote=${quote} onDismiss=${dismissAlert} />
    <${Balances} state=${state} />
    <${MarginSummary} margin=${state.margin} quote=${quote} />
    <p class="muted wallet-updated">
      Read from the chain at ${updated}. <button type="button" class="link" onClick=${onRefresh}>Refresh</button>
    </p>
  </div>`;
}

function WalletView({ api, chain, stream, owner, wallet }) {
  const state = usePolled(async () => ({ ...(await readWallet(chain, wallet, owner)), at: new Date() }), POLL_MS, [wallet, owner]);
  const risk = usePolled(() => api.get(`/v1/accounts/${wallet}/risk`), POLL_MS, [wallet, api.token]);
  function reload() {
    state.reload();
    risk.reload();
  }
  const [alert, dismissAlert] = useWalletEvents(stream, wallet, reload);
  const data = state.data;
  const updated = data ? data.at.toLocaleTimeString([], { hour12: false }) : "";
  return html`
    <${Section} title="Wallet" id="wallet">
      <${ErrorNote} error=${state.error} />
      ${data
        ? html`<${Overview} wallet=${wallet} owner=${owner} state=${data} alert=${alert} dismissAlert=${dismissAlert} onRefresh=${reload} updated=${updated} />`
        : !state.error && html`<p class="muted" role="status">Reading the wallet…</p>`}
    <//>
    <${Section} title="Positions and risk" id="wallet-risk" className="wide">
      <${ErrorNote} error=${risk.error} />
      <${Positions} risk=${risk.data} />
      ${data && html`<${RiskDetails} risk=${risk.data} quote=${data.quote} />`}
    <//>
    ${data &&
    html`<${Section} title="Deposit and withdraw" id="wallet-funds">
      <${Funds} chain=${chain} wallet=${wallet} owner=${owner} state=${data} onChanged=${reload} />
    <//>`}
    ${data &&
    html`<${Section} title="Trading keys" id="wallet-keys" className="wide">
      <${TradingKeys} api=${api} chain=${chain} wallet=${wallet} owner=${owner} quote=${data.quote} />
    <//>`}
  `;
}

export function WalletPanel(props) {
  const { wallet } = props;
  if (wallet === undefined) {
    return html`<${Section} title="Wallet" id="wallet"><p class="muted" role="status">Looking up your wallet…</p><//>`;
  }
  if (wallet === null) return html`<${CreateWallet} ...${props} />`;
  return html`<${WalletView} ...${props} />`;
}
