//! Private keys of the PKI engine: generation (RSA through the `rsa` crate, which `ring`
//! cannot do; EC P-256/P-384 and Ed25519 through `ring`), PEM import and export in Vault's
//! formats, the public key as a SubjectPublicKeyInfo, signing, and signature checks on
//! requests clients send. Key bytes live in `Zeroizing` buffers; `Debug` prints no key.

use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair};
use zeroize::Zeroizing;

use super::der::{self, Reader};
use airlock_logical::{ApiError, ApiResult};

pub const OID_RSA: &[u64] = &[1, 2, 840, 113549, 1, 1, 1];
pub const OID_EC: &[u64] = &[1, 2, 840, 10045, 2, 1];
pub const OID_P256: &[u64] = &[1, 2, 840, 10045, 3, 1, 7];
pub const OID_P384: &[u64] = &[1, 3, 132, 0, 34];
pub const OID_ED25519: &[u64] = &[1, 3, 101, 112];
const OID_ECDSA_SHA256: &[u64] = &[1, 2, 840, 10045, 4, 3, 2];
const OID_ECDSA_SHA384: &[u64] = &[1, 2, 840, 10045, 4, 3, 3];
const OID_ECDSA_SHA512: &[u64] = &[1, 2, 840, 10045, 4, 3, 4];
const OID_RSA_SHA256: &[u64] = &[1, 2, 840, 113549, 1, 1, 11];
const OID_RSA_SHA384: &[u64] = &[1, 2, 840, 113549, 1, 1, 12];
const OID_RSA_SHA512: &[u64] = &[1, 2, 840, 113549, 1, 1, 13];

/// A key algorithm as Vault names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    Rsa,
    Ec,
    Ed25519,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Rsa => "rsa",
            KeyType::Ec => "ec",
            KeyType::Ed25519 => "ed25519",
        }
    }
    pub fn parse(s: &str) -> ApiResult<Self> {
        match s {
            "rsa" => Ok(KeyType::Rsa),
            "ec" => Ok(KeyType::Ec),
            "ed25519" => Ok(KeyType::Ed25519),
            other => Err(ApiError::bad_request(format!("unknown key type {other}"))),
        }
    }
    /// The bits used when a request gives 0.
    pub fn default_bits(self) -> u32 {
        match self {
            KeyType::Rsa => 2048,
            KeyType::Ec => 256,
            KeyType::Ed25519 => 0,
        }
    }
}

/// Checks a (type, bits) pair as Vault does (0: the type's default) and returns the bits.
pub fn validate_bits(kind: KeyType, bits: i64) -> ApiResult<u32> {
    let bits = if bits == 0 {
        i64::from(kind.default_bits())
    } else {
        bits
    };
    match kind {
        KeyType::Rsa if bits < 2048 => Err(ApiError::bad_request(format!(
            "RSA keys < 2048 bits are unsafe and not supported: got {bits}"
        ))),
        KeyType::Rsa if matches!(bits, 2048 | 3072 | 4096 | 8192) => Ok(bits as u32),
        KeyType::Rsa => Err(ApiError::bad_request(format!(
            "unsupported bit length for RSA key: {bits}"
        ))),
        // OpenBao also takes 224 and 521; `ring` signs with P-256 and P-384 only.
        KeyType::Ec if matches!(bits, 256 | 384) => Ok(bits as u32),
        KeyType::Ec => Err(ApiError::bad_request(format!(
            "unsupported bit length for EC key: {bits}"
        ))),
        KeyType::Ed25519 => Ok(0),
    }
}

/// A private key as PKCS#8 DER, zeroised on drop, with the signing key built from it on
/// first use and kept (a CA signs many certificates; rebuilding an EC key pair costs a
/// scalar multiplication).
pub struct PrivateKey {
    pub kind: KeyType,
    pub bits: u32,
    pkcs8: Zeroizing<Vec<u8>>,
    signer: std::sync::OnceLock<Signer>,
}

enum Signer {
    Rsa(sig::RsaKeyPair),
    Ec(sig::EcdsaKeyPair),
    Ed25519(sig::Ed25519KeyPair),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({}, ***)", self.kind.as_str())
    }
}

fn key_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("invalid private key: {e}"))
}

fn ec_alg(bits: u32) -> &'static sig::EcdsaSigningAlgorithm {
    if bits == 384 {
        &sig::ECDSA_P384_SHA384_ASN1_SIGNING
    } else {
        &sig::ECDSA_P256_SHA256_ASN1_SIGNING
    }
}

impl PrivateKey {
    /// A new key (bits already validated).
    pub fn generate(kind: KeyType, bits: u32) -> ApiResult<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = match kind {
            KeyType::Ec => sig::EcdsaKeyPair::generate_pkcs8(ec_alg(bits), &rng)
                .map_err(|_| ApiError::internal(&"EC key generation failed"))?
                .as_ref()
                .to_vec(),
            KeyType::Ed25519 => sig::Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| ApiError::internal(&"Ed25519 key generation failed"))?
                .as_ref()
                .to_vec(),
            KeyType::Rsa => {
                use rsa::pkcs8::EncodePrivateKey;
                let mut r = rand::rng();
                let k = rsa::PrivateKey::new(&mut r, bits as usize)
                    .map_err(|e| ApiError::internal(&e))?;
                k.to_pkcs8_der()
                    .map_err(|e| ApiError::internal(&e))?
                    .as_bytes()
                    .to_vec()
            }
        };
        Ok(PrivateKey {
            kind,
            bits,
            pkcs8: Zeroizing::new(pkcs8),
            signer: std::sync::OnceLock::new(),
        })
    }

    /// A stored key (PKCS#8 DER).
    pub fn from_pkcs8(pkcs8: &[u8]) -> ApiResult<Self> {
        let info = der::parse_one(pkcs8).map_err(|e| key_err(e.0))?;
        let mut r = info.reader();
        r.expect(der::INTEGER, "version")
            .map_err(|e| key_err(e.0))?;
        let alg = r
            .expect(der::SEQUENCE, "algorithm")
            .map_err(|e| key_err(e.0))?;
        let mut a = alg.reader();
        let oid = a
            .next()
            .and_then(|t| t.oid_arcs())
            .map_err(|e| key_err(e.0))?;
        let (kind, bits) = if oid == OID_RSA {
            let k = sig::RsaKeyPair::from_pkcs8(pkcs8).map_err(key_err)?;
            (KeyType::Rsa, (k.public().modulus_len() * 8) as u32)
        } else if oid == OID_EC {
            let curve = a
                .next()
                .and_then(|t| t.oid_arcs())
                .map_err(|e| key_err(e.0))?;
            let bits = if curve == OID_P256 {
                256
            } else if curve == OID_P384 {
                384
            } else {
                return Err(key_err("unsupported elliptic curve"));
            };
            sig::EcdsaKeyPair::from_pkcs8(ec_alg(bits), pkcs8, &SystemRandom::new())
                .map_err(key_err)?;
            (KeyType::Ec, bits)
        } else if oid == OID_ED25519 {
            sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(key_err)?;
            (KeyType::Ed25519, 0)
        } else {
            return Err(key_err("unsupported key algorithm"));
        };
        Ok(PrivateKey {
            kind,
            bits,
            pkcs8: Zeroizing::new(pkcs8.to_vec()),
            signer: std::sync::OnceLock::new(),
        })
    }

    /// A key from one PEM block: `PRIVATE KEY`, `EC PRIVATE KEY` or `RSA PRIVATE KEY`.
    pub fn from_pem_block(label: &str, der_bytes: &[u8]) -> ApiResult<Self> {
        match label {
            "PRIVATE KEY" => Self::from_pkcs8(der_bytes),
            "RSA PRIVATE KEY" => {
                let alg = der::seq(&[&der::oid(OID_RSA), &der::null()]);
                let p8 = Zeroizing::new(der::seq(&[
                    &der::small_uint(0),
                    &alg,
                    &der::octets(der_bytes),
                ]));
                Self::from_pkcs8(&p8)
            }
            "EC PRIVATE KEY" => {
                // The curve is in the key's [0] parameters.
                let ec = der::parse_one(der_bytes).map_err(|e| key_err(e.0))?;
                let mut r = ec.reader();
                let _ = r.next();
                let _ = r.next();
                let params = r
                    .optional(0xa0)
                    .map_err(|e| key_err(e.0))?
                    .ok_or_else(|| key_err("EC key without curve parameters"))?;
                let alg = der::seq(&[&der::oid(OID_EC), params.content]);
                let p8 = Zeroizing::new(der::seq(&[
                    &der::small_uint(0),
                    &alg,
                    &der::octets(der_bytes),
                ]));
                Self::from_pkcs8(&p8)
            }
            other => Err(key_err(format!("unsupported PEM block {other}"))),
        }
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn spki(&self) -> ApiResult<Vec<u8>> {
        let (alg, key) = match self.kind {
            KeyType::Rsa => {
                let k =
                    sig::RsaKeyPair::from_pkcs8(&self.pkcs8).map_err(|e| ApiError::internal(&e))?;
                (
                    der::seq(&[&der::oid(OID_RSA), &der::null()]),
                    k.public().as_ref().to_vec(),
                )
            }
            KeyType::Ec => {
                let k = sig::EcdsaKeyPair::from_pkcs8(
                    ec_alg(self.bits),
                    &self.pkcs8,
                    &SystemRandom::new(),
                )
                .map_err(|e| ApiError::internal(&e))?;
                let curve = if self.bits == 384 { OID_P384 } else { OID_P256 };
                (
                    der::seq(&[&der::oid(OID_EC), &der::oid(curve)]),
                    k.public_key().as_ref().to_vec(),
                )
            }
            KeyType::Ed25519 => {
                let k = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&self.pkcs8)
                    .map_err(|e| ApiError::internal(&e))?;
                (
                    der::seq(&[&der::oid(OID_ED25519)]),
                    k.public_key().as_ref().to_vec(),
                )
            }
        };
        Ok(der::seq(&[&alg, &der::bits(&key)]))
    }

    /// The AlgorithmIdentifier of this key's signatures.
    pub fn sig_alg(&self) -> Vec<u8> {
        match self.kind {
            KeyType::Rsa => der::seq(&[&der::oid(OID_RSA_SHA256), &der::null()]),
            KeyType::Ec if self.bits == 384 => der::seq(&[&der::oid(OID_ECDSA_SHA384)]),
            KeyType::Ec => der::seq(&[&der::oid(OID_ECDSA_SHA256)]),
            KeyType::Ed25519 => der::seq(&[&der::oid(OID_ED25519)]),
        }
    }

    fn signer(&self) -> ApiResult<&Signer> {
        if let Some(s) = self.signer.get() {
            return Ok(s);
        }
        let rng = SystemRandom::new();
        let s = match self.kind {
            KeyType::Rsa => Signer::Rsa(
                sig::RsaKeyPair::from_pkcs8(&self.pkcs8).map_err(|e| ApiError::internal(&e))?,
            ),
            KeyType::Ec => Signer::Ec(
                sig::EcdsaKeyPair::from_pkcs8(ec_alg(self.bits), &self.pkcs8, &rng)
                    .map_err(|e| ApiError::internal(&e))?,
            ),
            KeyType::Ed25519 => Signer::Ed25519(
                sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&self.pkcs8)
                    .map_err(|e| ApiError::internal(&e))?,
            ),
        };
        // Another thread may have set it meanwhile: either copy is the same key.
        Ok(self.signer.get_or_init(|| s))
    }

    pub fn sign(&self, msg: &[u8]) -> ApiResult<Vec<u8>> {
        let rng = SystemRandom::new();
        let fail = |_| ApiError::internal(&"signing failed");
        match self.signer()? {
            Signer::Rsa(k) => {
                let mut out = vec![0u8; k.public().modulus_len()];
                k.sign(&sig::RSA_PKCS1_SHA256, &rng, msg, &mut out)
                    .map_err(fail)?;
                Ok(out)
            }
            Signer::Ec(k) => Ok(k.sign(&rng, msg).map_err(fail)?.as_ref().to_vec()),
            Signer::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
        }
    }

    /// The stored form.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// PEM as Vault returns it: SEC1 for EC, PKCS#1 for RSA, PKCS#8 for Ed25519.
    pub fn to_pem(&self) -> ApiResult<Zeroizing<String>> {
        let bad = |e: der::DerError| ApiError::internal(&e.0);
        let info = der::parse_one(&self.pkcs8).map_err(bad)?;
        let mut r = info.reader();
        r.next().map_err(bad)?;
        let alg = r.next().map_err(bad)?;
        let inner = r.expect(der::OCTET_STRING, "key").map_err(bad)?;
        match self.kind {
            KeyType::Ed25519 => Ok(pem("PRIVATE KEY", &self.pkcs8)),
            KeyType::Rsa => Ok(pem("RSA PRIVATE KEY", inner.content)),
            KeyType::Ec => {
                let mut a = alg.reader();
                a.next().map_err(bad)?;
                let curve = a.next().map_err(bad)?;
                let ec = der::parse_one(inner.content).map_err(bad)?;
                let mut e = ec.reader();
                let version = e.next().map_err(bad)?;
                let private = e.next().map_err(bad)?;
                let _ = e.optional(0xa0).map_err(bad)?;
                let public = e.optional(0xa1).map_err(bad)?;
                let mut parts: Vec<&[u8]> = vec![version.raw, private.raw];
                let params = der::explicit(0, curve.raw);
                parts.push(&params);
                if let Some(p) = &public {
                    parts.push(p.raw);
                }
                let sec1 = Zeroizing::new(der::seq(&parts));
                Ok(pem("EC PRIVATE KEY", &sec1))
            }
        }
    }
}

/// Verifies `signature` over `msg` by the key in `spki` with the algorithm named by the
/// DER AlgorithmIdentifier `alg`.
pub fn verify(spki: &[u8], alg: &[u8], msg: &[u8], signature: &[u8]) -> Result<(), &'static str> {
    let info = der::parse_one(spki).map_err(|e| e.0)?;
    let mut r = info.reader();
    let key_alg = r.expect(der::SEQUENCE, "algorithm").map_err(|e| e.0)?;
    let key = r.next().and_then(|t| t.bit_string()).map_err(|e| e.0)?;
    let mut ka = key_alg.reader();
    let key_oid = ka.next().and_then(|t| t.oid_arcs()).map_err(|e| e.0)?;
    let curve = ka.next().ok().and_then(|t| t.oid_arcs().ok());
    let sig_oid = der::parse_one(alg)
        .and_then(|t| Reader::new(t.content).next())
        .and_then(|t| t.oid_arcs())
        .map_err(|e| e.0)?;
    let s = sig_oid.as_slice();
    let algorithm: &dyn sig::VerificationAlgorithm = if key_oid == OID_RSA {
        match s {
            x if x == OID_RSA_SHA256 => &sig::RSA_PKCS1_2048_8192_SHA256,
            x if x == OID_RSA_SHA384 => &sig::RSA_PKCS1_2048_8192_SHA384,
            x if x == OID_RSA_SHA512 => &sig::RSA_PKCS1_2048_8192_SHA512,
            _ => return Err("unsupported signature algorithm"),
        }
    } else if key_oid == OID_EC {
        let p384 = curve.as_deref() == Some(OID_P384);
        let p256 = curve.as_deref() == Some(OID_P256);
        match (s, p256, p384) {
            (x, true, _) if x == OID_ECDSA_SHA256 => &sig::ECDSA_P256_SHA256_ASN1,
            (x, true, _) if x == OID_ECDSA_SHA384 => &sig::ECDSA_P256_SHA384_ASN1,
            (x, _, true) if x == OID_ECDSA_SHA384 => &sig::ECDSA_P384_SHA384_ASN1,
            (x, _, true) if x == OID_ECDSA_SHA256 => &sig::ECDSA_P384_SHA256_ASN1,
            (x, _, _) if x == OID_ECDSA_SHA512 => return Err("unsupported signature algorithm"),
            _ => return Err("unsupported elliptic curve or signature algorithm"),
        }
    } else if key_oid == OID_ED25519 && s == OID_ED25519 {
        &sig::ED25519
    } else {
        return Err("unsupported public key algorithm");
    };
    sig::UnparsedPublicKey::new(algorithm, key)
        .verify(msg, signature)
        .map_err(|_| "signature does not verify")
}

/// The (type, bits) of a SubjectPublicKeyInfo.
pub fn spki_kind(spki: &[u8]) -> Result<(KeyType, u32), &'static str> {
    let info = der::parse_one(spki).map_err(|e| e.0)?;
    let mut r = info.reader();
    let alg = r.expect(der::SEQUENCE, "algorithm").map_err(|e| e.0)?;
    let key = r.next().and_then(|t| t.bit_string()).map_err(|e| e.0)?;
    let mut a = alg.reader();
    let oid = a.next().and_then(|t| t.oid_arcs()).map_err(|e| e.0)?;
    if oid == OID_RSA {
        let pk = der::parse_one(key).map_err(|e| e.0)?;
        let n = pk
            .reader()
            .next()
            .and_then(|t| t.uint_bytes().map(<[u8]>::len))
            .map_err(|e| e.0)?;
        Ok((KeyType::Rsa, (n * 8) as u32))
    } else if oid == OID_EC {
        let curve = a.next().and_then(|t| t.oid_arcs()).map_err(|e| e.0)?;
        match curve.as_slice() {
            c if c == OID_P256 => Ok((KeyType::Ec, 256)),
            c if c == OID_P384 => Ok((KeyType::Ec, 384)),
            _ => Err("unsupported elliptic curve"),
        }
    } else if oid == OID_ED25519 {
        Ok((KeyType::Ed25519, 0))
    } else {
        Err("unsupported public key algorithm")
    }
}

/// One PEM block, lines of 64.
pub fn pem(label: &str, der_bytes: &[u8]) -> Zeroizing<String> {
    use base64::Engine as _;
    let b = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der_bytes));
    let mut out = Zeroizing::new(format!("-----BEGIN {label}-----\n"));
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----"));
    out
}

/// A PEM block: its label and DER.
pub type PemBlock = (String, Zeroizing<Vec<u8>>);

/// Every PEM block in `text`: (label, DER). Text outside blocks is ignored.
pub fn parse_pem(text: &str) -> Result<Vec<PemBlock>, &'static str> {
    use base64::Engine as _;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let end_label = after.find("-----").ok_or("malformed PEM header")?;
        let label = &after[..end_label];
        let body_start = &after[end_label + 5..];
        let footer = format!("-----END {label}-----");
        let end = body_start
            .find(&footer)
            .ok_or("PEM block without its END line")?;
        let body: Zeroizing<String> = Zeroizing::new(
            body_start[..end]
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect(),
        );
        let der_bytes = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| "PEM block is not valid base64")?;
        out.push((label.to_string(), Zeroizing::new(der_bytes)));
        rest = &body_start[end + footer.len()..];
    }
    Ok(out)
}
