import { CryptoPool, type C1Crypto, type C2Crypto, type PublicKey, type SecretKey } from '@fnn/shared';

/** The worker-thread crypto every command and daemon uses, with its shutdown. */
export function createCrypto(publicKey: PublicKey, secretKey?: SecretKey) {
  const pool = new CryptoPool(publicKey, secretKey);
  return {
    pool,
    evaluator: pool.evaluator() as C1Crypto,
    keyHolder: secretKey ? (pool.keyHolder() as C2Crypto) : undefined,
    close: () => pool.close(),
  };
}
