// Settlement batches (GET /v1/settlements): pending against confirmed, gas, transaction,
// block, fills, and reorgs healed; newest first, filtered by status, older pages on demand.
import { useState } from "preact/hooks";
import { query } from "../api.js";
import { decimal, shortHash, time } from "../format.js";
import { ErrorNote, html, useAction, usePolled } from "../ui.js";
import { Panel, ScrollTable } from "./parts.js";

const FILTERS = ["", "pending", "confirmed", "reverted", "reorged", "abandoned", "building", "sent"];
const STATUS_CSS = { confirmed: "ok", reverted: "bad", reorged: "warn", abandoned: "muted", building: "warn", sent: "warn" };

function Reorgs({ batch }) {
  if (!batch.reorgs) return html`<span class="muted">—</span>`;
  const times = batch.reorgs === 1 ? "1 reorg" : `${batch.reorgs} reorgs`;
  return batch.reorg_healed
    ? html`<span class="badge ok">${times}, healed</span>`
    : html`<span class="badge warn">${times}, not yet healed</span>`;
}

export function SettlementsPanel({ api }) {
  const [status, setStatus] = useState("");
  const [older, setOlder] = useState([]); // pages loaded after the first
  const [cursor, setCursor] = useState(null);
  const more = useAction();
  const first = usePolled(
    async () => {
      const page = await api.get(`/v1/settlements${query({ status, limit: 20 })}`);
      return page;
    },
    3000,
    [status],
  );

  function choose(value) {
    setStatus(value);
    setOlder([]);
    setCursor(null);
  }

  async function loadOlder() {
    const from = cursor || (first.data && first.data.next_cursor);
    if (!from) return;
    await more.run(async () => {
      const page = await api.get(`/v1/settlements${query({ status, limit: 20, cursor: from })}`);
      setOlder((rows) => [...rows, ...page.items]);
      setCursor(page.next_cursor || "");
    });
  }

  const data = first.data;
  const seen = new Set();
  const rows = [...(data ? data.items : []), ...older].filter((b) => !seen.has(b.id) && seen.add(b.id));
  const hasMore = cursor === null ? Boolean(data && data.next_cursor) : cursor !== "";
  const columns = [
    { label: "Batch", render: (b) => html`<span class="mono" title=${b.id}>${b.id}</span>` },
    { label: "Status", render: (b) => html`<span class=${`badge ${STATUS_CSS[b.status] || ""}`} data-testid="batch-status">${b.status}</span>` },
    { label: "Fills", numeric: true, render: (b) => b.fills },
    { label: "Gas", numeric: true, render: (b) => (b.gas_used === null ? "—" : decimal(String(b.gas_used))) },
    { label: "Transaction", render: (b) => html`<span class="mono" title=${b.tx_hash || ""}>${shortHash(b.tx_hash)}</span>` },
    { label: "Block", numeric: true, render: (b) => (b.block_number === null ? "—" : b.block_number) },
    { label: "Reorgs", render: (b) => html`<${Reorgs} batch=${b} />` },
    { label: "Created", render: (b) => time(b.created_at) },
    { label: "Note", render: (b) => html`<span class="wrap muted">${b.reason || ""}</span>` },
  ];
  const counts = data ? data.counts : null;
  return html`<${Panel}
    title="Settlement batches"
    wide
    id="op-settlements"
    actions=${html`<label class="inline">
      Status
      <select value=${status} onChange=${(e) => choose(e.currentTarget.value)} data-testid="settlement-filter">
        ${FILTERS.map((f) => html`<option value=${f}>${f || "all"}</option>`)}
      </select>
    </label>`}
  >
    <${ErrorNote} error=${first.error || more.error} />
    ${counts &&
    html`<p class="counts" data-testid="settlement-counts">
      <span class="badge warn">pending <strong data-testid="settlements-pending">${counts.pending}</strong></span>
      <span class="badge ok">confirmed <strong data-testid="settlements-confirmed">${counts.confirmed}</strong></span>
      <span class="badge bad">reverted ${counts.reverted}</span>
      <span class="badge muted">abandoned ${counts.abandoned}</span>
    </p>`}
    <div data-testid="settlements">
      <${ScrollTable} caption="Newest first" columns=${columns} rows=${rows} rowKey=${(b) => b.id} empty=${data ? "No batches." : "Loading…"} />
    </div>
    ${hasMore && html`<button type="button" onClick=${loadOlder} disabled=${more.busy}>Older batches</button>`}
  <//>`;
}
