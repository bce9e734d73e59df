// The page's shell: who is signed in, which screen (#/trader or #/operator), the stream's
// state. Screens live in trader/ and operator/.
import "./styles.css";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { Api } from "./api.js";
import { LiveStream } from "./stream.js";
import { saveSession, savedSession } from "./session.js";
import { ErrorNote, html } from "./ui.js";
import { TraderScreen } from "./trader/index.js";
import { OperatorScreen } from "./operator/index.js";

function route() {
  return location.hash.startsWith("#/operator") ? "operator" : "trader";
}

function StreamStatus({ stream }) {
  const [status, setStatus] = useState(stream ? stream.status : "off");
  useEffect(() => (stream ? stream.onStatus(setStatus) : undefined), [stream]);
  if (!stream) return null;
  const label = { live: "Live", connecting: "Connecting…", down: "Stream lost — reconnecting…" }[status];
  return html`<span class=${`stream-status ${status}`} role="status" data-testid="stream-status">${label}</span>`;
}

function App() {
  const [screen, setScreen] = useState(route());
  const [session, setSession] = useState(savedSession());
  const [chain, setChain] = useState(null);
  const [chainError, setChainError] = useState(null);
  const [stream, setStream] = useState(null);
  const api = new Api(session ? session.token : null);

  useEffect(() => {
    const onHash = () => setScreen(route());
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, []);

  useEffect(() => {
    new Api()
      .get("/v1/chain")
      .then(setChain)
      .catch(setChainError);
  }, []);

  // one stream per session; the screens choose what it follows
  useEffect(() => {
    if (!session) return undefined;
    const live = new LiveStream(session.token);
    setStream(live);
    return () => live.close();
  }, [session && session.token]);

  function changeSession(next) {
    saveSession(next);
    setSession(next);
    if (!next) setStream(null);
  }

  const props = { api, session, chain, stream, setSession: changeSession };
  return html`
    <a class="skip" href="#main">Skip to content</a>
    <header class="top">
      <span class="brand">Isthmus</span>
      <nav aria-label="Screens">
        <a href="#/trader" aria-current=${screen === "trader" ? "page" : undefined}>Trader</a>
        <a href="#/operator" aria-current=${screen === "operator" ? "page" : undefined}>Operator</a>
      </nav>
      <${StreamStatus} stream=${stream} />
      ${session &&
      html`<span class="who">
        <span data-testid="signed-in-as">${session.role === "trader" ? session.address : "operator"}</span>
        <button type="button" class="link" onClick=${() => changeSession(null)}>Sign out</button>
      </span>`}
    </header>
    <main id="main">
      <${ErrorNote} error=${chainError} />
      ${screen === "operator" ? html`<${OperatorScreen} ...${props} />` : html`<${TraderScreen} ...${props} />`}
    </main>
  `;
}

render(html`<${App} />`, document.getElementById("app"));
