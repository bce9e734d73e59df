// The operator's console: sign in with the operator token, then the venues and the
// consolidated book, the risk book, kill switches, settlement batches, the auditor's last
// verification with the audit log's head, and API keys.
import "./operator.css";
import { useState } from "preact/hooks";
import { Api } from "../api.js";
import { Confirm, ErrorNote, html, Section, useAction } from "../ui.js";
import { VenuesPanel, BookPanel } from "./venues.js";
import { RiskPanel } from "./risk.js";
import { KillSwitchPanel } from "./kill_switches.js";
import { SettlementsPanel } from "./settlements.js";
import { AuditPanel } from "./audit.js";
import { ApiKeysPanel } from "./api_keys.js";

// An operator-only read: a wrong token answers 401, a trader's session 403, each with the
// API's own message.
const CHECK = "/v1/api-keys";

function SignIn({ session, setSession }) {
  const [token, setToken] = useState("");
  const action = useAction();
  async function submit(event) {
    event.preventDefault();
    const clean = token.trim();
    await action.run(async () => {
      if (!clean) throw new Error("paste the operator token first");
      await new Api(clean).get(CHECK);
      setSession({ role: "operator", token: clean });
    });
  }
  return html`<${Section} title="Operator sign-in" id="operator-sign-in">
    ${session && session.role !== "operator"
      ? html`<p class="notice">You are signed in as a trader; the console needs the operator token.</p>`
      : null}
    <form onSubmit=${submit} data-testid="operator-sign-in">
      <label>
        Operator token
        <input
          type="password"
          autocomplete="off"
          spellcheck="false"
          value=${token}
          onInput=${(e) => setToken(e.currentTarget.value)}
          data-testid="operator-token"
        />
      </label>
      <p class="muted small">
        On the devnet it is in <code>.isthmus/devnet/operator-token</code>. It stays in this tab only.
      </p>
      <button type="submit" class="primary" disabled=${action.busy}>
        ${action.busy ? "Checking…" : "Sign in as operator"}
      </button>
      <div data-testid="sign-in-error"><${ErrorNote} error=${action.error} /></div>
    </form>
  <//>`;
}

// One confirmation dialog for the whole console (its title id must be unique on the page):
// panels ask through `confirm({title, body, confirmLabel, run})`.
function useConfirmation() {
  const [request, setRequest] = useState(null);
  const dialog = html`<${Confirm}
    open=${request !== null}
    title=${request ? request.title : ""}
    confirmLabel=${request ? request.confirmLabel : "Confirm"}
    onCancel=${() => setRequest(null)}
    onConfirm=${() => {
      const current = request;
      setRequest(null);
      if (current) current.run();
    }}
  >
    <div data-testid="confirm-body">${request ? request.body : null}</div>
  <//>`;
  return { confirm: setRequest, dialog };
}

export function OperatorScreen({ api, session, stream, setSession }) {
  const { confirm, dialog } = useConfirmation();
  if (!session || session.role !== "operator") {
    return html`<h1>Operator console</h1>
      <${SignIn} session=${session} setSession=${setSession} />`;
  }
  const props = { api, stream, confirm };
  return html`<h1>Operator console</h1>
    <${VenuesPanel} ...${props} />
    <${BookPanel} ...${props} />
    <${RiskPanel} ...${props} />
    <${KillSwitchPanel} ...${props} />
    <${AuditPanel} ...${props} />
    <${SettlementsPanel} ...${props} />
    <${ApiKeysPanel} ...${props} />
    ${dialog}`;
}
