// Who is using the page. A trader connects a browser wallet (any EIP-1193 provider) and signs
// in with Ethereum (EIP-4361, personal_sign in the wallet); an operator pastes the operator
// token. The bearer token lives in this tab's sessionStorage only.
import { createPublicClient, createWalletClient, custom, defineChain, getAddress } from "viem";
import { createSiweMessage } from "viem/siwe";

const KEY = "isthmus.session";

export function savedSession() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(KEY) || "null");
    if (saved && saved.token && saved.role) return saved;
  } catch {
    /* a damaged entry is no session */
  }
  return null;
}

export function saveSession(session) {
  if (session) sessionStorage.setItem(KEY, JSON.stringify(session));
  else sessionStorage.removeItem(KEY);
}

export function provider() {
  if (typeof window === "undefined" || !window.ethereum) {
    throw new Error("no browser wallet found: install one (for example MetaMask) and reload");
  }
  return window.ethereum;
}

// viem clients over the browser wallet: reads and transactions both go through it.
// With `chain` (GET /v1/chain), every write checks that the browser wallet is on that network.
export function walletClient(account, chain) {
  return createWalletClient({ account, chain: chain && viemChain(chain), transport: custom(provider()) });
}
// receipts are polled every 250 ms (viem's default of 4 s is for public networks)
export function publicClient() {
  return createPublicClient({ transport: custom(provider()), pollingInterval: 250 });
}

// A viem chain from the gateway's GET /v1/chain.
export function viemChain(chain) {
  return defineChain({
    id: chain.chain_id,
    name: `Isthmus chain ${chain.chain_id}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: chain.rpc_url ? [chain.rpc_url] : [] } },
  });
}

export async function connectWallet() {
  const [address] = await walletClient().requestAddresses();
  if (!address) throw new Error("the wallet shared no account");
  return getAddress(address);
}

// A new session for `address`: a fresh nonce, the EIP-4361 message, the wallet's signature.
export async function signIn(api, address, chainId) {
  const { nonce } = await api.get("/v1/auth/siwe/nonce");
  const issuedAt = new Date();
  const message = createSiweMessage({
    domain: location.host,
    address,
    statement: "Sign in to Isthmus",
    uri: location.origin,
    version: "1",
    chainId,
    nonce,
    issuedAt,
    expirationTime: new Date(issuedAt.getTime() + 8 * 3600 * 1000),
  });
  const signature = await walletClient(address).signMessage({ account: address, message });
  const session = await api.post("/v1/auth/siwe", { message, signature });
  return { role: "trader", token: session.token, address: getAddress(session.address), expiresAt: session.expires_at };
}
