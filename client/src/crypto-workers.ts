import { CryptoPool, type EvaluatorCrypto, type KeyHolderCrypto, type PublicKey, type SecretKey } from '@fnn/shared';

/** The worker-thread crypto every command and daemon uses, with its shutdown. */
export function createCrypto(publicKey: PublicKey, secretKey?: SecretKey) {
  const pool = new CryptoPool(publicKey, secretKey);
  return {
    pool,
    evaluator: pool.evaluator() as EvaluatorCrypto,
    keyHolder: secretKey ? (pool.keyHolder() as KeyHolderCrypto) : undefined,
    close: () => pool.close(),
  };
}
