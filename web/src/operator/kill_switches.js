// Kill switches: engage (global or one account) and release, each after a confirmation.
// Engaging an account's switch shows what happened to its working orders.
import { useState } from "preact/hooks";
import { query } from "../api.js";
import { decimal, time } from "../format.js";
import { ErrorNote, html, useAction, usePolled } from "../ui.js";
import { Panel, ScrollTable } from "./parts.js";

const WORKING = ["accepted", "partially_filled"];
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

async function workingOrders(api, account) {
  const found = [];
  for (const status of WORKING) {
    const page = await api.get(`/v1/orders${query({ account, status, limit: 500 })}`);
    found.push(...page.items);
  }
  return found;
}

function AffectedOrders({ result }) {
  const columns = [
    { label: "Order", render: (o) => html`<span class="mono">${o.id}</span>` },
    { label: "Side", render: (o) => html`<span class=${o.side}>${o.side}</span>` },
    { label: "Instrument", render: (o) => o.instrument },
    { label: "Quantity", numeric: true, render: (o) => decimal(o.quantity) },
    { label: "Price", numeric: true, render: (o) => decimal(o.price) },
    { label: "Status", render: (o) => html`<span data-testid="affected-order-status">${o.status}</span>` },
    { label: "Reason", render: (o) => html`<span class="wrap">${o.status_reason || "—"}</span>` },
    { label: "Updated", render: (o) => time(o.updated_at) },
  ];
  return html`<div class="notice" role="status" data-testid="kill-switch-result">
    <p>
      Kill switch on <span class="mono">${result.scope}</span> ${result.engaged ? "engaged" : "released"}:
      <strong data-testid="kill-switch-cancelled">${result.cancelled_orders}</strong> working order(s) cancelled.
    </p>
    ${result.orders &&
    html`<${ScrollTable}
      caption="That account's working orders before the switch, as they stand now"
      columns=${columns}
      rows=${result.orders}
      rowKey=${(o) => o.id}
      empty="It had no working orders."
    />`}
  </div>`;
}

export function KillSwitchPanel({ api, confirm }) {
  const switches = usePolled(() => api.get("/v1/risk/kill-switches"), 3000);
  const [scope, setScope] = useState("account");
  const [account, setAccount] = useState("");
  const [reason, setReason] = useState("");
  const [result, setResult] = useState(null);
  const action = useAction();

  function target() {
    if (scope === "global") return "global";
    const clean = account.trim();
    if (!ADDRESS.test(clean)) throw new Error("the account is a 0x address of 40 hex digits");
    return clean;
  }

  async function set(targetScope, engaged, why) {
    await action.run(async () => {
      const before = targetScope === "global" || !engaged ? null : await workingOrders(api, targetScope);
      const state = await api.put(`/v1/risk/kill-switches/${targetScope}`, { engaged, reason: why || null });
      const orders = before ? await Promise.all(before.map((o) => api.get(`/v1/orders/${o.id}`))) : null;
      setResult({ ...state, orders });
      switches.reload();
    });
  }

  function engage(event) {
    event.preventDefault();
    let chosen;
    try {
      chosen = target();
    } catch (err) {
      action.setError(err);
      return;
    }
    action.setError(null);
    const why = reason.trim();
    confirm({
      title: "Engage the kill switch?",
      confirmLabel: "Engage",
      body: html`<p>
          ${chosen === "global"
            ? "Every new order is refused and every working order is cancelled."
            : html`New orders of <span class="mono">${chosen}</span> are refused and its working orders cancelled.`}
        </p>
        ${why ? html`<p>Reason: ${why}</p>` : null}`,
      run: () => set(chosen, true, why),
    });
  }

  function release(s) {
    confirm({
      title: "Release the kill switch?",
      confirmLabel: "Release",
      body: html`<p>Orders in scope <span class="mono">${s.scope}</span> are accepted again.</p>`,
      run: () => set(s.scope, false, null),
    });
  }

  const columns = [
    { label: "Scope", render: (s) => html`<span class="mono">${s.scope}</span>` },
    {
      label: "State",
      render: (s) => html`<span class=${`badge ${s.engaged ? "bad" : "ok"}`} data-testid=${`switch-state-${s.scope}`}>${s.engaged ? "engaged" : "released"}</span>`,
    },
    { label: "Reason", render: (s) => html`<span class="wrap">${s.reason || "—"}</span>` },
    {
      label: "Action",
      render: (s) =>
        s.engaged
          ? html`<button type="button" onClick=${() => release(s)} data-testid=${`release-${s.scope}`}>Release</button>`
          : html`<span class="muted">—</span>`,
    },
  ];
  return html`<${Panel} title="Kill switches" id="op-kill">
    <${ErrorNote} error=${switches.error} />
    <div data-testid="kill-switches">
      <${ScrollTable} caption="Switches by scope" columns=${columns} rows=${switches.data || []} rowKey=${(s) => s.scope} empty="None engaged." />
    </div>
    <form onSubmit=${engage} class="form" data-testid="kill-switch-form">
      <fieldset class="row">
        <legend>Scope</legend>
        <label class="inline"><input type="radio" name="ks-scope" value="account" checked=${scope === "account"} onChange=${() => setScope("account")} /> One account</label>
        <label class="inline"><input type="radio" name="ks-scope" value="global" checked=${scope === "global"} onChange=${() => setScope("global")} /> Global</label>
      </fieldset>
      ${scope === "account" &&
      html`<label>
        Account
        <input value=${account} onInput=${(e) => setAccount(e.currentTarget.value)} placeholder="0x…" spellcheck="false" data-testid="kill-switch-account" />
      </label>`}
      <label>
        Reason
        <input value=${reason} maxlength="200" onInput=${(e) => setReason(e.currentTarget.value)} data-testid="kill-switch-reason" />
      </label>
      <button type="submit" class="danger" disabled=${action.busy}>Engage kill switch…</button>
    </form>
    <${ErrorNote} error=${action.error} onDismiss=${() => action.setError(null)} />
    ${result && html`<${AffectedOrders} result=${result} />`}
  <//>`;
}
