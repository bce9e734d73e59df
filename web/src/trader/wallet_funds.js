// Deposit (an ERC-20 transfer from the owner to the wallet: the wallet counts what it holds)
// and withdraw (the wallet's `withdraw`, owner only, refused beyond the margin rule), both
// through the browser wallet. Amounts are typed as decimals and converted exactly.
import { useState } from "preact/hooks";
import { shortHash, toUnits, units } from "../format.js";
import { ErrorNote, html, useAction } from "../ui.js";
import { deposit, readWallet, withdraw } from "./wallet_chain.js";

function amountIn(text, token) {
  const amount = toUnits(text, token.decimals);
  if (amount === 0n) throw new Error("enter an amount above zero");
  return amount;
}

// Facts for a refused deposit or withdrawal, read when it is refused.
async function refusalFacts(kind, chain, wallet, owner, token, reason) {
  const state = await readWallet(chain, wallet, owner);
  const now = state.tokens.find((t) => t.symbol === token.symbol);
  const held = kind === "deposit" ? now.ownerBalance : now.balance;
  const { required, available, free } = state.margin;
  const q = (v) => units(v, state.quote.decimals, state.quote.symbol);
  if (reason === "erc20: transfer amount exceeds balance") {
    return `${kind === "deposit" ? "your address" : "the wallet"} holds ${units(held, token.decimals, token.symbol)}`;
  }
  if (reason !== "wallet: margin") return null;
  const positions = `its open option positions require ${q(required)} of the ${q(available)} of margin it has`;
  if (token.symbol === state.quote.symbol) {
    return `at most ${units(held < free ? held : free, token.decimals, token.symbol)} is free (${positions})`;
  }
  return positions;
}

function FundsForm({ kind, tokens, onSubmit }) {
  const [symbol, setSymbol] = useState(tokens[0].symbol);
  const [amount, setAmount] = useState("");
  const [done, setDone] = useState(null);
  const action = useAction();
  const token = tokens.find((t) => t.symbol === symbol);
  const verb = kind === "deposit" ? "Deposit" : "Withdraw";

  async function submit(event) {
    event.preventDefault();
    setDone(null);
    await action.run(async () => {
      const value = amountIn(amount, token);
      const receipt = await onSubmit(token, value);
      setDone(`${verb === "Deposit" ? "Deposited" : "Withdrew"} ${units(value, token.decimals, token.symbol)} in block ${receipt.blockNumber} (${shortHash(receipt.transactionHash)})`);
      setAmount("");
    });
  }

  const id = `wallet-${kind}`;
  return html`<form class="wallet-funds" onSubmit=${submit} aria-labelledby=${`${id}-title`}>
    <h3 id=${`${id}-title`}>${verb}</h3>
    <div class="row">
      <label>
        Token to ${kind}
        <select value=${symbol} onChange=${(e) => setSymbol(e.currentTarget.value)}>
          ${tokens.map((t) => html`<option value=${t.symbol}>${t.symbol}</option>`)}
        </select>
      </label>
      <label>
        Amount to ${kind}
        <input
          inputmode="decimal"
          autocomplete="off"
          placeholder="0.0"
          value=${amount}
          onInput=${(e) => setAmount(e.currentTarget.value)}
          required
        />
      </label>
    </div>
    <p class="muted wallet-hint">
      ${kind === "deposit"
        ? `Your address holds ${units(token.ownerBalance, token.decimals, token.symbol)}.`
        : `The wallet holds ${units(token.balance, token.decimals, token.symbol)}.`}
      ${" "}At most ${token.decimals} decimals.
    </p>
    <button type="submit" class="primary" disabled=${action.busy}>${action.busy ? "Waiting for the wallet…" : verb}</button>
    <${ErrorNote} error=${action.error} onDismiss=${() => action.setError(null)} />
    ${done && html`<p class="notice" role="status">${done}</p>`}
  </form>`;
}

export function Funds({ chain, wallet, owner, state, onChanged }) {
  const tokens = state.tokens;
  async function depositTo(token, amount) {
    const explain = (reason) => refusalFacts("deposit", chain, wallet, owner, token, reason);
    const receipt = await deposit(chain, token, wallet, owner, amount, explain);
    onChanged();
    return receipt;
  }
  async function withdrawFrom(token, amount) {
    const explain = (reason) => refusalFacts("withdraw", chain, wallet, owner, token, reason);
    const receipt = await withdraw(chain, token, wallet, owner, amount, explain);
    onChanged();
    return receipt;
  }
  return html`<div class="wallet-forms">
    <${FundsForm} kind="deposit" tokens=${tokens} onSubmit=${depositTo} />
    <${FundsForm} kind="withdraw" tokens=${tokens} onSubmit=${withdrawFrom} />
  </div>`;
}
