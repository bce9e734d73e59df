// The contracts' ABIs as isthmus-client ships them (one source for every client of the chain).
import marginWallet from "../../client/isthmus_client/abi/MarginWallet.json";
import walletFactory from "../../client/isthmus_client/abi/WalletFactory.json";
import settlement from "../../client/isthmus_client/abi/Settlement.json";
import { erc20Abi } from "viem";

export const MARGIN_WALLET_ABI = marginWallet;
export const WALLET_FACTORY_ABI = walletFactory;
export const SETTLEMENT_ABI = settlement;
export const ERC20_ABI = erc20Abi;

export const ZERO_ADDRESS = "0x0000000000000000000000000000000000000000";
