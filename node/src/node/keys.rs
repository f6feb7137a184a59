//! The node's keys, all derived from the wallet's BIP39 mnemonic (the only secret on disk).
//!
//! Owns: creating or reading `DIR/mnemonic` (mode 0600) and deriving, by tagged SHA256 of the
//! BIP39 seed phrase, the node secret (node id), the Noise static secret and the seed of the
//! channel key source. Must never: log or print a secret.

use std::path::Path;

use anyhow::Context as _;
use bitcoin::hashes::{sha256, Hash, HashEngine};
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use fulmen_wallet::Seed;

/// File holding the mnemonic inside the data directory.
pub const MNEMONIC_FILE: &str = "mnemonic";

/// Everything secret a node needs.
pub struct NodeKeys {
    /// The wallet seed.
    pub seed: Seed,
    /// Node secret key (its public key is the node id).
    pub node_secret: SecretKey,
    /// Node id.
    pub node_id: PublicKey,
    /// X25519 static secret of the Noise transport.
    pub noise_secret: [u8; 32],
    /// Seed of the channels' [`fulmen_channel::machine::SeedKeySource`].
    pub channel_seed: [u8; 32],
}

impl std::fmt::Debug for NodeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKeys")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

fn tagged(tag: &str, phrase: &str) -> [u8; 32] {
    let mut e = sha256::Hash::engine();
    e.input(b"fulmen/");
    e.input(tag.as_bytes());
    e.input(b"/");
    e.input(phrase.as_bytes());
    sha256::Hash::from_engine(e).to_byte_array()
}

impl NodeKeys {
    /// Derives every key from `seed`.
    pub fn derive(seed: Seed) -> anyhow::Result<NodeKeys> {
        let phrase = seed.phrase();
        let node_secret =
            SecretKey::from_slice(&tagged("node-key", &phrase)).context("deriving the node key")?;
        let node_id = PublicKey::from_secret_key(&Secp256k1::signing_only(), &node_secret);
        Ok(NodeKeys {
            noise_secret: tagged("noise-static", &phrase),
            channel_seed: tagged("channel-keys", &phrase),
            seed,
            node_secret,
            node_id,
        })
    }

    /// Reads `DIR/mnemonic`, or creates it (mode 0600) from 32 bytes of OS entropy. Refuses
    /// to create one beside an existing store (`node.sqlite`): the store's channels and
    /// wallet belong to the lost mnemonic, and a new one could never spend them.
    pub fn load_or_create(datadir: &Path) -> anyhow::Result<NodeKeys> {
        let path = datadir.join(MNEMONIC_FILE);
        let seed = match std::fs::read_to_string(&path) {
            Ok(text) => Seed::from_phrase(text.trim())
                .with_context(|| format!("{} does not hold a valid mnemonic", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let db = datadir.join(super::store::DB_FILE);
                if db.exists() {
                    anyhow::bail!(
                        "{} is missing but {} exists: its channels and wallet belong to that \
                         mnemonic, so no new one is created; restore the mnemonic file (or move \
                         the store away to start a new node)",
                        path.display(),
                        db.display()
                    );
                }
                let entropy: [u8; 32] = rand::random();
                let seed = fulmen_wallet::mnemonic_from_entropy(&entropy)
                    .context("creating a mnemonic")?;
                crate::rpc_auth::write_private_file(
                    &path,
                    format!("{}\n", seed.phrase()).as_bytes(),
                )
                .with_context(|| format!("writing {}", path.display()))?;
                seed
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        NodeKeys::derive(seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_new_mnemonic_beside_an_existing_store() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(super::super::store::DB_FILE), b"").unwrap();
        let err = NodeKeys::load_or_create(dir.path()).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("mnemonic is missing"), "{msg}");
        assert!(
            !dir.path().join(MNEMONIC_FILE).exists(),
            "no mnemonic created"
        );
    }

    #[test]
    fn creates_then_reads_the_same_mnemonic_in_a_new_directory() {
        let dir = tempfile::tempdir().unwrap();
        let a = NodeKeys::load_or_create(dir.path()).unwrap();
        let b = NodeKeys::load_or_create(dir.path()).unwrap();
        assert_eq!(a.node_id, b.node_id);
    }
}
