//! The key Airlock's own authorization server signs access tokens with: a P-256 key (ES256, as
//! identity providers commonly use) made by `ring` on first use. It is kept in the store,
//! sealed with the vault's master key (`store/oauth_signin.rs`), so every daemon of an
//! installation signs and checks with the same key: a token issued by one is good at all. A key
//! file `oauth-signing-key.p8` left in the data directory by an older version (PKCS#8,
//! owner-only) is taken over on first use, so tokens it signed stay valid. Its public half is
//! published as a JWK set, and the resource-server code checks tokens against it like any
//! issuer's keys.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use anyhow::Context as _;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

use crate::store::backend::Store;
use crate::store::oauth_signin::SIGNING_KEY_NAME;
use crate::store::vault::Vault;

/// The key file an older version kept inside the data directory.
pub const KEY_FILE: &str = "oauth-signing-key.p8";

pub struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    set: Arc<JwkSet>,
}

impl SigningKey {
    /// The public key as a JWK set (what `/oauth/jwks` serves and tokens are checked with).
    pub fn jwks(&self) -> Arc<JwkSet> {
        self.set.clone()
    }

    /// Signs `claims` as an ES256 JWT naming this key.
    pub fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        let mut head = Header::new(Algorithm::ES256);
        head.kid = Some(self.kid.clone());
        head.typ = Some("at+jwt".into());
        Ok(jsonwebtoken::encode(&head, claims, &self.encoding)?)
    }
}

/// Keys per data directory, for this process (loaded once).
static KEYS: LazyLock<Mutex<HashMap<PathBuf, Arc<SigningKey>>>> = LazyLock::new(Default::default);

/// The installation's signing key, made on first use.
pub async fn signing_key(a: &crate::app::Airlock) -> anyhow::Result<Arc<SigningKey>> {
    let data_dir = a.config().server.data_dir.clone();
    if let Some(k) = KEYS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&data_dir)
    {
        return Ok(k.clone());
    }
    let k = Arc::new(load_or_make(&a.store, &data_dir).await?);
    // Two first uses at once load the same stored key; either may be kept.
    KEYS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(data_dir, k.clone());
    Ok(k)
}

/// The stored key; when there is none, this data directory's old key file or a new key is
/// offered, and whichever offer reached the store first is used (daemons starting together
/// agree). Public for tools and tests that must sign as the installation does.
pub async fn load_or_make(store: &Store, data_dir: &Path) -> anyhow::Result<SigningKey> {
    let vault = Vault::open(data_dir)?;
    if store.oauth_signing_key().await?.is_none() {
        let pkcs8 = match read_key_file(data_dir)? {
            Some(old) => old,
            None => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                    .map_err(|_| anyhow::anyhow!("cannot make a P-256 key"))?
                    .as_ref()
                    .to_vec()
            }
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode(&pkcs8);
        store
            .offer_oauth_signing_key(&vault.seal(SIGNING_KEY_NAME, &b64)?)
            .await
            .context("cannot store the OAuth signing key")?;
    }
    let sealed = store
        .oauth_signing_key()
        .await?
        .context("the OAuth signing key vanished from the store")?;
    let b64 = vault
        .unseal(SIGNING_KEY_NAME, &sealed)
        .context("the OAuth signing key cannot be decrypted (every daemon of an installation needs the same vault master key)")?;
    let pkcs8 = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .context("the stored OAuth signing key is corrupted")?;
    from_pkcs8(&pkcs8).context("the stored OAuth signing key is not a P-256 PKCS#8 key")
}

/// An older version's key file, if there is one (refused when others may read it).
fn read_key_file(data_dir: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    let path = data_dir.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            crate::store::require_owner_only(&path)?;
            Ok(Some(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn from_pkcs8(pkcs8: &[u8]) -> anyhow::Result<SigningKey> {
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8,
        &SystemRandom::new(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    // The uncompressed point: 0x04 || X || Y.
    let point = pair.public_key().as_ref();
    anyhow::ensure!(point.len() == 65, "unexpected public key length");
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let kid = {
        use sha2::{Digest, Sha256};
        hex::encode(&Sha256::digest(point)[..8])
    };
    let set: JwkSet = serde_json::from_value(json!({"keys": [{
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": b64(&point[1..33]), "y": b64(&point[33..65]),
    }]}))?;
    Ok(SigningKey {
        kid,
        encoding: EncodingKey::from_ec_der(pkcs8),
        set: Arc::new(set),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store(dir: &Path) -> Store {
        Store::open(dir, None).await.unwrap()
    }

    #[tokio::test]
    async fn the_key_is_made_once_and_its_tokens_verify_with_the_published_set() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        let k = load_or_make(&s, dir.path()).await.unwrap();
        let again = load_or_make(&s, dir.path()).await.unwrap();
        assert_eq!(k.kid, again.kid, "the same key after a restart");
        let t = k
            .sign(&json!({"sub": "ada", "aud": "x", "exp": 4_000_000_000u64}))
            .unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&again.jwks().keys[0]).unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::ES256);
        v.set_audience(&["x"]);
        let got = jsonwebtoken::decode::<Value>(&t, &key, &v).unwrap();
        assert_eq!(got.claims["sub"], "ada");
        let stored = s.oauth_signing_key().await.unwrap().unwrap();
        assert!(
            !String::from_utf8_lossy(&stored.ciphertext).contains("MIG"),
            "kept sealed, not as PKCS#8"
        );
    }

    #[tokio::test]
    async fn an_older_key_file_is_taken_over_so_its_tokens_stay_valid() {
        let dir = tempfile::tempdir().unwrap();
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::write(&path, doc.as_ref()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let old = from_pkcs8(doc.as_ref()).unwrap();
        let s = store(dir.path()).await;
        let k = load_or_make(&s, dir.path()).await.unwrap();
        assert_eq!(k.kid, old.kid);
    }
}
