//! jsonwebtoken's cryptography, done by ring.
//!
//! jsonwebtoken leaves its signature checks to a [`CryptoProvider`], and
//! ships two: one over aws-lc-rs (a C library with its own build) and one
//! over the RustCrypto crates (a second, separate implementation of RSA,
//! P-256 and Ed25519). This server already carries ring for rustls, so the
//! provider here hands each check to ring's verifiers: one cryptography
//! library in the binary, and no signature maths written here.
//!
//! Only what sign-in accepts exists: RS256 (2048 to 8192 bit keys), ES256
//! and EdDSA (Ed25519). Every other algorithm, HMAC included, is refused
//! when a verifier is asked for, and nothing can be signed.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
    UnparsedPublicKey, VerificationAlgorithm,
};

/// The provider: ring's verifiers, no signers, no key utilities.
pub static RING: CryptoProvider = CryptoProvider {
    signer_factory: no_signer,
    verifier_factory: verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: no_rsa_components,
        rsa_pub_components_from_public_key: no_rsa_components,
        ec_pub_components_from_private_key: no_ec_components,
        ed_pub_components_from_private_key: no_ed_components,
        compute_digest: no_digest,
    },
};

fn no_rsa_components(_: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    Err(ErrorKind::InvalidRsaKey("not supported by this server".into()).into())
}

fn no_ec_components(_: &[u8], _: Algorithm) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>)> {
    Err(ErrorKind::InvalidEcdsaKey.into())
}

fn no_ed_components(_: &[u8], _: &EllipticCurve) -> Result<Vec<u8>> {
    Err(ErrorKind::InvalidEddsaKey.into())
}

fn no_digest(_: &[u8], _: ThumbprintHash) -> Result<Vec<u8>> {
    Err(ErrorKind::InvalidAlgorithm.into())
}

fn no_signer(_: &Algorithm, _: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Err(ErrorKind::InvalidAlgorithm.into())
}

/// Makes [`RING`] the process's provider. Returns whether it is the one in
/// force (false only if other code installed another first).
pub fn install() -> bool {
    let _ = RING.install_default();
    CryptoProvider::try_get_default().is_some_and(|provider| std::ptr::eq(provider, &RING))
}

/// A public key and the one algorithm it verifies.
enum Verifier {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Unparsed {
        algorithm: Algorithm,
        ring: &'static dyn VerificationAlgorithm,
        key: Vec<u8>,
    },
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    let unparsed = |ring: &'static dyn VerificationAlgorithm, key: &Vec<u8>| {
        Box::new(Verifier::Unparsed {
            algorithm: *algorithm,
            ring,
            key: key.clone(),
        })
    };
    match (algorithm, key.kind()) {
        (Algorithm::RS256, DecodingKeyKind::RsaModulusExponent { n, e }) => {
            Ok(Box::new(Verifier::Rsa {
                n: n.clone(),
                e: e.clone(),
            }))
        }
        (Algorithm::ES256, DecodingKeyKind::SecretOrDer(point))
            if key.family() == jsonwebtoken::AlgorithmFamily::Ec =>
        {
            Ok(unparsed(&ECDSA_P256_SHA256_FIXED, point))
        }
        (Algorithm::EdDSA, DecodingKeyKind::SecretOrDer(point))
            if key.family() == jsonwebtoken::AlgorithmFamily::Ed =>
        {
            Ok(unparsed(&ED25519, point))
        }
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

impl jsonwebtoken::signature::Verifier<Vec<u8>> for Verifier {
    fn verify(
        &self,
        message: &[u8],
        signature: &Vec<u8>,
    ) -> std::result::Result<(), jsonwebtoken::signature::Error> {
        let verified = match self {
            Self::Rsa { n, e } => RsaPublicKeyComponents { n, e }.verify(
                &RSA_PKCS1_2048_8192_SHA256,
                message,
                signature,
            ),
            Self::Unparsed { ring, key, .. } => {
                UnparsedPublicKey::new(*ring, key).verify(message, signature)
            }
        };
        verified.map_err(|_| jsonwebtoken::signature::Error::new())
    }
}

impl JwtVerifier for Verifier {
    fn algorithm(&self) -> Algorithm {
        match self {
            Self::Rsa { .. } => Algorithm::RS256,
            Self::Unparsed { algorithm, .. } => *algorithm,
        }
    }
}
