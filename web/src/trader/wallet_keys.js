// Trading keys: addresses the owner lets sign orders for the wallet within a scope (expiry,
// instruments, max notional per order). They can never withdraw. The wallet has no list of
// its keys: they are found from its KeyAuthorised events and each read back (`trading_key`).
import { useState } from "preact/hooks";
import { getAddress, isAddress } from "viem";
import { shortHash, toUnits, units } from "../format.js";
import { Confirm, ErrorNote, html, useAction, usePolled } from "../ui.js";
import { ScrollTable } from "./wallet_risk.js";
import { authoriseKey, instrumentId, MAX_KEY_INSTRUMENTS, NO_KEY_LIMIT, readKeys, revokeKey } from "./wallet_chain.js";

const DAY_MS = 86_400_000;
const KEYS_POLL_MS = 30_000;

// "YYYY-MM-DDTHH:MM" in local time, as <input type="datetime-local"> takes it
function localInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function keyRequest(form, quote) {
  if (!isAddress(form.key.trim())) throw new Error(`"${form.key}" is not an address`);
  const expiresAt = new Date(form.expires).getTime();
  if (Number.isNaN(expiresAt)) throw new Error("choose when the key expires");
  const limit = form.maxNotional.trim();
  const maxNotional = limit === "" ? NO_KEY_LIMIT : toUnits(limit, quote.decimals);
  if (maxNotional === 0n) throw new Error("a maximum notional of zero allows nothing: leave it empty for no limit");
  if (maxNotional > NO_KEY_LIMIT) throw new Error("the maximum notional is too large for a trading key");
  if (!form.all && form.instruments.length === 0) throw new Error("choose the instruments the key may trade, or allow every instrument");
  if (form.instruments.length > MAX_KEY_INSTRUMENTS) throw new Error(`at most ${MAX_KEY_INSTRUMENTS} instruments at once`);
  return {
    key: getAddress(form.key.trim()),
    expiry: BigInt(Math.floor(expiresAt / 1000)),
    allInstruments: form.all,
    maxNotional,
    instruments: form.all ? [] : form.instruments,
  };
}

function AddKey({ chain, wallet, owner, quote, instruments, onAdded }) {
  const blank = () => ({ key: "", expires: localInput(new Date(Date.now() + 30 * DAY_MS)), maxNotional: "", all: true, instruments: [] });
  const [form, setForm] = useState(blank);
  const [done, setDone] = useState(null);
  const action = useAction();
  const set = (field) => (e) => setForm({ ...form, [field]: e.currentTarget.value });
  const toggle = (id) => (e) =>
    setForm({ ...form, instruments: e.currentTarget.checked ? [...form.instruments, id] : form.instruments.filter((i) => i !== id) });

  async function submit(event) {
    event.preventDefault();
    setDone(null);
    await action.run(async () => {
      const request = keyRequest(form, quote);
      const receipt = await authoriseKey(chain, wallet, owner, request);
      setDone(`Authorised ${request.key} in block ${receipt.blockNumber} (${shortHash(receipt.transactionHash)})`);
      setForm(blank());
      onAdded();
    });
  }

  return html`<form class="wallet-key-form" onSubmit=${submit} aria-labelledby="wallet-add-key">
    <h3 id="wallet-add-key">Add a trading key</h3>
    <label>Trading key address <input class="mono" autocomplete="off" placeholder="0x…" value=${form.key} onInput=${set("key")} required /></label>
    <div class="row">
      <label>Key expires <input type="datetime-local" value=${form.expires} onInput=${set("expires")} required /></label>
      <label>
        Maximum notional per order (${quote.symbol})
        <input inputmode="decimal" autocomplete="off" placeholder="no limit" value=${form.maxNotional} onInput=${set("maxNotional")} />
      </label>
    </div>
    <label class="wallet-check">
      <input type="checkbox" checked=${form.all} onChange=${(e) => setForm({ ...form, all: e.currentTarget.checked })} />
      May trade every instrument
    </label>
    ${!form.all &&
    html`<fieldset class="wallet-instruments">
      <legend>Instruments the key may trade (at most ${MAX_KEY_INSTRUMENTS})</legend>
      ${instruments.map(
        (i) => html`<label class="wallet-check" key=${i.id}>
          <input type="checkbox" checked=${form.instruments.includes(i.id)} onChange=${toggle(i.id)} />
          ${i.symbol}
        </label>`,
      )}
    </fieldset>`}
    <button type="submit" class="primary" disabled=${action.busy}>${action.busy ? "Waiting for the wallet…" : "Authorise key"}</button>
    <${ErrorNote} error=${action.error} onDismiss=${() => action.setError(null)} />
    ${done && html`<p class="notice" role="status">${done}</p>`}
  </form>`;
}

function KeyList({ chain, wallet, owner, quote, found, onRevoked }) {
  const [revoking, setRevoking] = useState(null);
  const action = useAction();
  const date = (seconds) => new Date(Number(seconds) * 1000).toLocaleString([], { hour12: false });

  async function revoke() {
    const key = revoking;
    setRevoking(null);
    await action.run(async () => {
      await revokeKey(chain, wallet, owner, key);
      onRevoked();
    });
  }

  const columns = [
    { label: "Key", render: (k) => html`<span class="mono" data-testid="trading-key">${k.key}</span>` },
    { label: "Expires", render: (k) => date(k.expiry) },
    { label: "Instruments", render: (k) => (k.allInstruments ? "all" : k.allowed.join(", ") || "none") },
    { label: "Max notional", numeric: true, render: (k) => (k.maxNotional === null ? "no limit" : units(k.maxNotional, quote.decimals, quote.symbol)) },
    { label: "State", render: (k) => (k.active ? "active" : html`<span class="stale">expired</span>`) },
    {
      label: "Action",
      render: (k) => html`<button type="button" class="danger" onClick=${() => setRevoking(k.key)} disabled=${action.busy} aria-label=${`Revoke ${k.key}`}>Revoke</button>`,
    },
  ];
  return html`<div class="wallet-key-list">
    <p class="muted wallet-note">
      Found from the wallet's KeyAuthorised events, each read back from the wallet now: a revoked key has no record and
      is not listed. A key signs orders within its scope and can never withdraw.
    </p>
    <${ScrollTable}
      label="Trading keys"
      testId="trading-keys"
      columns=${columns}
      rows=${found ? found.keys : []}
      rowKey=${(k) => k.key}
      empty=${found ? "No trading keys." : "Loading…"}
    />
    <${ErrorNote} error=${action.error} onDismiss=${() => action.setError(null)} />
    <${Confirm} open=${revoking !== null} title="Revoke this trading key?" confirmLabel="Revoke key" onConfirm=${revoke} onCancel=${() => setRevoking(null)}>
      <p class="mono">${revoking}</p>
      <p>None of its signatures settles from now on, orders it signed before included.</p>
    <//>
  </div>`;
}

export function TradingKeys({ api, chain, wallet, owner, quote }) {
  const catalogue = usePolled(async () => {
    const answer = await api.get("/v1/instruments");
    const listed = Array.isArray(answer) ? answer : answer.instruments;
    return listed.map((i) => ({ symbol: i.symbol, id: instrumentId(chain, i) })).filter((i) => i.id);
  }, 0, [wallet]);
  const instruments = catalogue.data || [];
  const found = usePolled(() => readKeys(wallet, instruments), KEYS_POLL_MS, [wallet, instruments.length]);
  return html`<div class="wallet-keys">
    <${ErrorNote} error=${catalogue.error} />
    <${ErrorNote} error=${found.error} />
    <${KeyList} chain=${chain} wallet=${wallet} owner=${owner} quote=${quote} found=${found.data} onRevoked=${found.reload} />
    <${AddKey} chain=${chain} wallet=${wallet} owner=${owner} quote=${quote} instruments=${instruments} onAdded=${found.reload} />
  </div>`;
}
