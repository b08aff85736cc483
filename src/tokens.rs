//! OAuth2 access tokens: issued as 30 random characters kept in the store
//! (`random_token`) or as JWTs (`custom_token` HS256, `signed_token` RS256), and checked
//! for the OWS proxy and the REST registry. `keycloak_token` only validates JWTs that
//! Keycloak issued.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::config::{TokenSettings, TokenType};
use crate::store::{OAuthToken, Store, StoreError, StoredToken};

/// What a token must allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Run protected OWS operations (Execute, GetMap, …).
    Compute,
    /// Change the service registry.
    Register,
}

impl Scope {
    /// The scope's name in OAuth2 `scope` strings.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Compute => "compute",
            Scope::Register => "register",
        }
    }
}

/// What kind of token granted access, for logs and metrics (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// An XML-RPC token (`generate_token`): it names no client.
    Rpc,
    /// A stored OAuth2 token of this client.
    OAuth {
        /// The client it was issued to.
        client_id: String,
    },
    /// A JWT whose `sub` names this client.
    Jwt {
        /// The `sub` claim (empty when the token has none).
        client_id: String,
    },
}

impl TokenKind {
    /// The credential kind as logs and metrics name it.
    pub fn as_str(&self) -> &'static str {
        match self {
            TokenKind::Rpc => "token",
            TokenKind::OAuth { .. } => "oauth",
            TokenKind::Jwt { .. } => "jwt",
        }
    }

    /// The OAuth2 client the token was issued to, if it names one.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            TokenKind::Rpc => None,
            TokenKind::OAuth { client_id } | TokenKind::Jwt { client_id } => Some(client_id),
        }
    }
}

/// Why a token does not grant access.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Unknown, revoked, malformed, wrongly signed, wrong issuer/audience, or lacking the scope.
    #[error("invalid token")]
    Invalid,
    /// Known and well-formed, but past its expiry.
    #[error("expired token")]
    Expired,
    /// The store failed; logged where it happened.
    #[error("store failure")]
    Store(#[from] StoreError),
}

/// A key file or key setting that cannot be used (a startup error).
#[derive(Debug, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct KeyError {
    /// The config key naming the key material.
    pub key: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// JWT claims twitcher writes and reads.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    iss: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    sub: String,
    exp: i64,
    #[serde(default)]
    iat: i64,
    #[serde(default)]
    scope: String,
}

/// An issued token, ready for the token response.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The bearer token.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// Space-separated granted scopes.
    pub scope: String,
}

/// Issues and validates OAuth2 tokens according to `twitcher.token.*`.
pub struct Tokens {
    kind: TokenType,
    expires_in: Duration,
    issuer: String,
    encoding: Option<EncodingKey>,
    decoding: Option<(DecodingKey, Algorithm)>,
    audience: Option<String>,
    /// JWTs whose signature, issuer and audience checked out, with their claims: an RS256
    /// verification costs ~150 µs, and a JWT cannot be revoked anyway.
    verified: Mutex<HashMap<String, Remembered>>,
}

/// What is kept of a verified JWT.
#[derive(Debug, Clone)]
struct Remembered {
    scope: String,
    exp: i64,
    sub: String,
}

/// Most verified JWTs remembered; past that the memory starts over.
const MAX_VERIFIED: usize = 100_000;

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are secrets: never printed.
        f.debug_struct("Tokens")
            .field("kind", &self.kind)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

fn read(key: &'static str, path: Option<&std::path::Path>) -> Result<Vec<u8>, KeyError> {
    let path = path.ok_or(KeyError {
        key,
        reason: "required by this twitcher.token.type".into(),
    })?;
    std::fs::read(path).map_err(|e| KeyError {
        key,
        reason: format!("cannot read {}: {e}", path.display()),
    })
}

/// An RSA public key from a PEM public key, a PEM certificate, or bare base64 DER (the
/// form Keycloak shows as the realm's public key).
fn rsa_public_key(key: &'static str, material: &[u8]) -> Result<DecodingKey, KeyError> {
    let bad = |reason: String| KeyError { key, reason };
    let text = String::from_utf8_lossy(material);
    if text.contains("BEGIN CERTIFICATE") {
        let (_, pem) = x509_parser::pem::parse_x509_pem(material)
            .map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
        let cert = pem
            .parse_x509()
            .map_err(|e| bad(format!("not an X.509 certificate: {e}")))?;
        return Ok(DecodingKey::from_rsa_der(
            &cert.public_key().subject_public_key.data,
        ));
    }
    let pem = if text.contains("-----BEGIN") {
        text.into_owned()
    } else {
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            text.trim()
        )
    };
    DecodingKey::from_rsa_pem(pem.as_bytes())
        .map_err(|e| bad(format!("not an RSA public key: {e}")))
}

impl Tokens {
    /// Loads the key material the configured token type needs.
    pub fn from_settings(settings: &TokenSettings) -> Result<Tokens, KeyError> {
        let (encoding, decoding) = match settings.kind {
            TokenType::RandomToken => (None, None),
            TokenType::CustomToken => {
                let secret = settings.secret.as_deref().ok_or(KeyError {
                    key: "twitcher.token.secret",
                    reason: "required for custom_token".into(),
                })?;
                (
                    Some(EncodingKey::from_secret(secret.as_bytes())),
                    Some((
                        DecodingKey::from_secret(secret.as_bytes()),
                        Algorithm::HS256,
                    )),
                )
            }
            TokenType::SignedToken => {
                let private = read("twitcher.token.keyfile", settings.keyfile.as_deref())?;
                let encoding = EncodingKey::from_rsa_pem(&private).map_err(|e| KeyError {
                    key: "twitcher.token.keyfile",
                    reason: format!("not an RSA private key in PEM format: {e}"),
                })?;
                let public = read("twitcher.token.certfile", settings.certfile.as_deref())?;
                (
                    Some(encoding),
                    Some((
                        rsa_public_key("twitcher.token.certfile", &public)?,
                        Algorithm::RS256,
                    )),
                )
            }
            TokenType::KeycloakToken => {
                let public = settings.keycloak_secret.as_deref().ok_or(KeyError {
                    key: "keycloak.token.secret",
                    reason: "required for keycloak_token".into(),
                })?;
                (
                    None,
                    Some((
                        rsa_public_key("keycloak.token.secret", public.as_bytes())?,
                        Algorithm::RS256,
                    )),
                )
            }
        };
        Ok(Tokens {
            kind: settings.kind,
            expires_in: settings.expires_in,
            issuer: settings.issuer.clone(),
            encoding,
            decoding,
            audience: settings.keycloak_audience.clone(),
            verified: Mutex::default(),
        })
    }

    /// True when `/oauth/token` can issue tokens (not for Keycloak, which issues its own).
    pub fn can_issue(&self) -> bool {
        self.kind != TokenType::KeycloakToken
    }

    /// Issues a token for a client; random tokens are stored, JWTs carry their claims.
    pub async fn issue(
        &self,
        store: &dyn Store,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> Result<Issued, TokenError> {
        let expires_in = self.expires_in.as_secs();
        let expires_at = now.saturating_add(i64::try_from(expires_in).unwrap_or(i64::MAX));
        let access_token = match &self.encoding {
            None => {
                let token: String = rand::rng()
                    .sample_iter(rand::distr::Alphanumeric)
                    .take(30)
                    .map(char::from)
                    .collect();
                store
                    .save_oauth_token(&OAuthToken {
                        access_token: token.clone(),
                        client_id: client_id.into(),
                        scope: scope.into(),
                        expires_at,
                    })
                    .await?;
                token
            }
            Some(key) => {
                let alg = if self.kind == TokenType::CustomToken {
                    Algorithm::HS256
                } else {
                    Algorithm::RS256
                };
                let claims = Claims {
                    iss: self.issuer.clone(),
                    sub: client_id.into(),
                    exp: expires_at,
                    iat: now,
                    scope: scope.into(),
                };
                jsonwebtoken::encode(&Header::new(alg), &claims, key).map_err(|e| {
                    tracing::error!(error = %e, "signing a token failed");
                    TokenError::Invalid
                })?
            }
        };
        Ok(Issued {
            access_token,
            expires_in,
            scope: scope.into(),
        })
    }

    /// Checks an OAuth2 token (stored or JWT) for a scope at time `now`.
    pub async fn check(
        &self,
        store: &dyn Store,
        token: &str,
        scope: Scope,
        now: i64,
    ) -> Result<(), TokenError> {
        match store.oauth_token(token).await? {
            Some(stored) => check_oauth(&stored, scope, now).map(drop),
            None => self.check_jwt(token, scope, now).map(drop),
        }
    }

    /// Checks a token presented to the OWS proxy: an XML-RPC token, a stored OAuth2 token
    /// or a JWT, each with scope `compute`, found with one store lookup.
    pub async fn verify_compute(
        &self,
        store: &dyn Store,
        token: &str,
        now: i64,
    ) -> Result<TokenKind, TokenError> {
        // A JWT verified before needs no store lookup (JWTs are never stored).
        if self.verified().contains_key(token) {
            return self.check_jwt(token, Scope::Compute, now);
        }
        match store.find_token(token).await? {
            Some(StoredToken::Rpc(t)) if t.expires_at > now => Ok(TokenKind::Rpc),
            Some(StoredToken::Rpc(_)) => Err(TokenError::Expired),
            Some(StoredToken::OAuth(t)) => check_oauth(&t, Scope::Compute, now),
            None => self.check_jwt(token, Scope::Compute, now),
        }
    }

    /// Checks a JWT's signature, issuer, audience, scope and expiry.
    fn check_jwt(&self, token: &str, scope: Scope, now: i64) -> Result<TokenKind, TokenError> {
        let remembered = self.verified().get(token).cloned();
        let known = match remembered {
            Some(known) => known,
            None => {
                let claims = self.verify_jwt(token)?;
                let known = Remembered {
                    scope: claims.scope,
                    exp: claims.exp,
                    sub: claims.sub,
                };
                let mut verified = self.verified();
                if verified.len() >= MAX_VERIFIED {
                    verified.clear();
                }
                verified.insert(token.to_string(), known.clone());
                known
            }
        };
        if !has_scope(&known.scope, scope) {
            return Err(TokenError::Invalid);
        }
        // Expiry is checked last and here, so an expired but otherwise valid token gets
        // the "expired" answer rather than "invalid".
        if known.exp > now {
            Ok(TokenKind::Jwt {
                client_id: known.sub,
            })
        } else {
            Err(TokenError::Expired)
        }
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, HashMap<String, Remembered>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The claims of a JWT whose signature, issuer and audience are right (any expiry).
    /// Every JWT must name the configured issuer (`twitcher.token.issuer`), Keycloak's
    /// too: a token of another issuer signed with a shared key is not ours.
    fn verify_jwt(&self, token: &str) -> Result<Claims, TokenError> {
        let Some((key, alg)) = &self.decoding else {
            return Err(TokenError::Invalid);
        };
        if token.bytes().filter(|b| *b == b'.').count() != 2 {
            return Err(TokenError::Invalid);
        }
        let mut validation = Validation::new(*alg);
        validation.leeway = 0;
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        validation.required_spec_claims.insert("iss".into());
        validation.set_issuer(&[&self.issuer]);
        match &self.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.required_spec_claims.insert("aud".into());
            }
            None => validation.validate_aud = false,
        }
        jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| {
                tracing::debug!(error = %e, "JWT refused");
                TokenError::Invalid
            })
    }
}

fn check_oauth(stored: &OAuthToken, scope: Scope, now: i64) -> Result<TokenKind, TokenError> {
    if !has_scope(&stored.scope, scope) {
        Err(TokenError::Invalid)
    } else if stored.expires_at > now {
        Ok(TokenKind::OAuth {
            client_id: stored.client_id.clone(),
        })
    } else {
        Err(TokenError::Expired)
    }
}

fn has_scope(granted: &str, scope: Scope) -> bool {
    granted.split_whitespace().any(|s| s == scope.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use std::path::PathBuf;

    fn settings(kind: TokenType) -> TokenSettings {
        let keys = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/keys");
        TokenSettings {
            kind,
            expires_in: Duration::from_secs(3600),
            issuer: "twitcher".into(),
            secret: Some("secret".into()),
            keyfile: Some(keys.join("test-signing-key.pem")),
            certfile: Some(keys.join("test-signing-cert.pem")),
            keycloak_secret: Some(
                std::fs::read_to_string(keys.join("test-signing-pubkey.pem")).unwrap(),
            ),
            keycloak_url: None,
            keycloak_audience: None,
        }
    }

    const NOW: i64 = 1_800_000_000;

    #[tokio::test]
    async fn random_tokens_are_stored_and_scoped() {
        let store = MemoryStore::new();
        let tokens = Tokens::from_settings(&settings(TokenType::RandomToken)).unwrap();
        let issued = tokens.issue(&store, "c", "compute", NOW).await.unwrap();
        assert_eq!(issued.access_token.len(), 30);
        assert!(
            issued
                .access_token
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        );
        assert!(
            tokens
                .check(&store, &issued.access_token, Scope::Compute, NOW)
                .await
                .is_ok()
        );
        assert!(matches!(
            tokens
                .check(&store, &issued.access_token, Scope::Register, NOW)
                .await,
            Err(TokenError::Invalid)
        ));
        assert!(matches!(
            tokens
                .check(&store, &issued.access_token, Scope::Compute, NOW + 3600)
                .await,
            Err(TokenError::Expired)
        ));
        assert!(matches!(
            tokens.check(&store, "unknown", Scope::Compute, NOW).await,
            Err(TokenError::Invalid)
        ));
    }

    #[tokio::test]
    async fn remembered_jwts_keep_their_scope_and_expiry() {
        let store = MemoryStore::new();
        let tokens = Tokens::from_settings(&settings(TokenType::SignedToken)).unwrap();
        let jwt = tokens
            .issue(&store, "c", "compute", NOW)
            .await
            .unwrap()
            .access_token;
        for _ in 0..2 {
            assert!(
                tokens
                    .check(&store, &jwt, Scope::Compute, NOW)
                    .await
                    .is_ok()
            );
            assert!(matches!(
                tokens.check(&store, &jwt, Scope::Register, NOW).await,
                Err(TokenError::Invalid)
            ));
            assert!(matches!(
                tokens.verify_compute(&store, &jwt, NOW + 3600).await,
                Err(TokenError::Expired)
            ));
        }
        assert_eq!(tokens.verified().len(), 1);
    }

    #[tokio::test]
    async fn jwts_are_checked_for_signature_issuer_scope_and_expiry() {
        let store = MemoryStore::new();
        for kind in [TokenType::CustomToken, TokenType::SignedToken] {
            let tokens = Tokens::from_settings(&settings(kind)).unwrap();
            let jwt = tokens
                .issue(&store, "c", "compute register", NOW)
                .await
                .unwrap()
                .access_token;
            assert!(
                store.oauth_token(&jwt).await.unwrap().is_none(),
                "JWTs are not stored"
            );
            assert!(
                tokens
                    .check(&store, &jwt, Scope::Compute, NOW)
                    .await
                    .is_ok(),
                "{kind:?}"
            );
            assert!(
                tokens
                    .check(&store, &jwt, Scope::Register, NOW)
                    .await
                    .is_ok()
            );
            assert!(matches!(
                tokens.check(&store, &jwt, Scope::Compute, NOW + 3600).await,
                Err(TokenError::Expired)
            ));
            let mut tampered = jwt.clone();
            tampered.push('x');
            assert!(matches!(
                tokens.check(&store, &tampered, Scope::Compute, NOW).await,
                Err(TokenError::Invalid)
            ));
            let other_issuer = Tokens::from_settings(&TokenSettings {
                issuer: "someone".into(),
                ..settings(kind)
            })
            .unwrap();
            assert!(matches!(
                other_issuer.check(&store, &jwt, Scope::Compute, NOW).await,
                Err(TokenError::Invalid)
            ));
            let compute_only = tokens
                .issue(&store, "c", "compute", NOW)
                .await
                .unwrap()
                .access_token;
            assert!(matches!(
                tokens
                    .check(&store, &compute_only, Scope::Register, NOW)
                    .await,
                Err(TokenError::Invalid)
            ));
            assert!(matches!(
                tokens.check(&store, "not.a.jwt", Scope::Compute, NOW).await,
                Err(TokenError::Invalid)
            ));
        }
        // An HS256 token signed with another secret.
        let custom = Tokens::from_settings(&settings(TokenType::CustomToken)).unwrap();
        let other = Tokens::from_settings(&TokenSettings {
            secret: Some("other".into()),
            ..settings(TokenType::CustomToken)
        })
        .unwrap();
        let jwt = other
            .issue(&store, "c", "compute", NOW)
            .await
            .unwrap()
            .access_token;
        assert!(matches!(
            custom.check(&store, &jwt, Scope::Compute, NOW).await,
            Err(TokenError::Invalid)
        ));
        // An RS256 token must not pass as HS256 (algorithm confusion) and vice versa.
        let signed = Tokens::from_settings(&settings(TokenType::SignedToken)).unwrap();
        let rs = signed
            .issue(&store, "c", "compute", NOW)
            .await
            .unwrap()
            .access_token;
        assert!(matches!(
            custom.check(&store, &rs, Scope::Compute, NOW).await,
            Err(TokenError::Invalid)
        ));
    }

    /// A JWT with these claims, signed with the test keys of `kind`.
    fn forged(kind: TokenType, iss: &str) -> String {
        let claims = Claims {
            iss: iss.into(),
            sub: "c".into(),
            exp: NOW + 60,
            iat: NOW,
            scope: "compute".into(),
        };
        let tokens = Tokens::from_settings(&settings(kind)).unwrap();
        let alg = if kind == TokenType::CustomToken {
            Algorithm::HS256
        } else {
            Algorithm::RS256
        };
        jsonwebtoken::encode(
            &Header::new(alg),
            &claims,
            tokens.encoding.as_ref().unwrap(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn jwts_without_the_configured_issuer_are_refused() {
        let store = MemoryStore::new();
        for (kind, checker) in [
            (TokenType::CustomToken, TokenType::CustomToken),
            (TokenType::SignedToken, TokenType::SignedToken),
            (TokenType::SignedToken, TokenType::KeycloakToken),
        ] {
            let tokens = Tokens::from_settings(&settings(checker)).unwrap();
            let right = forged(kind, "twitcher");
            assert!(
                matches!(
                    tokens.verify_compute(&store, &right, NOW).await,
                    Ok(TokenKind::Jwt { ref client_id }) if client_id == "c"
                ),
                "{checker:?}"
            );
            for iss in ["", "https://elsewhere/realms/x", "twitcher "] {
                let wrong = forged(kind, iss);
                assert!(
                    matches!(
                        tokens.verify_compute(&store, &wrong, NOW).await,
                        Err(TokenError::Invalid)
                    ),
                    "{checker:?} accepted iss {iss:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn keycloak_tokens_are_validated_not_issued() {
        let store = MemoryStore::new();
        let keycloak = Tokens::from_settings(&settings(TokenType::KeycloakToken)).unwrap();
        assert!(!keycloak.can_issue());
        let signed = Tokens::from_settings(&settings(TokenType::SignedToken)).unwrap();
        let jwt = signed
            .issue(&store, "c", "openid compute", NOW)
            .await
            .unwrap()
            .access_token;
        assert!(
            keycloak
                .check(&store, &jwt, Scope::Compute, NOW)
                .await
                .is_ok()
        );
        let with_audience = Tokens::from_settings(&TokenSettings {
            keycloak_audience: Some("twitcher".into()),
            ..settings(TokenType::KeycloakToken)
        })
        .unwrap();
        assert!(matches!(
            with_audience.check(&store, &jwt, Scope::Compute, NOW).await,
            Err(TokenError::Invalid)
        ));
    }

    #[test]
    fn missing_key_material_names_the_setting() {
        let e = Tokens::from_settings(&TokenSettings {
            secret: None,
            ..settings(TokenType::CustomToken)
        })
        .unwrap_err();
        assert_eq!(e.key, "twitcher.token.secret");
        let e = Tokens::from_settings(&TokenSettings {
            keyfile: Some("/nonexistent.pem".into()),
            ..settings(TokenType::SignedToken)
        })
        .unwrap_err();
        assert_eq!(e.key, "twitcher.token.keyfile");
        let e = Tokens::from_settings(&TokenSettings {
            keycloak_secret: Some("garbage".into()),
            ..settings(TokenType::KeycloakToken)
        })
        .unwrap_err();
        assert_eq!(e.key, "keycloak.token.secret");
    }
}
