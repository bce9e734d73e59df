// The auditor's verification (GET /v1/audit/verify: every on-chain fill against its
// signature, the store and the audit log) and the newest records of the hash-chained log.
import { useRef } from "preact/hooks";
import { query } from "../api.js";
import { shortHash, time } from "../format.js";
import { ErrorNote, html, useAction, usePolled } from "../ui.js";
import { Panel, ScrollTable } from "./parts.js";

const HEAD = 10;

async function hasAfter(api, seq) {
  const page = await api.get(`/v1/audit/log${query({ after: seq, limit: 1 })}`);
  return page.items.length > 0;
}

// The newest seq (records are numbered 1, 2, … without gaps): from the last head seen,
// gallop forward, then bisect. Two small reads when nothing was appended since.
export async function headSeq(api, hint = 0) {
  let low = 0; // a record after `low` exists, once checked below
  if (hint > 0 && (await hasAfter(api, hint - 1))) low = hint;
  if (!(await hasAfter(api, low))) return low;
  let step = 1;
  let high = low + step;
  while (await hasAfter(api, high)) {
    low = high;
    step *= 2;
    high = low + step;
  }
  while (high - low > 1) {
    // a record after `low`, none after `high`
    const mid = Math.floor((low + high) / 2);
    if (await hasAfter(api, mid)) low = mid;
    else high = mid;
  }
  return high;
}

async function logHead(api, hint) {
  const head = await headSeq(api, hint.current);
  hint.current = head;
  const page = await api.get(`/v1/audit/log${query({ after: Math.max(0, head - HEAD), limit: HEAD })}`);
  return { head, records: [...page.items].reverse() };
}

function Verification({ report }) {
  const store = report.store;
  return html`<div data-testid="audit-report">
    <p>
      <span class=${`badge ${report.ok ? "ok" : "bad"}`} data-testid="audit-ok">${report.ok ? "verified" : "problems found"}</span>
      <span class="muted small"> blocks ${report.from_block}–${report.to_block}, chain ${report.chain_id}</span>
    </p>
    <dl class="facts">
      <dt>Batches on chain</dt><dd>${report.counts.batches}</dd>
      <dt>Fills checked</dt><dd data-testid="audit-fills">${report.counts.fills}</dd>
      <dt>Fills with problems</dt><dd>${report.counts.fills_with_problems}</dd>
      <dt>Settled in the store</dt><dd>${store ? `${store.settled_fills} (${store.matched} matched)` : "—"}</dd>
      <dt>Audit log</dt><dd>${store ? `${store.audit_log.records} records, ${store.audit_log.ok ? "chain intact" : "chain broken"}` : "—"}</dd>
    </dl>
    ${report.problems.length > 0 &&
    html`<ul class="problems" aria-label="Problems">
      ${report.problems.slice(0, 20).map((p) => html`<li>${p}</li>`)}
    </ul>`}
  </div>`;
}

export function AuditPanel({ api }) {
  const verify = useAction();
  const report = usePolled(() => verify.run(() => api.get("/v1/audit/verify")), 30000);
  const hint = useRef(0);
  const log = usePolled(() => logHead(api, hint), 5000);
  const columns = [
    { label: "Seq", numeric: true, render: (r) => r.seq },
    { label: "Kind", render: (r) => r.kind },
    { label: "Entity", render: (r) => html`<span class="mono" title=${r.entity_id}>${shortHash(r.entity_id)}</span>` },
    { label: "At", render: (r) => time(r.created_at) },
    { label: "Hash", render: (r) => html`<span class="mono" title=${r.hash}>${shortHash(r.hash)}</span>` },
  ];
  return html`<${Panel}
    title="Audit"
    id="op-audit"
    actions=${html`<button type="button" onClick=${report.reload} disabled=${verify.busy}>
      ${verify.busy ? "Verifying…" : "Verify now"}
    </button>`}
  >
    <${ErrorNote} error=${verify.error} />
    ${report.data ? html`<${Verification} report=${report.data} />` : !verify.error && html`<p class="muted">Verifying…</p>`}
    <h3>Audit log head</h3>
    <${ErrorNote} error=${log.error} />
    <div data-testid="audit-log">
      <${ScrollTable}
        caption=${log.data ? `The newest records (head: ${log.data.head})` : "The newest records"}
        columns=${columns}
        rows=${log.data ? log.data.records : []}
        rowKey=${(r) => r.seq}
        empty=${log.data ? "The log is empty." : "Loading…"}
      />
    </div>
  <//>`;
}
