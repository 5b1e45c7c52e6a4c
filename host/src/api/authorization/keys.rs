//! The key Airlock's own authorization server signs access tokens with: a P-256 key (ES256, as
//! identity providers commonly use) made by `ring` on first use and kept in the data directory
//! as `oauth-signing-key.p8` (PKCS#8, owner-only; a file others could read is refused). Its
//! public half is published as a JWK set, and the resource-server code checks tokens against it
//! like any issuer's keys.

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

/// The key file inside the data directory.
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

/// The data directory's signing key, made on first use.
pub fn signing_key(data_dir: &Path) -> anyhow::Result<Arc<SigningKey>> {
    let mut keys = KEYS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(k) = keys.get(data_dir) {
        return Ok(k.clone());
    }
    let k = Arc::new(load_or_make(data_dir)?);
    keys.insert(data_dir.to_path_buf(), k.clone());
    Ok(k)
}

fn load_or_make(data_dir: &Path) -> anyhow::Result<SigningKey> {
    let path = data_dir.join(KEY_FILE);
    let pkcs8 = match std::fs::read(&path) {
        Ok(bytes) => {
            crate::store::require_owner_only(&path)?;
            bytes
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => make(&path)?,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    from_pkcs8(&pkcs8).with_context(|| format!("{} is not a P-256 PKCS#8 key", path.display()))
}

/// Makes a key and writes it owner-only; a file another process wrote meanwhile wins.
fn make(path: &Path) -> anyhow::Result<Vec<u8>> {
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map_err(|_| anyhow::anyhow!("cannot make a P-256 key"))?;
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.mode(0o600);
    }
    match open.open(path) {
        Ok(mut f) => {
            use std::io::Write as _;
            f.write_all(doc.as_ref())
                .and_then(|_| f.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(doc.as_ref().to_vec())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            crate::store::require_owner_only(path)?;
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
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

    #[test]
    fn the_key_is_made_once_owner_only_and_its_tokens_verify_with_the_published_set() {
        let dir = tempfile::tempdir().unwrap();
        let k = load_or_make(dir.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = load_or_make(dir.path()).unwrap();
        assert_eq!(k.kid, again.kid, "the same key after a restart");
        let t = k
            .sign(&json!({"sub": "ada", "aud": "x", "exp": 4_000_000_000u64}))
            .unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&again.jwks().keys[0]).unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::ES256);
        v.set_audience(&["x"]);
        let got = jsonwebtoken::decode::<Value>(&t, &key, &v).unwrap();
        assert_eq!(got.claims["sub"], "ada");
    }
}
