// The wallet's open orders (with cancel) and its fills with their settlement, live from
// /v1/stream (order events, fill.recorded, fill.settled), read over REST at start and again
// whenever the stream comes back (it may have missed events while it was down).
//
// A settled fill shows its transaction hash in full, with a copy button, the block, and a
// "Verify" button that reads the receipt through the trader's own wallet connection. The
// devnet has no block explorer to link to, and a hash cut to "0x12…ab" is not something a
// trader can check: the full hash and the receipt from their own node are.
import { useEffect, useRef, useState } from "preact/hooks";
import { decimal, time } from "../format.js";
import { publicClient } from "../session.js";
import { ErrorNote, html, Table } from "../ui.js";
import { ScrollRegion } from "./trading_place.js";

const OPEN = new Set(["accepted", "partially_filled", "pending_new", "new"]);

async function allOrders(api, wallet) {
  const found = [];
  let cursor = null;
  for (let page = 0; page < 20; page += 1) {
    const q = new URLSearchParams({ account: wallet, limit: "500" });
    if (cursor) q.set("cursor", cursor);
    const answer = await api.get(`/v1/orders?${q}`);
    found.push(...answer.items);
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  return found;
}

export function useActivity(api, stream, wallet) {
  const [orders, setOrders] = useState(new Map());
  const [fills, setFills] = useState(new Map());
  const [error, setError] = useState(null);
  const apiRef = useRef(api);
  apiRef.current = api;

  function upsertOrder(order) {
    setOrders((current) => {
      const known = current.get(order.id);
      if (known && known.version > order.version) return current;
      const next = new Map(current);
      next.set(order.id, { ...known, ...order });
      return next;
    });
  }
  function mergeFills(list) {
    setFills((current) => {
      const next = new Map(current);
      for (const fill of list) next.set(fill.id, { ...next.get(fill.id), ...fill });
      return next;
    });
  }
  async function loadFills(orderId) {
    try {
      mergeFills(await apiRef.current.get(`/v1/orders/${encodeURIComponent(orderId)}/fills`));
    } catch (err) {
      setError(err);
    }
  }
  async function reload() {
    try {
      const list = await allOrders(apiRef.current, wallet);
      setOrders(new Map(list.map((o) => [o.id, o])));
      setError(null);
      const traded = list.filter((o) => o.filled_quantity && Number(o.filled_quantity) > 0).slice(-30);
      await Promise.all(traded.map((o) => loadFills(o.id)));
    } catch (err) {
      setError(err);
    }
  }

  useEffect(() => {
    reload();
  }, [wallet]);

  useEffect(() => {
    if (!stream) return undefined;
    let seenDown = false;
    const offStatus = stream.onStatus((status) => {
      if (status === "down") seenDown = true;
      if (status === "live" && seenDown) {
        seenDown = false;
        reload();
      }
    });
    const offMessage = stream.onMessage((message) => {
      if (message.account && message.account.toLowerCase() !== wallet.toLowerCase()) return;
      if (message.type.startsWith("order.") && message.order) {
        upsertOrder(message.order);
        if (message.type !== "order.accepted" && message.type !== "order.cancelled") loadFills(message.order.id);
      } else if (message.type === "fill.recorded" && message.fill) {
        mergeFills([{ settlement: "pending", ...message.fill }]);
      } else if (message.type === "fill.settled" && message.fill) {
        mergeFills([{ ...message.fill, settlement: "settled" }]);
      }
    });
    return () => {
      offStatus();
      offMessage();
    };
  }, [stream, wallet]);

  // a safety net for a settlement message missed between two reads: pending fills re-read
  useEffect(() => {
    const pending = [...fills.values()].filter((f) => f.settlement === "pending").map((f) => f.order_id);
    if (!pending.length) return undefined;
    const timer = setTimeout(() => new Set(pending).forEach(loadFills), 5000);
    return () => clearTimeout(timer);
  }, [fills]);

  return { orders, fills, error, setError, upsertOrder, reload };
}

function describe(order) {
  if (order.instrument) return order.instrument;
  return (order.legs ?? []).map((l) => `${l.side} ${l.ratio > 1 ? l.ratio + "× " : ""}${l.instrument}`).join(" / ");
}

export function OpenOrders({ api, activity, instruments }) {
  const quoteOf = (o) => (instruments[o.instrument ?? (o.legs ?? [])[0]?.instrument]?.quote ?? "");
  const baseOf = (o) => (instruments[o.instrument ?? (o.legs ?? [])[0]?.instrument]?.base ?? "");
  const [busy, setBusy] = useState(null);
  const open = [...activity.orders.values()].filter((o) => OPEN.has(o.status)).reverse();
  async function cancel(order) {
    setBusy(order.id);
    try {
      activity.upsertOrder(await api.delete(`/v1/orders/${encodeURIComponent(order.id)}`));
    } catch (err) {
      activity.setError(err);
    } finally {
      setBusy(null);
    }
  }
  return html`<${ScrollRegion} label="Open orders" testid="open-orders">
    <${Table}
      caption="Open orders"
      empty="No open orders."
      rowKey=${(o) => o.id}
      rows=${open}
      columns=${[
        { label: "Placed", render: (o) => time(o.created_at) },
        { label: "Instrument", render: (o) => html`<span class="mono">${describe(o)}</span>` },
        { label: "Side", render: (o) => html`<span class=${o.side}>${o.side}</span>` },
        { label: "Price", numeric: true, render: (o) => `${decimal(o.price)} ${quoteOf(o)}${(o.legs ?? []).length ? " net" : ""}` },
        { label: "Filled / quantity", numeric: true, render: (o) => `${decimal(o.filled_quantity)} / ${decimal(o.quantity)} ${baseOf(o)}` },
        { label: "Time in force", render: (o) => `${o.time_in_force}${o.post_only ? ", post-only" : ""}` },
        { label: "Status", render: (o) => html`<span data-testid="order-status">${o.status.replace("_", " ")}</span>` },
        {
          label: "Cancel",
          render: (o) => html`<button type="button" class="small" disabled=${busy === o.id}
            onClick=${() => cancel(o)} aria-label=${`Cancel order ${o.id} (${o.side} ${describe(o)})`}>
            ${busy === o.id ? "Cancelling…" : "Cancel"}</button>`,
        },
      ]}
    />
  <//>`;
}

function Copy({ text, label }) {
  const [done, setDone] = useState(false);
  async function copy() {
    try {
      await navigator.clipboard.writeText(text);
      setDone(true);
      setTimeout(() => setDone(false), 1500);
    } catch {
      setDone(false);
    }
  }
  return html`<button type="button" class="small" onClick=${copy} aria-label=${label}>${done ? "Copied" : "Copy"}</button>`;
}

function Verify({ hash }) {
  const [state, setState] = useState(null);
  async function verify() {
    setState({ busy: true });
    try {
      const receipt = await publicClient().getTransactionReceipt({ hash });
      setState({ receipt });
    } catch (err) {
      setState({ error: err });
    }
  }
  return html`<span class="verify">
    <button type="button" class="small" onClick=${verify} aria-label=${`Verify transaction ${hash} on your node`}>Verify</button>
    ${state?.busy && html`<span class="muted" role="status">reading…</span>`}
    ${state?.receipt &&
    html`<span role="status" class=${state.receipt.status === "success" ? "buy" : "sell"}>
      ${state.receipt.status === "success" ? "confirmed" : "reverted"} in block ${String(state.receipt.blockNumber)}, gas ${String(state.receipt.gasUsed)}
    </span>`}
    ${state?.error && html`<${ErrorNote} error=${state.error} />`}
  </span>`;
}

function Settlement({ fill, explorer }) {
  if (fill.settlement === "settled" && fill.tx_hash) {
    // linked to the operator's block explorer where it publishes one (GET /v1/chain); the
    // devnet has none, so the hash is shown whole with a check against the wallet's own node
    const hash = html`<code class="mono" data-testid="settled-tx" title="Settlement transaction">${fill.tx_hash}</code>`;
    return html`<div class="tx">
      <span class="badge settled">settled</span>
      ${explorer ? html`<a href=${`${explorer}/tx/${fill.tx_hash}`} target="_blank" rel="noopener noreferrer">${hash}</a>` : hash}
      <span class="muted">block ${fill.block_number ?? "—"}${fill.log_index != null ? `, log ${fill.log_index}` : ""}</span>
      <${Copy} text=${fill.tx_hash} label=${`Copy transaction hash ${fill.tx_hash}`} />
      <${Verify} hash=${fill.tx_hash} />
    </div>`;
  }
  if (fill.settlement === "failed") {
    return html`<span class="badge failed">failed</span> <span>${fill.settlement_reason || ""}</span>`;
  }
  return html`<span class="badge pending">${fill.settlement || "pending"}</span>`;
}

export function Fills({ activity, instruments, explorer = null }) {
  const unit = (f, key) => instruments[f.instrument]?.[key] ?? "";
  const rows = [...activity.fills.values()].sort((a, b) => (a.executed_at < b.executed_at ? 1 : -1));
  return html`<${ScrollRegion} label="Fills and their settlement" testid="fills">
    <${Table}
      caption="Fills and their settlement on chain"
      empty="No fills yet."
      rowKey=${(f) => f.id}
      rows=${rows}
      columns=${[
        { label: "Time", render: (f) => time(f.executed_at) },
        { label: "Instrument", render: (f) => html`<span class="mono">${f.instrument}</span>` },
        { label: "Side", render: (f) => html`<span class=${f.side}>${f.side}</span>` },
        { label: "Quantity", numeric: true, render: (f) => `${decimal(f.quantity)} ${unit(f, "base")}` },
        { label: "Price", numeric: true, render: (f) => `${decimal(f.price)} ${unit(f, "quote")}` },
        { label: "Venue", render: (f) => f.venue },
        { label: "Settlement", render: (f) => html`<${Settlement} fill=${f} explorer=${explorer} />` },
      ]}
    />
  <//>`;
}
