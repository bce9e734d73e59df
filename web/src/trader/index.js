// The trader's screen: connect a browser wallet, sign in with Ethereum, find the owner's
// MarginWallet through the factory, then the wallet panel and the trading panel.
import { useEffect, useState } from "preact/hooks";
import { getAddress } from "viem";
import { WALLET_FACTORY_ABI, ZERO_ADDRESS } from "../contracts.js";
import { connectWallet, publicClient, signIn } from "../session.js";
import { ErrorNote, html, Section, useAction } from "../ui.js";
import { WalletPanel } from "./wallet.js";
import { TradingPanel } from "./trading.js";

// The MarginWallet the factory made for `owner`, or null.
export async function walletOf(chain, owner) {
  const found = await publicClient().readContract({
    address: chain.wallet_factory,
    abi: WALLET_FACTORY_ABI,
    functionName: "wallet_of",
    args: [owner],
  });
  return found === ZERO_ADDRESS ? null : getAddress(found);
}

function SignIn({ api, chain, setSession }) {
  const action = useAction();
  async function go() {
    await action.run(async () => {
      // a click before the page has read the chain waits for it instead of failing
      const settles = chain || (await api.get("/v1/chain"));
      const address = await connectWallet();
      setSession(await signIn(api, address, settles.chain_id));
    });
  }
  return html`<${Section} title="Connect your wallet" id="connect">
    <p class="muted">
      Isthmus never holds your key. Your browser wallet signs a Sign-In with Ethereum message,
      then every order you place.
    </p>
    <button type="button" class="primary" onClick=${go} disabled=${action.busy}>
      ${action.busy ? "Waiting for the wallet…" : "Connect wallet and sign in"}
    </button>
    <${ErrorNote} error=${action.error} />
  <//>`;
}

export function TraderScreen(props) {
  const { session, chain } = props;
  const [wallet, setWallet] = useState(undefined); // undefined: not looked up yet
  const [error, setError] = useState(null);
  const owner = session && session.role === "trader" ? session.address : null;

  async function lookUp() {
    setError(null);
    try {
      setWallet(await walletOf(chain, owner));
    } catch (err) {
      setError(err);
    }
  }
  useEffect(() => {
    if (owner && chain) lookUp();
    else setWallet(undefined);
  }, [owner, chain]);

  if (!owner) {
    return html`<h1>Trader</h1>
      ${session && session.role === "operator" &&
      html`<p class="notice full">Signed in as the operator: sign out to connect a wallet.</p>`}
      ${!session && html`<${SignIn} ...${props} />`}`;
  }
  return html`<h1>Trader</h1>
    <${ErrorNote} error=${error} />
    <${WalletPanel} ...${props} owner=${owner} wallet=${wallet} onWalletChanged=${lookUp} />
    ${wallet && html`<${TradingPanel} ...${props} owner=${owner} wallet=${wallet} />`}`;
}
