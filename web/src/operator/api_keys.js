// API keys: the list, issuing one (its secret is shown this once, with a copy button, and
// forgotten when dismissed: it is kept nowhere but this component's state), revoking one.
import { useState } from "preact/hooks";
import { time } from "../format.js";
import { ErrorNote, html, useAction, usePolled } from "../ui.js";
import { Panel, ScrollTable } from "./parts.js";

const SCOPES = ["quote", "trade", "read"];

function accountsOf(text) {
  return text
    .split(/[\s,]+/)
    .map((a) => a.trim())
    .filter(Boolean);
}

async function copy(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // plain http (the devnet): the old way, through a selected textarea
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  const done = document.execCommand("copy");
  area.remove();
  if (!done) throw new Error("the browser refused to copy: select the secret and copy it by hand");
}

function NewSecret({ issued, onDismiss }) {
  const [copied, setCopied] = useState(false);
  const action = useAction();
  return html`<div class="notice secret" role="region" aria-labelledby="new-key-title" data-testid="new-key">
    <h3 id="new-key-title">Key ${issued.key_id} issued</h3>
    <p>Store the secret now: it is shown this once and the gateway cannot show it again.</p>
    <label>
      Secret
      <input readonly value=${issued.secret} class="mono" onFocus=${(e) => e.currentTarget.select()} data-testid="new-key-secret" />
    </label>
    <div class="row">
      <button
        type="button"
        onClick=${() => action.run(async () => { await copy(issued.secret); setCopied(true); })}
        data-testid="copy-secret"
      >
        ${copied ? "Copied" : "Copy secret"}
      </button>
      <button type="button" class="primary" onClick=${onDismiss} data-testid="dismiss-secret">I have stored it</button>
    </div>
    <span class="sr-only" role="status">${copied ? "The secret is on the clipboard." : ""}</span>
    <${ErrorNote} error=${action.error} />
  </div>`;
}

function IssueForm({ api, onIssued }) {
  const [role, setRole] = useState("protocol");
  const [scopes, setScopes] = useState(["read"]);
  const [accounts, setAccounts] = useState("");
  const [label, setLabel] = useState("");
  const action = useAction();

  function toggle(scope) {
    setScopes((current) => (current.includes(scope) ? current.filter((s) => s !== scope) : [...current, scope]));
  }

  async function submit(event) {
    event.preventDefault();
    const issued = await action.run(() =>
      api.post("/v1/api-keys", {
        role,
        scopes: role === "auditor" ? ["read"] : SCOPES.filter((s) => scopes.includes(s)),
        accounts: accountsOf(accounts),
        label: label.trim() || null,
      }),
    );
    if (issued) {
      setLabel("");
      setAccounts("");
      onIssued(issued);
    }
  }

  return html`<form onSubmit=${submit} class="form narrow" data-testid="issue-key">
    <div class="row">
      <label>
        Role
        <select value=${role} onChange=${(e) => setRole(e.currentTarget.value)} data-testid="key-role">
          <option value="protocol">protocol</option>
          <option value="auditor">auditor (read only)</option>
        </select>
      </label>
      <label>
        Label
        <input value=${label} maxlength="100" onInput=${(e) => setLabel(e.currentTarget.value)} data-testid="key-label" />
      </label>
    </div>
    ${role === "protocol" &&
    html`<fieldset class="row">
      <legend>Scopes</legend>
      ${SCOPES.map(
        (s) => html`<label class="inline">
          <input type="checkbox" checked=${scopes.includes(s)} onChange=${() => toggle(s)} data-testid=${`key-scope-${s}`} /> ${s}
        </label>`,
      )}
    </fieldset>`}
    <label>
      Accounts (one per line or comma separated; none: any)
      <textarea rows="2" value=${accounts} onInput=${(e) => setAccounts(e.currentTarget.value)} spellcheck="false" data-testid="key-accounts"></textarea>
    </label>
    <button type="submit" class="primary" disabled=${action.busy}>Issue key</button>
    <${ErrorNote} error=${action.error} onDismiss=${() => action.setError(null)} />
  </form>`;
}

export function ApiKeysPanel({ api, confirm }) {
  const keys = usePolled(() => api.get("/v1/api-keys"), 0);
  const [issued, setIssued] = useState(null);
  const revoking = useAction();

  function revoke(key) {
    confirm({
      title: "Revoke this API key?",
      confirmLabel: "Revoke",
      body: html`<p>Requests signed with <span class="mono">${key.key_id}</span>${key.label ? ` (${key.label})` : ""} are refused from now on. This cannot be undone.</p>`,
      run: () =>
        revoking.run(async () => {
          await api.delete(`/v1/api-keys/${key.key_id}`);
          keys.reload();
        }),
    });
  }

  const columns = [
    { label: "Key", render: (k) => html`<span class="mono">${k.key_id}</span>` },
    { label: "Label", render: (k) => k.label || "—" },
    { label: "Role", render: (k) => k.role },
    { label: "Scopes", render: (k) => k.scopes.join(", ") },
    { label: "Accounts", render: (k) => html`<span class="wrap mono">${k.accounts.length ? k.accounts.join(", ") : "any"}</span>` },
    { label: "Issued", render: (k) => time(k.created_at) },
    {
      label: "State",
      render: (k) =>
        k.revoked_at
          ? html`<span class="badge bad" data-testid=${`key-state-${k.key_id}`}>revoked ${time(k.revoked_at)}</span>`
          : html`<span class="badge ok" data-testid=${`key-state-${k.key_id}`}>active</span>`,
    },
    {
      label: "Action",
      render: (k) =>
        k.revoked_at
          ? html`<span class="muted">—</span>`
          : html`<button type="button" onClick=${() => revoke(k)} data-testid=${`revoke-${k.key_id}`} aria-label=${`Revoke ${k.key_id}`}>Revoke</button>`,
    },
  ];
  return html`<${Panel} title="API keys" id="op-keys" wide>
    ${issued &&
    html`<${NewSecret}
      issued=${issued}
      onDismiss=${() => setIssued(null)}
    />`}
    <${IssueForm}
      api=${api}
      onIssued=${(key) => {
        setIssued(key);
        keys.reload();
      }}
    />
    <${ErrorNote} error=${keys.error || revoking.error} />
    <div data-testid="api-keys">
      <${ScrollTable} caption="Every key" columns=${columns} rows=${keys.data || []} rowKey=${(k) => k.key_id} empty=${keys.data ? "No keys yet." : "Loading…"} />
    </div>
  <//>`;
}
