// The wallet panel's chain side: reads of the MarginWallet and its tokens, and transactions
// sent through the browser wallet. Every transaction is simulated first, so a refusal comes
// back with the contract's own reason, explained, before anything is sent.
import { BaseError, ContractFunctionRevertedError, defineChain, encodeAbiParameters, keccak256, parseUnits } from "viem";
import { ERC20_ABI, MARGIN_WALLET_ABI, SETTLEMENT_ABI, WALLET_FACTORY_ABI } from "../contracts.js";
import { publicClient, walletClient } from "../session.js";

export const NO_KEY_LIMIT = (1n << 128n) - 1n; // a trading key's max notional meaning "no limit"
export const MAX_KEY_INSTRUMENTS = 16; // MarginWallet keys.MAX_KEY_INSTRUMENTS
const MAX_UINT256 = (1n << 256n) - 1n;
const RECEIPT_POLL_MS = 250;

// chain.tokens ({SYMBOL: {address, decimals}}) as a list
export function tokenList(chain) {
  return Object.entries(chain.tokens).map(([symbol, t]) => ({ symbol, address: t.address, decimals: t.decimals }));
}

function tokenAt(chain, address) {
  return tokenList(chain).find((t) => t.address.toLowerCase() === address.toLowerCase()) || null;
}

function read(address, abi, functionName, args = []) {
  return publicClient().readContract({ address, abi, functionName, args });
}

// The token margin and notionals are counted in: the Settlement's option quote.
export async function quoteToken(chain) {
  const address = await read(chain.settlement, SETTLEMENT_ABI, "option_quote");
  const token = tokenAt(chain, address);
  if (!token) throw new Error(`the Settlement's quote token ${address} is not among the gateway's tokens`);
  return token;
}

// Everything the chain says about the wallet now: balances (of the wallet and of its owner,
// in token units), the margin rule's figures and the owner's switches.
export async function readWallet(chain, wallet, owner) {
  const tokens = tokenList(chain);
  const balanceOf = (t, who) => read(t.address, ERC20_ABI, "balanceOf", [who]);
  const [quote, held, own, margin, paused, maxNotional] = await Promise.all([
    quoteToken(chain),
    Promise.all(tokens.map((t) => balanceOf(t, wallet))),
    Promise.all(tokens.map((t) => balanceOf(t, owner))),
    read(wallet, MARGIN_WALLET_ABI, "margin_status"),
    read(wallet, MARGIN_WALLET_ABI, "paused"),
    read(wallet, MARGIN_WALLET_ABI, "max_notional"),
  ]);
  const [required, available, ok] = margin;
  return {
    tokens: tokens.map((t, i) => ({ ...t, balance: held[i], ownerBalance: own[i] })),
    quote,
    margin: { required, available, ok, free: available > required ? available - required : 0n },
    paused,
    maxNotional: maxNotional === MAX_UINT256 ? null : maxNotional,
  };
}

// What each revert of the operations this panel sends means (the client's REVERT_REASONS).
const REASONS = {
  "wallet: not owner": "only the wallet's owner can do this",
  "wallet: margin": "the wallet would no longer cover the margin of its open option positions",
  "wallet: batch in progress": "the wallet is in the middle of a settlement batch: try again",
  "wallet: transfer failed": "the token refused the transfer",
  "wallet: bad key": "a trading key must be an address other than zero and other than the wallet's owner",
  "wallet: key expiry in the past": "a trading key's expiry must be after the chain's time",
  "wallet: key limit too large": "the trading key's maximum notional is too large (the wallet keeps 128 bits)",
  "erc20: transfer amount exceeds balance": "the sender does not hold that much of the token",
  "factory: owner has a wallet": "this address has a wallet already",
};

// The revert string inside a viem error, or null.
export function revertReason(error) {
  if (!(error instanceof BaseError)) return null;
  const reverted = error.walk((e) => e instanceof ContractFunctionRevertedError);
  return reverted ? reverted.reason ?? reverted.data?.errorName ?? null : null;
}

export class RefusedError extends Error {
  constructor(what, reason, detail) {
    const words = REASONS[reason] || reason;
    super(`Cannot ${what}: ${words}${detail ? `; ${detail}` : ""} (the contract says "${reason}")`);
    this.reason = reason;
  }
}

// The gateway's chain for viem: a transaction is refused if the browser wallet is on
// another chain (ChainMismatchError) rather than sent there.
function viemChain(chain) {
  return defineChain({
    id: chain.chain_id,
    name: `chain ${chain.chain_id}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: chain.rpc_url ? [chain.rpc_url] : [] } },
  });
}

// Simulates the call from `owner`, then sends it through the browser wallet and waits for
// its receipt. `explain(reason)` may add facts to a refusal (how much is free, …).
export async function send(chain, owner, call, what, explain = async () => null) {
  const client = publicClient();
  let request;
  try {
    ({ request } = await client.simulateContract({ account: owner, ...call }));
  } catch (error) {
    const reason = revertReason(error);
    if (reason) throw new RefusedError(what, reason, await explain(reason).catch(() => null));
    throw error;
  }
  const hash = await walletClient(owner).writeContract({ ...request, chain: viemChain(chain) });
  const receipt = await client.waitForTransactionReceipt({ hash, pollingInterval: RECEIPT_POLL_MS });
  if (receipt.status !== "success") {
    throw new Error(`Cannot ${what}: the transaction ${hash} reverted in block ${receipt.blockNumber}`);
  }
  return receipt;
}

export function createWallet(chain, owner) {
  return send(chain, owner, { address: chain.wallet_factory, abi: WALLET_FACTORY_ABI, functionName: "create_wallet" }, "create a wallet");
}

export function deposit(chain, token, wallet, owner, amount, explain) {
  return send(
    chain,
    owner,
    { address: token.address, abi: ERC20_ABI, functionName: "transfer", args: [wallet, amount] },
    `deposit ${token.symbol}`,
    explain,
  );
}

export function withdraw(chain, token, wallet, owner, amount, explain) {
  return send(
    chain,
    owner,
    { address: wallet, abi: MARGIN_WALLET_ABI, functionName: "withdraw", args: [token.address, amount] },
    `withdraw ${token.symbol}`,
    explain,
  );
}

export function authoriseKey(chain, wallet, owner, { key, expiry, allInstruments, maxNotional, instruments }) {
  return send(
    chain,
    owner,
    {
      address: wallet,
      abi: MARGIN_WALLET_ABI,
      functionName: "authorise_key",
      args: [key, expiry, allInstruments, maxNotional, instruments],
    },
    `authorise trading key ${key}`,
  );
}

export function revokeKey(chain, wallet, owner, key) {
  return send(chain, owner, { address: wallet, abi: MARGIN_WALLET_ABI, functionName: "revoke_key", args: [key] }, `revoke trading key ${key}`);
}

// The id the chain knows an instrument by (Settlement.instrument_id), from the catalogue's
// entry; null for what does not trade on chain (perpetuals).
export function instrumentId(chain, instrument) {
  const base = chain.tokens[instrument.base];
  const quote = chain.tokens[instrument.quote];
  if (!base || !quote) return null;
  const types = ["uint8", "address", "address", "uint256", "uint64", "bool"].map((type) => ({ type }));
  if (instrument.kind === "spot") {
    return keccak256(encodeAbiParameters(types, [0, base.address, quote.address, 0n, 0n, false]));
  }
  if (instrument.kind === "option" && instrument.strike && instrument.expiry) {
    const expiry = BigInt(Math.floor(new Date(instrument.expiry).getTime() / 1000));
    const strike = parseUnits(instrument.strike, quote.decimals);
    return keccak256(encodeAbiParameters(types, [1, base.address, quote.address, strike, expiry, instrument.right === "call"]));
  }
  return null;
}

// The wallet's trading keys: every key its KeyAuthorised events name, each with its record
// now (`trading_key`); a revoked key has no record and is left out. `instruments` (with
// their ids) are checked against each restricted key's allow-list.
export async function readKeys(wallet, instruments) {
  const client = publicClient();
  const events = await client.getContractEvents({
    address: wallet,
    abi: MARGIN_WALLET_ABI,
    eventName: "KeyAuthorised",
    fromBlock: "earliest",
  });
  const addresses = [...new Set(events.map((e) => e.args.key))];
  const now = (await client.getBlock()).timestamp;
  const keys = await Promise.all(
    addresses.map(async (key) => {
      const [expiry, allInstruments, maxNotional, active] = await read(wallet, MARGIN_WALLET_ABI, "trading_key", [key]);
      if (expiry === 0n) return null;
      const allowed = allInstruments
        ? []
        : (
            await Promise.all(
              instruments.map(async (i) => ((await read(wallet, MARGIN_WALLET_ABI, "key_instrument_allowed", [key, i.id])) ? i.symbol : null)),
            )
          ).filter(Boolean);
      return { key, expiry, allInstruments, maxNotional: maxNotional === NO_KEY_LIMIT ? null : maxNotional, active, allowed };
    }),
  );
  return { keys: keys.filter(Boolean), now };
}
